// eval/metrics/quant_tester.cpp — the fluent tester: generate, quantize, dequantize, measure, check, explain.
#include "eval/metrics/quant_tester.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <limits>
#include <memory>
#include <sstream>

#include "quant/quantize.hpp"
#include "quant/rng.hpp"

namespace qeval::eval {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string fmt(double v, int prec = 6) {
  std::ostringstream os;
  os << std::setprecision(prec) << v;
  return os.str();
}

// One element's line in a failure listing.
std::string element_line(int64_t r, int64_t c, float x, const std::string& expected, float got, double step) {
  std::ostringstream os;
  os << "    [" << r << ", " << c << "] x=" << fmt(x, 9) << " (" << float_bits(x) << ")  expected " << expected
     << "  got " << fmt(got, 9) << " (" << float_bits(got) << ")  |x-x^|=" << fmt(std::fabs(double(x) - got), 6)
     << " = " << fmt(step > 0 ? std::fabs(double(x) - got) / step : 0.0, 6) << " steps (s=" << fmt(step, 6) << ")\n";
  return os.str();
}

}  // namespace

std::string float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", u);
  return buf;
}

std::string histogram(const std::vector<double>& values, double lo, double hi, int bins) {
  std::vector<int64_t> count(static_cast<size_t>(bins), 0);
  int64_t under = 0, over = 0, nan = 0;
  for (double v : values) {
    if (std::isnan(v)) {
      ++nan;
    } else if (v < lo) {
      ++under;
    } else if (v > hi) {
      ++over;
    } else {
      int b = static_cast<int>((v - lo) / (hi - lo) * bins);
      if (b >= bins) b = bins - 1;
      ++count[static_cast<size_t>(b)];
    }
  }
  int64_t peak = 1;
  for (int64_t c : count) peak = std::max(peak, c);
  std::ostringstream os;
  os << "    histogram (" << values.size() << " values, in steps):\n";
  if (under) os << "      <" << std::setw(8) << fmt(lo, 3) << "          : " << under << "\n";
  for (int b = 0; b < bins; ++b) {
    const double a = lo + (hi - lo) * b / bins, z = lo + (hi - lo) * (b + 1) / bins;
    const int bar = static_cast<int>(40.0 * static_cast<double>(count[static_cast<size_t>(b)]) / static_cast<double>(peak));
    os << "      [" << std::setw(8) << fmt(a, 3) << ", " << std::setw(8) << fmt(z, 3) << ") : " << std::setw(9)
       << count[static_cast<size_t>(b)] << " " << std::string(static_cast<size_t>(bar), '#') << "\n";
  }
  if (over) os << "      >" << std::setw(8) << fmt(hi, 3) << "          : " << over << "\n";
  if (nan) os << "      NaN                 : " << nan << "\n";
  return os.str();
}

std::string QuantTestResult::report() const {
  if (ok()) return "";
  std::ostringstream os;
  os << "QuantTester: " << label << " on " << input << ": " << failures.size() << " check(s) failed (seed " << seed
     << "; reproduce with QEVAL_SEED=" << seed << ")\n";
  for (const auto& f : failures) os << f;
  return os.str();
}

QuantTester::QuantTester() {
  cfg_ = schemes::SchemeConfig{};
  cfg_.scheme = "rtn";
  spec_.rows = 256;   // 262144 values: ≥ 1e5 for the statistical checks, milliseconds to quantize
  spec_.cols = 1024;
  spec_.seed = seed_from_env(kDefaultSeed);
}

