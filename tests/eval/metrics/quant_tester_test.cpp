// tests/eval/metrics/quant_tester_test.cpp — the fluent tester itself: passes on correct quantizers, and its failure
// report carries index, input bits, expected/got, the seed and a histogram when a check fails.
#include <gtest/gtest.h>

#include <string>

#include "eval/metrics/quant_tester.hpp"
#include "quant/quantize.hpp"
#include "quant/rng.hpp"

namespace qeval {
namespace {

using eval::QuantTester;
using inputs::Distribution;

quant::QuantizedMatrix affine(quant::MatrixView x, const quant::QuantParams& p) { return quant::quantize_affine(x, p); }

TEST(QuantTester, PassesOnEveryDistributionWithRtn) {
  const uint64_t seed = seed_from_env(11);
  for (Distribution d : {Distribution::gaussian, Distribution::laplace, Distribution::student_t,
                         Distribution::uniform, Distribution::outliers}) {
    const auto r = QuantTester().scheme("rtn").bits(4).group_size(128).distribution(d).seed(seed).Test();
    EXPECT_TRUE(r.ok()) << r.report();
    EXPECT_EQ(r.seed, seed);
    EXPECT_NE(r.input.find(inputs::to_string(d)), std::string::npos) << r.input;
    EXPECT_GT(r.metrics.error.sqnr_db, 5.0) << r.input;
  }
}

TEST(QuantTester, HeavierTailsLoseMoreToRange) {
  // Same bits and groups: the range-loss term orders the distributions by how peaky their groups are.
  const uint64_t seed = seed_from_env(12);
  auto range_loss = [&](Distribution d) {
    return QuantTester().scheme("rtn").bits(4).group_size(128).distribution(d).seed(seed).Test().metrics.gap.range_loss_db;
  };
  const double u = range_loss(Distribution::uniform), g = range_loss(Distribution::gaussian),
               t = range_loss(Distribution::student_t), o = range_loss(Distribution::outliers);
  EXPECT_LT(u, g) << "seed " << seed;
  EXPECT_LT(g, t) << "seed " << seed;
  EXPECT_LT(g, o) << "seed " << seed;
  // Uniform with the symmetric grid: range loss is the one unused level, 20·log10(15/14) = 0.60 dB,
  // less the sample absmax falling short of √3 (E[max of 128 |U|] = √3·128/129: amax² 1.5% smaller →
  // −0.067 dB) ≈ 0.53 dB; [0.3, 0.7] leaves room for the group-to-group spread.
  EXPECT_GT(u, 0.3);
  EXPECT_LT(u, 0.7);
}

TEST(QuantTester, FunctionAndSchemePathsAgree) {
  const uint64_t seed = seed_from_env(13);
  const auto a = QuantTester().bits(4).group_size(64).seed(seed).Test(affine);
  const auto b = QuantTester().scheme("rtn").bits(4).group_size(64).seed(seed).Test();
  EXPECT_TRUE(a.ok()) << a.report();
  EXPECT_EQ(a.metrics.error.mse, b.metrics.error.mse);  // same formula, same input: bit-identical
}

TEST(QuantTester, ReferenceComparisonPassesAndFails) {
  const uint64_t seed = seed_from_env(14);
  auto ok = QuantTester().bits(8).group_size(0).seed(seed).reference(affine).Test(affine);
  EXPECT_TRUE(ok.ok()) << ok.report();
  // A dequantizer that is off by one step in one element: caught, with index and bits.
  auto broken = [](const quant::QuantizedMatrix& q, quant::MutableMatrixView out) {
    quant::dequantize(q, out);
    out(3, 5) += q.scales[3];
  };
  auto bad = QuantTester().bits(8).group_size(0).seed(seed).rows(8).cols(64).reference(affine).Test(affine, broken);
  ASSERT_FALSE(bad.ok());
  const std::string rep = bad.report();
  EXPECT_NE(rep.find("differs from the reference in 1 elements"), std::string::npos) << rep;
  EXPECT_NE(rep.find("[3, 5]"), std::string::npos) << rep;
  EXPECT_NE(rep.find("0x"), std::string::npos) << rep;
  EXPECT_NE(rep.find("histogram"), std::string::npos) << rep;
  EXPECT_NE(rep.find("seed " + std::to_string(seed)), std::string::npos) << rep;
}

TEST(QuantTester, TruncationFailsTheHalfStepCheckWithADiagnosis) {
  // Rounding::toward_zero is the deliberately worse quantizer: errors reach a whole step.
  const uint64_t seed = seed_from_env(15);
  const auto r = QuantTester()
                     .scheme("rtn")
                     .bits(4)
                     .group_size(32)
                     .rounding(quant::Rounding::toward_zero)
                     .rows(16)
                     .cols(256)
                     .seed(seed)
                     .mse_ratio(0.75, 1.05)
                     .Test();
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.failures.size(), 2u) << r.report();  // half step and MSE ratio (truncation: ≈ 4× s²/12)
  const std::string rep = r.report();
  for (const char* want : {"QEVAL_SEED=", "|x - x^| <= (s/2)(1 + 1e-4) fails", "x=", "(0x", "expected", "got",
                           "histogram", "MSE / mean(s^2/12)"})
    EXPECT_NE(rep.find(want), std::string::npos) << "missing '" << want << "' in\n" << rep;
}

TEST(QuantTester, SentinelCatchesUnwrittenOutput) {
  auto lazy = [](const quant::QuantizedMatrix& q, quant::MutableMatrixView out) {
    quant::dequantize(q, out);
    out(0, 0) = std::numeric_limits<float>::quiet_NaN();  // as if never written
  };
  const auto r = QuantTester().rows(4).cols(128).Test(affine, lazy);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.report().find("NaN/Inf for 1 finite inputs"), std::string::npos) << r.report();
}

TEST(QuantTester, GivenInputAndHistogramHelper) {
  quant::Matrix m(2, 4);
  for (int i = 0; i < 8; ++i) m.data[static_cast<size_t>(i)] = static_cast<float>(i) - 3.5f;
  const auto r = QuantTester().bits(8).group_size(4).input(m.view(), "ramp 2x4").Test(affine);
  EXPECT_TRUE(r.ok()) << r.report();
  EXPECT_EQ(r.input, "ramp 2x4");
  EXPECT_EQ(r.metrics.rows, 2);
  const std::string h = eval::histogram({-2.0, -0.5, 0.0, 0.49, 3.0}, -1.0, 1.0, 4);
  EXPECT_NE(h.find("5 values"), std::string::npos) << h;
  EXPECT_NE(h.find("<"), std::string::npos) << h;  // one underflow
  EXPECT_NE(h.find(">"), std::string::npos) << h;  // one overflow
  EXPECT_EQ(eval::float_bits(1.0f), "0x3f800000");
}

}  // namespace
}  // namespace qeval
