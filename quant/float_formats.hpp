// quant/float_formats.hpp — FP4 (OCP e2m1 and bitsandbytes code books), NF4, FP8 e4m3/e5m2 and fp16 codecs.
//
// Each encode maps a float, already divided by the group scale, to a storage code; each decode maps a
// code back to its value in the same units. The matrix-level quantizer is quantize_float_format()
// (quant/quantize.hpp): scale = max|x| / format_max(f), u = encode(x · (1/scale)), x̂ = scale · decode(u).
// Tables and bit fields: quant/layouts.h (shared with the OpenCL kernels), sources cited there.
//
// Rounding and ties (documented because a tie decides a code):
//   fp4_e2m1   nearest value, ties to the even code (= round-half-even on the mantissa, as the OCP MX
//              spec converts); 0.25 → 0, 0.75 → 1.0, 5 → 4. |x| > 6 saturates to ±6.
//   fp4_bnb    nearest value, ties to the smaller magnitude. |x| > 1 saturates to ±1.
//   nf4        nearest of the 16 values, ties to the smaller magnitude. Outside [−1, 1] saturates.
//   fp8_*      round to nearest even on the mantissa (subnormals included); finite |x| beyond the max
//              saturates to ±max (OCP "saturating" conversion). ±Inf: e4m3 (no Inf) → ±448; e5m2 keeps
//              ±Inf (so all 254 non-NaN codes round-trip; OCP's saturating mode would give ±57344 — our
//              quantizer never encodes an Inf, the NonFinitePolicy runs first). NaN → the NaN code.
//   The 4-bit books have no NaN: their encoders map NaN to +0 (callers apply the NonFinitePolicy first).
//   The sign of zero is kept by the sign-magnitude formats (−0 → code 8 / 0x80).
#pragma once

#include <cstdint>

#include "quant/matrix.hpp"

namespace qeval::quant {

uint8_t fp4_e2m1_encode(float x);
float fp4_e2m1_decode(uint8_t u);
uint8_t fp4_bnb_encode(float x);
float fp4_bnb_decode(uint8_t u);
uint8_t nf4_encode(float x);
float nf4_decode(uint8_t u);
uint8_t fp8_e4m3_encode(float x);
float fp8_e4m3_decode(uint8_t u);
uint8_t fp8_e5m2_encode(float x);
float fp8_e5m2_decode(uint8_t u);

// Dispatch by format (throws std::invalid_argument for Format::int_affine, which is not a code book).
uint8_t encode_code(Format f, float x);
float decode_code(Format f, uint8_t u);
// Largest |value| of the format: 6 (e2m1), 1 (bnb, nf4), 448 (e4m3), 57344 (e5m2).
float format_max(Format f);

// IEEE binary16 bit patterns (scales of the GPU blocks in quant/layouts.h). Round to nearest even,
// subnormals kept, overflow → ±Inf, NaN → quiet NaN with the sign kept.
uint16_t float_to_half_bits(float x);
float half_bits_to_float(uint16_t h);

}  // namespace qeval::quant