QuantTester& QuantTester::scheme(const std::string& id) { cfg_.scheme = id; return *this; }
QuantTester& QuantTester::option(const std::string& k, const std::string& v) { cfg_.options.set(k, v); return *this; }
QuantTester& QuantTester::config(const schemes::SchemeConfig& cfg) { cfg_ = cfg; return *this; }
QuantTester& QuantTester::params(const quant::QuantParams& p) { cfg_.params = p; return *this; }
QuantTester& QuantTester::bits(int b) { cfg_.params.bits = b; return *this; }
QuantTester& QuantTester::group_size(int64_t g) { cfg_.params.group_size = g; return *this; }
QuantTester& QuantTester::mapping(quant::Mapping m) { cfg_.params.mapping = m; return *this; }
QuantTester& QuantTester::rounding(quant::Rounding r) { cfg_.params.rounding = r; return *this; }
QuantTester& QuantTester::range(quant::RangeMethod m) { cfg_.params.range = m; return *this; }
QuantTester& QuantTester::clip_ratio(double c) { cfg_.params.clip_ratio = c; return *this; }
QuantTester& QuantTester::non_finite(quant::NonFinitePolicy p) { cfg_.params.non_finite = p; return *this; }
QuantTester& QuantTester::rows(int64_t r) { spec_.rows = r; return *this; }
QuantTester& QuantTester::cols(int64_t c) { spec_.cols = c; return *this; }
QuantTester& QuantTester::distribution(inputs::Distribution d) { spec_.dist = d; return *this; }
QuantTester& QuantTester::seed(uint64_t s) { spec_.seed = s; return *this; }
QuantTester& QuantTester::student_nu(int nu) { spec_.student_nu = nu; return *this; }
QuantTester& QuantTester::outliers(int64_t channels, double scale) {
  spec_.dist = inputs::Distribution::outliers;
  spec_.outlier_channels = channels;
  spec_.outlier_scale = scale;
  return *this;
}
QuantTester& QuantTester::input(quant::MatrixView x, std::string description) {
  given_ = x;
  given_desc_ = std::move(description);
  return *this;
}
QuantTester& QuantTester::check_half_step(bool on) { half_step_ = on; return *this; }
QuantTester& QuantTester::mse_ratio(double lo, double hi) { mse_ratio_ = std::make_pair(lo, hi); return *this; }
QuantTester& QuantTester::sqnr_near(double t, double tol) { sqnr_near_ = std::make_pair(t, tol); return *this; }
QuantTester& QuantTester::sqnr_at_least(double db) { sqnr_min_ = db; return *this; }
QuantTester& QuantTester::max_clipped_fraction(double f) { max_clipped_ = f; return *this; }
QuantTester& QuantTester::reference(QuantizeFn q, DequantizeFn dq, double tol) {
  ref_q_ = std::move(q);
  ref_dq_ = std::move(dq);
  ref_tol_ = tol;
  return *this;
}
QuantTester& QuantTester::no_checks() {
  half_step_ = false;
  mse_ratio_.reset();
  sqnr_near_.reset();
  sqnr_min_.reset();
  max_clipped_.reset();
  ref_q_ = nullptr;
  return *this;
}
QuantTester& QuantTester::max_failures_listed(int n) { max_listed_ = n; return *this; }

QuantTestResult QuantTester::Test() const {
  const auto s = schemes::make_scheme(cfg_);
  return Test(*s);
}

QuantTestResult QuantTester::Test(const schemes::Scheme& s) const {
  return run(
      s.config().label(), s.params(), [&s](quant::MatrixView x) { return s.quantize(x, nullptr); },
      [&s](const quant::QuantizedMatrix& q, quant::MutableMatrixView out) { s.dequantize(q, out); });
}

QuantTestResult QuantTester::Test(const QuantizeFn& q, const DequantizeFn& dq) const {
  const quant::QuantParams p = cfg_.params;
  return run("function " + p.to_string(), p, [&q, p](quant::MatrixView x) { return q(x, p); }, dq);
}

// What one run measured: the input, its codes, its reconstruction and the step of every element.
struct detail::TesterRun {
  quant::MatrixView x;
  quant::QuantizedMatrix qm;
  quant::Matrix xhat;
  metrics::TensorMetrics m;
  std::unique_ptr<metrics::StepLookup> lk;
  int max_listed = 8;

  // Differences in steps of the grid, for the histograms (computed only when a check fails).
  std::vector<double> error_in_steps() const {
    std::vector<double> v;
    v.reserve(static_cast<size_t>(x.size()));
    for (int64_t r = 0; r < x.rows; ++r)
      for (int64_t c = 0; c < x.cols; ++c) {
        const double s = lk->step(r, c);
        if (!std::isfinite(x(r, c))) continue;
        v.push_back(s > 0 ? (double(x(r, c)) - xhat(r, c)) / s : 0.0);
      }
    return v;
  }
};

