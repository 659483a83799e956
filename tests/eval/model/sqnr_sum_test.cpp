// tests/eval/model/sqnr_sum_test.cpp — sqnr_db's one-pass sums (eval/model/sqnr_sum.hpp) against LibTorch's own
// at::sum of the squared doubles, bit for bit, at 1, 2 and 3 threads and on sizes that take every path.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "eval/model/model_util.hpp"
#include "eval/model/sqnr_sum.hpp"
#include "quant/rng.hpp"

namespace qeval::model {
namespace {

// The figures as sqnr_db computed them before (three LibTorch passes and at::sum): the independent reference.
SquareSums torch_sums(const at::Tensor& r, const at::Tensor& g) {
  at::Tensor d = r.to(at::kDouble);
  SquareSums s;
  s.sig = (d * d).sum().item<double>();
  at::Tensor e = d - g.to(at::kDouble);
  s.err = (e * e).sum().item<double>();
  return s;
}

// Sizes: below a vector, a vector's tails, one row set, level carries (2^4 rows of 4·8 lanes = 512 and its
// multiples), below and above the 32768-element grain, uneven chunk splits, a 2048×2432 layer.
const std::vector<int64_t> kSizes = {1,     3,     7,     8,     9,      31,     33,     511,    513,
                                     4099,  32767, 32768, 32769, 65537,  98317,  524289, 1000003, 2048 * 2432};

struct Threads {  // sets ATen's intra-op threads for a scope
  int prev = at::get_num_threads();
  explicit Threads(int n) { at::set_num_threads(n); }
  ~Threads() { at::set_num_threads(prev); }
};

TEST(SqnrSum, OnePassSumsAreAtSumsBitForBit) {
  const uint64_t seed = seed_from_env(15);
  Rng rng(seed);
  for (int threads : {1, 2, 3}) {
    Threads scope(threads);
    for (int64_t n : kSizes) {
      at::Tensor r = at::empty({n}, at::kFloat), g = at::empty({n}, at::kFloat);
      float* rp = r.data_ptr<float>();
      float* gp = g.data_ptr<float>();
      for (int64_t i = 0; i < n; ++i) {
        rp[i] = static_cast<float>(rng.normal());
        gp[i] = rp[i] + static_cast<float>(rng.normal() * 0.01);
      }
      const SquareSums want = torch_sums(r, g);
      const SquareSums got = square_sums(rp, gp, n);
      EXPECT_EQ(got.sig, want.sig) << "n " << n << " threads " << threads << " seed " << seed;
      EXPECT_EQ(got.err, want.err) << "n " << n << " threads " << threads << " seed " << seed;
    }
  }
}

// The one-pass order must be the one in force (not the buffer fallback) on this CI machine's LibTorch: one of the two
// vector widths reproduces at::sum.
TEST(SqnrSum, OneOfTheVectorWidthsIsLibTorchs) {
  const int64_t n = 1000003;
  std::vector<float> r(static_cast<size_t>(n)), g(r.size());
  Rng rng(seed_from_env(16));
  for (size_t i = 0; i < r.size(); ++i) r[i] = static_cast<float>(rng.normal()), g[i] = 0.5f * r[i];
  at::Tensor rt = at::from_blob(r.data(), {n}, at::kFloat), gt = at::from_blob(g.data(), {n}, at::kFloat);
  const SquareSums want = torch_sums(rt, gt);
  const int threads = at::get_num_threads();
  bool any = false;
  for (int lanes : {8, 4}) {
    const SquareSums s = cascade_square_sums(r.data(), g.data(), n, lanes, threads, false);
    any = any || (s.sig == want.sig && s.err == want.err);
  }
  EXPECT_TRUE(any) << "neither 8 nor 4 lanes reproduce at::sum at " << threads
                   << " threads: sqnr_db falls back to its double buffer (correct, slower)";
}

TEST(SqnrSum, SqnrOfKnownError) {
  // ref = 1 everywhere, got = 1 − 2^-5 (exact in float): Σref² = n, Σ(ref − got)² = n·2^-10 exactly →
  // 10·log10(2^10) = 30.103 dB (sums of equal powers of two are exact at any order).
  const int64_t n = 100000;
  at::Tensor r = at::ones({1000, 100}, at::kFloat), g = at::full({1000, 100}, 1.0f - 0x1.0p-5f, at::kFloat);
  EXPECT_DOUBLE_EQ(sqnr_db(r, g), 10.0 * std::log10(1024.0)) << n;
  EXPECT_TRUE(std::isinf(sqnr_db(r, r)));
}

TEST(SqnrSum, BadLaneCountIsOneLine) {
  float x = 1.0f;
  EXPECT_THROW(cascade_square_sums(&x, &x, 1, 2, 1, false), std::invalid_argument);
}

}  // namespace
}  // namespace qeval::model
