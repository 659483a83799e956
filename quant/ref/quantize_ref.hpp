// quant/ref/quantize_ref.hpp — INTERNAL: the scalar reference quantizers every faster kernel is tested against.
//
// Included by quant/quantize.cpp (the dispatcher) and by tests only; never by a public header.
// Scalar, one element at a time, following quant/affine.hpp's functions exactly
// (choose_group_params → group_params_from_range → quantize_one / dequantize_one); reductions in double.
#pragma once

#include <cstdint>
#include <string>

#include "quant/affine.hpp"
#include "quant/matrix.hpp"

namespace qeval::ref {

using quant::Format;
using quant::MatrixView;
using quant::MutableMatrixView;
using quant::QuantizedMatrix;
using quant::QuantParams;

// Integer affine quantization (Format::int_affine) of a whole matrix.
//   * validates p, the view and the row length (group size must divide cols);
//   * NonFinitePolicy::error → quant::NonFiniteError for the first NaN/Inf in row-major order;
//     propagate → the group's range ignores NaN/Inf, those elements get the code of 0 (storage code
//     zero_point − qmin) and are listed in QuantizedMatrix::non_finite;
//   * groups: group_size consecutive columns; kPerRow = one per row; kPerTensor = one over the matrix.
QuantizedMatrix quantize_affine_ref(MatrixView x, const QuantParams& p);

// Code-book quantization (every Format except int_affine) with a per-group absmax scale:
// scale = amax / format_max(f) (amax from p.range: max|x|·clip_ratio, percentile of |x|, or the MSE
// search), inv = 1/scale, u = encode(x·inv); an all-zero group has scale 0 and every code +0.
// Requires p.bits == format_bits(f), symmetric mapping and nearest_even rounding (the code books
// have their own tie rules, quant/float_formats.hpp). Same NonFinitePolicy handling as above.
QuantizedMatrix quantize_float_format_ref(MatrixView x, Format f, const QuantParams& p);

// x̂ for every element of q, written to out (q.rows × q.cols): int_affine through dequantize_one,
// code books through scale·decode(u) saturated to ±FLT_MAX; elements listed in q.non_finite become NaN;
// then perm is undone (stored column k → original column perm[k]) and col_scale divided out
// (out[r][j] /= col_scale[j], j the original column). Validates q and the shape of out.
void dequantize_ref(const QuantizedMatrix& q, MutableMatrixView out);

// The message of quant::NonFiniteError, shared by the reference and the fast paths so that both throw
// the same text: "<what> holds NaN at (row 3, col 17): value nan; clean the input or pass
// non_finite=propagate (those elements then dequantize to NaN)".
std::string non_finite_message(const char* what, int64_t row, int64_t col, float value);

// Throws std::invalid_argument for a malformed view (negative shape, row_stride < cols, null data).
void check_view(MatrixView x, const char* what);

}  // namespace qeval::ref
