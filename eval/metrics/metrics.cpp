// eval/metrics/metrics.cpp — MSE/SQNR/max-abs/cosine, the uniform-noise expectation, clipping and the gap split.
#include "eval/metrics/metrics.hpp"

#include "quant/float_formats.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace qeval::metrics {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
// STYLE.md 9: float32 rounding of x·inv_scale and of s·(q − zp) lets a correct quantizer's error reach
// 1.0000118·s/2; 1e-4 of slack on the half step covers it with margin and still catches a step-sized bug.
constexpr double kHalfStepSlack = 1e-4;
}  // namespace

double bound_db(int bits) { return 20.0 * std::log10(2.0) * bits; }  // 6.0206·b; 24.082 at b = 4

double grid_adjusted_db(int bits) {
  // SQNR of a uniform signal on [−A, A] under 2^b − 1 steps of Δ = 2A/(2^b − 1):
  // (A²/3) / (Δ²/12) = (2^b − 1)²  →  20·log10(2^b − 1): 9.542 (b=2), 23.522 (b=4), 48.131 (b=8).
  return 20.0 * std::log10(std::ldexp(1.0, bits) - 1.0);
}

double db_ratio(double signal_power, double noise_power) {
  if (std::isnan(signal_power) || std::isnan(noise_power)) return kNaN;
  if (noise_power == 0.0) return signal_power > 0.0 ? kInf : kNaN;
  return 10.0 * std::log10(signal_power / noise_power);
}

ErrorStats compare(quant::MatrixView x, quant::MatrixView xhat) {
  if (x.rows != xhat.rows || x.cols != xhat.cols)
    throw std::invalid_argument("metrics::compare: shapes differ (" + std::to_string(x.rows) + "x" +
                                std::to_string(x.cols) + " vs " + std::to_string(xhat.rows) + "x" +
                                std::to_string(xhat.cols) + ")");
  ErrorStats s;
  double sxx = 0, see = 0, sxy = 0, syy = 0, sx = 0;
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* a = x.row(r);
    const float* b = xhat.row(r);
    for (int64_t c = 0; c < x.cols; ++c) {
      const double xv = a[c];
      const double yv = b[c];
      if (!std::isfinite(xv)) {
        ++s.non_finite_input;
        continue;
      }
      if (!std::isfinite(yv)) {
        ++s.non_finite_output;
        continue;
      }
      ++s.n;
      const double e = xv - yv;
      sx += xv;
      sxx += xv * xv;
      see += e * e;
      sxy += xv * yv;
      syy += yv * yv;
      const double ax = std::fabs(xv);
      if (ax > s.max_abs_x) s.max_abs_x = ax;
      const double ae = std::fabs(e);
      if (s.max_abs_row < 0 || ae > s.max_abs_error) {
        s.max_abs_error = ae;
        s.max_abs_row = r;
        s.max_abs_col = c;
      }
    }
  }
  const double n = static_cast<double>(s.n);
  if (s.n > 0) {
    s.mean = sx / n;
    s.signal_power = sxx / n;
    s.mse = see / n;
    s.sqnr_db = db_ratio(sxx, see);
    s.crest_factor = s.signal_power > 0 ? s.max_abs_x / std::sqrt(s.signal_power) : kNaN;
  } else {
    s.mse = s.sqnr_db = s.crest_factor = kNaN;
  }
  if (sxx == 0.0 && syy == 0.0)
    s.cosine = 1.0;
  else if (sxx == 0.0 || syy == 0.0)
    s.cosine = 0.0;
  else
    s.cosine = sxy / (std::sqrt(sxx) * std::sqrt(syy));
  if (s.non_finite_output > 0) s.mse = s.sqnr_db = s.cosine = kNaN;  // a scheme bug: never report a number
  return s;
}

double codebook_max_abs(quant::Format f) {
  return f == quant::Format::int_affine ? 0.0 : static_cast<double>(quant::format_max(f));
}

StepLookup::StepLookup(const quant::QuantizedMatrix& q) : q_(q) {
  if (!q.perm.empty()) {
    if (static_cast<int64_t>(q.perm.size()) != q.cols)
      throw std::invalid_argument("metrics: perm has " + std::to_string(q.perm.size()) + " entries for " +
                                  std::to_string(q.cols) + " columns");
    inv_.assign(static_cast<size_t>(q.cols), 0);
    for (int64_t k = 0; k < q.cols; ++k) {
      const int32_t p = q.perm[static_cast<size_t>(k)];
      if (p < 0 || p >= q.cols) throw std::invalid_argument("metrics: perm holds out-of-range column " + std::to_string(p));
      inv_[static_cast<size_t>(p)] = k;
    }
  }
  if (!q.col_scale.empty() && static_cast<int64_t>(q.col_scale.size()) != q.cols)
    throw std::invalid_argument("metrics: col_scale has " + std::to_string(q.col_scale.size()) + " entries for " +
                                std::to_string(q.cols) + " columns");
  if (q.scales.empty() && q.rows * q.cols > 0) throw std::invalid_argument("metrics: quantized matrix has no scales");
}

