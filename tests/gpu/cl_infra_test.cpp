// tests/gpu/cl_infra_test.cpp — the OpenCL plumbing: error → exception text, embedded kernels, program cache,
// device listing, tier table and probes, the VNNI packer (device vs host), and `qeval devices` output.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <unistd.h>

#include "gpu/cl_api.hpp"
#include "eval/cli/devices_report.hpp"
#include "gpu/embedded_sources.hpp"
#include "gpu/ops.hpp"
#include "gpu/vnni.hpp"
#include "quant/layouts.h"
#include "tests/gpu/gpu_test_util.hpp"

namespace qeval::gpu {
namespace {

using cli::devices_json;  // `qeval devices` lives in the CLI (eval/cli/devices_report.hpp)
using cli::DevicesOptions;
using cli::print_devices;

TEST(ClApi, ErrorsNameTheCallAndTheCode) {
  const ClError e("clEnqueueNDRangeKernel", CL_OUT_OF_RESOURCES, "gemm_tiled");
  EXPECT_STREQ(e.what(), "clEnqueueNDRangeKernel failed: CL_OUT_OF_RESOURCES (-5): gemm_tiled");
  EXPECT_EQ(e.code(), CL_OUT_OF_RESOURCES);
  EXPECT_STREQ(cl_error_name(CL_BUILD_PROGRAM_FAILURE), "CL_BUILD_PROGRAM_FAILURE");
  EXPECT_STREQ(cl_error_name(CL_INVALID_WORK_GROUP_SIZE), "CL_INVALID_WORK_GROUP_SIZE");
  EXPECT_STREQ(cl_error_name(-9999), "unknown OpenCL error");
  EXPECT_THROW(check(CL_INVALID_VALUE, "clFoo"), ClError);
  EXPECT_NO_THROW(check(CL_SUCCESS, "clFoo"));
}

TEST(EmbeddedKernels, EveryKernelFileIsThereWithLayoutsInlined) {
  for (const char* name : {"quantize.cl", "dequantize.cl", "gemm_tiled.cl", "gemm_subgroup.cl", "matmul_a16.cl",
                           "bench.cl"}) {
    const EmbeddedSource& s = embedded_source(name);
    const std::string text(s.text, s.size);
    SCOPED_TRACE(name);
    // The #include lines were resolved at build time: the code book tables and common.cl are in the text.
    EXPECT_EQ(text.find("\n#include \""), std::string::npos);
    EXPECT_NE(text.find("qeval_nf4_values"), std::string::npos);
    EXPECT_NE(text.find("dot4_acc"), std::string::npos);
    for (unsigned char c : text) ASSERT_LT(c, 0x80) << "non-ASCII byte left in the embedded text";
  }
  EXPECT_THROW(embedded_source("nope.cl"), std::invalid_argument);
}

TEST(Vnni, HostLayoutMatchesTheHeaderWorkedExample) {
  // quant/layouts.h §4: word 9 = (t 0, kb 0, j 1, l 1) holds W[1][4..7] (SG = 8).
  EXPECT_EQ(QEVAL_VNNI_WORD_INDEX(0, 0, 1, 1, 1, 8), 9);
  std::vector<int8_t> W(2 * 40);
  for (size_t i = 0; i < W.size(); ++i) W[i] = static_cast<int8_t>(i);
  const auto p = pack_vnni_host(W.data(), 2, 40, 40, 8);
  ASSERT_EQ(p.size(), static_cast<size_t>(1 * 2 * 8 * 8));
  EXPECT_EQ(p[9], 0x2F2E2D2Cu);  // bytes W[1][4..7] = 44..47 (row 1 starts at 40)
  // K block 1 of column 0: k = 32..39 real, 40.. zero
  EXPECT_EQ(p[QEVAL_VNNI_WORD_INDEX(0, 1, 0, 0, 2, 8)], 0x23222120u);
  EXPECT_EQ(p[QEVAL_VNNI_WORD_INDEX(0, 1, 2, 0, 2, 8)], 0u);
  EXPECT_EQ(p[QEVAL_VNNI_WORD_INDEX(0, 0, 0, 2, 2, 8)], 0u);  // column 2 ≥ N
}

// Points $QEVAL_CL_CACHE_DIR at a fresh folder for the lifetime of the object (restored afterwards).
class ScopedCacheDir {
 public:
  explicit ScopedCacheDir(const std::string& tag) {
    const char* old = std::getenv("QEVAL_CL_CACHE_DIR");
    had_ = old != nullptr;
    if (had_) old_ = old;
    dir_ = std::filesystem::temp_directory_path() / ("qeval-cl-test-" + tag + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    setenv("QEVAL_CL_CACHE_DIR", dir_.c_str(), 1);
  }
  ~ScopedCacheDir() {
    if (had_) setenv("QEVAL_CL_CACHE_DIR", old_.c_str(), 1);
    else unsetenv("QEVAL_CL_CACHE_DIR");
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

 private:
  std::filesystem::path dir_;
  std::string old_;
  bool had_ = false;
};

TEST(Devices, ListingNeverThrowsAndProbesNothing) {
  ScopedCacheDir cache("listing");
  std::vector<DeviceInfo> devs;
  ASSERT_NO_THROW(devs = list_devices());
  std::ostringstream out;
  const int rc = print_devices(out);
  if (devs.empty()) {
    EXPECT_EQ(rc, 1);
    EXPECT_NE(out.str().find("No OpenCL device"), std::string::npos);
    GTEST_SKIP() << "no OpenCL device: listing checked, nothing else to test";
  }
  EXPECT_EQ(rc, 0) << out.str();
  std::cout << out.str();  // the `qeval devices` text, in the test log
  // An empty cache: every supported tier of every device is "not probed", nothing was compiled.
  EXPECT_NE(out.str().find("T0: not probed"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("GEMM tier: not known until probed"), std::string::npos) << out.str();
  const nlohmann::json j = devices_json();
  ASSERT_EQ(j["devices"].size(), devs.size());
  for (const auto& d : j["devices"]) {
    EXPECT_EQ(d["tiers"].size(), 5u);
    for (const auto& t : d["tiers"]) EXPECT_FALSE(t["probed"].get<bool>()) << d["name"] << " " << t["tier"];
  }
}

TEST(Devices, ProbeRunsOnTheSelectedDeviceOnlyAndIsCached) {
  ScopedCacheDir cache("probe");
  if (list_devices().empty()) GTEST_SKIP() << "no OpenCL device found; OpenCL tests skipped";
  const DeviceInfo sel = select_device();
  {
    Device first(sel);
    EXPECT_TRUE(first.tier(Tier::t0).probed);
    EXPECT_FALSE(first.tier(Tier::t0).from_cache);
  }
  // A second process (here: a second Device) reads T0 from the disk cache and compiles nothing for it;
  // the tiers nobody asked for stay unprobed.
  Device second(sel);
  const TierState& t0 = second.tier(Tier::t0);
  EXPECT_TRUE(t0.from_cache);
  EXPECT_TRUE(t0.usable()) << t0.detail;
  EXPECT_EQ(second.programs_built(), 0);
  EXPECT_FALSE(known_tiers(sel)[static_cast<size_t>(Tier::t3_emulated)].probed);
  std::ostringstream out;
  DevicesOptions o;
  o.probe = true;
  EXPECT_EQ(print_devices(out, false, o), 0) << out.str();
  EXPECT_NE(out.str().find("<- selected"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("GEMM kernels run on: T"), std::string::npos) << out.str();
  std::ostringstream bad;
  o.device = "no-such-device-xyz";
  EXPECT_EQ(print_devices(bad, false, o), 1);
  EXPECT_NE(bad.str().find("no OpenCL device matches 'no-such-device-xyz'"), std::string::npos) << bad.str();
}

TEST(Devices, SelectorErrorsListWhatExists) {
  if (list_devices().empty()) GTEST_SKIP() << "no OpenCL device found; OpenCL tests skipped";
  try {
    open_device("no-such-device-xyz");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no OpenCL device matches"), std::string::npos) << e.what();
  }
  EXPECT_THROW(open_device("99:99"), std::runtime_error);
}

TEST(Tiers, T0AndTheT3EmulationPassTheirProbes) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  EXPECT_TRUE(dev->usable(Tier::t0)) << dev->tier(Tier::t0).detail;
  EXPECT_TRUE(dev->usable(Tier::t3_emulated)) << dev->tier(Tier::t3_emulated).detail;
  // A tier the device lacks is reported as such, never used.
  for (const auto& s : dev->tiers()) {
    if (!s.supported) {
      EXPECT_FALSE(s.usable());
      EXPECT_FALSE(s.detail.empty()) << to_string(s.tier);
    }
  }
  const Tier best = dev->best_tier();
  EXPECT_NE(best, Tier::t3_emulated);
  std::cout << "[          ] device " << dev->info().label() << ", GEMM tier " << to_string(best) << "/"
            << dev->tier(best).variant << "\n";
  EXPECT_EQ(parse_tier("t3-emulated"), Tier::t3_emulated);
  EXPECT_THROW(parse_tier("T9"), std::invalid_argument);
}

TEST(Tiers, UnavailableTierIsAClearError) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  for (Tier t : {Tier::t1, Tier::t2, Tier::t3}) {
    if (dev->tier(t).supported) continue;
    Buffer a(dev->context(), 64), w(dev->context(), 64), c(dev->context(), 64);
    GemmOptions o;
    o.tier = t;
    try {
      gemm_s8s8_s32(*dev, 1, 1, 32, a, 32, w, 32, c, 1, o);
      FAIL() << "expected an error for " << to_string(t);
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("not available"), std::string::npos) << e.what();
    }
  }
}

TEST(ProgramCache, EachProgramIsBuiltOncePerDevice) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const std::string opts = "-DQEVAL_VEC=1 -DQEVAL_MAX_NV=8 -DQEVAL_IN_HALF=0 -DQEVAL_CACHE_TEST=1";
  const int before = dev->programs_built();
  cl_program p1 = dev->program("quantize.cl", opts);
  const int after_first = dev->programs_built();
  cl_program p2 = dev->program("quantize.cl", opts);
  EXPECT_EQ(p1, p2);
  EXPECT_EQ(dev->programs_built(), after_first);
  EXPECT_LE(after_first - before, 1);  // 0 when $QEVAL_CL_CACHE_DIR served it from disk
  EXPECT_EQ(dev->kernel("quantize.cl", opts, "pack_rows"), dev->kernel("quantize.cl", opts, "pack_rows"));
  try {
    dev->kernel("quantize.cl", opts, "no_such_kernel");
    FAIL();
  } catch (const ClError& e) {
    EXPECT_NE(std::string(e.what()).find("clCreateKernel failed: CL_INVALID_KERNEL_NAME"), std::string::npos)
        << e.what();
  }
}

TEST(ProgramCache, BuildErrorsCarryTheLog) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  try {
    dev->program("gemm_tiled.cl", "-DQEVAL_TM=3");  // the kernel rejects TM % 4 != 0 with #error
    FAIL() << "expected a build failure";
  } catch (const ClError& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("clBuildProgram failed: CL_BUILD_PROGRAM_FAILURE"), std::string::npos) << w;
    EXPECT_NE(w.find("TM and TN must be multiples of 4"), std::string::npos) << w;
  }
}

