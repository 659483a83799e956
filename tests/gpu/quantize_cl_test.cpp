// tests/gpu/quantize_cl_test.cpp — dynamic quantization on the device against ref::quantize_affine_ref: storage
// codes, scales and zero points EXACTLY (the arithmetic contract of quant/affine.hpp), on per-token and grouped
// rows, odd and tail sizes, sym/asym, int8/int4 (and the generic 2/3/5-bit path), every rounding mode, clip
// ratios, fp16 inputs (including the ±65504 range that overflows an fp16 reduction), masks and NaN/Inf.
#include <gtest/gtest.h>

#include <cmath>

#include "gpu/backend.hpp"
#include "quant/float_formats.hpp"
#include "quant/pack.hpp"
#include "quant/ref/quantize_ref.hpp"
#include "tests/gpu/gpu_test_util.hpp"

namespace qeval::gpu {
namespace {

using quant::Mapping;
using quant::QuantParams;

// Σ(u − 2^(b−1)) per group from the reference's codes (what the asymmetric epilogue needs).
std::vector<int32_t> group_sums_of(const quant::QuantizedMatrix& q) {
  std::vector<int32_t> s(static_cast<size_t>(q.num_groups()), 0);
  std::vector<uint8_t> u(static_cast<size_t>(q.cols));
  for (int64_t r = 0; r < q.rows; ++r) {
    quant::unpack_row(q, r, u.data());
    for (int64_t c = 0; c < q.cols; ++c)
      s[static_cast<size_t>(q.group_index(r, c))] += static_cast<int32_t>(u[static_cast<size_t>(c)]) - (1 << (q.params.bits - 1));
  }
  return s;
}

void expect_same(const quant::QuantizedMatrix& got, const quant::QuantizedMatrix& want, const std::string& what) {
  EXPECT_EQ(test::first_difference(got.codes, want.codes), "") << what << ": codes";
  EXPECT_EQ(test::first_difference(got.scales, want.scales), "") << what << ": scales";
  EXPECT_EQ(test::first_difference(got.zero_points, want.zero_points), "") << what << ": zero points";
  EXPECT_EQ(got.non_finite, want.non_finite) << what << ": non-finite list";
}

TEST(QuantizeCl, ExactOnEveryShapeGroupMappingAndWidth) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  const int64_t sizes[] = {1, 7, 64, 127, 128, 129};
  const int64_t colss[] = {1, 7, 64, 127, 128, 129, 256, 4096};
  int runs = 0;
  for (int64_t rows : sizes)
    for (int64_t cols : colss)
      for (int64_t g : {int64_t{0}, int64_t{32}, int64_t{128}, int64_t{256}}) {
        if (g > 0 && cols % g != 0) continue;
        if (cols == 4096 && rows > 7) continue;  // keep the test fast: 4096 on a few rows
        const quant::Matrix x = test::gaussian_matrix(rows, cols, seed + static_cast<uint64_t>(rows * 7919 + cols));
        for (Mapping m : {Mapping::symmetric, Mapping::asymmetric})
          for (int bits : {8, 4}) {
            QuantParams p;
            p.bits = bits;
            p.group_size = g;
            p.mapping = m;
            const std::string what = std::to_string(rows) + "x" + std::to_string(cols) + " g" + std::to_string(g) +
                                     " " + quant::to_string(m) + " int" + std::to_string(bits) + " seed " +
                                     std::to_string(seed);
            std::vector<int32_t> sums;
            const quant::QuantizedMatrix got = quantize_cl(*dev, x.view(), p, &sums);
            const quant::QuantizedMatrix want = ref::quantize_affine_ref(x.view(), p);
            expect_same(got, want, what);
            EXPECT_EQ(test::first_difference(sums, group_sums_of(want)), "") << what << ": group sums";
            ++runs;
          }
      }
  EXPECT_GT(runs, 200);
}

TEST(QuantizeCl, GenericWidthsRoundingModesClipAndStrides) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  for (int bits : {2, 3, 5, 6, 7})
    for (int64_t cols : {int64_t{7}, int64_t{64}, int64_t{129}}) {
      const quant::Matrix x = test::gaussian_matrix(9, cols, seed + static_cast<uint64_t>(bits * 1000 + cols));
      for (Mapping m : {Mapping::symmetric, Mapping::asymmetric}) {
        QuantParams p;
        p.bits = bits;
        p.group_size = 0;
        p.mapping = m;
        expect_same(quantize_cl(*dev, x.view(), p), ref::quantize_affine_ref(x.view(), p),
                    "int" + std::to_string(bits) + " cols " + std::to_string(cols) + " " + quant::to_string(m));
      }
    }
  // Rounding modes on values that sit exactly on ties: x = (k + 0.5)·s for the scale the group gets.
  quant::Matrix t(2, 32);
  for (int64_t c = 0; c < 32; ++c) {
    t(0, c) = (static_cast<float>(c) - 15.5f) * 0.25f;  // ties at every element for s = 0.25 … (asym)
    t(1, c) = static_cast<float>(c % 9) - 4.0f;
  }
  for (auto r : {quant::Rounding::nearest_even, quant::Rounding::nearest_away, quant::Rounding::toward_zero})
    for (Mapping m : {Mapping::symmetric, Mapping::asymmetric})
      for (double clip : {1.0, 0.9, 0.5}) {
        if (clip != 1.0 && !dev->info().fp64) continue;
        QuantParams p;
        p.bits = 4;
        p.group_size = 16;
        p.mapping = m;
        p.rounding = r;
        p.clip_ratio = clip;
        expect_same(quantize_cl(*dev, t.view(), p), ref::quantize_affine_ref(t.view(), p),
                    std::string("ties ") + quant::to_string(r) + " " + quant::to_string(m) + " clip " +
                        std::to_string(clip));
      }
  // A padded row stride on the host side and an all-zero group.
  std::vector<float> buf(5 * 70, 1e30f);
  Rng rng(seed);
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 64; ++c) buf[static_cast<size_t>(r * 70 + c)] = r == 2 ? 0.0f : static_cast<float>(rng.normal());
  const quant::MatrixView v(buf.data(), 5, 64, 70);
  QuantParams p;
  p.bits = 8;
  p.group_size = 32;
  p.mapping = Mapping::asymmetric;
  expect_same(quantize_cl(*dev, v, p), ref::quantize_affine_ref(v, p), "padded stride + zero row");
}

