// quant/choose_qparams.hpp — how a group's range is chosen before the formula: min/max, percentile, MSE search.
//
// choose_group_params() (declared in quant/quantize.hpp) is the entry point; the pieces below are shared
// with the float-format quantizer (quant/float_formats.cpp) so that both read RangeMethod the same way:
//   minmax:     [min, max] of the group's finite values, both ends multiplied by clip_ratio
//               (symmetric: max|x|·clip_ratio).
//   percentile: symmetric: the clip_percentile-th percentile of |x|; asymmetric: the (100 − P)-th and
//               P-th percentiles of x. Exact order statistics with linear interpolation (percentile()).
//   mse:        the candidates r_k = clip_ratio·(1 − k/100), k = 0..50 (1 % steps down to half the
//               clip_ratio), each applied like minmax; the r with the least Σ(x − x̂)² (double) wins,
//               ties → the larger r (the first met). Worked number: clip_ratio 1 → 1.00, 0.99, ..., 0.50.
// Non-finite values are ignored everywhere (the caller has applied the NonFinitePolicy).
#pragma once

#include <cstdint>
#include <vector>

#include "quant/affine.hpp"
#include "quant/quantize.hpp"

namespace qeval::quant {

inline constexpr int kMseSearchSteps = 50;     // candidates k = 0..50
inline constexpr double kMseSearchStep = 0.01;  // r_k = clip_ratio·(1 − 0.01·k)

// The MSE-search candidates for a clip_ratio, largest first (51 values).
std::vector<double> mse_clip_ratios(double clip_ratio);

// The pct-th percentile (0 ≤ pct ≤ 100) of v by linear interpolation between the order statistics
// ("type 7", NumPy's default): h = (n − 1)·pct/100, P = v(⌊h⌋) + (h − ⌊h⌋)·(v(⌊h⌋+1) − v(⌊h⌋)), with v(i)
// the i-th smallest. Worked number: v = {1, 2, 3, 4, 5}, pct 90 → h = 3.6 → 4 + 0.6·1 = 4.6.
// pct = 100 gives the maximum, 0 the minimum. v is reordered (nth_element). Empty v → 0.
double percentile(std::vector<float>& v, double pct);

// The clipped range [lo, hi] of n values under p.range (before the asymmetric widening to include 0
// that group_params_from_range() does). For RangeMethod::mse, `err(lo, hi)` gives the squared error of
// quantizing the values with that range; it is called once per candidate. No finite value → {0, 0}.
struct ClipRange {
  float lo = 0.0f;
  float hi = 0.0f;
};
template <class ErrFn>
ClipRange choose_range(const float* x, int64_t n, const QuantParams& p, ErrFn err);

// The finite values' min and max ({0, 0} when there are none).
ClipRange finite_min_max(const float* x, int64_t n);

// The range [lo·r, hi·r]: each end multiplied by the clip ratio r in double and rounded to float once.
// The one definition of the minmax clip, used here and by the fast kernels' drivers.
// Worked number: lo = −3.0f, r = 0.9 → float(−2.7) = −2.70000005f; r = 1 leaves the range as is.
inline ClipRange clip_min_max(float lo, float hi, double r) {
  return ClipRange{static_cast<float>(static_cast<double>(lo) * r), static_cast<float>(static_cast<double>(hi) * r)};
}

// ---- implementation of the template -------------------------------------------------------------
ClipRange percentile_range(const float* x, int64_t n, const QuantParams& p);

template <class ErrFn>
ClipRange choose_range(const float* x, int64_t n, const QuantParams& p, ErrFn err) {
  const ClipRange mm = finite_min_max(x, n);
  auto scaled = [&](double r) { return clip_min_max(mm.lo, mm.hi, r); };
  switch (p.range) {
    case RangeMethod::minmax: return scaled(p.clip_ratio);
    case RangeMethod::percentile: return percentile_range(x, n, p);
    case RangeMethod::mse: {
      const std::vector<double> ratios = mse_clip_ratios(p.clip_ratio);
      ClipRange best = scaled(ratios[0]);
      double best_err = err(best.lo, best.hi);
      for (size_t k = 1; k < ratios.size(); ++k) {
        const ClipRange c = scaled(ratios[k]);
        const double e = err(c.lo, c.hi);
        if (e < best_err) {  // strict: a tie keeps the larger ratio
          best_err = e;
          best = c;
        }
      }
      return best;
    }
  }
  return mm;
}

}  // namespace qeval::quant