TEST(Vnni, DevicePackerMatchesHostWordForWord) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  for (int sg : {8, 16})
    for (auto [N, K] : {std::pair<int64_t, int64_t>{1, 1}, {7, 33}, {20, 100}, {16, 64}, {129, 127}}) {
      SCOPED_TRACE("sg " + std::to_string(sg) + " N " + std::to_string(N) + " K " + std::to_string(K) + " seed " +
                   std::to_string(seed));
      std::vector<int8_t> W = test::random_s8(static_cast<size_t>(N * K), seed + static_cast<uint64_t>(N * K));
      // storage codes u = q + 128 on the device (xor 0x80 turns them back into q)
      std::vector<uint8_t> U(W.size());
      for (size_t i = 0; i < W.size(); ++i) U[i] = static_cast<uint8_t>(W[i]) ^ 0x80u;
      quant::QuantizedMatrix q;
      q.rows = N;
      q.cols = K;
      q.params.bits = 8;
      q.params.group_size = quant::kPerRow;
      q.codes = U;
      q.scales.assign(static_cast<size_t>(N), 1.0f);
      DevQuantized dq = upload(*dev, q);
      // through the public GEMM path: pack + a GEMM against identity-like activations is indirect; read the
      // packed words via the ops used by matmul_quantized
      const std::vector<uint32_t> want = pack_vnni_host(W.data(), N, K, K, sg);
      Buffer out(dev->context(), want.size() * 4);
      cl_kernel k = dev->kernel("quantize.cl", "", "pack_vnni");
      const int KB = static_cast<int>((K + 31) / 32);
      set_args(k, dq.codes, static_cast<int>(N), static_cast<int>(K), static_cast<int>(K), 8, 0x80u, sg, KB, out);
      const size_t g = (want.size() + 63) / 64 * 64, l = 64;
      check(clEnqueueNDRangeKernel(dev->queue(), k, 1, nullptr, &g, &l, 0, nullptr, nullptr), "enqueue");
      std::vector<uint32_t> got(want.size());
      out.read(dev->queue(), got.data(), got.size() * 4);
      EXPECT_EQ(test::first_difference(got, want), "");
    }
}

}  // namespace
}  // namespace qeval::gpu