TEST(QuantizeCl, PartialLastGroup) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  // QuantParams::partial_last_group: 576 columns in g128 → 128, 128, 128, 128, 64 (SmolLM2's d_model); 129 in
  // g32 → four of 32 and one of 1 (the scalar path).
  const uint64_t seed = test::gpu_seed();
  for (auto [cols, g] : {std::pair<int64_t, int64_t>{576, 128}, {129, 32}, {300, 256}})
    for (int bits : {8, 4, 3})
      for (Mapping m : {Mapping::symmetric, Mapping::asymmetric}) {
        const quant::Matrix x = test::gaussian_matrix(5, cols, seed + static_cast<uint64_t>(cols));
        QuantParams p;
        p.bits = bits;
        p.group_size = g;
        p.mapping = m;
        p.partial_last_group = true;
        std::vector<int32_t> sums;
        const quant::QuantizedMatrix want = ref::quantize_affine_ref(x.view(), p);
        const quant::QuantizedMatrix got = quantize_cl(*dev, x.view(), p, &sums);
        const std::string what = "partial cols " + std::to_string(cols) + " g" + std::to_string(g) + " int" +
                                 std::to_string(bits) + " " + quant::to_string(m);
        expect_same(got, want, what);
        EXPECT_EQ(test::first_difference(sums, group_sums_of(want)), "") << what;
      }
}

