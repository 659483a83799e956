// tests/gpu/dequantize_cl_test.cpp — dequantize on the device against ref::dequantize_ref, bit for bit: every
// format (int2..8 sym/asym, fp4 e2m1, bitsandbytes fp4, nf4, fp8 e4m3/e5m2), every code of the 8-bit float
// formats (NaN, Inf, subnormals, saturation), per-tensor/per-row/grouped scales, perm, col_scale and NaN lists.
#include <gtest/gtest.h>

#include <numeric>

#include "gpu/backend.hpp"
#include "quant/pack.hpp"
#include "quant/ref/quantize_ref.hpp"
#include "tests/gpu/gpu_test_util.hpp"

namespace qeval::gpu {
namespace {

using quant::Format;
using quant::QuantParams;

std::vector<float> deq_ref(const quant::QuantizedMatrix& q) {
  quant::Matrix o(q.rows, q.cols);
  ref::dequantize_ref(q, o.mut());
  return o.data;
}
std::vector<float> deq_cl(Device& d, const quant::QuantizedMatrix& q) {
  quant::Matrix o(q.rows, q.cols, -12345.0f);
  dequantize_cl(d, q, o.mut());
  return o.data;
}

TEST(DequantizeCl, EveryFormatWidthAndGrouping) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  int runs = 0;
  for (int64_t rows : {int64_t{1}, int64_t{7}, int64_t{64}})
    for (int64_t cols : {int64_t{7}, int64_t{128}, int64_t{129}, int64_t{256}}) {
      const quant::Matrix x = test::gaussian_matrix(rows, cols, seed + static_cast<uint64_t>(rows * 131 + cols), 3.0);
      for (int64_t g : {quant::kPerTensor, quant::kPerRow, int64_t{32}, int64_t{128}}) {
        if (g > 0 && cols % g != 0) continue;
        for (int bits = 2; bits <= 8; ++bits)
          for (auto m : {quant::Mapping::symmetric, quant::Mapping::asymmetric}) {
            QuantParams p;
            p.bits = bits;
            p.group_size = g;
            p.mapping = m;
            const quant::QuantizedMatrix q = ref::quantize_affine_ref(x.view(), p);
            EXPECT_EQ(test::first_difference(deq_cl(*dev, q), deq_ref(q)), "")
                << rows << "x" << cols << " g" << g << " int" << bits << " " << quant::to_string(m) << " seed " << seed;
            ++runs;
          }
        for (Format f : {Format::fp4_e2m1, Format::fp4_bnb, Format::nf4, Format::fp8_e4m3, Format::fp8_e5m2}) {
          QuantParams p;
          p.bits = quant::format_bits(f);
          p.group_size = g;
          const quant::QuantizedMatrix q = ref::quantize_float_format_ref(x.view(), f, p);
          EXPECT_EQ(test::first_difference(deq_cl(*dev, q), deq_ref(q)), "")
              << rows << "x" << cols << " g" << g << " " << quant::to_string(f) << " seed " << seed;
          ++runs;
        }
      }
    }
  EXPECT_GT(runs, 500);
}

TEST(DequantizeCl, AllFp8CodesIncludingNanInfSubnormalAndSaturation) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  for (Format f : {Format::fp8_e4m3, Format::fp8_e5m2})
    for (float scale : {1.0f, 0.37f, 1e36f, 0.0f}) {  // 1e36·448 > FLT_MAX: saturates to ±FLT_MAX
      quant::QuantizedMatrix q;
      q.format = f;
      q.params.bits = 8;
      q.params.group_size = quant::kPerRow;
      q.rows = 2;
      q.cols = 128;
      q.codes.resize(256);
      std::iota(q.codes.begin(), q.codes.end(), 0);
      q.scales = {scale, scale * 0.5f};
      EXPECT_EQ(test::first_difference(deq_cl(*dev, q), deq_ref(q)), "") << quant::to_string(f) << " scale " << scale;
    }
  for (Format f : {Format::fp4_e2m1, Format::fp4_bnb, Format::nf4}) {
    quant::QuantizedMatrix q;
    q.format = f;
    q.params.bits = 4;
    q.params.group_size = quant::kPerRow;
    q.rows = 1;
    q.cols = 16;
    std::vector<uint8_t> u(16);
    std::iota(u.begin(), u.end(), 0);
    q.codes.resize(8);
    quant::pack_codes(u.data(), 16, 4, q.codes.data());
    q.scales = {0.75f};
    EXPECT_EQ(test::first_difference(deq_cl(*dev, q), deq_ref(q)), "") << quant::to_string(f);
  }
}

TEST(DequantizeCl, PermColScaleAndNonFiniteElements) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  quant::Matrix x = test::gaussian_matrix(9, 128, seed);
  x(4, 100) = std::numeric_limits<float>::quiet_NaN();
  x(8, 3) = -std::numeric_limits<float>::infinity();
  QuantParams p;
  p.bits = 4;
  p.group_size = 32;
  p.mapping = quant::Mapping::asymmetric;
  p.non_finite = quant::NonFinitePolicy::propagate;
  quant::QuantizedMatrix q = ref::quantize_affine_ref(x.view(), p);
  ASSERT_EQ(q.non_finite.size(), 2u);
  Rng rng(seed);
  q.perm.resize(128);
  std::iota(q.perm.begin(), q.perm.end(), 0);
  for (int i = 127; i > 0; --i) std::swap(q.perm[static_cast<size_t>(i)], q.perm[rng.below(static_cast<uint64_t>(i) + 1)]);
  q.col_scale.resize(128);
  for (auto& s : q.col_scale) s = static_cast<float>(rng.uniform(0.3, 3.0));
  if (!dev->info().fp64 && !dev->info().correctly_rounded_div) GTEST_SKIP() << "device divides col_scale inexactly";
  EXPECT_EQ(test::first_difference(deq_cl(*dev, q), deq_ref(q)), "") << "seed " << seed;
  const quant::QuantizedMatrix q8 = [&] {
    QuantParams p8 = p;
    p8.bits = 8;
    p8.group_size = quant::kPerTensor;
    return ref::quantize_affine_ref(x.view(), p8);
  }();
  EXPECT_EQ(test::first_difference(deq_cl(*dev, q8), deq_ref(q8)), "") << "per-tensor with NaN, seed " << seed;
}

TEST(DequantizeCl, BadShapeIsAClearError) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const quant::Matrix x = test::gaussian_matrix(2, 32, 1);
  QuantParams p;
  p.bits = 8;
  p.group_size = 0;
  const quant::QuantizedMatrix q = ref::quantize_affine_ref(x.view(), p);
  quant::Matrix o(3, 32);
  EXPECT_THROW(dequantize_cl(*dev, q, o.mut()), std::invalid_argument);
}

}  // namespace
}  // namespace qeval::gpu
