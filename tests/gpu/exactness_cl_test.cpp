// tests/gpu/exactness_cl_test.cpp — the division contract of the quantize/dequantize kernels (issue 13): codes depend
// on the last bit of inv_scale = 1.0f / scale, so a device must divide exactly like the reference. Crafted inputs
// whose codes flip when the reciprocal is one ulp off in either direction; a build with a deliberately approximate
// reciprocal (-DQEVAL_CL_APPROX_RECIP, common.cl) must change codes on them (this suite would have caught NVIDIA's
// approximate division on PoCL), the normal build must not, nor the host-parameter path of devices that cannot
// divide exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "gpu/backend.hpp"
#include "quant/ref/quantize_ref.hpp"
#include "tests/gpu/gpu_test_util.hpp"

namespace qeval::gpu {
namespace {

using quant::Mapping;
using quant::QuantParams;

float as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Host twin of common.cl's qeval_recip under QEVAL_CL_APPROX_RECIP (the same float operations, no contraction).
float approx_recip_model(float s) {
  float y = as_float(0x7EF311C3u - test::bits_of(s));
  for (int i = 0; i < 3; ++i) {
    const float e = s * y;
    y = y * (2.0f - e);
  }
  return y;
}

// The int8 symmetric code of x for a reciprocal r (quant::quantize_one with zero point 0).
int code_with(float x, float r) {
  float v = std::nearbyint(x * r);
  v = v < -127.0f ? -127.0f : (v > 127.0f ? 127.0f : v);
  return static_cast<int>(v);
}

// The first x near (k + ½)·s, k = 0..126, ±64 ulp, whose code differs between the reciprocals r and r2; 0 when none.
// Why it exists: x·r and x·r2 differ by about one ulp of the product, so some x puts a rounding boundary of
// nearbyint (k + ½, or the tie itself) between the two products.
float crafted_x(float s, float r, float r2, int k_from) {
  for (int k = k_from; k < 127; ++k) {
    float x = static_cast<float>((k + 0.5) * static_cast<double>(s));
    for (int j = 0; j < 64; ++j) x = std::nextafter(x, 0.0f);
    for (int j = 0; j < 128; ++j, x = std::nextafter(x, 1e30f))
      if (code_with(x, r) != code_with(x, r2)) return x;
  }
  return 0.0f;
}

// Rows of int8 symmetric per-row quantization whose amax gives a scale with an inexact approx_recip_model, each
// holding x values that flip a code for r + 1 ulp, for r − 1 ulp and for the model's reciprocal; the other
// columns are small filler. `model_diffs` receives how many codes the model's reciprocal changes.
quant::Matrix crafted_rows(int rows, int cols, int* model_diffs) {
  quant::Matrix x(rows, cols, 0.0f);
  Rng rng(test::gpu_seed());
  float a = 1.0f;
  *model_diffs = 0;
  for (int r = 0; r < rows; ++r) {
    float s, inv, approx;
    do {  // the next amax whose scale the approximate reciprocal gets wrong
      a = std::nextafter(a, 4.0f) + 0.001f;
      s = static_cast<float>(static_cast<double>(a) / 127.0);
      inv = 1.0f / s;
      approx = approx_recip_model(s);
    } while (approx == inv);
    x(r, 0) = a;  // amax: scale = a / 127 exactly as quant::group_params_from_range computes it
    int c = 1;
    for (float r2 : {std::nextafter(inv, 1e30f), std::nextafter(inv, 0.0f), approx})
      for (int k_from : {0, 40, 90}) {
        const float v = crafted_x(s, inv, r2, k_from);
        EXPECT_NE(v, 0.0f) << "no crafted value for scale " << s;
        x(r, c) = (c % 2) ? v : -v;  // both signs
        ++c;
      }
    for (; c < cols; ++c) x(r, c) = static_cast<float>(rng.normal() * 0.1);
    for (int cc = 0; cc < cols; ++cc) *model_diffs += code_with(x(r, cc), inv) != code_with(x(r, cc), approx);
  }
  return x;
}

int count_differences(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want) {
  int n = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) n += got[i] != want[i];
  return n;
}

QuantParams int8_sym_per_row() {
  QuantParams p;
  p.bits = 8;
  p.group_size = quant::kPerRow;
  p.mapping = Mapping::symmetric;
  return p;
}

// A dequantize input whose col_scale divisions the approximate reciprocal gets wrong in many elements.
quant::QuantizedMatrix with_col_scale(const quant::Matrix& x) {
  quant::QuantizedMatrix q = ref::quantize_affine_ref(x.view(), int8_sym_per_row());
  Rng rng(test::gpu_seed() + 1);
  q.col_scale.resize(static_cast<size_t>(q.cols));
  for (auto& s : q.col_scale) s = static_cast<float>(rng.uniform(0.3, 3.0));
  return q;
}

std::vector<float> dequantized(Device& d, const quant::QuantizedMatrix& q) {
  quant::Matrix o(q.rows, q.cols, -1.0f);
  dequantize_cl(d, q, o.mut());
  return o.data;
}

std::vector<float> dequantized_ref(const quant::QuantizedMatrix& q) {
  quant::Matrix o(q.rows, q.cols);
  ref::dequantize_ref(q, o.mut());
  return o.data;
}

TEST(Exactness, CraftedInputsFlipCodesForAnyOneUlpReciprocalError) {
  int model_diffs = 0;
  const quant::Matrix x = crafted_rows(32, 64, &model_diffs);
  EXPECT_GE(model_diffs, 32) << "every row holds at least one code the approximate reciprocal changes";
}

TEST(Exactness, CorrectlyRoundedDivisionGivesTheReferenceCodes) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  if (!group_params_on_device(dev->info())) GTEST_SKIP() << "parameters are computed on the host on this device";
  int model_diffs = 0;
  const quant::Matrix x = crafted_rows(32, 64, &model_diffs);
  const quant::QuantizedMatrix want = ref::quantize_affine_ref(x.view(), int8_sym_per_row());
  const quant::QuantizedMatrix got = quantize_cl(*dev, x.view(), int8_sym_per_row());
  EXPECT_EQ(test::first_difference(got.scales, want.scales), "");
  EXPECT_EQ(test::first_difference(got.codes, want.codes), "") << "seed " << test::gpu_seed();
  const quant::QuantizedMatrix q = with_col_scale(x);
  EXPECT_EQ(test::first_difference(dequantized(*dev, q), dequantized_ref(q)), "") << "col_scale division";
}

