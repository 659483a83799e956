// tests/eval/sweep/gate_test.cpp — the regression gate: the derived tolerance covers real float perturbations, the
// gate fails on a deliberately worsened scheme (rounding toward zero) and passes on the real one, across
// input samples it uses the measured sampling noise, and model runs use their recorded standard errors.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "eval/sweep/engine.hpp"
#include "eval/sweep/plan.hpp"
#include "eval/sweep/tensor_kind.hpp"
#include "eval/inputs/synthetic.hpp"
#include "eval/metrics/metrics.hpp"
#include "eval/report/check.hpp"
#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"
#include "quant/rng.hpp"
#include "schemes/scheme.hpp"

namespace qeval {
namespace {

using nlohmann::json;

json run_sweep_json(const json& cfg, std::optional<quant::Rounding> inject = std::nullopt) {
  const sweep::SweepPlan plan = sweep::plan_sweep(cfg, 1);
  sweep::EngineOptions o;
  o.progress = sweep::ProgressMode::none;
  o.inject_rounding = inject;
  o.jobs = 2;
  std::ostringstream out, err;
  json r = sweep::run_engine(plan, o, out, err).report;
  report::validate(r);
  return r;
}

json gate_config(uint64_t seed) {
  json cfg = json::parse(R"({"sweeps": [{"schemes": ["rtn"], "bits": [2, 4, 8], "mappings": ["sym", "asym"],
      "group_sizes": [32, 128], "inputs": [{"distribution": "gaussian", "rows": 128, "cols": 1024}]},
      {"schemes": ["nf4", "fp8"], "group_sizes": [64], "inputs": [{"distribution": "gaussian", "rows": 128, "cols": 1024}]}]})");
  cfg["seed"] = seed;
  return cfg;
}

TEST(Gate, InverseNormalMatchesTables) {
  // Standard normal quantiles (e.g. Abramowitz & Stegun, Table 26.5).
  EXPECT_NEAR(report::inverse_normal_cdf(0.975), 1.959963985, 1e-9);
  EXPECT_NEAR(report::inverse_normal_cdf(0.99), 2.326347874, 1e-9);
  EXPECT_NEAR(report::inverse_normal_cdf(0.995), 2.575829304, 1e-9);
  EXPECT_NEAR(report::inverse_normal_cdf(0.5), 0.0, 1e-12);
  EXPECT_TRUE(std::isnan(report::inverse_normal_cdf(1.0)));
}

// The deterministic tolerance bounds what it claims to: every input element moved by one float ulp (what a
// different libm can do to the generator) and the sums taken in another order change SQNR/MSE by less.
TEST(Gate, DeterministicToleranceCoversUlpPerturbations) {
  const uint64_t seed = seed_from_env(20240229);
  inputs::SyntheticSpec spec;
  spec.rows = 256;
  spec.cols = 1024;
  spec.seed = seed;
  const quant::Matrix x = inputs::generate(spec);
  quant::Matrix y = x;
  Rng rng(seed + 1);
  for (int64_t r = 0; r < y.rows; ++r)
    for (int64_t c = 0; c < y.cols; ++c)
      y(r, c) = std::nextafter(y(r, c), (rng.next_u64() & 1) ? INFINITY : -INFINITY);
  for (int bits : {2, 4, 8})
    for (auto m : {quant::Mapping::symmetric, quant::Mapping::asymmetric}) {
      schemes::SchemeConfig cfg = schemes::default_config("rtn");
      cfg.params.bits = bits;
      cfg.params.group_size = 32;
      cfg.params.mapping = m;
      const auto s = schemes::make_scheme(cfg);
      auto measure = [&](const quant::Matrix& in) {
        const quant::QuantizedMatrix q = s->quantize(in.view(), nullptr);
        quant::Matrix out(in.rows, in.cols);
        s->dequantize(q, out.mut());
        return metrics::evaluate(in.view(), q, out.view());
      };
      const metrics::TensorMetrics a = measure(x), b = measure(y);
      json ma = report::metrics_json(a);
      double rel_signal = 0;
      const double rel_err = report::deterministic_rel_noise(ma, &rel_signal);
      const double tol_db = 10.0 / std::log(10.0) * (rel_err + rel_signal);
      SCOPED_TRACE("bits " + std::to_string(bits) + (m == quant::Mapping::symmetric ? " sym" : " asym") + ", seed " +
                   std::to_string(seed));
      EXPECT_LE(std::fabs(a.error.sqnr_db - b.error.sqnr_db), tol_db);
      EXPECT_LE(std::fabs(a.error.mse - b.error.mse), a.error.mse * rel_err);
      // The bound grows with the bit width (A/rms(e) ∝ 2^b) and stays far below a real regression.
      EXPECT_LT(tol_db, 0.01);
    }
}

