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
// stderr. A tier is probed only when it is asked for (tier(t), best_tier() from T3 down to the first
// usable one), and the result is cached on disk (cl_cache_dir()) keyed by platform, device, driver, build
// options and the hash of every embedded kernel source, so the next process reads it instead of
// compiling. Listing devices (supported_tiers, cached_tiers) never compiles anything.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gpu/cl_api.hpp"

namespace qeval::gpu {

struct TuningTable;  // gpu/tuning.hpp

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

// The folder of the on-disk caches (program binaries, probe results, tables `qeval tune` writes by
// default): $QEVAL_CL_CACHE_DIR, else $XDG_CACHE_HOME/qeval/opencl, else $HOME/.cache/qeval/opencl,
// created on first use. "" (no caching) when $QEVAL_CL_CACHE_DIR is "off" or the folder cannot be created.
std::string cl_cache_dir();

// Build options every program on this device gets: -cl-std=CL1.2, -DQEVAL_HAS_FP64=1 with fp64,
// -cl-fp32-correctly-rounded-divide-sqrt where the device reports CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT
// (quantize.cl and dequantize.cl divide like the reference only then), then `extra` and
// $QEVAL_CL_BUILD_OPTIONS (experiments, e.g. -DQEVAL_CL_APPROX_RECIP=1 to see the exactness tests fail).
std::string base_build_options(const DeviceInfo& info, const std::string& extra = "");

// The state of one tier on one device.
struct TierState {
  Tier tier = Tier::t0;
  bool supported = false;  // the device advertises what the tier needs
  bool probed = false;
  bool passed = false;     // known-answer probe result (only meaningful when probed)
  std::string variant;     // e.g. "dp4a" or "portable" (T0), "sg8" / "sg16" (T2/T3)
  std::string detail;      // why unsupported, or the probe's failure text
  bool from_cache = false; // probe result read from the disk cache (not run in this process)
  bool usable() const { return supported && probed && passed; }
};

// Subgroup size of T2/T3 on this device (its smallest of 8/16), and of the T3 emulation (8, or
// $QEVAL_CL_EMU_SG = 16).
int subgroup_size_for(const DeviceInfo& info, Tier t);

// The tier table without running anything: `supported` and `detail` from the device's extensions; probe
// results where the disk cache holds them for this device, driver, options and kernel sources (from_cache),
// else probed = false ("not probed").
std::vector<TierState> known_tiers(const DeviceInfo& info, const std::string& extra_options = "");

// An opened device: context, one in-order profiling queue, compiled programs and the tier table.
// Thread safety: kernel objects are shared, so every enqueueing path holds lock() (ops.cpp does).
class Device {
 public:
  // extra_options: appended to every program's build options (base_build_options).
  explicit Device(const DeviceInfo& info, std::string extra_options = "");
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const DeviceInfo& info() const { return info_; }
  cl_context context() const { return ctx_.get(); }
  cl_command_queue queue() const { return queue_.get(); }
  std::unique_lock<std::recursive_mutex> lock() { return std::unique_lock<std::recursive_mutex>(mu_); }

  // Options every program gets (base_build_options of this device and its extra options).
  std::string base_options() const { return base_options_; }
  // The program built from embedded source `file` with `options` appended to base_options(): compiled
  // once per device and kept (and, when $QEVAL_CL_CACHE_DIR names a folder, cached there as a binary
  // keyed by device, driver, source hash and options). Build failures throw ClError with the build log.
  cl_program program(const std::string& file, const std::string& options);
  // A kernel of that program (one cached cl_kernel per program and name).
  cl_kernel kernel(const std::string& file, const std::string& options, const std::string& kernel_name);
  // Number of programs compiled from source in this process (cache tests).
  int programs_built() const { return built_; }

  // The whole tier table: probes every supported tier not yet known (tests, benchmarks).
  const std::vector<TierState>& tiers();
  // One tier, probed on first use unless its result is known (this process or the disk cache).
  const TierState& tier(Tier t);
  bool usable(Tier t) { return tier(t).usable(); }
  // The best usable GEMM tier among T3 > T2 > T1 > T0 (never the emulation), probing from T3 down to the
  // first usable one. Throws when even T0 failed.
  Tier best_tier();
  // -D option selecting the dot4 of T0 (dp4a on NVIDIA when its probe passed) or T1.
  std::string dot4_option(Tier t);
  // Subgroup size used by T2/T3 on this device (8 or 16), 8 for the emulation unless overridden.
  int subgroup_size(Tier t);

  // The kernel variants tuned for this device (gpu/tuning.hpp load_tuning_table, on first use; notes and
  // warnings on stderr). set_tuning replaces it (the tuner, tests).
  const TuningTable& tuning();
  void set_tuning(const TuningTable& t);

 private:
  Program build_from_source(const std::string& file, const std::string& opts);
  void init_tiers();
  TierState& state(Tier t);
  void probe(TierState& s);
  void probe_t0(TierState& s);

  DeviceInfo info_;
  std::string base_options_;
  Context ctx_;
  Queue queue_;
  std::recursive_mutex mu_;
  std::map<std::string, Program> programs_;
  std::map<std::string, Kernel> kernels_;
  std::vector<TierState> tiers_;  // every tier, in kAllTiers order
  std::vector<bool> probing_;     // probe of tier i under way (its GEMMs call tier(i) again)
  std::unique_ptr<TuningTable> tuning_;
  bool nv_dp4a_ = false;
  int built_ = 0;
};

// Opens a device. selector: "" → $QEVAL_CL_DEVICE if set, else the first GPU, else the first device;
// "p:d" → platform p, device d (indices of list_devices()); any other text → the first device whose
// "<platform> <device> <version>" contains it (case-insensitive: "nvidia", "h200", "pocl"). Throws std::runtime_error naming the
// devices found when nothing matches or no OpenCL device exists.
std::shared_ptr<Device> open_device(const std::string& selector = "");
// The device open_device(selector) would open, without opening it.
DeviceInfo select_device(const std::string& selector = "");

// Progress on stderr while kernels compile or tiers are probed: one status line, rewritten, shown only when
// stderr is a terminal; "" erases it.
void compile_progress(const std::string& text);

// The process-wide default device (opened once with selector ""), or nullptr when there is none.
// Tests use it to GTEST_SKIP when no OpenCL device exists.
std::shared_ptr<Device> default_device();

}  // namespace qeval::gpu
