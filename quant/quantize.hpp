// quant/quantize.hpp — public entry points: choose parameters, quantize and dequantize matrices.
//
// Each function runs the fastest kernel the CPU supports (quant/cpu/dispatch.hpp) unless a Backend
// is named; every fast kernel is tested bit-exactly against the scalar reference in qeval::ref
// (quant/ref/, an internal header used by tests and the dispatcher only).
#pragma once

#include <cstdint>

#include "quant/affine.hpp"
#include "quant/matrix.hpp"

namespace qeval::quant {

// Which implementation runs. `best` picks AVX-512 (VNNI) when the CPU has it, else the reference.
enum class Backend : uint8_t { best, ref, avx512 };
const char* to_string(Backend b);

// Scans a matrix for NaN/±Inf. Under NonFinitePolicy::error throws NonFiniteError with the first
// offending (row, col), its value, and the fix ("clean the input or pass non_finite=propagate").
// Returns the number of non-finite elements (0 under the error policy).
int64_t check_finite(MatrixView x, NonFinitePolicy policy, const char* what = "input");

// Scale and zero point of one group of n elements under p.range (minmax, percentile or mse search).
// Non-finite values are ignored (the caller has already applied the policy).
GroupParams choose_group_params(const float* x, int64_t n, const QuantParams& p);

// Integer affine quantization of a whole matrix (Format::int_affine). Validates p and the shape
// (group size must divide cols; the error names both numbers) and applies p.non_finite.
QuantizedMatrix quantize_affine(MatrixView x, const QuantParams& p, Backend b = Backend::best);

// Float-code-book quantization (fp4_e2m1, fp4_bnb, nf4, fp8_e4m3, fp8_e5m2) with a per-group
// absmax scale: scale = max|x| / max|code book|, u = nearest code of x / scale (computed as
// x·(1/scale) in float, like the integer path; tie rules in quant/float_formats.hpp).
QuantizedMatrix quantize_float_format(MatrixView x, Format f, const QuantParams& p);

// Writes x̂ for every element of q into out (rows × cols). Handles every Format, undoes `perm` and
// `col_scale`. NaN/Inf elements kept under NonFinitePolicy::propagate come back as NaN.
void dequantize(const QuantizedMatrix& q, MutableMatrixView out, Backend b = Backend::best);

// Convenience: out = dequantize(quantize_affine(x, p)); out may alias x.
void fake_quantize_affine(MatrixView x, const QuantParams& p, MutableMatrixView out,
                          Backend b = Backend::best);

// Unpacked storage codes of row r (cols values in [0, 2^bits)), for tests and reference paths.
void unpack_row(const QuantizedMatrix& q, int64_t r, uint8_t* out);

}  // namespace qeval::quant