// The sampling standard error a run reports (rows as samples, delta method) predicts how much SQNR moves between
// independent input samples: checked against the spread of SQNR over 40 seeds. The sample SD of 40 values has a
// relative standard error of 1/√(2·39) = 11 %, so the ratio must lie within ±3 of those: [0.66, 1.34].
TEST(Gate, SamplingStandardErrorMatchesTheSpreadAcrossSeeds) {
  const uint64_t base_seed = seed_from_env(20240229);
  constexpr int kSeeds = 40;
  std::vector<double> sqnr, se;
  schemes::SchemeConfig cfg = schemes::default_config("rtn");  // int4 sym g128
  const auto s = schemes::make_scheme(cfg);
  for (int k = 0; k < kSeeds; ++k) {
    inputs::SyntheticSpec spec;
    spec.rows = 64;
    spec.cols = 1024;
    spec.seed = base_seed + 1000 + static_cast<uint64_t>(k);
    const quant::Matrix x = inputs::generate(spec);
    const quant::QuantizedMatrix q = s->quantize(x.view(), nullptr);
    quant::Matrix y(x.rows, x.cols);
    s->dequantize(q, y.mut());
    sqnr.push_back(metrics::evaluate(x.view(), q, y.view()).error.sqnr_db);
    se.push_back(sweep::sampling_stats(x.view(), y.view()).sqnr_se_db);
  }
  double mean = 0, mean_se = 0;
  for (int k = 0; k < kSeeds; ++k) {
    mean += sqnr[k] / kSeeds;
    mean_se += se[k] / kSeeds;
  }
  double var = 0;
  for (double v : sqnr) var += (v - mean) * (v - mean) / (kSeeds - 1);
  const double ratio = std::sqrt(var) / mean_se;
  EXPECT_GT(ratio, 0.66) << "seed " << base_seed << ": SD " << std::sqrt(var) << " dB, mean se " << mean_se;
  EXPECT_LT(ratio, 1.34) << "seed " << base_seed << ": SD " << std::sqrt(var) << " dB, mean se " << mean_se;
}

TEST(Gate, FailsOnRoundingTowardZeroPassesOnTheRealScheme) {
  const json cfg = gate_config(20240229);
  const json base = run_sweep_json(cfg);
  const json again = run_sweep_json(cfg);
  const report::GateResult ok = report::check_regression(base, again);
  EXPECT_TRUE(ok.pass()) << report::format_gate(ok, "base", "again", base);
  EXPECT_EQ(ok.checks.size(), 2 * base["runs"].size());
  for (const auto& c : ok.checks) EXPECT_EQ(c.basis, "deterministic");

  const json worse = run_sweep_json(cfg, quant::Rounding::toward_zero);
  EXPECT_TRUE(worse.contains("fault_injection"));
  const report::GateResult bad = report::check_regression(base, worse);
  const std::string text = report::format_gate(bad, "base", "worse", base);
  EXPECT_FALSE(bad.pass()) << text;
  // Every integer-grid run regresses on both metrics (toward zero: errors up to a whole step, ≈ +6 dB of noise);
  // the printed verdict names them.
  size_t rtn_regressed = 0;
  for (const auto& c : bad.checks)
    if (c.name.rfind("rtn/", 0) == 0 && c.verdict == "regressed") ++rtn_regressed;
  EXPECT_EQ(rtn_regressed, 2u * 12u) << text;
  EXPECT_NE(text.find("REGRESSED  rtn/4b/sym/g128/cpu/gaussian-128x1024  sqnr_db"), std::string::npos) << text;
  EXPECT_NE(text.find("FAIL: "), std::string::npos);
}

