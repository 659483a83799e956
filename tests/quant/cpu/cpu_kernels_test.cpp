// tests/quant/cpu/cpu_kernels_test.cpp — the fast CPU kernels (quant/cpu/) against qeval::ref, bit for bit.
//
// Tolerance: none. quant/affine.hpp's contract makes the fast path compute the same float32 product,
// the same rounding and the same scalar group parameters as the reference, so codes, scales, zero
// points and dequantized floats must be *identical* (compared bitwise); the int8 GEMM is integer
// arithmetic, so C must be equal (modulo 2^32, which is the reference's definition too).
// Shapes follow STYLE.md §10: lengths {1, g−1, g, g+1, 2g+1} for g in {32, 128, 256} (per-row), grouped
// rows g·{1, 2, 3}, plus group sizes that are not multiples of 16 (the masked generic path). Inputs:
// Gaussian, Gaussian with outliers, all-zero and constant rows, ±FLT_MAX, values whose scale underflows.
// Outputs are sentinel-filled; inputs and outputs carry row padding that must be neither read nor written.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "quant/cpu/dispatch.hpp"
#include "quant/quantize.hpp"
#include "quant/ref/gemm_ref.hpp"
#include "quant/ref/quantize_ref.hpp"
#include "quant/rng.hpp"

namespace {

using qeval::Rng;
using qeval::cpu::FastResult;
using qeval::cpu::FastStatus;
using qeval::cpu::GemmPath;
using qeval::quant::Mapping;
using qeval::quant::MatrixView;
using qeval::quant::MutableMatrixView;
using qeval::quant::QuantizedMatrix;
using qeval::quant::QuantParams;

constexpr uint64_t kSeedQuant = 0x5eed0001;
constexpr uint64_t kSeedGemm = 0x5eed0002;

// Skip (with the reason) when the AVX-512 kernels cannot run here.
#define SKIP_WITHOUT_AVX512()                                                                            \
  do {                                                                                                    \
    if (!qeval::cpu::cpu_features().has_avx512())                                                         \
      GTEST_SKIP() << "CPU lacks AVX-512 F/BW/VL/DQ (detected: '" << qeval::cpu::cpu_features().summary() \
                   << "'); the fast kernels are not used on this machine";                                \
    if (qeval::cpu::cpu_override() == qeval::cpu::CpuOverride::ref)                                       \
      GTEST_SKIP() << "QEVAL_CPU=ref forces the reference; unset it to test the fast kernels";            \
  } while (0)

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// A float matrix with row padding: cols + pad elements per row, the padding holding NaN so that a
// kernel reading it would report a non-finite value (and change min/max).
struct Padded {
  std::vector<float> data;
  int64_t rows, cols, stride;
  Padded(int64_t r, int64_t c, int64_t pad) : data(static_cast<size_t>(r * (c + pad)), std::nanf("")), rows(r), cols(c), stride(c + pad) {}
  float& at(int64_t r, int64_t c) { return data[static_cast<size_t>(r * stride + c)]; }
  MatrixView view() const { return MatrixView(data.data(), rows, cols, stride); }
};

enum class Input { gaussian, outliers, zero_const_rows, flt_max, tiny };
const char* name(Input k) {
  switch (k) {
    case Input::gaussian: return "gaussian";
    case Input::outliers: return "outliers";
    case Input::zero_const_rows: return "zero/const rows";
    case Input::flt_max: return "±FLT_MAX";
    case Input::tiny: return "tiny (scale underflow)";
  }
  return "?";
}

void fill(Padded& x, Input kind, Rng& rng) {
  for (int64_t r = 0; r < x.rows; ++r)
    for (int64_t c = 0; c < x.cols; ++c) {
      float v = static_cast<float>(rng.normal());
      switch (kind) {
        case Input::gaussian: break;
        case Input::outliers:
          // ~1 % of the elements 100× larger (the activation-outlier pattern of LLM.int8).
          if (rng.below(100) == 0) v *= 100.0f;
          break;
        case Input::zero_const_rows:
          if (r % 4 == 0) v = 0.0f;
          if (r % 4 == 1) v = 0.7f;
          if (r % 4 == 2) v = -2.5f;
          break;
        case Input::flt_max:
          // Whole rows at ±FLT_MAX and scattered ±FLT_MAX elements: hi − lo overflows float.
          if (r % 3 == 0) v = (c % 2 == 0) ? FLT_MAX : -FLT_MAX;
          else if (rng.below(16) == 0) v = rng.below(2) ? FLT_MAX : -FLT_MAX;
          break;
        case Input::tiny:
          // Denormal magnitudes: max|x|/127 underflows to 0 or a denormal scale (inv_scale = 0 path).
          v *= 1e-41f;
          break;
      }
      x.at(r, c) = v;
    }
}

std::string describe(int64_t rows, int64_t cols, const QuantParams& p, Input kind, uint64_t seed) {
  std::ostringstream s;
  s << rows << "x" << cols << " " << p.to_string() << " clip " << p.clip_ratio << " input " << name(kind) << " seed "
    << seed;
  return s.str();
}

::testing::AssertionResult same_quantized(const QuantizedMatrix& want, const QuantizedMatrix& got) {
  if (got.rows != want.rows || got.cols != want.cols)
    return ::testing::AssertionFailure() << "shape " << got.rows << "x" << got.cols << " vs " << want.rows << "x"
                                         << want.cols;
  if (got.codes.size() != want.codes.size())
    return ::testing::AssertionFailure() << "codes size " << got.codes.size() << " vs " << want.codes.size();
  for (size_t i = 0; i < want.codes.size(); ++i)
    if (got.codes[i] != want.codes[i]) {
      const int64_t rb = want.row_bytes();
      return ::testing::AssertionFailure()
             << "code byte " << i << " (row " << static_cast<int64_t>(i) / rb << ", byte " << static_cast<int64_t>(i) % rb
             << "): got 0x" << std::hex << int(got.codes[i]) << " want 0x" << int(want.codes[i]);
    }
  if (got.scales.size() != want.scales.size())
    return ::testing::AssertionFailure() << "scales size " << got.scales.size() << " vs " << want.scales.size();
  for (size_t i = 0; i < want.scales.size(); ++i)
    if (bits_of(got.scales[i]) != bits_of(want.scales[i]))
      return ::testing::AssertionFailure() << "scale " << i << ": got " << got.scales[i] << " want " << want.scales[i];
  if (got.zero_points != want.zero_points) {
    if (got.zero_points.size() != want.zero_points.size())
      return ::testing::AssertionFailure() << "zero_points size " << got.zero_points.size() << " vs "
                                           << want.zero_points.size();
    for (size_t i = 0; i < want.zero_points.size(); ++i)
      if (got.zero_points[i] != want.zero_points[i])
        return ::testing::AssertionFailure() << "zero point " << i << ": got " << got.zero_points[i] << " want "
                                             << want.zero_points[i];
  }
  if (!(got.params == want.params)) return ::testing::AssertionFailure() << "params differ";
  if (got.format != want.format || !got.non_finite.empty() || !got.perm.empty() || !got.col_scale.empty())
    return ::testing::AssertionFailure() << "format / extension fields differ";
  return ::testing::AssertionSuccess();
}

// Fast dequantize into a padded, sentinel-filled buffer; compare bitwise with the reference and check
// the padding is untouched.
::testing::AssertionResult same_dequantized(const QuantizedMatrix& q) {
  const int64_t pad = 3;
  const float sentinel = -1234.5f;
  std::vector<float> want(static_cast<size_t>(q.rows * q.cols));
  qeval::ref::dequantize_ref(q, MutableMatrixView(want.data(), q.rows, q.cols));
  std::vector<float> got(static_cast<size_t>(q.rows * (q.cols + pad)), sentinel);
  const FastResult r = qeval::cpu::try_dequantize(q, MutableMatrixView(got.data(), q.rows, q.cols, q.cols + pad));
  if (r.status != FastStatus::done) return ::testing::AssertionFailure() << "try_dequantize did not run";
  for (int64_t i = 0; i < q.rows; ++i) {
    for (int64_t c = 0; c < q.cols; ++c) {
      const float g = got[static_cast<size_t>(i * (q.cols + pad) + c)];
      const float w = want[static_cast<size_t>(i * q.cols + c)];
      if (bits_of(g) != bits_of(w))
        return ::testing::AssertionFailure() << "dequantized (" << i << ", " << c << "): got " << g << " (0x" << std::hex
                                             << bits_of(g) << ") want " << w << " (0x" << bits_of(w) << ")";
    }
    for (int64_t c = q.cols; c < q.cols + pad; ++c)
      if (got[static_cast<size_t>(i * (q.cols + pad) + c)] != sentinel)
        return ::testing::AssertionFailure() << "row padding written at (" << i << ", " << c << ")";
  }
  return ::testing::AssertionSuccess();
}

// Quantize with the fast path into a sentinel-filled QuantizedMatrix (already the right sizes, so a
// byte the kernel forgets keeps the sentinel) and compare with the reference; then dequantize both ways.
void check_quantize(const Padded& x, const QuantParams& p, Input kind, uint64_t seed) {
  SCOPED_TRACE(describe(x.rows, x.cols, p, kind, seed));
  const QuantizedMatrix want = qeval::ref::quantize_affine_ref(x.view(), p);
  QuantizedMatrix got;
  got.codes.assign(want.codes.size(), 0xAB);
  got.scales.assign(want.scales.size(), -7.0f);
  if (p.mapping == Mapping::asymmetric) got.zero_points.assign(want.zero_points.size(), -99);
  const FastResult r = qeval::cpu::try_quantize_affine(x.view(), p, got);
  ASSERT_EQ(r.status, FastStatus::done);
  ASSERT_TRUE(same_quantized(want, got));
  ASSERT_TRUE(same_dequantized(want));
}

std::vector<int64_t> per_row_lengths() {
  std::vector<int64_t> v;
  for (int64_t g : {32, 128, 256})
    for (int64_t n : {int64_t{1}, g - 1, g, g + 1, 2 * g + 1}) v.push_back(n);
  return v;
}

QuantParams params(int bits, Mapping m, int64_t group, double clip = 1.0) {
  QuantParams p;
  p.bits = bits;
  p.mapping = m;
  p.group_size = group;
  p.clip_ratio = clip;
  return p;
}

// ---- feature detection ---------------------------------------------------------------------------

// Linux reports the CPU flags the kernel enabled in /proc/cpuinfo — an independent view of CPUID + OS
// support. Returns the flag list of the first processor, or "" when unavailable.
std::string proc_cpuinfo_flags() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("flags", 0) == 0) return " " + line.substr(line.find(':') + 1) + " ";
  return "";
}

