// schemes/mixed/mixed.hpp — mixed-precision bit allocation from per-layer sensitivities, and the allocation file the
// `mixed` scheme row reads.
//
// The problem (a multiple-choice knapsack): layers l = 1..L with n_l = rows·cols weights; candidates c (QuantParams:
// bits and group size); cost_lc = the layer's storage in bits under QuantizedMatrix::bits_per_weight's convention
// (codes + 16-bit scale per group + `bits` per group for asymmetric zero points — an integer); sensitivity s_lc
// (ΔKL or Δppl measured by eval/ with only layer l quantized with candidate c; 0 for "unquantized-like" choices).
//   minimize Σ_l s_l,c(l)   subject to   Σ_l cost_l,c(l) ≤ B = ⌊target · Σ_l n_l⌋.
//
// Method: dynamic programming over the budget (exact). Every layer's cheapest candidate is paid up front
// (base = Σ_l min_c cost_lc; B < base is infeasible → error naming the least achievable bits/weight); the extra
// costs e_lc = cost_lc − min_c cost_lc are divided by their greatest common divisor u, so the table has
// ⌊(B − base)/u⌋ + 1 budget states and the DP is exact on the discrete set:
//   D_0(b) = 0,  D_l(b) = min_c { D_{l−1}(b − e_lc/u) + s_lc : e_lc/u ≤ b },   answer D_L(⌊(B − base)/u⌋),
// optimal by induction on l (D_l(b) is the least total sensitivity of layers 1..l within extra budget b·u; any
// optimal assignment restricted to layers 1..l−1 is optimal for its own budget). When that table would exceed
// `max_table` cells (L × states), u is enlarged to ⌈(B − base)/(states − 1)⌉ and each e_lc is rounded UP to a
// multiple of u: every solution found is still feasible, and it is at least as good as the true optimum for the
// budget B − L·u (each layer's cost is overestimated by < u) — `exact` = false and `unit_bits` = u say so.
// A Lagrangian bound max_λ≥0 [Σ_l min_c (s_lc + λ·e_lc) − λ·(B − base)] (weak duality: ≤ the true optimum) is
// reported as `lower_bound`, so the gap of an inexact run is visible.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "quant/affine.hpp"

namespace qeval::schemes {

struct MixedLayer {
  std::string name;                  // GGUF-style layer name, e.g. "blk.3.ffn_down"
  int64_t rows = 0, cols = 0;        // weight shape [out, in]
  std::vector<double> sensitivity;   // one per candidate (same order as MixedProblem::candidates)
};

struct MixedProblem {
  std::vector<MixedLayer> layers;
  std::vector<quant::QuantParams> candidates;  // e.g. int3 g128, int4 g128, int8 per-row
  double target_bits_per_weight = 4.0;
};

struct MixedAllocation {
  std::vector<int> choice;             // per layer: index into candidates
  double total_sensitivity = 0.0;
  int64_t total_bits = 0;              // Σ cost of the choice
  int64_t budget_bits = 0;             // B
  double bits_per_weight = 0.0;        // total_bits / Σ n_l
  bool exact = true;                   // the DP ran on the exact costs
  int64_t unit_bits = 1;               // budget quantum u
  double lower_bound = 0.0;            // Lagrangian lower bound on the optimum
};

// Storage of one layer under p, in bits (bits_per_weight · rows · cols, an integer). Throws when p's group size
// does not divide cols.
int64_t layer_cost_bits(const quant::QuantParams& p, int64_t rows, int64_t cols);

// Solves the problem above. Throws std::invalid_argument for: no layers/candidates, a sensitivity list of the
// wrong length or holding NaN, more than 255 candidates, a target below the cheapest assignment.
MixedAllocation allocate_bits(const MixedProblem& problem, int64_t max_table = int64_t{1} << 26);

// The allocation file: {"target_bits_per_weight": t, "bits_per_weight": a, "total_sensitivity": s, "exact": e,
// "layers": {"blk.0.attn_q": {"bits": 4, "group_size": 128}, ...}}.
nlohmann::json allocation_to_json(const MixedProblem& problem, const MixedAllocation& a);
struct LayerBits {
  int bits = 4;
  int64_t group_size = 128;
};
// Reads the "layers" object of an allocation file; throws naming the file and the bad entry.
std::map<std::string, LayerBits> read_allocation(const std::string& path);

}  // namespace qeval::schemes