TEST(Exactness, AnApproximateReciprocalIsCaught) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  if (!group_params_on_device(dev->info())) GTEST_SKIP() << "parameters are computed on the host on this device";
  Device approx(dev->info(), "-DQEVAL_CL_APPROX_RECIP=1");
  int model_diffs = 0;
  const quant::Matrix x = crafted_rows(32, 64, &model_diffs);
  const quant::QuantizedMatrix want = ref::quantize_affine_ref(x.view(), int8_sym_per_row());
  const quant::QuantizedMatrix got = quantize_cl(approx, x.view(), int8_sym_per_row());
  EXPECT_EQ(test::first_difference(got.scales, want.scales), "") << "the scales do not divide by a float";
  const int diffs = count_differences(got.codes, want.codes);
  EXPECT_GE(diffs, 1) << "the approximate build must change codes on the crafted inputs";
  EXPECT_EQ(diffs, model_diffs) << "the device computes the model's reciprocal bit for bit";
  const quant::QuantizedMatrix q = with_col_scale(x);
  EXPECT_NE(test::first_difference(dequantized(approx, q), dequantized_ref(q)), "") << "col_scale division";
}

TEST(Exactness, HostParametersWhereTheDeviceCannotDivideExactly) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  DeviceInfo info = dev->info();
  info.correctly_rounded_div = false;  // as on a device without CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT
  Device inexact(info);
  ASSERT_FALSE(group_params_on_device(inexact.info()));
  int model_diffs = 0;
  const quant::Matrix crafted = crafted_rows(8, 64, &model_diffs);
  EXPECT_EQ(test::first_difference(quantize_cl(inexact, crafted.view(), int8_sym_per_row()).codes,
                                   ref::quantize_affine_ref(crafted.view(), int8_sym_per_row()).codes),
            "");
  const quant::Matrix x = test::gaussian_matrix(9, 256, test::gpu_seed());
  for (int bits : {8, 4})
    for (Mapping m : {Mapping::symmetric, Mapping::asymmetric})
      for (int64_t g : {int64_t{0}, int64_t{32}})
        for (double clip : {1.0, 0.9}) {
          QuantParams p;
          p.bits = bits;
          p.group_size = g;
          p.mapping = m;
          p.clip_ratio = clip;
          const quant::QuantizedMatrix got = quantize_cl(inexact, x.view(), p);
          const quant::QuantizedMatrix want = ref::quantize_affine_ref(x.view(), p);
          const std::string what = p.to_string() + " clip " + std::to_string(clip);
          EXPECT_EQ(test::first_difference(got.codes, want.codes), "") << what;
          EXPECT_EQ(test::first_difference(got.scales, want.scales), "") << what;
          EXPECT_EQ(test::first_difference(got.zero_points, want.zero_points), "") << what;
        }
  EXPECT_THROW(dequantized(inexact, with_col_scale(crafted)), std::invalid_argument);
}

}  // namespace
}  // namespace qeval::gpu