TEST(CpuFeatures, AgreesWithProcCpuinfo) {
  const auto& f = qeval::cpu::cpu_features();
  std::cout << "CPU: " << f.model_name << "\nfeatures: " << f.summary() << "\n";
  const std::string flags = proc_cpuinfo_flags();
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo to compare with";
  auto has = [&](const char* n) { return flags.find(std::string(" ") + n + " ") != std::string::npos; };
  EXPECT_EQ(f.avx2, has("avx2"));
  EXPECT_EQ(f.fma, has("fma"));
  EXPECT_EQ(f.avx512f, has("avx512f"));
  EXPECT_EQ(f.avx512bw, has("avx512bw"));
  EXPECT_EQ(f.avx512vl, has("avx512vl"));
  EXPECT_EQ(f.avx512dq, has("avx512dq"));
  EXPECT_EQ(f.avx512vnni, has("avx512_vnni"));
  EXPECT_EQ(f.avx512bf16, has("avx512_bf16"));
  // AMX additionally needs the XTILEDATA permission, which a kernel listing amx_tile grants on request.
  EXPECT_EQ(f.amx_tile, has("amx_tile"));
  EXPECT_EQ(f.amx_int8, has("amx_int8"));
  EXPECT_FALSE(f.model_name.empty());
}

TEST(CpuFeatures, SummaryNamesEveryDetectedFeature) {
  const auto& f = qeval::cpu::cpu_features();
  const std::string s = " " + f.summary() + " ";
  EXPECT_EQ(f.avx512f, s.find(" avx512f ") != std::string::npos);
  EXPECT_EQ(f.avx512vnni, s.find(" avx512vnni ") != std::string::npos);
  EXPECT_EQ(f.amx_int8, s.find(" amx-int8 ") != std::string::npos);
}

