// schemes/gptq/gptq.hpp — GPTQ (Frantar et al. 2022): column-by-column quantization with Hessian-based error
// feedback, as a function (the scheme row `gptq` wraps it; tests and eval/ may call it directly).
//
// The algorithm (the paper's Algorithm 1 and its reference implementation's structure):
//   H = 2·XᵀX/n (in × in) from calibration; dead columns (H_ii = 0: the input feature is never non-zero) get
//   H_ii = 1 and W[:, i] = 0; optional act-order permutes the columns by descending diag(H); dampening
//   H += λ·I with λ = damp·mean(diag H); U = upper Cholesky factor of H⁻¹ (H⁻¹ = UᵀU); then for each column i
//   (in blocks of `block` columns, updates outside the block applied lazily once per block):
//       q_i = Q(w_i);   e_i = (w_i − q_i) / U_ii;   w_j −= e_i·U_ij for every later column j.
//   This is the OBS update w_F −= (w_i − q_i)/[H_F⁻¹]_ii · [H_F⁻¹]_{:,i} with H_F⁻¹ the inverse over the
//   not-yet-quantized columns: row i of U from column i on equals [H_F⁻¹]_{i,:}/sqrt([H_F⁻¹]_ii), so the
//   Cholesky form needs no inverse updates. Each step minimizes the increase of ‖X·(W − Ŵ)ᵀ‖² given the
//   columns already fixed — the greedy optimum of exactly the layer-output error.
//
// Groups: a group's scale/zero point is chosen (quant::choose_group_params, so QuantParams::range applies)
// from the group's current, error-updated weights when its first column is reached. This uses the fully
// updated weights even when the group extends past the current lazy block, so the result does not depend on
// `block` (the reference code reads the outer W there, which lacks the in-block updates when group < block
// and the group does not start a block — a difference only for such sizes, e.g. group 32 with block 128).
// Per-row (group_size 0) and per-tensor (−1) parameters are chosen once, before any update, as the reference
// does — here after zeroing dead columns (the reference chooses them just before; the zeroed weights never
// reach the output, so only the range they would have widened differs).
//
// Act-order and groups (the permutation must not be lost):
//   * act_order without static_groups: groups are formed over the PERMUTED column order. The result stores
//     codes in permuted order with QuantizedMatrix::perm (stored column k holds original column perm[k]);
//     dequantize() places them back. Groups are contiguous in stored order, as QuantizedMatrix requires.
//   * static_groups (with or without act_order): every group's parameters are chosen from the original
//     weights before any update, over the ORIGINAL column order; columns are still visited in act-order.
//     Then codes are stored in original order with no perm (each column uses its original group).
//   * per-row / per-tensor with act_order: the order does not change the groups; stored in original order.
#pragma once

#include <cstdint>
#include <vector>

#include <Eigen/Dense>

#include "quant/affine.hpp"
#include "quant/matrix.hpp"

namespace qeval::schemes {

struct GptqOptions {
  double damp = 0.01;         // λ = damp·mean(diag H) (the reference's percdamp); > 0
  int64_t block = 128;        // lazy-batch width (columns); > 0; only speed depends on it
  bool act_order = false;     // visit columns by descending diag(H)
  bool static_groups = false; // group parameters from the original weights, original order (needs groups > 0)
};

struct GptqInfo {
  int64_t dead_columns = 0;      // inputs never non-zero: their weights were set to 0
  double damp_lambda = 0.0;      // λ actually added to the diagonal
  double proxy_loss = 0.0;       // Σ (w − q)²/U_ii² / 2 — GPTQ's own estimate of ½·ΔE in units of H
  std::vector<int32_t> order;    // the column visiting order (identity without act_order)
};

// Quantizes w [out, in] against H (in × in, symmetric positive semi-definite, e.g. 2·XᵀX/n). Validates p
// (bits 2..8, group size dividing in) and the options; throws std::invalid_argument naming the problem, and
// std::runtime_error when H + λI is still not positive definite (suggesting a larger damp).
quant::QuantizedMatrix gptq_quantize(quant::MatrixView w, const Eigen::MatrixXd& h, const quant::QuantParams& p,
                                     const GptqOptions& o, GptqInfo* info = nullptr);

// ---- the steps of gptq_quantize (exposed for tests), in order -------------------------------------------------
namespace gptq {
// Throws std::invalid_argument naming the first problem with the inputs or options (see gptq_quantize).
void validate(quant::MatrixView w, const Eigen::MatrixXd& h, const quant::QuantParams& p, const GptqOptions& o);
// Dead columns (H_ii = 0): H_ii = 1 and the weight column zeroed; returns how many. A negative diagonal throws.
int64_t zero_dead_columns(Eigen::MatrixXd& h, Eigen::MatrixXd& w);
// Parameters fixed before any update: one per tensor, one per row, or (static_groups) one per group of the original
// weights in original order, [rows, groups] row-major; empty for dynamic groups (chosen during the sweep).
std::vector<quant::GroupParams> fixed_params(const Eigen::MatrixXd& w, const quant::QuantParams& p, bool static_groups);
// The visiting order: identity, or descending diag(H) (act_order; stable).
std::vector<int32_t> column_order(const Eigen::MatrixXd& h, bool act_order);
// U with (H + λI)⁻¹ = UᵀU, U upper triangular, λ = damp·mean(diag H) (written to *lambda); std::runtime_error
// suggesting a larger damp when a factorization fails.
Eigen::MatrixXd inverse_cholesky(Eigen::MatrixXd h, double damp, double* lambda = nullptr);
}  // namespace gptq

}  // namespace qeval::schemes
