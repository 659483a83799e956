// quant/choose_qparams.cpp — a group's scale and zero point: min/max (clip_ratio), percentile, MSE grid search.
#include "quant/choose_qparams.hpp"

#include <algorithm>
#include <cmath>

namespace qeval::quant {

std::vector<double> mse_clip_ratios(double clip_ratio) {
  std::vector<double> r;
  r.reserve(kMseSearchSteps + 1);
  for (int k = 0; k <= kMseSearchSteps; ++k) r.push_back(clip_ratio * (1.0 - kMseSearchStep * k));
  return r;
}

double percentile(std::vector<float>& v, double pct) {
  if (v.empty()) return 0.0;
  const size_t n = v.size();
  const double h = (static_cast<double>(n) - 1.0) * pct / 100.0;
  size_t lo = static_cast<size_t>(std::floor(h));
  if (lo > n - 1) lo = n - 1;
  const double frac = h - static_cast<double>(lo);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(lo), v.end());
  const double a = v[lo];
  if (frac <= 0.0 || lo + 1 >= n) return a;
  // The next order statistic is the minimum of the part above lo (nth_element partitioned it there).
  const double b = *std::min_element(v.begin() + static_cast<std::ptrdiff_t>(lo) + 1, v.end());
  return a + frac * (b - a);
}

ClipRange finite_min_max(const float* x, int64_t n) {
  ClipRange c;
  bool any = false;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) continue;
    if (!any) {
      c.lo = c.hi = v;
      any = true;
    } else {
      c.lo = std::min(c.lo, v);
      c.hi = std::max(c.hi, v);
    }
  }
  return c;
}

ClipRange percentile_range(const float* x, int64_t n, const QuantParams& p) {
  std::vector<float> v;
  v.reserve(static_cast<size_t>(n));
  ClipRange c;
  if (p.mapping == Mapping::symmetric) {
    for (int64_t i = 0; i < n; ++i)
      if (std::isfinite(x[i])) v.push_back(std::fabs(x[i]));
    const float a = static_cast<float>(percentile(v, p.clip_percentile));
    c.lo = -a;
    c.hi = a;
  } else {
    for (int64_t i = 0; i < n; ++i)
      if (std::isfinite(x[i])) v.push_back(x[i]);
    c.hi = static_cast<float>(percentile(v, p.clip_percentile));
    c.lo = static_cast<float>(percentile(v, 100.0 - p.clip_percentile));
  }
  return c;
}

GroupParams choose_group_params(const float* x, int64_t n, const QuantParams& p) {
  const int qmin = p.qmin(), qmax = p.qmax();
  auto err = [&](float lo, float hi) {
    const GroupParams g = group_params_from_range(lo, hi, p.bits, p.mapping);
    double e = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(x[i])) continue;
      const double d = static_cast<double>(x[i]) -
                       static_cast<double>(dequantize_one(quantize_one(x[i], g, qmin, qmax, p.rounding), g));
      e += d * d;
    }
    return e;
  };
  const ClipRange c = choose_range(x, n, p, err);
  return group_params_from_range(c.lo, c.hi, p.bits, p.mapping);
}

}  // namespace qeval::quant