namespace {

using Measured = detail::TesterRun;

void check_finite_output(const Measured& d, std::vector<std::string>& failures) {
  if (d.m.error.non_finite_output == 0) return;
  std::ostringstream os;
  os << "  dequantized output is NaN/Inf for " << d.m.error.non_finite_output
     << " finite inputs (an element left unwritten, or an overflow); first ones:\n";
  int listed = 0;
  for (int64_t r = 0; r < d.x.rows && listed < d.max_listed; ++r)
    for (int64_t c = 0; c < d.x.cols && listed < d.max_listed; ++c)
      if (std::isfinite(d.x(r, c)) && !std::isfinite(d.xhat(r, c))) {
        os << element_line(r, c, d.x(r, c), "finite", d.xhat(r, c), d.lk->step(r, c));
        ++listed;
      }
  failures.push_back(os.str());
}

void check_within_half_step(const Measured& d, quant::Rounding rounding, std::vector<std::string>& failures) {
  if (!d.m.scales.uniform_grid || d.m.scales.half_step_violations == 0) return;
  std::ostringstream os;
  os << "  |x - x^| <= (s/2)(1 + 1e-4) fails for " << d.m.scales.half_step_violations
     << " unclipped elements (rounding " << quant::to_string(rounding) << "); first ones:\n";
  const double gmax = metrics::codebook_grid_max(*d.lk, d.qm, d.xhat.view());
  int listed = 0;
  for (int64_t r = 0; r < d.x.rows && listed < d.max_listed; ++r)
    for (int64_t c = 0; c < d.x.cols && listed < d.max_listed; ++c) {
      const double xv = d.x(r, c), yv = d.xhat(r, c);
      if (!std::isfinite(xv) || !std::isfinite(yv)) continue;
      if (metrics::classify(*d.lk, d.qm, gmax, r, c, xv, yv).half_step_violation) {
        const double s = d.lk->step(r, c);
        os << element_line(r, c, d.x(r, c), "|x-x^| <= " + fmt(0.5 * s * (1 + 1e-4), 6), d.xhat(r, c), s);
        ++listed;
      }
    }
  os << histogram(d.error_in_steps(), -1.0, 1.0);
  failures.push_back(os.str());
}

// x^ of the reference implementation, compared element by element within `tol`.
void check_reference(const Measured& d, const quant::Matrix& rhat, double tol, std::vector<std::string>& failures) {
  int64_t bad = 0;
  std::ostringstream list;
  std::vector<double> diffs;
  diffs.reserve(static_cast<size_t>(d.x.size()));
  for (int64_t r = 0; r < d.x.rows; ++r)
    for (int64_t c = 0; c < d.x.cols; ++c) {
      const float e = rhat(r, c), g = d.xhat(r, c);
      const double s = d.lk->step(r, c);
      const bool same = (std::isnan(e) && std::isnan(g)) || std::fabs(double(e) - g) <= tol;
      diffs.push_back(s > 0 ? (double(g) - e) / s : double(g) - e);
      if (!same) {
        if (bad < d.max_listed) list << element_line(r, c, d.x(r, c), fmt(e, 9) + " (" + float_bits(e) + ")", g, s);
        ++bad;
      }
    }
  if (bad == 0) return;
  std::ostringstream os;
  os << "  x^ differs from the reference in " << bad << " elements (tolerance " << tol << "); first ones:\n"
     << list.str() << histogram(diffs, -1.0, 1.0);
  failures.push_back(os.str());
}

}  // namespace

QuantTestResult QuantTester::run(const std::string& label, const quant::QuantParams& p,
                                 const std::function<quant::QuantizedMatrix(quant::MatrixView)>& qfn,
                                 const DequantizeFn& dq_in) const {
  QuantTestResult res;
  res.label = label;
  res.seed = spec_.seed;
  quant::Matrix generated;
  Measured d;
  d.x = input_for(res, generated);
  d.max_listed = max_listed_;
  measure(d, res, qfn, dq_in);
  check_finite_output(d, res.failures);
  if (half_step_) check_within_half_step(d, p.rounding, res.failures);
  check_statistics(d, res.failures);
  if (ref_q_) {
    const quant::QuantizedMatrix rq = ref_q_(d.x, p);
    quant::Matrix rhat(d.x.rows, d.x.cols, std::numeric_limits<float>::quiet_NaN());
    if (ref_dq_)
      ref_dq_(rq, rhat.mut());
    else
      quant::dequantize(rq, rhat.mut());
    check_reference(d, rhat, ref_tol_, res.failures);
  }
  return res;
}

