// gpu/cl_api.hpp — thin RAII layer over the OpenCL 1.2 C API: error → exception, owned handles, buffers.
//
// Every OpenCL call goes through check(): a failing call throws ClError whose message names the call and
// the error code by name ("clBuildProgram failed: CL_BUILD_PROGRAM_FAILURE (-11)"), so a failure in CI
// says what broke without a debugger. Handles (context, queue, program, kernel, memory, event) are owned by
// ClHandle<T>, which retains on copy and releases on destruction.
#pragma once

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#ifndef CL_USE_DEPRECATED_OPENCL_1_2_APIS
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#endif
#include <CL/cl.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace qeval::gpu {

// The symbolic name of an OpenCL error code ("CL_OUT_OF_RESOURCES"), or "unknown OpenCL error".
const char* cl_error_name(cl_int code);

// An OpenCL call returned an error. what(): "<call> failed: <NAME> (<code>)[: detail]".
class ClError : public std::runtime_error {
 public:
  ClError(const std::string& call, cl_int code, const std::string& detail = {});
  cl_int code() const { return code_; }
  const std::string& call() const { return call_; }

 private:
  std::string call_;
  cl_int code_;
};

// Throws ClError(call, err) unless err == CL_SUCCESS.
inline void check(cl_int err, const char* call) {
  if (err != CL_SUCCESS) throw ClError(call, err);
}

// Retain/release functions per handle type.
template <class T>
struct ClTraits;
template <>
struct ClTraits<cl_context> {
  static cl_int retain(cl_context h) { return clRetainContext(h); }
  static cl_int release(cl_context h) { return clReleaseContext(h); }
};
template <>
struct ClTraits<cl_command_queue> {
  static cl_int retain(cl_command_queue h) { return clRetainCommandQueue(h); }
  static cl_int release(cl_command_queue h) { return clReleaseCommandQueue(h); }
};
template <>
struct ClTraits<cl_program> {
  static cl_int retain(cl_program h) { return clRetainProgram(h); }
  static cl_int release(cl_program h) { return clReleaseProgram(h); }
};
template <>
struct ClTraits<cl_kernel> {
  static cl_int retain(cl_kernel h) { return clRetainKernel(h); }
  static cl_int release(cl_kernel h) { return clReleaseKernel(h); }
};
template <>
struct ClTraits<cl_mem> {
  static cl_int retain(cl_mem h) { return clRetainMemObject(h); }
  static cl_int release(cl_mem h) { return clReleaseMemObject(h); }
};
template <>
struct ClTraits<cl_event> {
  static cl_int retain(cl_event h) { return clRetainEvent(h); }
  static cl_int release(cl_event h) { return clReleaseEvent(h); }
};

// An owned OpenCL handle. Adopts a handle created by a clCreate* call (reference count 1); copies retain.
template <class T>
class ClHandle {
 public:
  ClHandle() = default;
  explicit ClHandle(T h) : h_(h) {}  // adopts
  ClHandle(const ClHandle& o) : h_(o.h_) {
    if (h_) ClTraits<T>::retain(h_);
  }
  ClHandle(ClHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  ClHandle& operator=(ClHandle o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  ~ClHandle() {
    if (h_) ClTraits<T>::release(h_);
  }
  T get() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }
  T* out() {  // for APIs that write a new handle (clEnqueue*(..., &event)); releases the old one
    *this = ClHandle();
    return &h_;
  }

 private:
  T h_ = nullptr;
};

using Context = ClHandle<cl_context>;
using Queue = ClHandle<cl_command_queue>;
using Program = ClHandle<cl_program>;
using Kernel = ClHandle<cl_kernel>;
using Mem = ClHandle<cl_mem>;
using Event = ClHandle<cl_event>;

// A device buffer of `bytes` bytes (at least 1: OpenCL rejects size 0).
class Buffer {
 public:
  Buffer() = default;
  Buffer(cl_context ctx, size_t bytes, cl_mem_flags flags = CL_MEM_READ_WRITE);
  cl_mem get() const { return mem_.get(); }
  size_t bytes() const { return bytes_; }
  explicit operator bool() const { return static_cast<bool>(mem_); }

  // Blocking transfers of `n` bytes at byte offset `off` (n == 0: nothing).
  void write(cl_command_queue q, const void* src, size_t n, size_t off = 0) const;
  void read(cl_command_queue q, void* dst, size_t n, size_t off = 0) const;
  // Fills the whole buffer with a byte pattern (sentinel fills in tests: 0xA5).
  void fill_bytes(cl_command_queue q, uint8_t value) const;

 private:
  Mem mem_;
  size_t bytes_ = 0;
};

// Device- and platform-info strings and scalars.
std::string device_string(cl_device_id d, cl_device_info what);
std::string platform_string(cl_platform_id p, cl_platform_info what);
template <class T>
T device_value(cl_device_id d, cl_device_info what) {
  T v{};
  check(clGetDeviceInfo(d, what, sizeof(T), &v, nullptr), "clGetDeviceInfo");
  return v;
}

// Seconds between CL_PROFILING_COMMAND_START and _END of a finished event (queue with profiling).
double event_seconds(cl_event e);

// Sets kernel argument i from a plain value (int, float, cl_mem, ...).
template <class T>
void set_arg(cl_kernel k, cl_uint i, const T& v) {
  const cl_int err = clSetKernelArg(k, i, sizeof(T), &v);
  if (err != CL_SUCCESS) throw ClError("clSetKernelArg", err, "argument " + std::to_string(i));
}
inline void set_arg(cl_kernel k, cl_uint i, const Buffer& b) { set_arg(k, i, b.get()); }
// A __local argument of `bytes` bytes.
struct LocalBytes {
  size_t bytes;
};
inline void set_arg(cl_kernel k, cl_uint i, const LocalBytes& l) {
  const cl_int err = clSetKernelArg(k, i, l.bytes, nullptr);
  if (err != CL_SUCCESS) throw ClError("clSetKernelArg", err, "__local argument " + std::to_string(i));
}
// Sets every argument in order.
template <class... A>
void set_args(cl_kernel k, const A&... a) {
  cl_uint i = 0;
  (set_arg(k, i++, a), ...);
}

}  // namespace qeval::gpu
