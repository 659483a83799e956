// eval/model/backend/cpu_backend.hpp — the `cpu` LinearBackend: quantized layers through quant/cpu's exact int8 GEMM.
//
// What it runs (asked of the schemes' traits, never their names):
//   W·A8  int_affine weights (2..8 bits, per-tensor / per-channel / grouped incl. a partial last group, sym or asym,
//         GPTQ's act-order perm) × int activations (dynamic per token or grouped, static per tensor; sym or asym):
//         both sides' codes as int8, exact int32 partial sums per k-block (a block = where neither side's group
//         changes) by try_gemm_s8s8_s32 (AMX > VNNI > the scalar reference, QEVAL_CPU), zero points applied exactly
//         with row/column sums, then y = Σ_blocks (s_a·s_w)·C_block summed in fp32 (the only rounding).
//         Weights narrower than 8 bits (W4A8) are unpacked to int8 once in prepare(), not in registers.
//   W·A16 int_affine weights with fp32 activations (no activation scheme, or a dynamic one below its row
//         threshold): the weight dequantized once in prepare() × fp32 x (Eigen GEMM) — not register dequantization.
//   LLM.int8 (Target::linear with outlier_columns): the regular features through the int8 GEMM (per-token ×
//         per-output-row symmetric codes over the regular columns of the call), the outlier features in fp32.
// It says no (supports) for float code books (fp4, nf4, fp8), per-feature activation scales (static
// granularity=channel), activation quantization over fp weights and Target::linear schemes without outlier columns
// (SmoothQuant quantizes its activations inside its own linear()). The derivation of how far it may be from `ref`
// is in docs/model-eval.md ("cpu backend: agreement with ref").
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "eval/model/backend/linear_backend.hpp"

namespace qeval::model {

std::shared_ptr<const LinearBackend> make_cpu_backend();

// ---- the pieces (exposed for tests) ------------------------------------------------------------------------------

// A quantized matrix [rows, k] as int8 values v and, per (row, group), a scale and an offset such that
// x̂ = scale · (v − offset) — i.e. v − offset = q − zero_point. v = q, except 8-bit asymmetric codes (0..255),
// stored as q − 128 (offset = zero_point − 128) so that they fit int8.
struct IntOperand {
  std::vector<int8_t> v;        // rows × k, row-major
  int64_t rows = 0, k = 0;
  int64_t group = 0;            // elements per group along k (the last may be shorter); k for per-row/per-tensor
  int64_t groups = 1;           // groups per row
  std::vector<float> scale;     // rows × groups
  std::vector<int32_t> offset;  // rows × groups; empty: all zero
};
// From int_affine codes (no col_scale, no non_finite entries; perm is the caller's business). Throws
// std::invalid_argument naming what it cannot take.
IntOperand int_operand(const quant::QuantizedMatrix& q);

// The k-blocks [edges[i], edges[i+1]) over which neither a's nor w's group changes: the union of both groups'
// boundaries (worked number: k = 80, groups 32 and 48 → 0, 32, 48, 64, 80).
std::vector<int64_t> block_edges(int64_t k, int64_t group_a, int64_t group_w);

// The exact Σ_{k∈block} (v_a − o_a)(v_w − o_w) of every block, row of a and row of w: [blocks][a.rows][w.rows].
// The integer part of int_linear, for tests.
std::vector<int64_t> exact_block_sums(const IntOperand& a, const IntOperand& w);

// y [a.rows, w.rows] = Σ_blocks (s_a·s_w)·(exact block sum), in fp32, blocks in ascending order.
void int_linear(const IntOperand& a, const IntOperand& w, quant::MutableMatrixView y);

}  // namespace qeval::model
