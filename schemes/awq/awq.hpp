// schemes/awq/awq.hpp — AWQ (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization"): per-input-channel
// scales from activation magnitudes with a grid search, then a per-group clipping-range search.
//
// Scale search (input_channel_scales; the reference implementation's auto_scale):
//   a_j = mean|x_j| over the calibration tokens; for α on the grid {0, 1/N, ..., 1} (N = `grid`, default 20,
//   so 21 points — the reference llm-awq stops at (N−1)/N; including α = 1 only adds a candidate):
//       s_j = max(a_j^α, 1e-4),  s ← s / sqrt(max(s)·min(s))   (normalized so the scales straddle 1),
//       loss(α) = Σ_layers ‖X·Wᵀ − X·(Q(W·diag(s))·diag(1/s))ᵀ‖²   (the layers sharing the input X),
//   and the α with the least loss wins (ties → the smaller α). α = 0 gives s = 1, i.e. plain RTN, so the chosen
//   scales never do worse than RTN on the calibration data. Q is quant::fake_quantize_affine with the scheme's
//   params (no clipping during the scale search, as in the reference).
//
// Clip search (quantize; the reference's auto_clip): for every (row, group) of the (scaled) weight, the range
// is shrunk to ±r·max|w| for r = 1 − i/clip_grid, i = 0 .. ⌊max_shrink·clip_grid⌋ − 1 (default 1.00, 0.95, ...,
// 0.55), intersected with the group's [min, max]; the r minimizing the group's share of the output error
// Σ_t (Σ_{j∈group} x_tj·(w_j − ŵ_j))² on the calibration inputs (seen through the scales: X·diag(1/s)) wins
// (ties → the larger r). The clipped range's parameters quantize the unclipped weights: codes clamp at the grid
// ends, which is the clamp. r = 1 is a candidate, so clipping never raises a group's own error.
//
// Why the objective is the same folded or not: folding gives (X·diag(1/s))·Q(W·diag(s))ᵀ; not folding (the
// scheme returns col_scale = s, effective weight Q(W·diag(s))·diag(1/s)) gives X·(Q(W·diag(s))·diag(1/s))ᵀ —
// the same product. AWQ quantizes weights only, so no activation quantizer sees X vs X/s differently.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/affine.hpp"
#include "quant/matrix.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {

struct AwqOptions {
  int64_t grid = 20;         // α ∈ {0, 1/grid, ..., 1}
  double alpha = -1.0;       // in [0, 1]: use this α, no search; < 0: search
  bool clip = true;          // run the clipping-range search
  int64_t clip_grid = 20;    // shrink step 1/clip_grid
  double max_shrink = 0.5;   // shrink at most to (1 − max_shrink + 1/clip_grid)·max|w|
};

struct AwqScaleInfo {
  double best_alpha = 0.0;
  std::vector<double> alphas;  // the grid
  std::vector<double> losses;  // loss(α) on the calibration data, per grid point
};

// The scales for the layers in `weights` ([out_l, in] each) sharing the input described by `calib`.
std::vector<float> awq_search_scales(const std::string& scheme, const Calibration& calib,
                                     const std::vector<quant::MatrixView>& weights, const quant::QuantParams& p,
                                     const AwqOptions& o, AwqScaleInfo* info = nullptr);

// Quantizes w [out, in] for a layer whose input channels carry the migration s:
//   s empty: s is searched for this layer alone and applied (col_scale = s);
//   folded:  w is already W·diag(s) (eval/ folded 1/s into the previous op), no col_scale;
//   else:    w is the original W; Q(W·diag(s)) is stored with col_scale = s.
// The clip search (if o.clip) sees the inputs as X·diag(1/s).
quant::QuantizedMatrix awq_quantize(const std::string& scheme, quant::MatrixView w, const Calibration& calib,
                                    const quant::QuantParams& p, const AwqOptions& o, std::vector<float> s,
                                    bool folded);

}  // namespace qeval::schemes