TEST(Gate, AcrossInputSamplesUsesTheSamplingNoise) {
  const json base = run_sweep_json(gate_config(1));
  const json other = run_sweep_json(gate_config(2));
  const report::GateResult r = report::check_regression(base, other);
  EXPECT_TRUE(r.pass()) << report::format_gate(r, "seed1", "seed2", base);
  EXPECT_GT(r.z, 3.0);  // Bonferroni over 2·14 comparisons at α = 0.01: z = Φ⁻¹(1 − 0.01/28) = 3.38
  for (const auto& c : r.checks) {
    EXPECT_EQ(c.basis, "sampling");
    EXPECT_GT(c.tolerance, 0);
  }
  const report::GateResult bad = report::check_regression(base, run_sweep_json(gate_config(2), quant::Rounding::toward_zero));
  EXPECT_FALSE(bad.pass());
}

TEST(Gate, MissingRunsFail) {
  const json base = run_sweep_json(gate_config(5));
  json cur = base;
  cur["runs"].erase(cur["runs"].begin());
  const report::GateResult r = report::check_regression(base, cur);
  EXPECT_FALSE(r.pass());
  ASSERT_EQ(r.missing.size(), 1u);
  EXPECT_NE(r.missing[0].find(base["runs"][0]["name"].get<std::string>()), std::string::npos);
}

// Model runs (eval/model's run_model() result as metrics): the recorded standard errors decide.
json model_report(double kl, double kl_se, double dppl, double dmean_se) {
  json r = report::new_report({"qeval", "test"});
  json spec = {{"kind", "model"}, {"model", "m.gguf"}, {"plan", {{"weight", {{"scheme", "rtn"}}}}}};
  json run = {{"kind", "model"},
              {"id", report::run_id(spec)},
              {"name", "m/rtn"},
              {"spec", spec},
              {"metrics",
               {{"bits_per_weight", 4.5},
                {"kl", {{"mean", kl}, {"se", kl_se}, {"bias_bound", 0.0}}},
                {"ppl", {{"ppl", 20.0}, {"ppl_se", 0.4}}},
                {"delta_ppl", dppl},
                {"delta_mean_nll_se", dmean_se},
                {"blame", {{{"layer", "blk.0.attn_q"}, {"output_sqnr_db", 20.0}, {"kl_alone", 0.001}}}}}}};
  r["runs"] = json::array({run});
  r["seed"] = 0;
  r["config"] = json::object();
  r["protocol"] = {{"model", {{"name", "p"}}}};
  r["plan"] = {{"runs", 1}, {"ids", {run["id"]}}};
  return r;
}

TEST(Gate, ModelRunsUseTheirStandardErrors) {
  const json base = model_report(0.010, 0.001, 0.50, 0.002);
  ASSERT_NO_THROW(report::validate(base));
  // z for m = 2 comparisons at α = 0.01: Φ⁻¹(0.995) = 2.576. KL tolerance 2.576·√2·0.001 = 3.64e-3;
  // Δppl tolerance 2.576·√2·(20·0.002) = 0.146.
  const report::GateResult same = report::check_regression(base, model_report(0.0125, 0.001, 0.60, 0.002));
  EXPECT_TRUE(same.pass()) << report::format_gate(same, "b", "c", base);
  EXPECT_NEAR(same.z, 2.5758293, 1e-6);
  for (const auto& c : same.checks) EXPECT_EQ(c.basis, "model-se");
  const report::GateResult worse_kl = report::check_regression(base, model_report(0.0140, 0.001, 0.50, 0.002));
  EXPECT_FALSE(worse_kl.pass());
  const report::GateResult worse_ppl = report::check_regression(base, model_report(0.010, 0.001, 0.70, 0.002));
  EXPECT_FALSE(worse_ppl.pass());
}

// A model report with a reassociation twin (twin KL/Δppl noise) and weight fingerprints.
json twin_report(double kl, double dppl, double twin_kl_delta, double twin_kl_se, const json& layers,
                 bool twin_fingerprint_equal = true) {
  json r = model_report(kl, 0.001, dppl, 0.002);
  json& m = r["runs"][0]["metrics"];
  m["twin"] = {{"kl", {{"delta", twin_kl_delta}, {"se", twin_kl_se}}},
               {"delta_ppl", {{"delta", 1e-5}, {"se", 2e-5}}},
               {"fingerprint_equal", twin_fingerprint_equal}};
  m["fingerprint"] = {{"model", "0"}, {"layers", layers}};
  return r;
}

