// quant/float_formats.cpp — element codecs of the float formats: FP4 e2m1/bnb, NF4, FP8 e4m3/e5m2, fp16.
#include "quant/float_formats.hpp"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "quant/layouts.h"

namespace qeval::quant {

namespace {

// Sign-magnitude 4-bit books (e2m1, bnb): code = sign·8 + index of the nearest magnitude table[0..7].
// Distances are exact in double (both operands are floats of similar size), so ties are real ties.
enum class Tie { even_code, smaller_magnitude };
uint8_t encode_sign_magnitude(float x, const float* table, Tie tie) {
  const uint8_t sign = std::signbit(x) ? 8 : 0;
  if (std::isnan(x)) return 0;
  // Saturate first: for a huge |x| (1e30) every distance rounds to the same double and the nearest
  // search would see a 16-way tie.
  double amax = 0.0;
  for (int i = 0; i < 8; ++i) amax = std::fmax(amax, static_cast<double>(table[i]));
  const double a = std::fmin(std::fabs(static_cast<double>(x)), amax);
  int best = 0;
  double best_d = std::fabs(a - static_cast<double>(table[0]));
  for (int i = 1; i < 8; ++i) {
    const double d = std::fabs(a - static_cast<double>(table[i]));
    bool take = d < best_d;
    if (d == best_d) {
      take = tie == Tie::even_code ? (i % 2 == 0 && best % 2 != 0)
                                   : std::fabs(table[i]) < std::fabs(table[best]);
    }
    if (take) {
      best = i;
      best_d = d;
    }
  }
  return static_cast<uint8_t>(sign | best);
}

// FP8 as (exponent bits, mantissa bits, bias, max, codes).
struct Fp8 {
  int mbits;
  int ebits;
  int bias;
  double max;
  uint8_t max_code;   // positive max finite
  bool has_inf;       // e5m2
  uint8_t nan_code;   // positive canonical NaN
};
constexpr Fp8 kE4M3{3, 4, 7, 448.0, 0x7E, false, QEVAL_FP8_E4M3_NAN};
constexpr Fp8 kE5M2{2, 5, 15, 57344.0, 0x7B, true, QEVAL_FP8_E5M2_NAN};

uint8_t fp8_encode(float x, const Fp8& f) {
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  if (std::isnan(x)) return static_cast<uint8_t>(sign | f.nan_code);
  const double a = std::fabs(static_cast<double>(x));
  if (std::isinf(a)) return static_cast<uint8_t>(sign | (f.has_inf ? QEVAL_FP8_E5M2_INF : f.max_code));
  if (a >= f.max) return static_cast<uint8_t>(sign | f.max_code);  // saturate
  if (a == 0.0) return sign;
  const int emin = 1 - f.bias;  // exponent of the smallest normal: e4m3 −6, e5m2 −14
  int e = std::ilogb(a);
  if (e < emin) e = emin;       // subnormal range: fixed quantum 2^(emin − m)
  // a / quantum is exact (power-of-two division of a float in double); nearbyint rounds half to even
  // in the default FP environment. The result is ≤ max because a < max and max lies on the grid.
  const double quantum = std::ldexp(1.0, e - f.mbits);
  const double v = std::nearbyint(a / quantum) * quantum;
  if (v == 0.0) return sign;
  const int ev = std::ilogb(v);  // a rounding carry (1.111·2^e → 2^(e+1)) is picked up here
  uint32_t code;
  if (ev < emin) {
    code = static_cast<uint32_t>(v / std::ldexp(1.0, emin - f.mbits));  // subnormal: exponent field 0
  } else {
    const uint32_t mant = static_cast<uint32_t>(v / std::ldexp(1.0, ev - f.mbits)) - (1u << f.mbits);
    code = (static_cast<uint32_t>(ev + f.bias) << f.mbits) | mant;
  }
  return static_cast<uint8_t>(sign | code);
}

float fp8_decode(uint8_t u, const Fp8& f) {
  const bool neg = (u & 0x80) != 0;
  const int e = (u >> f.mbits) & ((1 << f.ebits) - 1);
  const int m = u & ((1 << f.mbits) - 1);
  const int emax_field = (1 << f.ebits) - 1;
  if (e == emax_field) {
    if (f.has_inf) return m == 0 ? (neg ? -INFINITY : INFINITY) : NAN;  // e5m2: IEEE-like
    if (m == (1 << f.mbits) - 1) return NAN;                            // e4m3: only S.1111.111
  }
  double v;
  if (e == 0)
    v = std::ldexp(static_cast<double>(m), 1 - f.bias - f.mbits);
  else
    v = std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -f.mbits), e - f.bias);
  return static_cast<float>(neg ? -v : v);
}

}  // namespace

uint8_t fp4_e2m1_encode(float x) { return encode_sign_magnitude(x, qeval_fp4_e2m1_values, Tie::even_code); }
float fp4_e2m1_decode(uint8_t u) { return qeval_fp4_e2m1_values[u & 15]; }
uint8_t fp4_bnb_encode(float x) { return encode_sign_magnitude(x, qeval_fp4_bnb_values, Tie::smaller_magnitude); }
float fp4_bnb_decode(uint8_t u) { return qeval_fp4_bnb_values[u & 15]; }

