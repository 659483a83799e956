// tests/schemes/mixed_test.cpp — mixed-precision allocation: the DP equals brute force on small cases (exact
// mode), stays feasible and within its stated bound when discretized, costs follow bits_per_weight; the `mixed`
// scheme applies an allocation file.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "schemes/mixed/mixed.hpp"
#include "tests/schemes/synthetic.hpp"

namespace qeval::schemes::test {
namespace {

constexpr uint64_t kSeed = 0x313;

quant::QuantParams cand(int bits, int64_t group, quant::Mapping m = quant::Mapping::symmetric) {
  quant::QuantParams p;
  p.bits = bits;
  p.group_size = group;
  p.mapping = m;
  return p;
}

// A random problem: L layers with shapes from a small menu, candidates int3 g64 / int4 g128 asym / int8 per-row,
// sensitivities decreasing with bits (as measured ΔKL would) plus noise that can reorder them.
MixedProblem random_problem(Rng& rng, int layers, double target) {
  MixedProblem pr;
  pr.candidates = {cand(3, 64), cand(4, 128, quant::Mapping::asymmetric), cand(8, 0)};
  const int64_t shapes[][2] = {{64, 128}, {128, 128}, {64, 256}, {192, 128}, {32, 512}};
  for (int l = 0; l < layers; ++l) {
    MixedLayer ly;
    ly.name = "blk." + std::to_string(l) + ".w";
    const auto& sh = shapes[rng.below(5)];
    ly.rows = sh[0];
    ly.cols = sh[1];
    const double base = rng.uniform(0.01, 1.0);
    ly.sensitivity = {base * rng.uniform(2.0, 8.0), base * rng.uniform(0.5, 2.0), base * rng.uniform(0.0, 0.1)};
    pr.layers.push_back(ly);
  }
  pr.target_bits_per_weight = target;
  return pr;
}

struct Brute {
  double best = std::numeric_limits<double>::infinity();
  bool feasible = false;
};
Brute brute_force(const MixedProblem& pr, int64_t budget) {
  const size_t L = pr.layers.size(), C = pr.candidates.size();
  std::vector<std::vector<int64_t>> cost(L, std::vector<int64_t>(C));
  for (size_t l = 0; l < L; ++l)
    for (size_t c = 0; c < C; ++c) cost[l][c] = layer_cost_bits(pr.candidates[c], pr.layers[l].rows, pr.layers[l].cols);
  Brute b;
  std::vector<size_t> pick(L, 0);
  while (true) {
    int64_t bits = 0;
    double s = 0.0;
    for (size_t l = 0; l < L; ++l) {
      bits += cost[l][pick[l]];
      s += pr.layers[l].sensitivity[pick[l]];
    }
    if (bits <= budget && s < b.best) {
      b.best = s;
      b.feasible = true;
    }
    size_t l = 0;
    while (l < L && ++pick[l] == C) pick[l++] = 0;
    if (l == L) break;
  }
  return b;
}

int64_t n_weights(const MixedProblem& pr) {
  int64_t n = 0;
  for (const auto& l : pr.layers) n += l.rows * l.cols;
  return n;
}

// Exact mode: over 300 random problems (L = 2..7, 3 candidates, targets across the feasible range) the DP's total
// sensitivity equals the brute-force optimum (to summation-order rounding, 1e-12 relative), the allocation fits
// the budget, and the Lagrangian bound is ≤ the optimum.
TEST(MixedAllocation, DynamicProgrammingEqualsBruteForce) {
  const uint64_t seed = seed_from_env(kSeed);
  Rng rng(seed);
  int checked = 0;
  for (int it = 0; it < 300; ++it) {
    const int L = 2 + static_cast<int>(rng.below(6));
    MixedProblem pr = random_problem(rng, L, rng.uniform(3.2, 8.2));
    const int64_t budget = static_cast<int64_t>(std::floor(pr.target_bits_per_weight * double(n_weights(pr))));
    const Brute bf = brute_force(pr, budget);
    if (!bf.feasible) {
      EXPECT_THROW(allocate_bits(pr), std::invalid_argument);
      continue;
    }
    const MixedAllocation a = allocate_bits(pr);
    ASSERT_TRUE(a.exact);
    EXPECT_LE(a.total_bits, budget) << "iteration " << it << " seed " << seed;
    EXPECT_NEAR(a.total_sensitivity, bf.best, 1e-12 * std::max(1.0, std::fabs(bf.best))) << "iteration " << it
                                                                                          << " seed " << seed;
    EXPECT_LE(a.lower_bound, bf.best + 1e-9) << "iteration " << it;
    ++checked;
  }
  EXPECT_GT(checked, 200);
}

// Discretized mode (a table far too small for exactness): the allocation still fits the real budget, and it is at
// least as good as the exact optimum for the budget B − L·u (each cost is rounded up by < u), as documented.
TEST(MixedAllocation, DiscretizedModeIsFeasibleAndWithinItsBound) {
  const uint64_t seed = seed_from_env(kSeed);
  Rng rng(seed + 1);
  for (int it = 0; it < 100; ++it) {
    const int L = 3 + static_cast<int>(rng.below(5));
    MixedProblem pr = random_problem(rng, L, rng.uniform(4.5, 7.5));
    const MixedAllocation a = allocate_bits(pr, /*max_table=*/int64_t{L} * 6);
    if (a.exact) continue;  // the problem happened to be small enough
    const int64_t budget = a.budget_bits;
    EXPECT_LE(a.total_bits, budget) << "iteration " << it;
    const Brute tight = brute_force(pr, budget - int64_t{L} * a.unit_bits);
    if (tight.feasible) {
      EXPECT_LE(a.total_sensitivity, tight.best + 1e-12) << "iteration " << it << " seed " << seed;
    }
    EXPECT_LE(a.lower_bound, brute_force(pr, budget).best + 1e-9);
  }
}

// The cost of a layer is QuantizedMatrix::bits_per_weight · n of an actually quantized matrix (codes + fp16 scales +
// zero points). Worked numbers: 64×256 int4 asym g128 → 4·16384 + 128 groups·(16+4) = 68096 bits (4.15625 b/w).
TEST(MixedAllocation, CostsFollowTheBitsPerWeightConvention) {
  EXPECT_EQ(layer_cost_bits(cand(4, 128, quant::Mapping::asymmetric), 64, 256), 68096);
  for (const auto& p : {cand(3, 64), cand(4, 128, quant::Mapping::asymmetric), cand(8, 0), cand(2, 32)}) {
    const quant::Matrix w = gaussian(48, 256, kSeed);
    const quant::QuantizedMatrix q = quant::quantize_affine(w.view(), p);
    EXPECT_DOUBLE_EQ(static_cast<double>(layer_cost_bits(p, 48, 256)), q.bits_per_weight() * 48 * 256);
  }
  EXPECT_ERROR_MENTIONS(layer_cost_bits(cand(4, 100), 8, 256), "100", "256");
}

TEST(MixedAllocation, RejectsInfeasibleTargetsAndMalformedProblems) {
  MixedProblem pr;
  pr.candidates = {cand(3, 128), cand(4, 128)};
  pr.layers = {{"a", 64, 256, {1.0, 0.5}}, {"b", 64, 256, {2.0, 0.1}}};
  pr.target_bits_per_weight = 3.0;  // int3 g128 costs 3.125 b/w: below the cheapest allocation
  EXPECT_ERROR_MENTIONS(allocate_bits(pr), "3.125", "cheapest");
  pr.target_bits_per_weight = 3.7;  // room for exactly one layer at 4 bits: b (Δ 1.9) beats a (Δ 0.5)
  const MixedAllocation a = allocate_bits(pr);
  EXPECT_EQ(a.choice, (std::vector<int>{0, 1}));
  EXPECT_DOUBLE_EQ(a.total_sensitivity, 1.1);
  pr.layers[1].sensitivity = {1.0};
  EXPECT_ERROR_MENTIONS(allocate_bits(pr), "'b'", "1 sensitivities", "2 candidates");
  pr.layers[1].sensitivity = {std::nan(""), 1.0};
  EXPECT_ERROR_MENTIONS(allocate_bits(pr), "non-finite");
}

// The scheme row: an allocation file assigns each layer its bits; the base scheme (rtn here) quantizes it.
TEST(MixedScheme, AppliesTheAllocationFilePerLayer) {
  MixedProblem pr;
  pr.candidates = {cand(3, 128), cand(8, 128)};
  pr.layers = {{"blk.0.attn_q", 16, 256, {5.0, 0.0}}, {"blk.0.ffn_down", 16, 256, {0.1, 0.0}}};
  pr.target_bits_per_weight = 5.7;
  const MixedAllocation a = allocate_bits(pr);
  ASSERT_EQ(a.choice, (std::vector<int>{1, 0}));
  const std::string path = ::testing::TempDir() + "qeval_mixed_alloc.json";
  {
    std::ofstream f(path);
    f << allocation_to_json(pr, a).dump(2);
  }
  const auto s = make_scheme(config("mixed", 4, 128, {{"allocation", path}}));
  EXPECT_TRUE(s->needs_calibration());
  const quant::Matrix w = gaussian(16, 256, kSeed + 3);
  Calibration q_layer, down_layer, other;
  q_layer.layer_name = "blk.0.attn_q";
  down_layer.layer_name = "blk.0.ffn_down";
  other.layer_name = "blk.1.attn_q";
  EXPECT_EQ(s->quantize(w.view(), &q_layer).codes, quant::quantize_affine(w.view(), cand(8, 128)).codes);
  EXPECT_EQ(s->quantize(w.view(), &down_layer).codes, quant::quantize_affine(w.view(), cand(3, 128)).codes);
  EXPECT_ERROR_MENTIONS(s->quantize(w.view(), &other), "blk.1.attn_q", "not in the allocation");
  EXPECT_ERROR_MENTIONS(s->quantize(w.view(), nullptr), "layer name", "run with calibration (--calib");
  // Without an allocation: every layer at --bits with the base scheme.
  EXPECT_EQ(make_scheme(config("mixed", 4, 128))->quantize(w.view(), nullptr).codes,
            quant::quantize_affine(w.view(), cand(4, 128)).codes);
  EXPECT_ERROR_MENTIONS(make_scheme(config("mixed", 4, 128, {{"allocation", "/nonexistent/alloc.json"}})),
                        "/nonexistent/alloc.json");
  EXPECT_ERROR_MENTIONS(make_scheme(config("mixed", 4, 128, {{"base", "kv_cache"}})), "base", "weight scheme");
  EXPECT_ERROR_MENTIONS(make_scheme(config("mixed", 4, 128, {{"bits_map", "x"}})), "bits_map");
  EXPECT_ERROR_MENTIONS(make_scheme(config("mixed", 4, 128, {{"base", "gptq"}, {"base.damp", "0"}})), "damp");
}

}  // namespace
}  // namespace qeval::schemes::test