// QEVAL_CPU is read once per process, so each value is checked in a fresh child process
// ("threadsafe" death-test style re-executes the binary).
TEST(CpuDispatchDeathTest, QevalCpuRefForcesTheReference) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("QEVAL_CPU", "ref", 1);
        std::vector<float> v(64, 1.0f);
        QuantizedMatrix q;
        const bool ok = qeval::cpu::try_quantize_affine(MatrixView(v.data(), 1, 64), params(8, Mapping::symmetric, 0), q)
                                .status == FastStatus::unsupported &&
                        qeval::cpu::active_quantize_isa() == "ref" && qeval::cpu::active_gemm_isa() == "ref";
        std::exit(ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(CpuDispatchDeathTest, QevalCpuUnknownValueIsRejected) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("QEVAL_CPU", "avx1024", 1);
        try {
          (void)qeval::cpu::cpu_override();
        } catch (const std::invalid_argument& e) {
          std::exit(std::string(e.what()).find("ref") != std::string::npos ? 0 : 2);
        }
        std::exit(1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(CpuDispatchDeathTest, QevalCpuAvx512DisablesAmxOnly) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("QEVAL_CPU", "avx512", 1);
        const auto& f = qeval::cpu::cpu_features();
        const std::string want = f.has_avx512() && f.avx512vnni ? "avx512-vnni" : "ref";
        std::exit(qeval::cpu::active_gemm_isa() == want ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

// ---- quantize: bit-exact against the reference ---------------------------------------------------------

TEST(CpuQuantize, PerRowBitExact) {
  SKIP_WITHOUT_AVX512();
  const uint64_t seed = qeval::seed_from_env(kSeedQuant);
  Rng rng(seed);
  for (int64_t cols : per_row_lengths())
    for (int64_t rows : {1, 3, 17})
      for (Input kind : {Input::gaussian, Input::outliers, Input::zero_const_rows, Input::flt_max, Input::tiny}) {
        Padded x(rows, cols, rows % 2 ? 0 : 5);
        fill(x, kind, rng);
        for (int bits : {8, 4})
          for (Mapping m : {Mapping::symmetric, Mapping::asymmetric}) {
            check_quantize(x, params(bits, m, qeval::quant::kPerRow), kind, seed);
            if (HasFatalFailure()) return;
          }
      }
}

TEST(CpuQuantize, GroupedBitExact) {
  SKIP_WITHOUT_AVX512();
  const uint64_t seed = qeval::seed_from_env(kSeedQuant + 1);
  Rng rng(seed);
  for (int64_t g : {32, 128, 256})
    for (int64_t mult : {1, 2, 3})
      for (int64_t rows : {1, 4, 17})
        for (Input kind : {Input::gaussian, Input::outliers, Input::zero_const_rows, Input::flt_max, Input::tiny}) {
          Padded x(rows, g * mult, rows == 4 ? 7 : 0);
          fill(x, kind, rng);
          for (int bits : {8, 4})
            for (Mapping m : {Mapping::symmetric, Mapping::asymmetric}) {
              check_quantize(x, params(bits, m, g), kind, seed);
              if (HasFatalFailure()) return;
            }
        }
}

// Group sizes that are not multiples of 16 take the generic path (groups start mid-vector, and for int4
// at odd elements, i.e. in the high nibble).
TEST(CpuQuantize, OddGroupSizesBitExact) {
  SKIP_WITHOUT_AVX512();
  const uint64_t seed = qeval::seed_from_env(kSeedQuant + 2);
  Rng rng(seed);
  for (int64_t g : {1, 3, 8, 24, 40, 100})
    for (int64_t mult : {1, 2, 3})
      for (Input kind : {Input::gaussian, Input::zero_const_rows, Input::flt_max}) {
        Padded x(5, g * mult, 1);
        fill(x, kind, rng);
        for (int bits : {8, 4})
          for (Mapping m : {Mapping::symmetric, Mapping::asymmetric}) {
            check_quantize(x, params(bits, m, g), kind, seed);
            if (HasFatalFailure()) return;
          }
      }
}

// Several row blocks (the driver works on ~64 KiB of rows at a time) and clip_ratio < 1 (the minmax
// shrink must match quant/choose_qparams exactly; 0.9 and 0.37 are not representable in binary).
TEST(CpuQuantize, ManyRowsAndClipRatioBitExact) {
  SKIP_WITHOUT_AVX512();
  const uint64_t seed = qeval::seed_from_env(kSeedQuant + 3);
  Rng rng(seed);
  Padded x(70, 768, 16);  // 70 × 768 × 4 B = 210 KiB → 4 blocks of 21 rows
  fill(x, Input::outliers, rng);
  for (double clip : {1.0, 0.9, 0.37})
    for (int64_t g : {qeval::quant::kPerRow, int64_t{128}, int64_t{48}})
      for (int bits : {8, 4})
        for (Mapping m : {Mapping::symmetric, Mapping::asymmetric}) {
          check_quantize(x, params(bits, m, g, clip), Input::outliers, seed);
          if (HasFatalFailure()) return;
        }
}

// The public entry point takes the fast path (Backend::avx512 throws if it could not) and agrees.
TEST(CpuQuantize, PublicEntryPointUsesFastPath) {
  SKIP_WITHOUT_AVX512();
  const uint64_t seed = qeval::seed_from_env(kSeedQuant + 4);
  Rng rng(seed);
  Padded x(9, 384, 0);
  fill(x, Input::gaussian, rng);
  for (int bits : {8, 4}) {
    const QuantParams p = params(bits, Mapping::asymmetric, 128);
    const QuantizedMatrix fast = qeval::quant::quantize_affine(x.view(), p, qeval::quant::Backend::avx512);
    const QuantizedMatrix ref = qeval::quant::quantize_affine(x.view(), p, qeval::quant::Backend::ref);
    EXPECT_TRUE(same_quantized(ref, fast)) << "seed " << seed;
  }
}

// ---- NaN / Inf: the first one in row-major order ---------------------------------------------------

TEST(CpuQuantize, NonFiniteReportsFirstPositionLikeReference) {
  SKIP_WITHOUT_AVX512();
  const uint64_t seed = qeval::seed_from_env(kSeedQuant + 5);
  Rng rng(seed);
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    int64_t rows, cols, group;
    std::vector<std::pair<int64_t, int64_t>> where;  // positions to poison, in any order
    float value;
  };
  const std::vector<Case> cases = {
      {1, 1, 0, {{0, 0}}, nan},
      {3, 33, 0, {{2, 32}}, inf},                   // last element, in a masked tail lane
      {3, 33, 0, {{1, 5}, {2, 0}}, -inf},           // two: the earlier row wins
      {4, 256, 128, {{3, 200}, {3, 130}}, nan},     // same group: lower column wins
      {4, 256, 128, {{2, 255}, {3, 0}}, inf},
      {70, 768, 0, {{69, 767}}, nan},               // last block, last element
      {70, 768, 0, {{40, 3}, {45, 1}}, -inf},       // a middle block
      {5, 72, 24, {{0, 47}, {0, 71}}, nan},         // generic (non-16) group path
      {2, 64, 16, {{1, 63}, {0, 64 - 1}}, inf},
  };
  for (const Case& c : cases)
    for (int bits : {8, 4}) {
      Padded x(c.rows, c.cols, 2);
      fill(x, Input::gaussian, rng);
      for (auto [r, col] : c.where) x.at(r, col) = c.value;
      // The first poisoned element in row-major order.
      int64_t fr = c.rows, fc = 0;
      for (auto [r, col] : c.where)
        if (r < fr || (r == fr && col < fc)) fr = r, fc = col;
      SCOPED_TRACE(std::to_string(c.rows) + "x" + std::to_string(c.cols) + " g" + std::to_string(c.group) +
                   " bits " + std::to_string(bits) + " seed " + std::to_string(seed));
      QuantizedMatrix out;
      const QuantParams p = params(bits, Mapping::asymmetric, c.group);
      const FastResult r = qeval::cpu::try_quantize_affine(x.view(), p, out);
      ASSERT_EQ(r.status, FastStatus::non_finite);
      EXPECT_EQ(r.row, fr);
      EXPECT_EQ(r.col, fc);
      EXPECT_EQ(bits_of(r.value), bits_of(c.value));
      // The reference throws for the same element with the same message.
      try {
        (void)qeval::ref::quantize_affine_ref(x.view(), p);
        ADD_FAILURE() << "reference did not throw";
      } catch (const qeval::quant::NonFiniteError& e) {
        EXPECT_EQ(std::string(e.what()), qeval::ref::non_finite_message("quantize_affine input", r.row, r.col, r.value));
      }
    }
}

// ---- dequantize: every layout the reference can produce --------------------------------------------

TEST(CpuDequantize, PerTensorAndPropagatedNonFiniteBitExact) {
  SKIP_WITHOUT_AVX512();
  const uint64_t seed = qeval::seed_from_env(kSeedQuant + 6);
  Rng rng(seed);
  Padded x(6, 129, 0);
  fill(x, Input::outliers, rng);
  for (int bits : {8, 4})
    for (Mapping m : {Mapping::symmetric, Mapping::asymmetric}) {
      SCOPED_TRACE("bits " + std::to_string(bits) + " seed " + std::to_string(seed));
      const QuantizedMatrix t = qeval::ref::quantize_affine_ref(x.view(), params(bits, m, qeval::quant::kPerTensor));
      EXPECT_TRUE(same_dequantized(t));
      Padded y = x;
      y.at(0, 0) = std::nanf("");
      y.at(3, 128) = -std::numeric_limits<float>::infinity();
      QuantParams p = params(bits, m, qeval::quant::kPerRow);
      p.non_finite = qeval::quant::NonFinitePolicy::propagate;
      const QuantizedMatrix q = qeval::ref::quantize_affine_ref(y.view(), p);
      ASSERT_EQ(q.non_finite.size(), 2u);
      EXPECT_TRUE(same_dequantized(q));
    }
}

// ---- what the fast path declines (the reference then runs) --------------------------------------------

TEST(CpuQuantize, DeclinesWhatItDoesNotImplement) {
  SKIP_WITHOUT_AVX512();
  std::vector<float> v(64, 0.5f);
  const MatrixView x(v.data(), 2, 32);
  auto status = [&](QuantParams p) {
    QuantizedMatrix q;
    return qeval::cpu::try_quantize_affine(x, p, q).status;
  };
  for (int bits : {2, 3, 5, 6, 7}) EXPECT_EQ(status(params(bits, Mapping::symmetric, 0)), FastStatus::unsupported);
  QuantParams p = params(4, Mapping::symmetric, 0);
  p.range = qeval::quant::RangeMethod::percentile;
  EXPECT_EQ(status(p), FastStatus::unsupported);
  p = params(4, Mapping::symmetric, 0);
  p.rounding = qeval::quant::Rounding::nearest_away;
  EXPECT_EQ(status(p), FastStatus::unsupported);
  p = params(4, Mapping::symmetric, 0);
  p.non_finite = qeval::quant::NonFinitePolicy::propagate;
  EXPECT_EQ(status(p), FastStatus::unsupported);
  EXPECT_EQ(status(params(4, Mapping::symmetric, qeval::quant::kPerTensor)), FastStatus::unsupported);
  EXPECT_EQ(status(params(4, Mapping::symmetric, 5)), FastStatus::unsupported);  // 5 does not divide 32
}

// ---- int8 GEMM ----------------------------------------------------------------------------------------

enum class Fill8 { random, all_min, all_max, alternating };

void fill8(std::vector<int8_t>& v, Fill8 f, Rng& rng) {
  for (size_t i = 0; i < v.size(); ++i) {
    switch (f) {
      case Fill8::random: v[i] = static_cast<int8_t>(static_cast<int>(rng.below(256)) - 128); break;
      case Fill8::all_min: v[i] = -128; break;  // the worst case of the +128 trick: (−128 + 128)·a, Σ a large
      case Fill8::all_max: v[i] = 127; break;
      case Fill8::alternating: v[i] = (i % 2) ? -128 : 127; break;
    }
  }
}

// C from the kernel (with ldc padding and a sentinel) against the reference, exact equality.
void check_gemm(int64_t m, int64_t n, int64_t k, GemmPath path, Fill8 fa, Fill8 fb, Rng& rng, uint64_t seed,
                int64_t pad = 0) {
  const int64_t lda = k + pad, ldb = k + 2 * pad, ldc = n + pad;
  std::vector<int8_t> a(static_cast<size_t>(m * lda)), b(static_cast<size_t>(n * ldb));
  fill8(a, fa, rng);
  fill8(b, fb, rng);
  std::vector<int32_t> want(static_cast<size_t>(m * n));
  qeval::ref::gemm_s8s8_s32_ref(m, n, k, a.data(), lda, b.data(), ldb, want.data(), n);
  const int32_t sentinel = 0x5A5A5A5A;
  std::vector<int32_t> got(static_cast<size_t>(m * ldc), sentinel);
  const FastResult r = qeval::cpu::try_gemm_s8s8_s32(m, n, k, a.data(), lda, b.data(), ldb, got.data(), ldc, path);
  ASSERT_EQ(r.status, FastStatus::done) << "M=" << m << " N=" << n << " K=" << k;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j)
      if (got[static_cast<size_t>(i * ldc + j)] != want[static_cast<size_t>(i * n + j)]) {
        FAIL() << "M=" << m << " N=" << n << " K=" << k << " path " << int(path) << " pad " << pad << ": C[" << i << "]["
               << j << "] = " << got[static_cast<size_t>(i * ldc + j)] << ", want "
               << want[static_cast<size_t>(i * n + j)] << " (seed " << seed << ")";
      }
    for (int64_t j = n; j < ldc; ++j)
      ASSERT_EQ(got[static_cast<size_t>(i * ldc + j)], sentinel) << "ldc padding written, row " << i << " col " << j;
  }
}