int64_t StepLookup::group(int64_t r, int64_t j) const {
  const int64_t k = inv_.empty() ? j : inv_[static_cast<size_t>(j)];
  return q_.group_index(r, k);
}
double StepLookup::scale(int64_t r, int64_t j) const { return q_.scales[static_cast<size_t>(group(r, j))]; }
double StepLookup::col_factor(int64_t j) const {
  return q_.col_scale.empty() ? 1.0 : static_cast<double>(q_.col_scale[static_cast<size_t>(j)]);
}
double StepLookup::zero_point(int64_t r, int64_t j) const {
  return q_.zero_points.empty() ? 0.0 : static_cast<double>(q_.zero_points[static_cast<size_t>(group(r, j))]);
}

Gap decompose(int bits, double expected_db, double measured_db) {
  Gap g;
  g.bound_db = bound_db(bits);
  g.grid_adjusted_db = grid_adjusted_db(bits);
  g.expected_db = expected_db;
  g.measured_db = measured_db;
  g.total_db = g.bound_db - measured_db;
  g.grid_loss_db = g.bound_db - g.grid_adjusted_db;
  g.range_loss_db = g.grid_adjusted_db - expected_db;  // NaN propagates for code books
  g.other_db = expected_db - measured_db;
  return g;
}

ElementClass classify(const StepLookup& lk, const quant::QuantizedMatrix& q, double grid_max, int64_t r, int64_t j,
                      double x, double xhat) {
  ElementClass ec;
  const double s = lk.scale(r, j);
  const double c = lk.col_factor(j);
  const double e = x - xhat;
  if (q.format == quant::Format::int_affine) {
    if (s > 0) {
      const double v = x * c / s + lk.zero_point(r, j);  // the unclamped code, in code units
      const double slack = 0.5 * (1.0 + kHalfStepSlack);
      ec.clipped = v < q.params.qmin() - slack || v > q.params.qmax() + slack;
    } else {
      ec.clipped = x != 0.0;  // an all-zero group's grid is {0}
    }
    if (!ec.clipped && std::fabs(e) > 0.5 * std::fabs(s / c) * (1.0 + kHalfStepSlack)) ec.half_step_violation = true;
  } else {
    // 1e-6 relative: the scale is max|x|/cmax rounded to float32 (2^−23 = 1.2e−7 per rounding).
    ec.clipped = std::fabs(x * c) > s * grid_max * (1.0 + 1e-6);
  }
  return ec;
}

double codebook_grid_max(const StepLookup&, const quant::QuantizedMatrix& q, quant::MatrixView) {
  return codebook_max_abs(q.format);
}

TensorMetrics evaluate(quant::MatrixView x, const quant::QuantizedMatrix& q, quant::MatrixView xhat) {
  if (q.rows != x.rows || q.cols != x.cols || xhat.rows != x.rows || xhat.cols != x.cols)
    throw std::invalid_argument("metrics::evaluate: shapes differ (input " + std::to_string(x.rows) + "x" +
                                std::to_string(x.cols) + ", quantized " + std::to_string(q.rows) + "x" +
                                std::to_string(q.cols) + ", dequantized " + std::to_string(xhat.rows) + "x" +
                                std::to_string(xhat.cols) + ")");
  TensorMetrics m;
  m.bits = q.params.bits;
  m.rows = x.rows;
  m.cols = x.cols;
  m.bits_per_weight = q.bits_per_weight();
  m.error = compare(x, xhat);

  ScaleStats& st = m.scales;
  st.uniform_grid = q.format == quant::Format::int_affine;
  const StepLookup lk(q);
  // Steps across the grid: 2^b − 1 asymmetric (codes 0..2^b−1), 2^b − 2 symmetric restricted
  // (codes −(2^(b−1)−1)..2^(b−1)−1: 4 bits → 14 steps).
  const double steps = st.uniform_grid ? static_cast<double>(q.params.qmax() - q.params.qmin()) : 0.0;
  const double grid_max = codebook_grid_max(lk, q, xhat);

  double sum_s2 = 0, sum_e2 = 0, sum_e2_clipped = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* a = x.row(r);
    const float* b = xhat.row(r);
    for (int64_t j = 0; j < x.cols; ++j) {
      const double xv = a[j];
      const double yv = b[j];
      if (!std::isfinite(xv) || !std::isfinite(yv)) continue;
      const double step = lk.step(r, j);  // effective step in x's units
      const double e = xv - yv;
      ++n;
      sum_s2 += step * step;
      sum_e2 += e * e;
      const ElementClass ec = classify(lk, q, grid_max, r, j, xv, yv);
      if (ec.half_step_violation) ++st.half_step_violations;
      if (ec.clipped) {
        ++st.clipped;
        sum_e2_clipped += e * e;
      }
    }
  }
  if (n > 0) {
    st.clipped_fraction = static_cast<double>(st.clipped) / static_cast<double>(n);
    st.clipped_error_share = sum_e2 > 0 ? sum_e2_clipped / sum_e2 : 0.0;
    if (st.uniform_grid) {
      st.mean_step_sq_12 = sum_s2 / static_cast<double>(n) / 12.0;
      st.expected_sqnr_db = db_ratio(m.error.signal_power, st.mean_step_sq_12);
      const double mean_r2 = sum_s2 / static_cast<double>(n) * steps * steps;
      st.range_over_sigma =
          m.error.signal_power > 0 ? std::sqrt(mean_r2) / std::sqrt(m.error.signal_power) : kNaN;
    }
  }
  m.gap = decompose(m.bits, st.expected_sqnr_db, m.error.sqnr_db);
  return m;
}

}  // namespace qeval::metrics
