// gpu/cl_api.cpp — OpenCL error names, ClError, Buffer transfers, info queries and event timing.
#include "gpu/cl_api.hpp"

namespace qeval::gpu {

const char* cl_error_name(cl_int code) {
  // The table of cl.h (OpenCL 3.0 headers); codes −1000 and below are extension errors.
  switch (code) {
    case 0: return "CL_SUCCESS";
    case -1: return "CL_DEVICE_NOT_FOUND";
    case -2: return "CL_DEVICE_NOT_AVAILABLE";
    case -3: return "CL_COMPILER_NOT_AVAILABLE";
    case -4: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case -5: return "CL_OUT_OF_RESOURCES";
    case -6: return "CL_OUT_OF_HOST_MEMORY";
    case -7: return "CL_PROFILING_INFO_NOT_AVAILABLE";
    case -8: return "CL_MEM_COPY_OVERLAP";
    case -9: return "CL_IMAGE_FORMAT_MISMATCH";
    case -10: return "CL_IMAGE_FORMAT_NOT_SUPPORTED";
    case -11: return "CL_BUILD_PROGRAM_FAILURE";
    case -12: return "CL_MAP_FAILURE";
    case -13: return "CL_MISALIGNED_SUB_BUFFER_OFFSET";
    case -14: return "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST";
    case -15: return "CL_COMPILE_PROGRAM_FAILURE";
    case -16: return "CL_LINKER_NOT_AVAILABLE";
    case -17: return "CL_LINK_PROGRAM_FAILURE";
    case -18: return "CL_DEVICE_PARTITION_FAILED";
    case -19: return "CL_KERNEL_ARG_INFO_NOT_AVAILABLE";
    case -30: return "CL_INVALID_VALUE";
    case -31: return "CL_INVALID_DEVICE_TYPE";
    case -32: return "CL_INVALID_PLATFORM";
    case -33: return "CL_INVALID_DEVICE";
    case -34: return "CL_INVALID_CONTEXT";
    case -35: return "CL_INVALID_QUEUE_PROPERTIES";
    case -36: return "CL_INVALID_COMMAND_QUEUE";
    case -37: return "CL_INVALID_HOST_PTR";
    case -38: return "CL_INVALID_MEM_OBJECT";
    case -39: return "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR";
    case -40: return "CL_INVALID_IMAGE_SIZE";
    case -41: return "CL_INVALID_SAMPLER";
    case -42: return "CL_INVALID_BINARY";
    case -43: return "CL_INVALID_BUILD_OPTIONS";
    case -44: return "CL_INVALID_PROGRAM";
    case -45: return "CL_INVALID_PROGRAM_EXECUTABLE";
    case -46: return "CL_INVALID_KERNEL_NAME";
    case -47: return "CL_INVALID_KERNEL_DEFINITION";
    case -48: return "CL_INVALID_KERNEL";
    case -49: return "CL_INVALID_ARG_INDEX";
    case -50: return "CL_INVALID_ARG_VALUE";
    case -51: return "CL_INVALID_ARG_SIZE";
    case -52: return "CL_INVALID_KERNEL_ARGS";
    case -53: return "CL_INVALID_WORK_DIMENSION";
    case -54: return "CL_INVALID_WORK_GROUP_SIZE";
    case -55: return "CL_INVALID_WORK_ITEM_SIZE";
    case -56: return "CL_INVALID_GLOBAL_OFFSET";
    case -57: return "CL_INVALID_EVENT_WAIT_LIST";
    case -58: return "CL_INVALID_EVENT";
    case -59: return "CL_INVALID_OPERATION";
    case -60: return "CL_INVALID_GL_OBJECT";
    case -61: return "CL_INVALID_BUFFER_SIZE";
    case -62: return "CL_INVALID_MIP_LEVEL";
    case -63: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case -64: return "CL_INVALID_PROPERTY";
    case -65: return "CL_INVALID_IMAGE_DESCRIPTOR";
    case -66: return "CL_INVALID_COMPILER_OPTIONS";
    case -67: return "CL_INVALID_LINKER_OPTIONS";
    case -68: return "CL_INVALID_DEVICE_PARTITION_COUNT";
    case -69: return "CL_INVALID_PIPE_SIZE";
    case -70: return "CL_INVALID_DEVICE_QUEUE";
    case -71: return "CL_INVALID_SPEC_ID";
    case -72: return "CL_MAX_SIZE_RESTRICTION_EXCEEDED";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    default: return "unknown OpenCL error";
  }
}

ClError::ClError(const std::string& call, cl_int code, const std::string& detail)
    : std::runtime_error(call + " failed: " + cl_error_name(code) + " (" + std::to_string(code) + ")" +
                         (detail.empty() ? std::string() : ": " + detail)),
      call_(call),
      code_(code) {}

Buffer::Buffer(cl_context ctx, size_t bytes, cl_mem_flags flags) : bytes_(bytes) {
  cl_int err = CL_SUCCESS;
  cl_mem m = clCreateBuffer(ctx, flags, bytes == 0 ? 1 : bytes, nullptr, &err);
  if (err != CL_SUCCESS) throw ClError("clCreateBuffer", err, std::to_string(bytes) + " bytes");
  mem_ = Mem(m);
}

void Buffer::write(cl_command_queue q, const void* src, size_t n, size_t off) const {
  if (n == 0) return;
  if (off + n > bytes_)
    throw std::out_of_range("Buffer::write: " + std::to_string(n) + " bytes at offset " + std::to_string(off) +
                            " exceed the buffer's " + std::to_string(bytes_) + " bytes");
  check(clEnqueueWriteBuffer(q, mem_.get(), CL_TRUE, off, n, src, 0, nullptr, nullptr), "clEnqueueWriteBuffer");
}

void Buffer::read(cl_command_queue q, void* dst, size_t n, size_t off) const {
  if (n == 0) return;
  if (off + n > bytes_)
    throw std::out_of_range("Buffer::read: " + std::to_string(n) + " bytes at offset " + std::to_string(off) +
                            " exceed the buffer's " + std::to_string(bytes_) + " bytes");
  check(clEnqueueReadBuffer(q, mem_.get(), CL_TRUE, off, n, dst, 0, nullptr, nullptr), "clEnqueueReadBuffer");
}

void Buffer::fill_bytes(cl_command_queue q, uint8_t value) const {
  const size_t n = bytes_ == 0 ? 1 : bytes_;
  check(clEnqueueFillBuffer(q, mem_.get(), &value, 1, 0, n, 0, nullptr, nullptr), "clEnqueueFillBuffer");
  check(clFinish(q), "clFinish");
}

std::string device_string(cl_device_id d, cl_device_info what) {
  size_t n = 0;
  check(clGetDeviceInfo(d, what, 0, nullptr, &n), "clGetDeviceInfo");
  std::string s(n, '\0');
  if (n) check(clGetDeviceInfo(d, what, n, &s[0], nullptr), "clGetDeviceInfo");
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string platform_string(cl_platform_id p, cl_platform_info what) {
  size_t n = 0;
  check(clGetPlatformInfo(p, what, 0, nullptr, &n), "clGetPlatformInfo");
  std::string s(n, '\0');
  if (n) check(clGetPlatformInfo(p, what, n, &s[0], nullptr), "clGetPlatformInfo");
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
  return s;
}

double event_seconds(cl_event e) {
  cl_ulong t0 = 0, t1 = 0;
  check(clWaitForEvents(1, &e), "clWaitForEvents");
  check(clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_START, sizeof t0, &t0, nullptr), "clGetEventProfilingInfo");
  check(clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_END, sizeof t1, &t1, nullptr), "clGetEventProfilingInfo");
  return static_cast<double>(t1 - t0) * 1e-9;  // profiling counters are in nanoseconds
}

}  // namespace qeval::gpu
