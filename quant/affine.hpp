// quant/affine.hpp — the affine quantization formula, stated once, and the value types every scheme shares.
//
//   x̂ = scale · (q − zero_point),      q = clamp(round(x / scale) + zero_point, qmin, qmax)
//
//   asymmetric: scale = (max − min) / (2^b − 1),  zero_point = qmin − round(min / scale),
//               q ∈ [0, 2^b − 1]                   (unsigned codes)
//   symmetric:  scale = max|x| / (2^(b−1) − 1),   zero_point = 0,
//               q ∈ [−(2^(b−1) − 1), 2^(b−1) − 1]  (restricted signed range: int4 → [−7, 7])
//
// Worked number: 4-bit asymmetric over [−1, 2] → scale = 3/15 = 0.2, zero_point = 0 − round(−5) = 5;
// x = 0.5 → q = round(2.5) + 5 = 7 (ties to even) → x̂ = 0.2·(7 − 5) = 0.4.
//
// Arithmetic contract (what makes every backend bit-exact against the reference):
//   * per element, the code is computed in float32 as round(x · inv_scale) + zero_point with
//     inv_scale = 1.0f / scale (0 when scale == 0); x·inv_scale is one correctly rounded float product,
//     so scalar, AVX-512 and OpenCL code produce the same codes. `double` is used for reductions
//     (sums, errors, dot products), never for the per-element code.
//   * scale and zero point are computed by the scalar functions below from the group's (min, max),
//     which every backend finds exactly (min/max do not depend on summation order).
// The derivation and the error bounds (|x − x̂| ≤ s/2 unclipped, E[(x − x̂)²] ≈ s²/12) are in
// docs/quantization.md.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace qeval::quant {

// How codes map to real values.
enum class Mapping : uint8_t { symmetric, asymmetric };

// How x·inv_scale becomes an integer. nearest_even is the default and what SIMD hardware does;
// toward_zero exists so tests can inject a deliberately worse quantizer (the CI gate must catch it).
enum class Rounding : uint8_t { nearest_even, nearest_away, toward_zero };

// How a group's range is chosen before the formula is applied (quant/choose_qparams.hpp).
enum class RangeMethod : uint8_t {
  minmax,      // the group's own min/max (optionally shrunk by clip_ratio)
  percentile,  // the clip_percentile-th percentile of |x| (sym) or of x at both tails (asym)
  mse,         // grid search over clip ratios minimizing the group's squared error
};

// group_size values with a special meaning. Positive values are groups of that many consecutive
// elements along the innermost (reduction) axis.
inline constexpr int64_t kPerRow = 0;      // one group per row: per-channel (weights), per-token (activations)
inline constexpr int64_t kPerTensor = -1;  // one group for the whole tensor

// Bit widths the integer formats support.
inline constexpr int kMinBits = 2;
inline constexpr int kMaxBits = 8;

// What to do when an input holds NaN or ±Inf.
enum class NonFinitePolicy : uint8_t {
  error,      // default: throw NonFiniteError naming the row/column and the fix
  propagate,  // quantize the finite values; NaN/Inf elements dequantize to NaN (range ignores them)
};

// The versioned value every scheme and kernel is parameterized by. Serialized into every report
// (quant/params_json.hpp), so a run is reproducible from its JSON.
struct QuantParams {
  static constexpr int kVersion = 1;  // bump when a field's meaning changes

  int bits = 4;                         // 2..8 for integer formats; 4 or 8 for float formats
  int64_t group_size = 128;             // > 0, kPerRow (0) or kPerTensor (−1)
  Mapping mapping = Mapping::symmetric;
  Rounding rounding = Rounding::nearest_even;
  RangeMethod range = RangeMethod::minmax;
  double clip_ratio = 1.0;              // (0, 1]: scale range by this (minmax); upper bound of the search (mse)
  double clip_percentile = 99.99;       // (50, 100]: used by RangeMethod::percentile
  NonFinitePolicy non_finite = NonFinitePolicy::error;
  // When group_size does not divide a row: false (default) → an error naming both numbers; true → the
  // last group of each row is shorter (row length mod group_size elements), the convention of GPTQ's
  // reference code (group of column j = j / group_size). Worked number: 576 columns, g128 → groups of
  // 128, 128, 128, 128, 64. Needed for models whose widths are not multiples of the group size
  // (SmolLM2-135M: d_model 576); always explicit, so no run silently changes its grouping.
  bool partial_last_group = false;
  int version = kVersion;

  // Throws std::invalid_argument naming the field, the bad value and the accepted values.
  void validate() const;
  // Throws std::invalid_argument naming both numbers when group_size does not divide cols (unless
  // partial_last_group).
  void validate_for_row_length(int64_t cols) const;

  // Number of groups a row of `cols` elements has: ceil(cols / group_size) (1 for kPerRow; for
  // kPerTensor the caller treats the whole tensor as one group).
  int64_t groups_per_row(int64_t cols) const;
  // Elements per (full) group for a row of `cols`; the last group of a row may be shorter when
  // partial_last_group (see group_extent).
  int64_t group_length(int64_t cols) const { return group_size > 0 ? group_size : cols; }
  // Elements of group j of a row of `cols`: group_length, except a partial last group.
  int64_t group_extent(int64_t cols, int64_t j) const {
    const int64_t g = group_length(cols), rest = cols - j * g;
    return rest < g ? rest : g;
  }

  int qmin() const { return mapping == Mapping::symmetric ? -((1 << (bits - 1)) - 1) : 0; }
  int qmax() const { return mapping == Mapping::symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1; }