bool path_available(GemmPath p) {
  const auto& f = qeval::cpu::cpu_features();
  if (qeval::cpu::cpu_override() == qeval::cpu::CpuOverride::ref) return false;
  if (p == GemmPath::amx) return f.amx_int8 && f.has_avx512() && qeval::cpu::cpu_override() == qeval::cpu::CpuOverride::none;
  return f.has_avx512() && f.avx512vnni;
}

class CpuGemm : public ::testing::TestWithParam<GemmPath> {
 protected:
  void SetUp() override {
    if (!path_available(GetParam()))
      GTEST_SKIP() << (GetParam() == GemmPath::amx ? "CPU/OS lacks AMX-INT8 (tested only where AMX exists)"
                                                   : "CPU lacks AVX-512 VNNI")
                   << "; detected: '" << qeval::cpu::cpu_features().summary() << "'";
  }
};

TEST_P(CpuGemm, AllTailShapesExact) {
  const uint64_t seed = qeval::seed_from_env(kSeedGemm);
  Rng rng(seed);
  const int64_t sizes[] = {1, 7, 64, 127, 128, 129};
  for (int64_t m : sizes)
    for (int64_t n : sizes)
      for (int64_t k : sizes) {
        check_gemm(m, n, k, GetParam(), Fill8::random, Fill8::random, rng, seed, (m + n + k) % 3 == 0 ? 5 : 0);
        if (HasFatalFailure()) return;
      }
}

