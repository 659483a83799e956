// tests/quant/choose_qparams_test.cpp — range choice: min/max with clip_ratio, exact percentiles, the MSE grid search.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "quant/choose_qparams.hpp"
#include "quant/quantize.hpp"
#include "quant/rng.hpp"
#include "quant_test_util.hpp"

namespace qeval::quant {
namespace {

QuantParams params(int bits, Mapping m, RangeMethod r) {
  QuantParams p;
  p.bits = bits;
  p.mapping = m;
  p.range = r;
  return p;
}

// Squared error of quantizing v with GroupParams g (double), the quantity the MSE search minimizes.
double sq_error(const std::vector<float>& v, const GroupParams& g, const QuantParams& p) {
  double e = 0.0;
  for (float x : v) {
    if (!std::isfinite(x)) continue;
    const double d = static_cast<double>(x) - dequantize_one(quantize_one(x, g, p.qmin(), p.qmax(), p.rounding), g);
    e += d * d;
  }
  return e;
}

TEST(Percentile, HandValues) {
  std::vector<float> v = {5, 1, 4, 2, 3};
  EXPECT_DOUBLE_EQ(percentile(v, 90.0), 4.6);  // h = 4·0.9 = 3.6 → 4 + 0.6·(5 − 4)
  EXPECT_DOUBLE_EQ(percentile(v, 100.0), 5.0);
  EXPECT_DOUBLE_EQ(percentile(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(percentile(v, 50.0), 3.0);
  EXPECT_DOUBLE_EQ(percentile(v, 62.5), 3.5);  // h = 2.5
  std::vector<float> one = {7};
  EXPECT_DOUBLE_EQ(percentile(one, 99.0), 7.0);
  std::vector<float> none;
  EXPECT_DOUBLE_EQ(percentile(none, 99.0), 0.0);
}

// Against a full sort (independent of nth_element): random data, random percentiles, with duplicates.
TEST(Percentile, MatchesSortedDefinition) {
  const uint64_t seed = test::quant_seed();
  Rng rng(seed);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t n = 1 + rng.below(300);
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(std::round(rng.normal() * 8.0) / 4.0);  // many ties
    const double pct = rng.uniform(0.0, 100.0);
    std::vector<float> s = v;
    std::sort(s.begin(), s.end());
    const double h = (static_cast<double>(n) - 1.0) * pct / 100.0;
    const size_t lo = static_cast<size_t>(std::floor(h));
    const double want = lo + 1 < n ? s[lo] + (h - lo) * (static_cast<double>(s[lo + 1]) - s[lo]) : s[lo];
    std::vector<float> w = v;
    EXPECT_NEAR(percentile(w, pct), want, 1e-12 * (1 + std::fabs(want))) << "n " << n << " pct " << pct << " seed " << seed;
  }
}

TEST(ChooseGroupParams, MinMaxAndClipRatio) {
  const std::vector<float> v = {-3.0f, 0.5f, 1.0f, 2.0f};
  QuantParams p = params(4, Mapping::symmetric, RangeMethod::minmax);
  EXPECT_FLOAT_EQ(choose_group_params(v.data(), 4, p).scale, 3.0f / 7.0f);
  p.clip_ratio = 0.5;  // range shrinks to max|x|·0.5 = 1.5
  EXPECT_FLOAT_EQ(choose_group_params(v.data(), 4, p).scale, 1.5f / 7.0f);
  QuantParams a = params(4, Mapping::asymmetric, RangeMethod::minmax);
  GroupParams g = choose_group_params(v.data(), 4, a);
  EXPECT_FLOAT_EQ(g.scale, 5.0f / 15.0f);
  EXPECT_EQ(g.zero_point, 9);  // −round(−3 / (1/3)) = 9
  a.clip_ratio = 0.5;          // both ends: [−1.5, 1]
  g = choose_group_params(v.data(), 4, a);
  EXPECT_FLOAT_EQ(g.scale, 2.5f / 15.0f);
}

TEST(ChooseGroupParams, NonFiniteValuesAreIgnored) {
  const std::vector<float> clean = {-3.0f, 0.5f, 1.0f, 2.0f};
  std::vector<float> dirty = clean;
  dirty.push_back(std::numeric_limits<float>::quiet_NaN());
  dirty.insert(dirty.begin(), INFINITY);
  dirty.push_back(-INFINITY);
  for (RangeMethod r : {RangeMethod::minmax, RangeMethod::percentile, RangeMethod::mse})
    for (Mapping m : {Mapping::symmetric, Mapping::asymmetric}) {
      QuantParams p = params(4, m, r);
      p.clip_percentile = 100.0;
      const GroupParams a = choose_group_params(clean.data(), 4, p);
      const GroupParams b = choose_group_params(dirty.data(), static_cast<int64_t>(dirty.size()), p);
      EXPECT_EQ(a.scale, b.scale) << p.to_string();
      EXPECT_EQ(a.zero_point, b.zero_point) << p.to_string();
    }
  // Nothing finite: an all-zero group.
  const std::vector<float> nan2 = {NAN, NAN};
  EXPECT_EQ(choose_group_params(nan2.data(), 2, QuantParams{}).scale, 0.0f);
  EXPECT_EQ(choose_group_params(nullptr, 0, QuantParams{}).scale, 0.0f);
}

// Percentile range: 1..1000 shuffled, P = 99 → h = 999·0.99 = 989.01 → 990 + 0.01 = 990.01.
TEST(ChooseGroupParams, PercentileIsExactOrderStatistic) {
  std::vector<float> v(1000);
  for (int i = 0; i < 1000; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i + 1);
  Rng rng(test::quant_seed());
  for (size_t i = v.size() - 1; i > 0; --i) std::swap(v[i], v[rng.below(i + 1)]);
  QuantParams p = params(8, Mapping::symmetric, RangeMethod::percentile);
  p.clip_percentile = 99.0;
  EXPECT_FLOAT_EQ(choose_group_params(v.data(), 1000, p).scale, 990.01f / 127.0f);
  // Asymmetric: the 1st and 99th percentiles of x itself: 10.99 and 990.01 → widened to include 0.
  for (auto& x : v) x -= 500.0f;  // −499..500
  QuantParams a = params(8, Mapping::asymmetric, RangeMethod::percentile);
  a.clip_percentile = 99.0;
  const GroupParams g = choose_group_params(v.data(), 1000, a);
  EXPECT_FLOAT_EQ(g.scale, static_cast<float>((490.01 + 489.01) / 255.0));
}

// The MSE search returns the candidate with the least squared error, and among equal errors the largest
// ratio: checked by brute force over the documented grid r_k = clip_ratio·(1 − k/100), k = 0..50, each
// evaluated as a minmax range with that clip ratio (an independent route to the same candidates).
TEST(ChooseGroupParams, MseSearchPicksBestOfDocumentedGrid) {
  const uint64_t seed = test::quant_seed();
  Rng rng(seed);
  const std::vector<double> grid = mse_clip_ratios(0.9);
  ASSERT_EQ(grid.size(), 51u);
  EXPECT_DOUBLE_EQ(grid.front(), 0.9);
  EXPECT_DOUBLE_EQ(grid.back(), 0.45);
  for (int trial = 0; trial < 60; ++trial) {
    std::vector<float> v(64);
    for (auto& x : v) x = static_cast<float>(trial % 2 ? rng.student_t(3) : rng.laplace());  // heavy tails: clipping pays
    for (Mapping m : {Mapping::symmetric, Mapping::asymmetric})
      for (int bits : {2, 4, 8}) {
        QuantParams p = params(bits, m, RangeMethod::mse);
        p.clip_ratio = trial % 3 == 0 ? 1.0 : 0.9;
        const GroupParams got = choose_group_params(v.data(), 64, p);
        double best = std::numeric_limits<double>::infinity();
        GroupParams want;
        for (double r : mse_clip_ratios(p.clip_ratio)) {
          QuantParams mm = p;
          mm.range = RangeMethod::minmax;
          mm.clip_ratio = r;
          const GroupParams g = choose_group_params(v.data(), 64, mm);
          const double e = sq_error(v, g, p);
          if (e < best) {
            best = e;
            want = g;
          }
        }
        EXPECT_EQ(got.scale, want.scale) << p.to_string() << " trial " << trial << " seed " << seed;
        EXPECT_EQ(got.zero_point, want.zero_point) << p.to_string() << " trial " << trial;
        EXPECT_LE(sq_error(v, got, p), sq_error(v, choose_group_params(v.data(), 64, [&] {
                                                  QuantParams q = p;
                                                  q.range = RangeMethod::minmax;
                                                  return q;
                                                }()), p));
      }
  }
}

// When clipping cannot help (values ±2 only: exact at r = 1, every smaller r moves all of them), the
// search keeps r = 1. (Exact ties between candidates are measure-zero on real data; the tie rule —
// strict "<", so the larger ratio stays — is what the brute-force test above replicates.)
TEST(ChooseGroupParams, MseKeepsFullRangeWhenClippingCannotHelp) {
  const std::vector<float> pm = {-2.0f, 2.0f, 2.0f, -2.0f};
  const QuantParams p = params(8, Mapping::symmetric, RangeMethod::mse);
  EXPECT_FLOAT_EQ(choose_group_params(pm.data(), 4, p).scale, 2.0f / 127.0f);
}

}  // namespace
}  // namespace qeval::quant
