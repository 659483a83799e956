// tests/eval/metrics/metrics_test.cpp — metrics against hand-computed examples, the published bound figures, and the
// statistical checks of the issue (uniform signal reaches the grid-adjusted figure; MSE ≈ s²/12).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "eval/inputs/synthetic.hpp"
#include "eval/metrics/metrics.hpp"
#include "eval/metrics/quant_tester.hpp"
#include "quant/quantize.hpp"
#include "quant/rng.hpp"

namespace qeval {
namespace {

using eval::QuantTester;
using inputs::Distribution;
using quant::Mapping;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- The bound figures. DESIGN.md / the issue publish them to 2 decimals, so ±0.005 dB.
TEST(Bound, PublishedFigures) {
  EXPECT_NEAR(metrics::bound_db(4), 24.08, 0.005);
  EXPECT_NEAR(metrics::grid_adjusted_db(2), 9.54, 0.005);
  EXPECT_NEAR(metrics::grid_adjusted_db(4), 23.52, 0.005);
  EXPECT_NEAR(metrics::grid_adjusted_db(8), 48.13, 0.005);
  // Grid loss: "≈ 2.5 dB short at 2 bits, 0.56 dB at 4 bits, 0.03 dB at 8 bits".
  EXPECT_NEAR(metrics::bound_db(2) - metrics::grid_adjusted_db(2), 2.50, 0.005);
  EXPECT_NEAR(metrics::bound_db(4) - metrics::grid_adjusted_db(4), 0.56, 0.005);
  EXPECT_NEAR(metrics::bound_db(8) - metrics::grid_adjusted_db(8), 0.03, 0.005);
  // 6.02·b is the rounded 20·log10(2) = 6.0206 per bit.
  for (int b = 2; b <= 8; ++b) EXPECT_NEAR(metrics::bound_db(b), 6.0206 * b, 1e-3 * b);
}

TEST(Bound, Decomposition) {
  const metrics::Gap g = metrics::decompose(4, 18.58, 18.61);
  EXPECT_NEAR(g.total_db, g.grid_loss_db + g.range_loss_db + g.other_db, 1e-12);
  EXPECT_NEAR(g.total_db, 24.0824 - 18.61, 1e-3);
  EXPECT_NEAR(g.other_db, -0.03, 1e-12);
  const metrics::Gap nan = metrics::decompose(4, kNaN, 18.0);  // code books: no expectation
  EXPECT_TRUE(std::isnan(nan.range_loss_db));
  EXPECT_TRUE(std::isnan(nan.other_db));
  EXPECT_FALSE(std::isnan(nan.grid_loss_db));
}

// ---- compare(): hand-computed small examples.
TEST(Compare, HandComputed) {
  // x = [1 2; 3 4], x̂ = [1 2; 3 5]: Σx² = 30, Σe² = 1 → MSE = 1/4, SQNR = 10·log10(30) = 14.7712 dB,
  // cosine = (1 + 4 + 9 + 20)/(√30·√39) = 34/√1170 = 0.993997, max |e| = 1 at (1, 1).
  const float x[] = {1, 2, 3, 4};
  const float y[] = {1, 2, 3, 5};
  const metrics::ErrorStats s = metrics::compare(quant::MatrixView(x, 2, 2), quant::MatrixView(y, 2, 2));
  EXPECT_EQ(s.n, 4);
  EXPECT_DOUBLE_EQ(s.mse, 0.25);
  EXPECT_NEAR(s.sqnr_db, 14.771212547, 1e-9);
  EXPECT_NEAR(s.cosine, 34.0 / std::sqrt(1170.0), 1e-12);
  EXPECT_DOUBLE_EQ(s.max_abs_error, 1.0);
  EXPECT_EQ(s.max_abs_row, 1);
  EXPECT_EQ(s.max_abs_col, 1);
  EXPECT_DOUBLE_EQ(s.signal_power, 7.5);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.crest_factor, 4.0 / std::sqrt(7.5), 1e-12);
}

TEST(Compare, StridedViewsAndSignFlip) {
  // A 2×2 view with row stride 3 (the third column is padding that must be ignored).
  const float x[] = {1, -1, 99, 2, -2, 99};
  const float y[] = {-1, 1, 0, -2, 2, 0};  // x̂ = −x: e = 2x, Σe² = 4Σx² → SQNR = −10·log10(4) = −6.0206
  const metrics::ErrorStats s = metrics::compare(quant::MatrixView(x, 2, 2, 3), quant::MatrixView(y, 2, 2, 3));
  EXPECT_NEAR(s.sqnr_db, -10.0 * std::log10(4.0), 1e-12);
  EXPECT_NEAR(s.cosine, -1.0, 1e-15);
  EXPECT_DOUBLE_EQ(s.mse, 4.0 * 10.0 / 4.0);
}

TEST(Compare, ExactZeroAndNonFinite) {
  const float x[] = {1, 2};
  const metrics::ErrorStats exact = metrics::compare(quant::MatrixView(x, 1, 2), quant::MatrixView(x, 1, 2));
  EXPECT_TRUE(std::isinf(exact.sqnr_db) && exact.sqnr_db > 0);
  EXPECT_DOUBLE_EQ(exact.cosine, 1.0);
  const float z[] = {0, 0};
  const metrics::ErrorStats zero = metrics::compare(quant::MatrixView(z, 1, 2), quant::MatrixView(z, 1, 2));
  EXPECT_TRUE(std::isnan(zero.sqnr_db));  // 0/0: undefined, never a number
  EXPECT_DOUBLE_EQ(zero.cosine, 1.0);
  // NaN input (propagate policy): skipped and counted; the rest is compared.
  const float xn[] = {std::numeric_limits<float>::quiet_NaN(), 2};
  const float yn[] = {std::numeric_limits<float>::quiet_NaN(), 3};
  const metrics::ErrorStats skip = metrics::compare(quant::MatrixView(xn, 1, 2), quant::MatrixView(yn, 1, 2));
  EXPECT_EQ(skip.n, 1);
  EXPECT_EQ(skip.non_finite_input, 1);
  EXPECT_DOUBLE_EQ(skip.mse, 1.0);
  // NaN output for a finite input: a bug, reported as NaN metrics.
  const float yb[] = {1, std::numeric_limits<float>::quiet_NaN()};
  const metrics::ErrorStats bug = metrics::compare(quant::MatrixView(x, 1, 2), quant::MatrixView(yb, 1, 2));
  EXPECT_EQ(bug.non_finite_output, 1);
  EXPECT_TRUE(std::isnan(bug.mse));
  EXPECT_TRUE(std::isnan(bug.sqnr_db));
  EXPECT_THROW(metrics::compare(quant::MatrixView(x, 1, 2), quant::MatrixView(x, 2, 1)), std::invalid_argument);
}

// A hand-built QuantizedMatrix: 1 × 4, int4 symmetric, groups of 2 with scales 0.1 and 0.2.
quant::QuantizedMatrix hand_matrix() {
  quant::QuantizedMatrix q;
  q.format = quant::Format::int_affine;
  q.params.bits = 4;
  q.params.group_size = 2;
  q.params.mapping = Mapping::symmetric;
  q.rows = 1;
  q.cols = 4;
  q.codes.assign(2, 0);
  q.scales = {0.1f, 0.2f};
  return q;
}

TEST(Evaluate, ExpectedSqnrAndClippingByHand) {
  const quant::QuantizedMatrix q = hand_matrix();
  // Group 0 (s = 0.1, grid ±0.7): x = 0.9 lies at code 9 > 7.5 → clipped to 0.7 (e = 0.2);
  //                               x = 0.74 → code 7.4 ≤ 7.5, rounds to 0.7 (e = 0.04), not clipped.
  // Group 1 (s = 0.2, grid ±1.4): x = −0.3 → −0.2 or −0.4 (tie region; take −0.4, e = 0.1 = s/2);
  //                               x = 1.0 → 1.0 exactly (e = 0).
  const float x[] = {0.9f, 0.74f, -0.3f, 1.0f};
  const float y[] = {0.7f, 0.7f, -0.4f, 1.0f};
  const metrics::TensorMetrics m = metrics::evaluate(quant::MatrixView(x, 1, 4), q, quant::MatrixView(y, 1, 4));
  // mean(s²/12) = (2·0.01 + 2·0.04)/4/12 = 0.025/12; σ² = (0.81 + 0.5476 + 0.09 + 1)/4 = 0.6094.
  const double s2_12 = (2 * 0.1f * 0.1f + 2 * 0.2f * 0.2f) / 4.0 / 12.0;  // scales are floats
  const double p = (0.9 * 0.9 + 0.74 * 0.74 + 0.3 * 0.3 + 1.0) / 4.0;
  EXPECT_NEAR(m.scales.mean_step_sq_12, s2_12, 1e-9);
  EXPECT_NEAR(m.scales.expected_sqnr_db, 10.0 * std::log10(p / s2_12), 1e-5);  // x are floats: 1e-5 dB
  EXPECT_EQ(m.scales.clipped, 1);
  EXPECT_DOUBLE_EQ(m.scales.clipped_fraction, 0.25);
  // Error share of the clipped element: 0.04 / (0.04 + 0.0016 + 0.01 + 0) = 0.77519.
  EXPECT_NEAR(m.scales.clipped_error_share, 0.04 / 0.0516, 1e-5);
  EXPECT_EQ(m.scales.half_step_violations, 0);
  // range/σ: R = 14 steps of s: sqrt(mean(R²)) = 14·sqrt(0.025) / σ.
  EXPECT_NEAR(m.scales.range_over_sigma, 14.0 * std::sqrt(0.025) / std::sqrt(p), 1e-5);
  EXPECT_DOUBLE_EQ(m.bits_per_weight, q.bits_per_weight());
  EXPECT_NEAR(m.gap.grid_loss_db + m.gap.range_loss_db + m.gap.other_db, m.gap.total_db, 1e-9);
}

TEST(Evaluate, HalfStepViolationCounted) {
  const quant::QuantizedMatrix q = hand_matrix();
  const float x[] = {0.1f, 0.0f, 0.0f, 0.0f};
  const float y[] = {0.3f, 0.0f, 0.0f, 0.0f};  // |e| = 0.2 = 2 steps of 0.1 on an unclipped element
  const metrics::TensorMetrics m = metrics::evaluate(quant::MatrixView(x, 1, 4), q, quant::MatrixView(y, 1, 4));
  EXPECT_EQ(m.scales.half_step_violations, 1);
  EXPECT_EQ(m.scales.clipped, 0);
}

TEST(Evaluate, PermutationAndColumnScales) {
  // Stored column k holds original column perm[k]; col_scale divides the step of original column j.
  quant::QuantizedMatrix q = hand_matrix();
  q.perm = {2, 3, 0, 1};          // original columns 0,1 sit in stored group 1 (s = 0.2)
  q.col_scale = {2.f, 2.f, 1.f, 1.f};  // ... and their effective step is 0.2 / 2 = 0.1
  const metrics::StepLookup lk(q);
  EXPECT_NEAR(lk.step(0, 0), 0.1, 1e-7);
  EXPECT_NEAR(lk.step(0, 2), 0.1, 1e-7);  // original column 2 → stored 0 → group 0, s = 0.1
  EXPECT_NEAR(lk.scale(0, 1), 0.2, 1e-7);
}

// ---- With a real quantizer (quant::quantize_affine, the reference formula).

quant::QuantizedMatrix affine(quant::MatrixView x, const quant::QuantParams& p) { return quant::quantize_affine(x, p); }

// A uniform signal quantized (asym minmax) over its own range reaches 20·log10(2^b − 1) dB.
// Why 0.05 dB holds: with x ~ U(−A, A) the 2^b − 1 cells of the grid tile [min, max] (|min/s| is a
// half-integer, so the cells line up with the range) and e is uniform in ±s/2, so
// E[SQNR] = (A²/3)/(s²/12) = (2^b − 1)². The measured value fluctuates through the two sample means:
// Var(x²)/E[x²]² = (1/5 − 1/9)/(1/9) = 0.8 for both x and e, so SQNR's relative sd is sqrt(1.6/n) and in
// dB 4.343·1.265/√n = 5.49/√n. n = 2^19 (524288): sd 0.0076 dB, 0.05 dB is 6.6 sd. The range of n
// uniform samples falls short of 2A by ~2A/n relative per group: per tensor 4e-6 (negligible), per row of
// 4096: 2/4097 → s 0.05% small → +0.004 dB, within the margin.
TEST(UniformGrid, ReachesGridAdjustedFigure) {
  const uint64_t seed = seed_from_env(101);
  for (int b = 2; b <= 8; ++b) {
    for (int64_t g : {quant::kPerTensor, quant::kPerRow}) {
      const int64_t rows = g == quant::kPerTensor ? 512 : 128;
      const int64_t cols = g == quant::kPerTensor ? 1024 : 4096;
      const auto r = QuantTester()
                         .bits(b)
                         .group_size(g)
                         .mapping(Mapping::asymmetric)
                         .distribution(Distribution::uniform)
                         .rows(rows)
                         .cols(cols)
                         .seed(seed)
                         .sqnr_near(metrics::grid_adjusted_db(b), 0.05)
                         .Test(affine);
      EXPECT_TRUE(r.ok()) << "bits " << b << " group " << g << " seed " << seed << "\n" << r.report();
      // The distribution-aware expectation says the same thing from the scales alone.
      EXPECT_NEAR(r.metrics.scales.expected_sqnr_db, metrics::grid_adjusted_db(b), 0.05) << "bits " << b << " seed " << seed;
      EXPECT_EQ(r.metrics.scales.clipped, 0) << "bits " << b << " seed " << seed;
    }
  }
}

// STYLE.md 9: on ≥ 1e5 fixed-seed Gaussians MSE / mean(s²/12) ∈ [0.75, 1.05] (2-bit asym g32 reaches
// 1.009; few levels and exact absmax elements pull it below 1), and every unclipped element is within s/2.
TEST(GaussianNoiseModel, MseOverStepSquaredTwelfth) {
  const uint64_t seed = seed_from_env(202);
  for (int b = 2; b <= 8; ++b)
    for (Mapping m : {Mapping::symmetric, Mapping::asymmetric})
      for (int64_t g : {int64_t{32}, int64_t{128}, int64_t{256}, quant::kPerRow}) {
        const auto r = QuantTester()
                           .scheme("rtn")
                           .bits(b)
                           .group_size(g)
                           .mapping(m)
                           .rows(256)
                           .cols(1024)  // 262144 values
                           .seed(seed)
                           .mse_ratio(0.75, 1.05)
                           .Test();
        EXPECT_TRUE(r.ok()) << r.report();
        EXPECT_EQ(r.metrics.scales.clipped, 0) << r.label << " seed " << seed;
      }
}

// DESIGN.md's worked example: N(0,1), 4-bit symmetric absmax, g128 → 18.60 dB against 24.08.
// Independent check (NumPy, 4M values): measured 18.61, expected-from-scales 18.58. The "other" term is
// the absmax element of each group being exact: MSE ≈ (g−1)/g · mean(s²/12) → other ≈ −10·log10(128/127)
// = −0.034 dB. Statistical sd of SQNR at 4M Gaussians ≈ 4.343·sqrt(Var(x²)/E² + Var(e²)/E²)/√n
// ≈ 4.343·sqrt(2 + 0.8)/2048 = 0.0035 dB, so ±0.05 dB holds the published 2-decimal figure.
TEST(WorkedExample, Gaussian4BitSymG128) {
  const uint64_t seed = seed_from_env(303);
  const auto r = QuantTester()
                     .scheme("rtn")
                     .bits(4)
                     .group_size(128)
                     .mapping(Mapping::symmetric)
                     .rows(1024)
                     .cols(4096)
                     .seed(seed)
                     .sqnr_near(18.60, 0.05)
                     .Test();
  EXPECT_TRUE(r.ok()) << r.report();
  const metrics::Gap& g = r.metrics.gap;
  EXPECT_NEAR(g.bound_db, 24.08, 0.005);
  EXPECT_NEAR(g.grid_loss_db, 0.56, 0.005);
  EXPECT_NEAR(g.expected_db, 18.58, 0.05) << "seed " << seed;
  EXPECT_NEAR(g.other_db, -10.0 * std::log10(128.0 / 127.0), 0.03) << "seed " << seed;
  EXPECT_NEAR(g.range_loss_db, 23.52 - 18.58, 0.06) << "seed " << seed;
  EXPECT_NEAR(r.metrics.bits_per_weight, 4.0 + 16.0 / 128.0, 1e-12);  // fp16 scale per 128 codes
}

// Clipping: shrinking the minmax range to half clips the tails; clipped elements carry most of the
// error and are excluded from the half-step check (which must still pass for the rest).
TEST(Clipping, ClipRatioShowsUp) {
  const uint64_t seed = seed_from_env(404);
  const auto r = QuantTester()
                     .scheme("rtn")
                     .bits(4)
                     .group_size(128)
                     .mapping(Mapping::asymmetric)
                     .clip_ratio(0.5)
                     .seed(seed)
                     .Test();
  EXPECT_TRUE(r.ok()) << r.report();
  // A group of 128 N(0,1) values has max|x| ≈ 2.6σ; half of it clips |x| ≳ 1.3σ beyond the grid's
  // half step: P(|x| > ~1.4) ≈ 0.16. Accept a broad [0.05, 0.3].
  EXPECT_GT(r.metrics.scales.clipped_fraction, 0.05) << "seed " << seed;
  EXPECT_LT(r.metrics.scales.clipped_fraction, 0.30) << "seed " << seed;
  EXPECT_GT(r.metrics.scales.clipped_error_share, 0.3) << "seed " << seed;
  EXPECT_GT(r.metrics.gap.other_db, 0.5) << "clipping shows up in the 'other' term; seed " << seed;
}

// Code-book formats: no uniform-grid expectation (NaN), no clipping under absmax scaling.
TEST(CodeBooks, Nf4AndFp4HaveMeasuredButNoExpected) {
  const uint64_t seed = seed_from_env(505);
  for (const char* s : {"nf4", "fp4", "fp8"}) {
    const auto def = schemes::default_config(s);
    const auto r = QuantTester().config(def).seed(seed).Test();
    EXPECT_TRUE(r.ok()) << r.report();
    EXPECT_FALSE(r.metrics.scales.uniform_grid);
    EXPECT_TRUE(std::isnan(r.metrics.gap.expected_db));
    EXPECT_TRUE(std::isfinite(r.metrics.error.sqnr_db));
    EXPECT_EQ(r.metrics.scales.clipped, 0) << s << " seed " << seed;
    EXPECT_GT(r.metrics.error.cosine, 0.9) << s;
  }
}

}  // namespace
}  // namespace qeval