TEST_P(CpuGemm, ExtremeValuesExact) {
  const uint64_t seed = qeval::seed_from_env(kSeedGemm + 1);
  Rng rng(seed);
  for (Fill8 fa : {Fill8::all_min, Fill8::all_max, Fill8::alternating, Fill8::random})
    for (Fill8 fb : {Fill8::all_min, Fill8::all_max, Fill8::alternating})
      for (int64_t m : {3, 40}) {
        check_gemm(m, 70, 300, GetParam(), fa, fb, rng, seed);
        if (HasFatalFailure()) return;
      }
}

// Blocks of the kernels: VNNI small-M (M ≤ 16) vs packed (M > 16, 6-row tiles, 64-column panels,
// K blocks of 8192), AMX (32×32 blocks, K blocks of 1024, N blocks of 256), long K for decode shapes.
TEST_P(CpuGemm, BlockBoundariesExact) {
  const uint64_t seed = qeval::seed_from_env(kSeedGemm + 2);
  Rng rng(seed);
  struct S { int64_t m, n, k; };
  for (S s : {S{200, 300, 1100}, S{17, 2100, 70}, S{385, 65, 257}, S{1, 333, 4096}, S{5, 64, 4100}, S{16, 300, 2048},
              S{33, 31, 2049}, S{20, 70, 8300}, S{3, 5, 8195}}) {
    check_gemm(s.m, s.n, s.k, GetParam(), Fill8::random, Fill8::random, rng, seed, 3);
    if (HasFatalFailure()) return;
  }
}