// The given input, or a generated one (kept alive in `generated`); names it in the result.
quant::MatrixView QuantTester::input_for(QuantTestResult& res, quant::Matrix& generated) const {
  if (given_) {
    res.input = given_desc_;
    return *given_;
  }
  const auto t0 = std::chrono::steady_clock::now();
  generated = inputs::generate(spec_);
  res.timing.generate_ms = ms_since(t0);
  res.input = std::string(inputs::to_string(spec_.dist)) + " " + std::to_string(spec_.rows) + "x" +
              std::to_string(spec_.cols) + " seed " + std::to_string(spec_.seed);
  return generated.view();
}

// Quantize, dequantize into a NaN-filled buffer, evaluate — each timed.
void QuantTester::measure(Measured& d, QuantTestResult& res,
                          const std::function<quant::QuantizedMatrix(quant::MatrixView)>& qfn,
                          const DequantizeFn& dq_in) const {
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  d.qm = qfn(d.x);
  res.timing.quantize_ms = ms_since(t0);
  // Sentinel fill (STYLE.md 11): an element dequantize forgets to write stays NaN and is counted.
  d.xhat = quant::Matrix(d.x.rows, d.x.cols, std::numeric_limits<float>::quiet_NaN());
  t0 = clock::now();
  if (dq_in)
    dq_in(d.qm, d.xhat.mut());
  else
    quant::dequantize(d.qm, d.xhat.mut());
  res.timing.dequantize_ms = ms_since(t0);
  t0 = clock::now();
  res.metrics = metrics::evaluate(d.x, d.qm, d.xhat.view());
  res.timing.metrics_ms = ms_since(t0);
  d.m = res.metrics;
  d.lk = std::make_unique<metrics::StepLookup>(d.qm);
}

// The asked-for statistical checks: MSE against s²/12, SQNR near/at least, clipped fraction.
void QuantTester::check_statistics(const Measured& d, std::vector<std::string>& failures) const {
  const metrics::TensorMetrics& m = d.m;
  auto fail = [&](std::ostringstream& os, double lo, double hi) {
    os << histogram(d.error_in_steps(), lo, hi);
    failures.push_back(os.str());
  };
  if (mse_ratio_) {
    const double ratio = m.error.mse / m.scales.mean_step_sq_12;
    if (!(ratio >= mse_ratio_->first && ratio <= mse_ratio_->second)) {
      std::ostringstream os;
      os << "  MSE / mean(s^2/12) = " << fmt(m.error.mse) << " / " << fmt(m.scales.mean_step_sq_12) << " = "
         << fmt(ratio) << ", expected in [" << mse_ratio_->first << ", " << mse_ratio_->second << "] (clipped "
         << m.scales.clipped << " elements)\n";
      fail(os, -1.0, 1.0);
    }
  }
  if (sqnr_near_ && !(std::fabs(m.error.sqnr_db - sqnr_near_->first) <= sqnr_near_->second)) {
    std::ostringstream os;
    os << "  SQNR " << fmt(m.error.sqnr_db, 8) << " dB, expected " << fmt(sqnr_near_->first, 8) << " ± "
       << sqnr_near_->second << " dB (expected-from-scales " << fmt(m.scales.expected_sqnr_db, 8) << " dB)\n";
    fail(os, -1.0, 1.0);
  }
  if (sqnr_min_ && !(m.error.sqnr_db >= *sqnr_min_)) {
    std::ostringstream os;
    os << "  SQNR " << fmt(m.error.sqnr_db, 8) << " dB, expected >= " << *sqnr_min_ << " dB\n";
    fail(os, -1.0, 1.0);
  }
  if (max_clipped_ && !(m.scales.clipped_fraction <= *max_clipped_)) {
    std::ostringstream os;
    os << "  clipped fraction " << fmt(m.scales.clipped_fraction) << " (" << m.scales.clipped
       << " elements), expected <= " << *max_clipped_ << "\n";
    fail(os, -4.0, 4.0);
  }
}

}  // namespace qeval::eval