TEST(QuantizeCl, HalfInputsComputeInFloatEvenAtTheFp16Limit) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  // Regression for the fp16-overflow bug of a kernel that reduced max − min in fp16: the range of
  // ±65504 (the largest binary16) is 131008, beyond binary16, so such a kernel got scale = Inf. Here the
  // reduction and scale are fp32/fp64: scale = 131008/255 = 513.757 for asymmetric int8.
  for (int64_t cols : {int64_t{64}, int64_t{127}, int64_t{4096}}) {
    Rng rng(seed + static_cast<uint64_t>(cols));
    const int64_t rows = 5;
    std::vector<uint16_t> h(static_cast<size_t>(rows * cols));
    quant::Matrix f(rows, cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        double v = rng.normal() * (r == 0 ? 20000.0 : 1.0);
        v = std::fmax(-65504.0, std::fmin(65504.0, v));  // stay finite in binary16
        if (r == 0 && c == 0) v = 65504.0;
        if (r == 0 && c == 1) v = -65504.0;
        h[static_cast<size_t>(r * cols + c)] = quant::float_to_half_bits(static_cast<float>(v));
        f(r, c) = quant::half_bits_to_float(h[static_cast<size_t>(r * cols + c)]);
      }
    for (Mapping m : {Mapping::symmetric, Mapping::asymmetric})
      for (int64_t g : {int64_t{0}, int64_t{cols % 32 == 0 ? 32 : 0}}) {
        QuantParams p;
        p.bits = 8;
        p.group_size = g;
        p.mapping = m;
        const quant::QuantizedMatrix got = quantize_f16_cl(*dev, h.data(), rows, cols, cols, p);
        const quant::QuantizedMatrix want = ref::quantize_affine_ref(f.view(), p);
        expect_same(got, want, "fp16 cols " + std::to_string(cols) + " " + quant::to_string(m) + " g" + std::to_string(g));
        if (m == Mapping::asymmetric && g == 0) {
          EXPECT_TRUE(std::isfinite(got.scales[0]));
          EXPECT_FLOAT_EQ(got.scales[0], static_cast<float>(131008.0 / 255.0));
        }
      }
  }
}

TEST(QuantizeCl, NonFiniteInputsFollowThePolicy) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  quant::Matrix x = test::gaussian_matrix(4, 64, test::gpu_seed());
  x(2, 17) = std::numeric_limits<float>::quiet_NaN();
  x(3, 5) = std::numeric_limits<float>::infinity();
  QuantParams p;
  p.bits = 8;
  p.group_size = 32;
  std::string want_msg;
  try {
    ref::quantize_affine_ref(x.view(), p);
  } catch (const quant::NonFiniteError& e) {
    want_msg = e.what();
  }
  ASSERT_FALSE(want_msg.empty());
  try {
    quantize_cl(*dev, x.view(), p);
    FAIL() << "expected NonFiniteError";
  } catch (const quant::NonFiniteError& e) {
    EXPECT_EQ(std::string(e.what()), want_msg);
  }
  p.non_finite = quant::NonFinitePolicy::propagate;
  for (Mapping m : {Mapping::symmetric, Mapping::asymmetric}) {
    p.mapping = m;
    expect_same(quantize_cl(*dev, x.view(), p), ref::quantize_affine_ref(x.view(), p),
                std::string("propagate ") + quant::to_string(m));
  }
}

TEST(QuantizeCl, MaskedColumnsAreLeftOutOfTheRange) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  // LLM.int8's int8 part: outlier columns are excluded. The reference on X with those columns set to 0
  // gives the same codes exactly: 0 never widens a range (symmetric: |0| ≤ amax; asymmetric ranges always
  // include 0) and quantizes to the zero point, the code the kernel writes for masked columns.
  quant::Matrix x = test::gaussian_matrix(7, 129, test::gpu_seed());
  std::vector<uint8_t> mask(129, 0);
  for (int c : {3, 64, 128}) {
    mask[static_cast<size_t>(c)] = 1;
    for (int r = 0; r < 7; ++r) x(r, c) = 50.0f * static_cast<float>(r + 1);
  }
  quant::Matrix x0 = x;
  for (int c : {3, 64, 128})
    for (int r = 0; r < 7; ++r) x0(r, c) = 0.0f;
  Buffer bm(dev->context(), mask.size());
  bm.write(dev->queue(), mask.data(), mask.size());
  for (Mapping m : {Mapping::symmetric, Mapping::asymmetric}) {
    ActQuantSpec s;
    s.bits = 8;
    s.mapping = m;
    const quant::QuantizedMatrix got = download(*dev, quantize_rows(*dev, upload(*dev, x.view()), s, &bm));
    expect_same(got, ref::quantize_affine_ref(x0.view(), s.to_params()), std::string("mask ") + quant::to_string(m));
  }
}

TEST(QuantizeCl, UnsupportedParametersAreClearErrors) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const quant::Matrix x = test::gaussian_matrix(2, 96, 1);
  QuantParams p;
  p.range = quant::RangeMethod::mse;
  EXPECT_THROW(quantize_cl(*dev, x.view(), p), std::invalid_argument);
  p = QuantParams();
  p.group_size = quant::kPerTensor;
  EXPECT_THROW(quantize_cl(*dev, x.view(), p), std::invalid_argument);
  p = QuantParams();
  p.group_size = 64;  // does not divide 96
  try {
    quantize_cl(*dev, x.view(), p);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("96"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qeval::gpu
