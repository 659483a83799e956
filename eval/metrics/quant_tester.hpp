// eval/metrics/quant_tester.hpp — the one fluent quantization tester (STYLE.md 13), shared by tests and `qeval sweep`.
//
//   auto r = QuantTester().scheme("rtn").bits(4).group_size(128).mapping(Mapping::asymmetric)
//                .rows(256).cols(1024).distribution(Distribution::gaussian).seed(seed)
//                .mse_ratio(0.75, 1.05)
//                .Test();
//   EXPECT_TRUE(r.ok()) << r.report();
//
// It generates (or takes) the input, runs a scheme — a registered one by config, a schemes::Scheme, or
// a quantize/dequantize function pair — times it, computes every metric of eval/metrics/metrics.hpp
// and runs the checks that were asked for. A failed check reports the element index, the input value
// and its bits, expected/got, the seed and a histogram of the differences (in steps of the grid).
// `qeval sweep` uses the same code with no_checks(): one code path for tests and reports.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "eval/inputs/synthetic.hpp"
#include "eval/metrics/metrics.hpp"
#include "quant/affine.hpp"
#include "quant/matrix.hpp"
#include "schemes/scheme.hpp"

namespace qeval::eval {

using QuantizeFn = std::function<quant::QuantizedMatrix(quant::MatrixView, const quant::QuantParams&)>;
using DequantizeFn = std::function<void(const quant::QuantizedMatrix&, quant::MutableMatrixView)>;

struct Timing {
  double generate_ms = 0;    // synthetic input generation (0 for a given input)
  double quantize_ms = 0;
  double dequantize_ms = 0;
  double metrics_ms = 0;
};

struct QuantTestResult {
  std::string label;   // scheme config label, e.g. "rtn int4 sym g128"
  std::string input;   // input description, e.g. "gaussian 256x1024 seed 20240229"
  uint64_t seed = 0;
  metrics::TensorMetrics metrics;
  Timing timing;
  std::vector<std::string> failures;  // one multi-line entry per failed check
  bool ok() const { return failures.empty(); }
  // Everything needed to reproduce and diagnose a failure (empty string when ok()).
  std::string report() const;
};

namespace detail {
struct TesterRun;  // what one run measured (quant_tester.cpp)
}  // namespace detail

class QuantTester {
 public:
  QuantTester();

  // ---- what quantizes (the config is used by Test() and passed to functions as QuantParams)
  QuantTester& scheme(const std::string& id);  // keeps bits/group etc. already set
  QuantTester& option(const std::string& key, const std::string& value);
  QuantTester& config(const schemes::SchemeConfig& cfg);
  QuantTester& params(const quant::QuantParams& p);
  QuantTester& bits(int b);
  QuantTester& group_size(int64_t g);
  QuantTester& mapping(quant::Mapping m);
  QuantTester& rounding(quant::Rounding r);
  QuantTester& range(quant::RangeMethod m);
  QuantTester& clip_ratio(double c);
  QuantTester& non_finite(quant::NonFinitePolicy p);

  // ---- the input: synthetic (defaults: gaussian 256 × 1024, seed_from_env()) or given
  QuantTester& rows(int64_t r);
  QuantTester& cols(int64_t c);
  QuantTester& distribution(inputs::Distribution d);
  QuantTester& seed(uint64_t s);
  QuantTester& student_nu(int nu);
  QuantTester& outliers(int64_t channels, double scale);
  // A tensor someone else owns (not copied: it must outlive Test()); `description` goes into reports.
  QuantTester& input(quant::MatrixView x, std::string description);

  // ---- checks. Default: check_half_step (int_affine only: every unclipped element within
  // (s/2)(1 + 1e-4), STYLE.md 9). Others are opt-in.
  QuantTester& check_half_step(bool on = true);
  QuantTester& mse_ratio(double lo, double hi);            // MSE / mean(s²/12) ∈ [lo, hi]
  QuantTester& sqnr_near(double target_db, double tol_db);  // |SQNR − target| ≤ tol
  QuantTester& sqnr_at_least(double db);
  QuantTester& max_clipped_fraction(double f);
  // x̂ must equal a reference path's x̂ within `tol` (absolute; 0 = bit-exact), e.g. _cpu against _ref.
  QuantTester& reference(QuantizeFn q, DequantizeFn dq = {}, double tol = 0.0);
  QuantTester& no_checks();  // evaluation only (qeval sweep)
  QuantTester& max_failures_listed(int n);  // elements listed per failed check (default 8)

  // ---- run
  QuantTestResult Test() const;                          // schemes::make_scheme(config())
  QuantTestResult Test(const schemes::Scheme& s) const;  // uses s.config() for the label and params
  QuantTestResult Test(const QuantizeFn& q, const DequantizeFn& dq = {}) const;  // dq default quant::dequantize

  const schemes::SchemeConfig& config() const { return cfg_; }
  const inputs::SyntheticSpec& synthetic() const { return spec_; }

 private:
  using Measured = detail::TesterRun;
  QuantTestResult run(const std::string& label, const quant::QuantParams& p,
                      const std::function<quant::QuantizedMatrix(quant::MatrixView)>& q,
                      const DequantizeFn& dq) const;
  quant::MatrixView input_for(QuantTestResult& res, quant::Matrix& generated) const;
  void measure(Measured& d, QuantTestResult& res, const std::function<quant::QuantizedMatrix(quant::MatrixView)>& q,
               const DequantizeFn& dq) const;
  void check_statistics(const Measured& d, std::vector<std::string>& failures) const;

  schemes::SchemeConfig cfg_;
  inputs::SyntheticSpec spec_;
  std::optional<quant::MatrixView> given_;
  std::string given_desc_;
  bool half_step_ = true;
  std::optional<std::pair<double, double>> mse_ratio_;
  std::optional<std::pair<double, double>> sqnr_near_;
  std::optional<double> sqnr_min_;
  std::optional<double> max_clipped_;
  QuantizeFn ref_q_;
  DequantizeFn ref_dq_;
  double ref_tol_ = 0.0;
  int max_listed_ = 8;
};

// A text histogram of values (in steps): `bins` equal bins over [lo, hi] plus under/overflow counts.
std::string histogram(const std::vector<double>& values, double lo, double hi, int bins = 16);
// "0x3f800000" for 1.0f.
std::string float_bits(float f);

}  // namespace qeval::eval
