// gpu/device.cpp — device discovery, the per-device program cache (memory + optional disk) and the tier table.
#include "gpu/device.hpp"

#include <CL/cl_ext.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include <unistd.h>

#include "gpu/embedded_sources.hpp"
#include "gpu/fnv.hpp"
#include "gpu/tuning.hpp"

namespace qeval::gpu {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

const char* to_string(Tier t) {
  switch (t) {
    case Tier::t0: return "T0";
    case Tier::t1: return "T1";
    case Tier::t2: return "T2";
    case Tier::t3: return "T3";
    case Tier::t3_emulated: return "T3-emulated";
  }
  return "?";
}

Tier parse_tier(const std::string& s) {
  const std::string l = lower(s);
  if (l == "t0") return Tier::t0;
  if (l == "t1") return Tier::t1;
  if (l == "t2") return Tier::t2;
  if (l == "t3") return Tier::t3;
  if (l == "t3-emulated" || l == "t3_emulated" || l == "t3emu") return Tier::t3_emulated;
  throw std::invalid_argument("unknown OpenCL tier '" + s + "'; expected T0, T1, T2, T3 or T3-emulated");
}

bool DeviceInfo::has_extension(const std::string& ext) const {
  std::istringstream in(extensions);
  std::string e;
  while (in >> e)
    if (e == ext) return true;
  return false;
}

bool DeviceInfo::is_nvidia() const {
  const std::string v = lower(vendor + " " + platform_name);
  return v.find("nvidia") != std::string::npos;
}

std::string DeviceInfo::type_string() const {
  if (type & CL_DEVICE_TYPE_GPU) return "GPU";
  if (type & CL_DEVICE_TYPE_CPU) return "CPU";
  if (type & CL_DEVICE_TYPE_ACCELERATOR) return "accelerator";
  return "other";
}

std::string DeviceInfo::label() const {
  return platform_name + " / " + name + " (p" + std::to_string(platform_index) + ":d" + std::to_string(device_index) +
         ")";
}

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> out;
  cl_uint np = 0;
  // No ICD / no platform: CL_PLATFORM_NOT_FOUND_KHR (−1001) or 0 platforms. Not an error here.
  if (clGetPlatformIDs(0, nullptr, &np) != CL_SUCCESS || np == 0) return out;
  std::vector<cl_platform_id> ps(np);
  check(clGetPlatformIDs(np, ps.data(), nullptr), "clGetPlatformIDs");
  for (cl_uint pi = 0; pi < np; ++pi) {
    cl_uint nd = 0;
    if (clGetDeviceIDs(ps[pi], CL_DEVICE_TYPE_ALL, 0, nullptr, &nd) != CL_SUCCESS || nd == 0) continue;
    std::vector<cl_device_id> ds(nd);
    check(clGetDeviceIDs(ps[pi], CL_DEVICE_TYPE_ALL, nd, ds.data(), nullptr), "clGetDeviceIDs");
    for (cl_uint di = 0; di < nd; ++di) {
      DeviceInfo i;
      i.platform_index = static_cast<int>(pi);
      i.device_index = static_cast<int>(di);
      i.platform = ps[pi];
      i.device = ds[di];
      i.platform_name = platform_string(ps[pi], CL_PLATFORM_NAME);
      i.platform_version = platform_string(ps[pi], CL_PLATFORM_VERSION);
      i.name = device_string(ds[di], CL_DEVICE_NAME);
      i.vendor = device_string(ds[di], CL_DEVICE_VENDOR);
      i.version = device_string(ds[di], CL_DEVICE_VERSION);
      i.driver_version = device_string(ds[di], CL_DRIVER_VERSION);
      i.c_version = device_string(ds[di], CL_DEVICE_OPENCL_C_VERSION);
      i.extensions = device_string(ds[di], CL_DEVICE_EXTENSIONS);
      i.type = device_value<cl_device_type>(ds[di], CL_DEVICE_TYPE);
      i.compute_units = device_value<cl_uint>(ds[di], CL_DEVICE_MAX_COMPUTE_UNITS);
      i.clock_mhz = device_value<cl_uint>(ds[di], CL_DEVICE_MAX_CLOCK_FREQUENCY);
      i.global_mem_bytes = device_value<cl_ulong>(ds[di], CL_DEVICE_GLOBAL_MEM_SIZE);
      i.local_mem_bytes = device_value<cl_ulong>(ds[di], CL_DEVICE_LOCAL_MEM_SIZE);
      i.max_work_group = device_value<size_t>(ds[di], CL_DEVICE_MAX_WORK_GROUP_SIZE);
      cl_device_fp_config dcfg = 0;
      if (clGetDeviceInfo(ds[di], CL_DEVICE_DOUBLE_FP_CONFIG, sizeof dcfg, &dcfg, nullptr) != CL_SUCCESS) dcfg = 0;
      i.fp64 = dcfg != 0 || i.has_extension("cl_khr_fp64");
      const auto scfg = device_value<cl_device_fp_config>(ds[di], CL_DEVICE_SINGLE_FP_CONFIG);
      i.correctly_rounded_div = (scfg & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0;
      if (i.has_extension("cl_intel_subgroups") || i.has_extension("cl_intel_required_subgroup_size")) {
        size_t n = 0;
        if (clGetDeviceInfo(ds[di], CL_DEVICE_SUB_GROUP_SIZES_INTEL, 0, nullptr, &n) == CL_SUCCESS && n) {
          i.intel_subgroup_sizes.resize(n / sizeof(size_t));
          clGetDeviceInfo(ds[di], CL_DEVICE_SUB_GROUP_SIZES_INTEL, n, i.intel_subgroup_sizes.data(), nullptr);
        }
      }
      out.push_back(std::move(i));
    }
  }
  return out;
}

std::string cl_cache_dir() {
  std::string dir;
  if (const char* e = std::getenv("QEVAL_CL_CACHE_DIR"); e && *e) {
    if (lower(e) == "off") return "";
    dir = e;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    dir = std::string(x) + "/qeval/opencl";
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    dir = std::string(h) + "/.cache/qeval/opencl";
  } else {
    return "";
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  return std::filesystem::is_directory(dir, ec) ? dir : "";
}

std::string base_build_options(const DeviceInfo& info, const std::string& extra) {
  std::string o = "-cl-std=CL1.2";
  if (info.fp64) o += " -DQEVAL_HAS_FP64=1";
  if (info.correctly_rounded_div) o += " -cl-fp32-correctly-rounded-divide-sqrt";
  if (!extra.empty()) o += " " + extra;
  if (const char* e = std::getenv("QEVAL_CL_BUILD_OPTIONS"); e && *e) o += std::string(" ") + e;
  return o;
}

void compile_progress(const std::string& text) {
  static const bool tty = isatty(STDERR_FILENO) != 0;
  if (!tty) return;
  std::cerr << "\r\033[K" << text << std::flush;  // one status line, rewritten; "" erases it
}

Device::Device(const DeviceInfo& info, std::string extra_options)
    : info_(info), base_options_(base_build_options(info, extra_options)) {
  cl_int err = CL_SUCCESS;
  const cl_context_properties props[] = {CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(info.platform),
                                         0};
  cl_context c = clCreateContext(props, 1, &info.device, nullptr, nullptr, &err);
  if (err != CL_SUCCESS) throw ClError("clCreateContext", err, info.label());
  ctx_ = Context(c);
  cl_command_queue q = clCreateCommandQueue(c, info.device, CL_QUEUE_PROFILING_ENABLE, &err);
  if (err != CL_SUCCESS) throw ClError("clCreateCommandQueue", err, info.label());
  queue_ = Queue(q);
  init_tiers();
}

Device::~Device() = default;

const TuningTable& Device::tuning() {
  auto lk = lock();
  if (!tuning_) tuning_ = std::make_unique<TuningTable>(load_tuning_table(info_, std::cerr));
  return *tuning_;
}

void Device::set_tuning(const TuningTable& t) {
  auto lk = lock();
  tuning_ = std::make_unique<TuningTable>(t);
}

namespace {

// The on-disk program binary of (device, driver, options, source): $cache/qeval-<hash>.bin, or "".
std::string binary_cache_path(const DeviceInfo& info, const std::string& opts, const EmbeddedSource& src) {
  const std::string dir = cl_cache_dir();
  if (dir.empty()) return "";
  uint64_t h = fnv1a(info.platform_name + "|" + info.name + "|" + info.driver_version + "|" + opts);
  h = fnv1a(hex64(src.hash), h);
  return dir + "/qeval-" + hex64(h) + ".bin";
}

// A program from a cached binary, built; an empty handle when there is none or the driver rejects it.
Program load_binary(cl_context ctx, cl_device_id dev, const std::string& path, const std::string& opts) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Program();
  std::vector<unsigned char> bin((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const unsigned char* bp = bin.data();
  const size_t bn = bin.size();
  cl_int bst = CL_SUCCESS, err = CL_SUCCESS;
  cl_program p = clCreateProgramWithBinary(ctx, 1, &dev, &bn, &bp, &bst, &err);
  if (err != CL_SUCCESS || bst != CL_SUCCESS) {
    if (p) clReleaseProgram(p);
    return Program();
  }
  Program prog(p);
  if (clBuildProgram(p, 1, &dev, opts.c_str(), nullptr, nullptr) != CL_SUCCESS) return Program();
  return prog;
}

// Writes the program's binary to `path` (atomic rename; any failure just skips caching).
void store_binary(cl_program p, const std::string& path) {
  size_t bs = 0;
  if (clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof bs, &bs, nullptr) != CL_SUCCESS || bs == 0) return;
  std::vector<unsigned char> bin(bs);
  unsigned char* bp = bin.data();
  if (clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof bp, &bp, nullptr) != CL_SUCCESS) return;
  const std::string tmp = path + ".tmp" + std::to_string(static_cast<long>(getpid()));
  std::ofstream o(tmp, std::ios::binary);
  o.write(reinterpret_cast<const char*>(bin.data()), static_cast<std::streamsize>(bin.size()));
  o.close();
  if (o) std::rename(tmp.c_str(), path.c_str());
  else std::remove(tmp.c_str());
}

std::string build_log(cl_program p, cl_device_id dev) {
  std::string log = "?";
  size_t n = 0;
  if (clGetProgramBuildInfo(p, dev, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n) == CL_SUCCESS && n) {
    log.assign(n, '\0');
    clGetProgramBuildInfo(p, dev, CL_PROGRAM_BUILD_LOG, n, &log[0], nullptr);
    if (log.size() > 6000) log = log.substr(0, 6000) + "\n[... build log truncated]";
  }
  return log;
}

}  // namespace

Program Device::build_from_source(const std::string& file, const std::string& opts) {
  const EmbeddedSource& src = embedded_source(file);
  cl_int err = CL_SUCCESS;
  const char* text = src.text;
  const size_t len = src.size;
  cl_program p = clCreateProgramWithSource(ctx_.get(), 1, &text, &len, &err);
  if (err != CL_SUCCESS) throw ClError("clCreateProgramWithSource", err, file);
  Program prog(p);
  compile_progress("qeval: compiling OpenCL " + file + " for " + info_.name + " ...");
  const auto t0 = std::chrono::steady_clock::now();
  err = clBuildProgram(p, 1, &info_.device, opts.c_str(), nullptr, nullptr);
  compile_progress("");
  if (std::getenv("QEVAL_CL_VERBOSE"))
    std::cerr << "qeval: built " << file << " [" << opts << "] in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
  if (err != CL_SUCCESS)
    throw ClError("clBuildProgram", err,
                  file + " with options '" + opts + "' on " + info_.name + ":\n" + build_log(p, info_.device));
  ++built_;
  return prog;
}

cl_program Device::program(const std::string& file, const std::string& options) {
  auto lk = lock();
  const std::string opts = base_options_ + (options.empty() ? "" : " " + options);
  const std::string key = file + "|" + opts;
  auto it = programs_.find(key);
  if (it != programs_.end()) return it->second.get();
  const std::string cache = binary_cache_path(info_, opts, embedded_source(file));
  Program prog = cache.empty() ? Program() : load_binary(ctx_.get(), info_.device, cache, opts);
  if (!prog) {
    prog = build_from_source(file, opts);
    if (!cache.empty()) store_binary(prog.get(), cache);
  }
  cl_program raw = prog.get();
  programs_.emplace(key, std::move(prog));
  return raw;
}

cl_kernel Device::kernel(const std::string& file, const std::string& options, const std::string& kernel_name) {
  auto lk = lock();
  const std::string key = file + "|" + options + "|" + kernel_name;
  auto it = kernels_.find(key);
  if (it != kernels_.end()) return it->second.get();
  cl_program p = program(file, options);
  cl_int err = CL_SUCCESS;
  cl_kernel k = clCreateKernel(p, kernel_name.c_str(), &err);
  if (err != CL_SUCCESS) throw ClError("clCreateKernel", err, kernel_name + " in " + file);
  kernels_.emplace(key, Kernel(k));
  return k;
}

DeviceInfo select_device(const std::string& selector_in) {
  std::string selector = selector_in;
  if (selector.empty())
    if (const char* e = std::getenv("QEVAL_CL_DEVICE"); e && *e) selector = e;
  const std::vector<DeviceInfo> devs = list_devices();
  if (devs.empty())
    throw std::runtime_error(
        "no OpenCL device found (no ICD/platform installed); install PoCL (apt-get install pocl-opencl-icd) or a GPU "
        "driver, or use the CPU backend");
  auto names = [&] {
    std::string s;
    for (const auto& d : devs) s += "\n  " + d.label();
    return s;
  };
  if (selector.empty()) {
    for (const auto& d : devs)
      if (d.type & CL_DEVICE_TYPE_GPU) return d;
    return devs.front();
  }
  int p = -1, dd = -1;
  char tail = 0;
  if (std::sscanf(selector.c_str(), "%d:%d%c", &p, &dd, &tail) == 2) {
    for (const auto& d : devs)
      if (d.platform_index == p && d.device_index == dd) return d;
    throw std::runtime_error("no OpenCL device " + selector + " (platform:device); found:" + names());
  }
  const std::string l = lower(selector);  // platform, device name and version ("... PoCL ...", "... CUDA")
  for (const auto& d : devs)
    if (lower(d.platform_name + " " + d.name + " " + d.version).find(l) != std::string::npos) return d;
  throw std::runtime_error("no OpenCL device matches '" + selector + "'; found:" + names());
}

std::shared_ptr<Device> open_device(const std::string& selector) {
  return std::make_shared<Device>(select_device(selector));
}

std::shared_ptr<Device> default_device() {
  static std::once_flag once;
  static std::shared_ptr<Device> dev;
  std::call_once(once, [] {
    try {
      dev = open_device("");
    } catch (const std::exception& e) {
      dev = nullptr;
    }
  });
  return dev;
}

const EmbeddedSource& embedded_source(const std::string& name) {
  size_t n = 0;
  const EmbeddedSource* s = embedded_sources(&n);
  for (size_t i = 0; i < n; ++i)
    if (name == s[i].name) return s[i];
  std::string known;
  for (size_t i = 0; i < n; ++i) known += std::string(i ? ", " : "") + s[i].name;
  throw std::invalid_argument("no embedded OpenCL source '" + name + "'; embedded: " + known);
}

}  // namespace qeval::gpu