// |C| ≥ 2^31: both sides wrap modulo 2^32. K = 140000 of (−128)·(−128) = 2293760000 > 2^31 − 1.
TEST_P(CpuGemm, WrapsModulo2To32LikeReference) {
  const uint64_t seed = qeval::seed_from_env(kSeedGemm + 3);
  Rng rng(seed);
  check_gemm(2, 3, 140000, GetParam(), Fill8::all_min, Fill8::all_min, rng, seed);   // small-M kernel
  check_gemm(19, 3, 140000, GetParam(), Fill8::all_min, Fill8::all_min, rng, seed);  // packed kernel
  int8_t a = -128;
  std::vector<int8_t> av(140000, a), bv(140000, a);
  int32_t c = 0;
  ASSERT_EQ(qeval::cpu::try_gemm_s8s8_s32(1, 1, 140000, av.data(), 140000, bv.data(), 140000, &c, 1, GetParam()).status,
            FastStatus::done);
  EXPECT_EQ(c, static_cast<int32_t>(static_cast<uint32_t>(2293760000u)));  // 2293760000 − 2^32 = −2001207296
}

INSTANTIATE_TEST_SUITE_P(Paths, CpuGemm, ::testing::Values(GemmPath::best, GemmPath::vnni, GemmPath::amx),
                         [](const ::testing::TestParamInfo<GemmPath>& i) {
                           return i.param == GemmPath::best ? "best" : i.param == GemmPath::vnni ? "vnni" : "amx";
                         });