// With twins the tolerance is z·max(se) + max|Δ| of the twins — a measured float-order noise, thousands of times
// below the sampling se — so a 1 % KL rise fails where the se-based tolerance (3.6e-3 on 0.010: 36 %) would pass it.
TEST(Gate, ModelRunsWithTwinsUseTheMeasuredReassociationNoise) {
  const json fp = {{"blk.0.attn_q", "aa"}, {"blk.0.attn_k", "bb"}};
  const json base = twin_report(0.010, 0.50, 2e-8, 3e-8, fp);
  ASSERT_NO_THROW(report::validate(base));
  // z = 2.576 (m = 2): KL tolerance 2.576·3e-8 + 2e-8 = 9.7e-8; Δppl 2.576·2e-5 + 1e-5 = 6.2e-5.
  const report::GateResult same = report::check_regression(base, twin_report(0.010 + 5e-8, 0.50 + 3e-5, 1e-8, 2e-8, fp));
  EXPECT_TRUE(same.pass()) << report::format_gate(same, "b", "c", base);
  for (const auto& c : same.checks) {
    EXPECT_EQ(c.basis, "twin");
    EXPECT_NEAR(c.tolerance, c.metric == "kl_mean" ? 2.5758293 * 3e-8 + 2e-8 : 2.5758293 * 2e-5 + 1e-5, 1e-12);
  }
  EXPECT_TRUE(same.weight_changes.empty());
  const report::GateResult worse = report::check_regression(base, twin_report(0.0101, 0.50, 1e-8, 2e-8, fp));
  EXPECT_FALSE(worse.pass());
  EXPECT_EQ(worse.regressions(), 1u);
  // The twin of either report counts: a current report without one still gets the baseline's noise.
  json no_twin = model_report(0.010 + 5e-8, 0.50, 0.001, 0.002);
  EXPECT_TRUE(report::check_regression(base, no_twin).pass());
}

// Fingerprints name exactly the layers whose quantized weights changed. A run whose twin kept its weights (RTN)
// reports them as WEIGHTS CHANGED, and --fail-on-weight-change fails on them; a run whose twin changed them
// (GPTQ: float order moves its Hessian) reports them as expected and never fails for that.
TEST(Gate, FingerprintsNameTheChangedLayers) {
  const json a = {{"blk.0.attn_q", "aa"}, {"blk.0.attn_k", "bb"}, {"output", "cc"}};
  const json b = {{"blk.0.attn_q", "aa"}, {"blk.0.attn_k", "b2"}, {"output", "cc"}};
  const json base = twin_report(0.010, 0.50, 2e-8, 3e-8, a);
  report::GateResult r = report::check_regression(base, twin_report(0.010, 0.50, 2e-8, 3e-8, b));
  ASSERT_EQ(r.weight_changes.size(), 1u);
  EXPECT_EQ(r.weight_changes[0].changed, std::vector<std::string>{"blk.0.attn_k"});
  EXPECT_EQ(r.weight_changes[0].layers, 3u);
  EXPECT_FALSE(r.weight_changes[0].float_sensitive);
  EXPECT_TRUE(r.pass());  // the metrics did not move: reported, not failed
  EXPECT_NE(report::format_gate(r, "b", "c", base).find("WEIGHTS CHANGED"), std::string::npos);
  report::GateOptions strict;
  strict.fail_on_weight_change = true;
  EXPECT_FALSE(report::check_regression(base, twin_report(0.010, 0.50, 2e-8, 3e-8, b), strict).pass());
  EXPECT_TRUE(report::check_regression(base, twin_report(0.010, 0.50, 2e-8, 3e-8, a), strict).pass());
  const json gbase = twin_report(0.010, 0.50, 2e-8, 3e-8, a, /*twin_fingerprint_equal=*/false);
  r = report::check_regression(gbase, twin_report(0.010, 0.50, 2e-8, 3e-8, b, false), strict);
  ASSERT_EQ(r.weight_changes.size(), 1u);
  EXPECT_TRUE(r.weight_changes[0].float_sensitive);
  EXPECT_TRUE(r.pass());
}

}  // namespace
}  // namespace qeval
