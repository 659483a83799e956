// schemes/smoothquant/smoothquant.hpp — SmoothQuant (Xiao et al. 2022, "SmoothQuant: Accurate and Efficient
// Post-Training Quantization for Large Language Models"): migrate the activation outliers into the weights with
// per-input-channel factors, then W8A8.
//
//   s_j = max|X_j|^α / max|W_j|^(1−α)     (max|W_j| over the rows of every weight sharing the input; both maxima
//                                          and s floored at 1e-5 as in the reference implementation)
//   X' = X·diag(1/s) (folded into the preceding norm by eval/), W' = W·diag(s): X'·W'ᵀ = X·Wᵀ exactly; then
//   Y ≈ Q_a(X')·Q_w(W')ᵀ with per-channel (per output row) weights and per-token (default) or per-tensor
//   dynamic activations, both with the scheme's bits and mapping (symmetric int8 by default).
// α: fixed (default 0.5, the paper's choice for most models) or searched on the grid {0, 1/N, ..., 1}
// (alpha_search=true, N = grid) minimizing Σ_layers ‖X·Wᵀ − Q_a(X')·Q_w(W')ᵀ‖² on the captured inputs (at most
// `search_tokens` of them, default 2048, evenly strided: rows ⌊i·n/k⌋ — each grid point costs a W8A8 GEMM over them).
#pragma once

#include <cstdint>
#include <vector>

#include "quant/affine.hpp"
#include "quant/matrix.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {

enum class ActGranularity : uint8_t { per_token, per_tensor };

struct SmoothQuantOptions {
  double alpha = 0.5;
  bool alpha_search = false;
  int64_t grid = 20;
  int64_t search_tokens = 2048;
  ActGranularity act = ActGranularity::per_token;
};

// The activation quantizer's params for weight params p: same bits/mapping/rounding, minmax, one group per
// token (group 0) or per tensor (−1).
quant::QuantParams smoothquant_act_params(const quant::QuantParams& p, ActGranularity act);

// s for a given α from per-feature max|x| and the weights sharing the input.
std::vector<float> smoothquant_scales(const std::vector<double>& act_absmax,
                                      const std::vector<quant::MatrixView>& weights, double alpha);

// y = Q_a(x)·Q_w(w)ᵀ for already migrated x [tokens, in] and w [out, in] (fake-quantized operands, float GEMM).
void w8a8_matmul(quant::MatrixView x, quant::MatrixView w, const quant::QuantParams& wp,
                 const quant::QuantParams& ap, quant::MutableMatrixView y);

struct SmoothQuantInfo {
  double alpha = 0.0;
  std::vector<double> alphas, losses;  // the search, when alpha_search
};

// The migration factors for the layers in `weights` sharing the input of `calib` (α fixed or searched).
std::vector<float> smoothquant_search(const std::string& scheme, const Calibration& calib,
                                      const std::vector<quant::MatrixView>& weights, const quant::QuantParams& p,
                                      const SmoothQuantOptions& o, SmoothQuantInfo* info = nullptr);

}  // namespace qeval::schemes
