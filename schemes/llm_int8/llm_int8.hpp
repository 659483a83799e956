// schemes/llm_int8/llm_int8.hpp — LLM.int8() (Dettmers et al. 2022, "LLM.int8(): 8-bit Matrix Multiplication for
// Transformers at Scale"): mixed-precision decomposition of Y = X·Wᵀ.
//
//   O = { feature j : max_t |x_tj| > threshold }    (threshold 6.0 in the paper; decided per call, on this X)
//   Y = Σ_{j∈O} x_:j·w_:jᵀ                           in fp32 (accumulated in double, stored as float)
//     + diag(c_x)·(Q(X_R)·Q(W_R)ᵀ)·diag(c_w)         vector-wise int8 over the regular features R = not O:
//       Q(X_R): per-token (row) absmax codes, c_x = max_j∈R |x_tj| / 127;  Q(W_R): per-output-row absmax codes,
//       c_w = max_j∈R |w_oj| / 127; the code product is accumulated exactly in int32 and scaled by the outer
//       product of the two scale vectors.
// The weight's row scales are taken over the regular columns of this call (the paper's decomposition quantizes
// the regular sub-matrix). With threshold = +inf this is plain vector-wise (per-token × per-channel) int8.
// Codes come from quant::quantize_affine (symmetric, one group per row), so the formula is quant/'s.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/affine.hpp"
#include "quant/matrix.hpp"

namespace qeval::schemes {

struct Int8SplitStats {
  int64_t outlier_columns = 0;  // |O|
  int64_t columns = 0;          // in_features
  double outlier_fraction() const { return columns > 0 ? static_cast<double>(outlier_columns) / columns : 0.0; }
};

// y [tokens, out] = x [tokens, in] · w [out, in]ᵀ by the decomposition above, with `bits`-bit symmetric codes
// (8 for LLM.int8; 2..8 accepted). threshold must be > 0 (+inf: no outlier columns). Throws
// std::invalid_argument for mismatched shapes and quant::NonFiniteError for NaN/Inf in x or w.
// It is the three pieces below, in order; a real-kernel backend runs the same pieces with its own kernels.
Int8SplitStats llm_int8_matmul(quant::MatrixView x, quant::MatrixView w, double threshold, int bits,
                               quant::MutableMatrixView y);

// ---- the pieces -------------------------------------------------------------------------------------------------

// 1. The outlier features O of this call: every j with some |x_tj| > threshold, ascending.
std::vector<int64_t> llm_int8_outlier_columns(quant::MatrixView x, double threshold);

// 2. The int8 part over the regular features R (ascending, the complement of O): the exact int32 products of the
// per-token codes of X_R and the per-output-row codes of W_R (`bits`-bit symmetric absmax, quant::quantize_affine)
// and the two scale vectors c_x [tokens], c_w [out].
struct Int8Part {
  std::vector<int32_t> acc;        // [tokens, out], row-major: Σ_{j∈R} q(x_tj)·q(w_oj)
  std::vector<float> x_scale, w_scale;
};
Int8Part llm_int8_regular_part(quant::MatrixView x, quant::MatrixView w, const std::vector<int64_t>& regular,
                               int bits);

// 3. The epilogue: y_to = acc_to·c_x,t·c_w,o + Σ_{j∈O} x_tj·w_oj, in double, rounded to float once.
void llm_int8_epilogue(quant::MatrixView x, quant::MatrixView w, const std::vector<int64_t>& outliers,
                       const Int8Part& part, quant::MutableMatrixView y);

}  // namespace qeval::schemes
