// gpu/device.hpp — OpenCL platform/device discovery, capability tiers with known-answer probes, and an opened
// device (context, profiling queue, per-device program cache).
//
// Tiers (docs: ../shared/DESIGN.md "Backends and tiers"):
//   T0           OpenCL C 1.2, char4 dot products, local-memory tiling. Everywhere. On NVIDIA the dot
//                product is the PTX dp4a instruction (inline assembly) when its probe passes ("T0/dp4a").
//   T1           cl_khr_integer_dot_product.
//   T2           cl_intel_subgroups: shuffles + block reads on the VNNI weight layout.
//   T3           XMX through cl_intel_subgroup_matrix_multiply_accumulate on the VNNI weight layout.
//   T3-emulated  T3's tile loop, indexing and layout with the matrix instruction emulated in local memory;
//                runs on any device, only to keep T3's data path tested; never chosen for speed.
// A tier is *usable* when the device advertises what it needs AND its known-answer probe (a small GEMM
// against qeval::ref::gemm_s8s8_s32_ref) passes; a failing probe disables the tier with a warning on
// stderr. Probes run once per opened device, on first use.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gpu/cl_api.hpp"

namespace qeval::gpu {

enum class Tier : uint8_t { t0, t1, t2, t3, t3_emulated };
inline constexpr Tier kAllTiers[] = {Tier::t0, Tier::t1, Tier::t2, Tier::t3, Tier::t3_emulated};
const char* to_string(Tier t);  // "T0", "T1", "T2", "T3", "T3-emulated"
Tier parse_tier(const std::string& s);  // accepts the names above (case-insensitive) and t3_emulated

// What an OpenCL device is and offers (read once by list_devices()).
struct DeviceInfo {
  int platform_index = -1;
  int device_index = -1;  // within its platform
  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
  std::string platform_name, platform_version;
  std::string name, vendor, version, driver_version, c_version;
  std::string extensions;  // space-separated, as the driver reports them
  cl_device_type type = 0;
  uint32_t compute_units = 0;
  uint32_t clock_mhz = 0;  // CL_DEVICE_MAX_CLOCK_FREQUENCY
  uint64_t global_mem_bytes = 0;
  uint64_t local_mem_bytes = 0;
  size_t max_work_group = 0;
  bool fp64 = false;                   // cl_khr_fp64 / a double_fp_config
  bool correctly_rounded_div = false;  // CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT in single_fp_config
  std::vector<size_t> intel_subgroup_sizes;  // CL_DEVICE_SUB_GROUP_SIZES_INTEL, when cl_intel_subgroups

  bool has_extension(const std::string& ext) const;
  bool is_nvidia() const;
  std::string type_string() const;  // "GPU", "CPU", "accelerator", ...
  std::string label() const;        // "<platform>/<device> (p0:d0)"
};

// Every device of every platform. Empty (no exception) when no ICD or platform is installed.
std::vector<DeviceInfo> list_devices();

// The state of one tier on one device.
struct TierState {
  Tier tier = Tier::t0;
  bool supported = false;  // the device advertises what the tier needs
  bool probed = false;
  bool passed = false;     // known-answer probe result (only meaningful when probed)
  std::string variant;     // e.g. "dp4a" or "portable" (T0), "sg8" / "sg16" (T2/T3)
  std::string detail;      // why unsupported, or the probe's failure text
  bool usable() const { return supported && probed && passed; }
};

// An opened device: context, one in-order profiling queue, compiled programs and the tier table.
// Thread safety: kernel objects are shared, so every enqueueing path holds lock() (ops.cpp does).
class Device {
 public:
  explicit Device(const DeviceInfo& info);
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const DeviceInfo& info() const { return info_; }
  cl_context context() const { return ctx_.get(); }
  cl_command_queue queue() const { return queue_.get(); }
  std::unique_lock<std::recursive_mutex> lock() { return std::unique_lock<std::recursive_mutex>(mu_); }

  // Options every program gets (-cl-std=CL1.2, -DQEVAL_HAS_FP64 when the device has fp64, ...).
  std::string base_options() const;
  // The program built from embedded source `file` with `options` appended to base_options(): compiled
  // once per device and kept (and, when $QEVAL_CL_CACHE_DIR names a folder, cached there as a binary
  // keyed by device, driver, source hash and options). Build failures throw ClError with the build log.
  cl_program program(const std::string& file, const std::string& options);
  // A kernel of that program (one cached cl_kernel per program and name).
  cl_kernel kernel(const std::string& file, const std::string& options, const std::string& kernel_name);
  // Number of programs compiled from source in this process (cache tests).
  int programs_built() const { return built_; }

  // Tier table (runs the probes on first call).
  const std::vector<TierState>& tiers();
  const TierState& tier(Tier t);
  bool usable(Tier t) { return tier(t).usable(); }
  // The best usable GEMM tier among T3 > T2 > T1 > T0 (never the emulation). Throws when even T0 failed.
  Tier best_tier();
  // -D option selecting the dot4 of T0 (dp4a on NVIDIA when its probe passed) or T1.
  std::string dot4_option(Tier t);
  // Subgroup size used by T2/T3 on this device (8 or 16), 8 for the emulation unless overridden.
  int subgroup_size(Tier t);

 private:
  void run_probes();

  DeviceInfo info_;
  Context ctx_;
  Queue queue_;
  std::recursive_mutex mu_;
  std::map<std::string, Program> programs_;
  std::map<std::string, Kernel> kernels_;
  std::vector<TierState> tiers_;
  bool probes_done_ = false;
  bool nv_dp4a_ = false;
  int built_ = 0;
};

// Opens a device. selector: "" → $QEVAL_CL_DEVICE if set, else the first GPU, else the first device;
// "p:d" → platform p, device d (indices of list_devices()); any other text → the first device whose
// "<platform> <device>" name contains it (case-insensitive). Throws std::runtime_error naming the
// devices found when nothing matches or no OpenCL device exists.
std::shared_ptr<Device> open_device(const std::string& selector = "");

// The process-wide default device (opened once with selector ""), or nullptr when there is none.
// Tests use it to GTEST_SKIP when no OpenCL device exists.
std::shared_ptr<Device> default_device();

}  // namespace qeval::gpu