TEST(CpuGemmArgs, EmptyAndInvalidSizes) {
  // Independent of the CPU: the checks run before any kernel is chosen.
  int32_t c[4] = {9, 9, 9, 9};
  int8_t a[4] = {1, 2, 3, 4};
  EXPECT_THROW(qeval::cpu::try_gemm_s8s8_s32(-1, 1, 1, a, 1, a, 1, c, 1), std::invalid_argument);
  EXPECT_THROW(qeval::cpu::try_gemm_s8s8_s32(1, 2, 4, a, 4, a, 4, c, 1), std::invalid_argument);  // ldc < n
  EXPECT_THROW(qeval::cpu::try_gemm_s8s8_s32(1, 1, 4, a, 3, a, 4, c, 1), std::invalid_argument);  // lda < k
  EXPECT_THROW(qeval::ref::gemm_s8s8_s32_ref(1, 1, 4, a, 3, a, 4, c, 1), std::invalid_argument);
  if (path_available(GemmPath::vnni)) {
    EXPECT_EQ(qeval::cpu::try_gemm_s8s8_s32(2, 2, 0, nullptr, 0, nullptr, 0, c, 2).status, FastStatus::done);
    EXPECT_EQ(c[0], 0);
    EXPECT_EQ(c[3], 0);
  }
  qeval::ref::gemm_s8s8_s32_ref(1, 1, 0, nullptr, 0, nullptr, 0, c, 1);
  EXPECT_EQ(c[0], 0);
}

// The reference itself, on numbers worked by hand: A = [−3, 5], B = [[2, −1], [−128, −128]] →
// C = [−3·2 + 5·(−1), −3·(−128) + 5·(−128)] = [−11, −256].
TEST(GemmRef, WorkedExample) {
  const int8_t a[2] = {-3, 5};
  const int8_t b[4] = {2, -1, -128, -128};
  int32_t c[2] = {0, 0};
  qeval::ref::gemm_s8s8_s32_ref(1, 2, 2, a, 2, b, 2, c, 2);
  EXPECT_EQ(c[0], -11);
  EXPECT_EQ(c[1], -256);
}

}  // namespace