uint8_t nf4_encode(float x) {
  if (std::isnan(x)) return QEVAL_NF4_ZERO_CODE;
  // Saturate to [−1, 1] first (see encode_sign_magnitude: huge |x| would tie every distance).
  const double a = std::fmax(-1.0, std::fmin(1.0, static_cast<double>(x)));
  int best = 0;
  double best_d = std::fabs(a - static_cast<double>(qeval_nf4_values[0]));
  for (int i = 1; i < 16; ++i) {
    const double d = std::fabs(a - static_cast<double>(qeval_nf4_values[i]));
    if (d < best_d || (d == best_d && std::fabs(qeval_nf4_values[i]) < std::fabs(qeval_nf4_values[best]))) {
      best = i;
      best_d = d;
    }
  }
  return static_cast<uint8_t>(best);
}
float nf4_decode(uint8_t u) { return qeval_nf4_values[u & 15]; }

uint8_t fp8_e4m3_encode(float x) { return fp8_encode(x, kE4M3); }
float fp8_e4m3_decode(uint8_t u) { return fp8_decode(u, kE4M3); }
uint8_t fp8_e5m2_encode(float x) { return fp8_encode(x, kE5M2); }
float fp8_e5m2_decode(uint8_t u) { return fp8_decode(u, kE5M2); }

uint8_t encode_code(Format f, float x) {
  switch (f) {
    case Format::fp4_e2m1: return fp4_e2m1_encode(x);
    case Format::fp4_bnb: return fp4_bnb_encode(x);
    case Format::nf4: return nf4_encode(x);
    case Format::fp8_e4m3: return fp8_e4m3_encode(x);
    case Format::fp8_e5m2: return fp8_e5m2_encode(x);
    case Format::int_affine: break;
  }
  throw std::invalid_argument("encode_code: int_affine is not a code book (use quantize_one in quant/affine.hpp)");
}

float decode_code(Format f, uint8_t u) {
  switch (f) {
    case Format::fp4_e2m1: return fp4_e2m1_decode(u);
    case Format::fp4_bnb: return fp4_bnb_decode(u);
    case Format::nf4: return nf4_decode(u);
    case Format::fp8_e4m3: return fp8_e4m3_decode(u);
    case Format::fp8_e5m2: return fp8_e5m2_decode(u);
    case Format::int_affine: break;
  }
  throw std::invalid_argument("decode_code: int_affine is not a code book (use dequantize_one in quant/affine.hpp)");
}

float format_max(Format f) {
  switch (f) {
    case Format::fp4_e2m1: return QEVAL_FP4_E2M1_MAX;
    case Format::fp4_bnb: return QEVAL_FP4_BNB_MAX;
    case Format::nf4: return QEVAL_NF4_MAX;
    case Format::fp8_e4m3: return QEVAL_FP8_E4M3_MAX;
    case Format::fp8_e5m2: return QEVAL_FP8_E5M2_MAX;
    case Format::int_affine: break;
  }
  throw std::invalid_argument("format_max: int_affine has no fixed code-book maximum");
}

uint16_t float_to_half_bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  const uint32_t absb = b & 0x7FFFFFFFu;
  if (absb > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u);  // NaN → quiet NaN
  if (absb == 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u);
  // Round |x| to the binary16 grid in double (exact: a float divided by a power of two), as in fp8_encode.
  const double a = std::fabs(static_cast<double>(x));
  if (a == 0.0) return sign;
  int e = std::ilogb(a);
  if (e < -14) e = -14;  // subnormal quantum 2^-24
  const double quantum = std::ldexp(1.0, e - 10);
  const double v = std::nearbyint(a / quantum) * quantum;
  if (v >= 65536.0) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds past max 65504 → Inf
  if (v == 0.0) return sign;
  const int ev = std::ilogb(v);
  if (ev < -14) return static_cast<uint16_t>(sign | static_cast<uint16_t>(v / std::ldexp(1.0, -24)));
  const uint32_t mant = static_cast<uint32_t>(v / std::ldexp(1.0, ev - 10)) - 1024u;
  return static_cast<uint16_t>(sign | (static_cast<uint32_t>(ev + 15) << 10) | mant);
}

float half_bits_to_float(uint16_t h) {
  const bool neg = (h & 0x8000u) != 0;
  const int e = (h >> 10) & 0x1F;
  const int m = h & 0x3FF;
  double v;
  if (e == 31)
    return m == 0 ? (neg ? -INFINITY : INFINITY) : (neg ? -NAN : NAN);
  if (e == 0)
    v = std::ldexp(static_cast<double>(m), -24);
  else
    v = std::ldexp(1024.0 + m, e - 25);
  return static_cast<float>(neg ? -v : v);
}

}  // namespace qeval::quant
