// tests/schemes/static_act_test.cpp — static activation quantization: frozen scales follow the calibration,
// out-of-range values clip (counted), percentile/MSE beat min/max on heavy tails, per-channel storage round-trips.
#include <gtest/gtest.h>

#include <cstdio>

#include "tests/schemes/synthetic.hpp"

namespace qeval::schemes::test {
namespace {

constexpr uint64_t kSeed = 0x57a7;

// Symmetric minmax per tensor: scale = max|X_calib| / 127 (affine.hpp's formula), frozen; a later input inside the
// range has |x − x̂| ≤ s/2, and one at twice the range clips to ±127·s. The clipped count is exact.
TEST(StaticAct, FrozenMinMaxScaleAndMeasuredClipping) {
  const uint64_t seed = seed_from_env(kSeed);
  const quant::Matrix xc = gaussian(256, 64, seed);
  double amax = 0.0;
  for (float v : xc.data) amax = std::max(amax, std::fabs(double(v)));
  const auto s = make_scheme(default_config("static_act"));
  EXPECT_TRUE(s->needs_calibration());
  const Calibration c = s->calibrate(calib_of(xc, "blk.0.attn_q"));
  ASSERT_EQ(c.frozen_scales.size(), 1u);
  const float scale = c.frozen_scales[0];
  EXPECT_FLOAT_EQ(scale, static_cast<float>(amax / 127.0));
  // A fresh batch: inside the range except 10 values set to ±2·amax.
  quant::Matrix x = gaussian(32, 64, seed + 1, 0.5);
  for (int k = 0; k < 10; ++k) x(k, 3 * k) = static_cast<float>((k % 2 ? -2.0 : 2.0) * amax);
  quant::Matrix y(x.rows, x.cols);
  s->fake_quantize(x.view(), y.mut(), &c);
  double clip_err = 0.0, in_err = 0.0;
  for (int64_t t = 0; t < x.rows; ++t)
    for (int64_t j = 0; j < x.cols; ++j) {
      const bool out = t < 10 && j == 3 * t;
      const double e = std::fabs(double(x(t, j)) - y(t, j));
      if (out) {
        EXPECT_FLOAT_EQ(y(t, j), (t % 2 ? -127.0f : 127.0f) * scale);  // clipped to the grid end
        clip_err += e * e;
      } else {
        EXPECT_LE(e, 0.5 * scale * (1 + 1e-4));
        in_err += e * e;
      }
    }
  const auto st = s->run_stats().at("blk.0.attn_q");
  EXPECT_EQ(st.at("clipped"), 10.0);
  EXPECT_DOUBLE_EQ(st.at("clipped_fraction"), 10.0 / (32 * 64));
  std::printf("[static_act] 10 values at 2x the calibrated range: clipping error %.3g vs rounding error %.3g of "
              "the other %d values\n", clip_err, in_err, 32 * 64 - 10);
  EXPECT_GT(clip_err, 100 * in_err);  // each clipped value loses ≈ amax (≈ 4σ), a rounded one ≤ s/2
}

// Heavy-tailed activations (Student-t, ν = 3): the maximum is an outlier that stretches the min/max grid; the 99.9th
// percentile or the MSE search give a finer step for the bulk and a lower MSE on held-out data, despite clipping the
// tail. quant's MSE search only shrinks the range down to 0.5·max (choose_qparams.hpp), which for t(3) is far from
// the optimum, so it gains less than the 99.9th percentile. Measured (QEVAL_SEED = default, 1, 2, 3, 77, 12345;
// printed): percentile/minmax 0.18–0.28, mse/minmax 0.37–0.73 at 4 bits; required < 0.5 and < 0.9.
TEST(StaticAct, PercentileAndMseBeatMinMaxOnHeavyTails) {
  const uint64_t seed = seed_from_env(kSeed);
  auto student = [](uint64_t sd) {
    Rng rng(sd);
    quant::Matrix m(512, 64);
    for (auto& v : m.data) v = static_cast<float>(rng.student_t(3));
    return m;
  };
  const quant::Matrix xc = student(seed + 2), xt = student(seed + 3);
  auto mse_of = [&](quant::RangeMethod r) {
    SchemeConfig cfg = config("static_act", 4, -1);
    cfg.params.range = r;
    cfg.params.clip_percentile = 99.9;
    const auto s = make_scheme(cfg);
    const Calibration c = s->calibrate(calib_of(xc));
    quant::Matrix y(xt.rows, xt.cols);
    s->fake_quantize(xt.view(), y.mut(), &c);
    return sq_diff(xt, y);
  };
  const double mm = mse_of(quant::RangeMethod::minmax);
  const double pc = mse_of(quant::RangeMethod::percentile);
  const double ms = mse_of(quant::RangeMethod::mse);
  std::printf("[static_act] int4 per-tensor, t(3) activations: percentile/minmax %.3f, mse/minmax %.3f\n", pc / mm,
              ms / mm);
  EXPECT_LT(pc / mm, 0.5) << "seed " << seed;
  EXPECT_LT(ms / mm, 0.9) << "seed " << seed;
}

// Per channel: one frozen scale per feature; quantize() stores the transpose and dequantize() undoes it, so
// fake_quantize == dequantize(quantize()) and each element obeys its own channel's bound. Channels with
// different ranges are quantized much better than with one tensor-wide scale.
TEST(StaticAct, PerChannelScalesRoundTripThroughTransposedStorage) {
  const uint64_t seed = seed_from_env(kSeed);
  quant::Matrix xc = gaussian(256, 32, seed + 4);
  for (int64_t t = 0; t < xc.rows; ++t)
    for (int64_t j = 0; j < xc.cols; ++j) xc(t, j) *= static_cast<float>(1 + j);  // σ_j = 1..32
  const auto pc = make_scheme(config("static_act", 8, -1, {{"granularity", "channel"}}, quant::Mapping::asymmetric));
  const Calibration c = pc->calibrate(calib_of(xc));
  ASSERT_EQ(c.frozen_scales.size(), 32u);
  ASSERT_EQ(c.frozen_zero_points.size(), 32u);
  const quant::QuantizedMatrix q = pc->quantize(xc.view(), &c);
  EXPECT_EQ(q.rows, 32);
  EXPECT_EQ(q.cols, 256);
  quant::Matrix a(xc.rows, xc.cols), b(xc.rows, xc.cols);
  pc->dequantize(q, a.mut());
  pc->fake_quantize(xc.view(), b.mut(), &c);
  EXPECT_EQ(a.data, b.data);
  for (int64_t t = 0; t < xc.rows; ++t)
    for (int64_t j = 0; j < xc.cols; ++j)
      ASSERT_LE(std::fabs(double(xc(t, j)) - a(t, j)), 0.5 * c.frozen_scales[static_cast<size_t>(j)] * (1 + 1e-4));
  const auto pt = make_scheme(config("static_act", 8, -1, {}, quant::Mapping::asymmetric));
  const Calibration ct = pt->calibrate(calib_of(xc));
  quant::Matrix d(xc.rows, xc.cols);
  pt->fake_quantize(xc.view(), d.mut(), &ct);
  EXPECT_LT(sq_diff(xc, a), 0.5 * sq_diff(xc, d));
}

TEST(StaticAct, RejectsBadConfigurationAndMissingCalibration) {
  const quant::Matrix x = gaussian(16, 32, kSeed);
  EXPECT_ERROR_MENTIONS(make_scheme(config("static_act", 8, 0)), "group size", "-1");
  EXPECT_ERROR_MENTIONS(make_scheme(config("static_act", 8, 16)), "group size");
  EXPECT_ERROR_MENTIONS(make_scheme(config("static_act", 8, -1, {{"granularity", "token"}})), "granularity");
  EXPECT_ERROR_MENTIONS(make_scheme(config("static_act", 1, -1)), "bits");
  const auto s = make_scheme(default_config("static_act"));
  EXPECT_ERROR_MENTIONS(s->quantize(x.view(), nullptr), "static_act", "run with calibration (--calib");
  Calibration uncalibrated = calib_of(x);
  EXPECT_ERROR_MENTIONS(s->quantize(x.view(), &uncalibrated), "calibrate()");
  Calibration stats;
  stats.act_absmax.assign(32, 2.0f);
  EXPECT_NO_THROW(s->calibrate(stats));  // symmetric minmax needs only max|x|
  const auto asym = make_scheme(config("static_act", 8, -1, {}, quant::Mapping::asymmetric));
  EXPECT_ERROR_MENTIONS(asym->calibrate(stats), "captured input rows", "run with calibration (--calib");
  const auto ch = make_scheme(config("static_act", 8, -1, {{"granularity", "channel"}}));
  const Calibration per_tensor = s->calibrate(calib_of(x));
  EXPECT_ERROR_MENTIONS(ch->quantize(x.view(), &per_tensor), "1 scales", "32");
}

}  // namespace
}  // namespace qeval::schemes::test
