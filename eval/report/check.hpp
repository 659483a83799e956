// eval/report/check.hpp — the CI regression gate: compare a report with a committed baseline, run by run,
// and fail when an error metric got worse by more than a tolerance derived from the numbers' own noise.
//
// Runs are matched by id (the hash of their spec). A baseline run whose id is absent is matched by its
// "sample-free key" (the spec without input.seed / input.outlier_columns): the same experiment on another
// sample of the same distribution. Per matched run and metric (tensor: SQNR, MSE; model: KL mean, Δppl):
//
//   same spec (identical inputs): the result is deterministic on one machine; across CPUs/compilers only the
//     order of double reductions and 1-ulp differences of libm in input generation can move it. Bound
//     (docs/regression-gate.md derives it):
//       rel(Σe²) ≤ 12·u32·A/rms(e) + (n − 1)·u64,  rel(Σx²) ≤ 4·u32 + (n − 1)·u64
//       tol(SQNR) = 10·log10(e)·(rel(Σx²) + rel(Σe²)) dB,  tol(MSE) = MSE·rel(Σe²)
//     with u32 = 2⁻²⁴, u64 = 2⁻⁵³, A = max|x|, rms(e) = √MSE, n elements. A/rms(e) grows as 2^b, so the bound
//     is set by the bit width: ≈ 1e-4 dB at 4 bits, ≈ 2e-3 dB at 8 bits for N(0,1) data.
//   other sample (seed differs): tol = z·√(se_b² + se_c²) + the bound above, se = metrics.sampling.* (SQNR/MSE
//     standard error over the rows), z = Φ⁻¹(1 − α/m) (Bonferroni over the m such comparisons, α = 0.01
//     family-wise false-alarm probability).
//   model runs (same spec): first the weight fingerprints — the layers whose quantized weights changed, exactly;
//     then KL mean and Δppl with tol = z·max(se_b, se_c) + max(|Δ_b|, |Δ_c|) from the runs' reassociation twins
//     (eval/model/model_run.hpp: the run repeated with another float summation order, compared token by token —
//     what another CPU can legitimately change). Without a twin: z·√(se_b² + se_c²) (+ the KL cache's bias
//     bounds) from the protocol's sampling standard errors, which is far looser.
// Also fatal: a baseline run missing from the current report, and more non-finite outputs than before.
// And, without any baseline: a current model run on a real-kernel backend whose agreement with the ref path
// (metrics.agreement, model_run.hpp) exceeds its own bound (within_bound false; docs/model-eval.md).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qeval::report {

struct GateOptions {
  double alpha = 0.01;  // family-wise false-alarm probability of the statistical comparisons
  // Fail when a same-spec model run's quantized weights changed (fingerprints differ) although its twin shows they
  // do not depend on float summation order — for changes that must not move a single code (refactors).
  bool fail_on_weight_change = false;
};

// A same-spec model run whose weight fingerprints differ from the baseline's: exactly which layers.
struct WeightChange {
  std::string name;
  std::vector<std::string> changed;  // layer names ("<layer> (new)" for layers only the current run has)
  size_t layers = 0;                 // layers with a fingerprint in the baseline run
  // Its reassociation twin quantized differently too: float summation order moves this run's weights (GPTQ, AWQ,
  // SmoothQuant read the forward), so another machine is expected to change them. Never fails the gate.
  bool float_sensitive = false;
};

struct MetricCheck {
  std::string id, name, metric;
  double baseline = 0, current = 0;
  double worse_by = 0;    // > 0: worse (in the metric's unit: dB for SQNR, absolute for MSE/KL/Δppl)
  double tolerance = 0;
  std::string basis;      // "deterministic" | "sampling" | "model-se"
  std::string verdict;    // "ok" | "regressed" | "improved" | "error"
  std::string note;
};

struct GateResult {
  std::vector<MetricCheck> checks;
  std::vector<std::string> missing;   // names of baseline runs absent from the current report
  std::vector<std::string> added;     // names of current runs absent from the baseline
  std::vector<std::string> notes;     // protocol/config/environment differences worth knowing
  std::vector<WeightChange> weight_changes;
  // Current model runs whose agreement with ref exceeds its bound: "<name>: <metrics over the bound>".
  std::vector<std::string> agreement_failures;
  bool fail_on_weight_change = false;  // GateOptions::fail_on_weight_change, as checked
  double z = 0;                       // the quantile used for statistical comparisons (0: none)
  bool pass() const;
  size_t regressions() const;
  size_t failing_weight_changes() const;  // counted only under fail_on_weight_change
  nlohmann::json to_json() const;
};

// u32/u64 unit round-offs and the deterministic bound, exposed for tests and the docs.
inline constexpr double kU32 = 5.9604644775390625e-08;   // 2^-24
inline constexpr double kU64 = 1.1102230246251565e-16;   // 2^-53
// Relative bound on Σe² and Σx² changes for a tensor run's metrics object (uses elements, signal.max_abs, mse).
double deterministic_rel_noise(const nlohmann::json& metrics, double* rel_signal = nullptr);

// Φ⁻¹(p) for p in (0, 1) (bisection on erfc; |error| < 1e-12).
double inverse_normal_cdf(double p);

GateResult check_regression(const nlohmann::json& baseline, const nlohmann::json& current, const GateOptions& o = {});

// The human-readable verdict (one line per regression, summary last).
std::string format_gate(const GateResult& r, const std::string& baseline_path, const std::string& current_path,
                        const nlohmann::json& baseline);

// A copy of `current` marked as a baseline: {"baseline": {"refreshed": date, "by": user@host, "from": path,
// "command": producer.command, "git_sha": ...}}.
nlohmann::json as_baseline(const nlohmann::json& current, const std::string& current_path);

}  // namespace qeval::report