  bool operator==(const QuantParams& o) const;
  bool operator!=(const QuantParams& o) const { return !(*this == o); }
  std::string to_string() const;  // short human-readable form, e.g. "int4 sym g128"
};

const char* to_string(Mapping m);
const char* to_string(Rounding r);
const char* to_string(RangeMethod r);
const char* to_string(NonFinitePolicy p);
// Parse the names above; throw std::invalid_argument listing the accepted names.
Mapping parse_mapping(const std::string& s);
Rounding parse_rounding(const std::string& s);
RangeMethod parse_range_method(const std::string& s);
NonFinitePolicy parse_non_finite_policy(const std::string& s);

// Thrown when an input holds NaN/Inf under NonFinitePolicy::error.
struct NonFiniteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- The formula, as the scalar functions every backend calls -------------------------------

// Scale and zero point of one group.
struct GroupParams {
  float scale = 0.0f;       // 0 for an all-zero (or empty) group: every code is zero_point
  float inv_scale = 0.0f;   // 1.0f / scale, or 0 when scale == 0
  int32_t zero_point = 0;   // 0 for symmetric
};

// From the (already clipped) range [lo, hi] of a group. lo ≤ 0 ≤ hi is not required: the asymmetric
// range is widened to include 0 so that 0 is exactly representable (padding, ReLU zeros).
// Overflow policy: for ±FLT_MAX inputs (hi − lo overflows float) the arithmetic is done in double and
// the scale is clamped to FLT_MAX, so the codes stay finite; dequantize_one() saturates x̂ to ±FLT_MAX
// (the grid's end point s·(q − zero_point) can lie up to s/2 beyond the range, i.e. past FLT_MAX), so
// x̂ stays finite and the error bound |x − x̂| ≤ s/2 holds for every finite input.
inline GroupParams group_params_from_range(float lo, float hi, int bits, Mapping mapping) {
  GroupParams g;
  if (mapping == Mapping::symmetric) {
    const double amax = std::fmax(std::fabs(static_cast<double>(lo)), std::fabs(static_cast<double>(hi)));
    const double qmax = static_cast<double>((1 << (bits - 1)) - 1);
    double s = amax / qmax;
    if (s > 3.4028234663852886e38) s = 3.4028234663852886e38;
    g.scale = static_cast<float>(s);
    g.zero_point = 0;
  } else {
    const double l = std::fmin(static_cast<double>(lo), 0.0);
    const double h = std::fmax(static_cast<double>(hi), 0.0);
    const double levels = static_cast<double>((1 << bits) - 1);
    double s = (h - l) / levels;
    if (s > 3.4028234663852886e38) s = 3.4028234663852886e38;
    g.scale = static_cast<float>(s);
    if (g.scale > 0.0f) {
      // zero_point = qmin − round(min / scale), qmin = 0; clamped so it is itself a valid code.
      double zp = -std::nearbyint(l / static_cast<double>(g.scale));
      if (zp < 0.0) zp = 0.0;
      if (zp > levels) zp = levels;
      g.zero_point = static_cast<int32_t>(zp);
    }
  }
  // A scale that underflows to a denormal-free zero makes the group all-zero; inv_scale would be
  // inf, so it is defined as 0 and every code is zero_point.
  g.inv_scale = g.scale > 0.0f ? 1.0f / g.scale : 0.0f;
  if (!std::isfinite(g.inv_scale)) g.inv_scale = 0.0f;  // scale denormal: 1/scale overflows
  return g;
}

// Round one float to an integer-valued float by the given mode.
inline float round_by(float v, Rounding r) {
  switch (r) {
    case Rounding::nearest_even: return std::nearbyint(v);  // default FP environment: ties to even
    case Rounding::nearest_away: return std::round(v);
    case Rounding::toward_zero: return std::trunc(v);
  }
  return std::nearbyint(v);
}

// The code of one element: clamp(round(x · inv_scale) + zero_point, qmin, qmax).
inline int32_t quantize_one(float x, const GroupParams& g, int qmin, int qmax, Rounding r) {
  float v = round_by(x * g.inv_scale, r);
  // Clamp in float first so that huge products do not overflow the int conversion.
  const float lo = static_cast<float>(qmin - g.zero_point);
  const float hi = static_cast<float>(qmax - g.zero_point);
  v = v < lo ? lo : (v > hi ? hi : v);
  return static_cast<int32_t>(v) + g.zero_point;
}

// The value of one code: scale · (q − zero_point), computed in float and saturated to ±FLT_MAX.
// Why the saturation: over [−FLT_MAX, FLT_MAX] the asymmetric 4-bit grid has s = 2·FLT_MAX/15 and
// −FLT_MAX/s ≈ −7.5, so zero_point is 7 or 8 and one end of the grid is 8·s = 1.067·FLT_MAX → ±inf in
// float (the 15 steps cannot be split 7.5/7.5 around 0). Every finite x
// lies in [−FLT_MAX, FLT_MAX], so clamping x̂ into that interval only moves it toward x: the error
// bound still holds. For every x̂ that does not overflow the clamp is a no-op (SIMD: one min + one max).
inline float dequantize_one(int32_t q, const GroupParams& g) {
  constexpr float kMax = 3.40282346638528859812e38f;  // FLT_MAX
  const float v = g.scale * static_cast<float>(q - g.zero_point);
  return v > kMax ? kMax : (v < -kMax ? -kMax : v);
}

}  // namespace qeval::quant
