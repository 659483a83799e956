// eval/report/check.cpp — regression gate: run matching, derived tolerances, verdicts, text/JSON output.
#include "eval/report/check.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include "eval/report/report.hpp"

namespace qeval::report {

namespace {

using nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kDbPerNeper = 10.0 / std::log(10.0);  // 10·log10(e) = 4.343: d(10·log10 x) = 4.343·dx/x

double num_at(const json& j, const char* ptr) {
  const json::json_pointer p(ptr);
  if (!j.contains(p)) return kNaN;
  const json& v = j.at(p);
  return v.is_number() ? v.get<double>() : kNaN;
}
bool is_null_at(const json& j, const char* ptr) {
  const json::json_pointer p(ptr);
  return j.contains(p) && j.at(p).is_null();
}

// The spec without what only picks the sample (seed and what the seed decides).
std::string sample_free_key(const json& spec) {
  json s = spec;
  if (s.contains("input") && s["input"].is_object()) {
    s["input"].erase("seed");
    s["input"].erase("outlier_columns");
  }
  return run_id(s);
}

struct MetricDef {
  const char* name;
  const char* ptr;
  bool higher_is_better;
  bool null_is_best;  // SQNR null = exact reconstruction (+inf)
};

}  // namespace

double deterministic_rel_noise(const json& m, double* rel_signal) {
  const double n = std::max(1.0, num_at(m, "/elements"));
  const double a = num_at(m, "/signal/max_abs");
  const double mse = num_at(m, "/mse");
  // Reassociation of a double sum of n non-negative terms: |Δ| ≤ (n − 1)·u64·Σ (Higham, Accuracy and Stability
  // of Numerical Algorithms, §4.2, any summation order). 4.2M elements: 4.7e-10 relative.
  const double reassoc = (n - 1.0) * kU64;
  // Per element: the input may differ by 1 float ulp (≤ 2·u32·|x|: libm's last-bit differences in the
  // generator), and with it the group's scale and x̂ (≤ 2·u32·|x̂|, |x̂| ≤ A + s/2 ≤ 2A), so
  // ||e'| − |e|| ≤ 2·u32·(A + 2A) = 6·u32·A — a code flipping at a rounding tie changes the sign of e, not
  // |e|. Σ 2|e|·6·u32·A / Σe² ≤ 12·u32·A·Σ|e|/Σe² ≤ 12·u32·A/rms(e) (Cauchy–Schwarz: Σ|e| ≤ √(n·Σe²)).
  double per_elem = 0;
  if (std::isfinite(a) && std::isfinite(mse) && mse > 0) per_elem = 12.0 * kU32 * a / std::sqrt(mse);
  if (rel_signal) *rel_signal = 4.0 * kU32 + reassoc;  // x² moves by ≤ 2·(2·u32) relative
  return per_elem + reassoc;
}

double inverse_normal_cdf(double p) {
  if (!(p > 0 && p < 1)) return kNaN;
  // Φ(x) = erfc(−x/√2)/2 is increasing; bisect on [−40, 40].
  double lo = -40, hi = 40;
  for (int i = 0; i < 200 && hi - lo > 1e-13; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

bool GateResult::pass() const {
  return regressions() == 0 && missing.empty() && failing_weight_changes() == 0 && agreement_failures.empty();
}

size_t GateResult::failing_weight_changes() const {
  size_t n = 0;
  for (const auto& w : weight_changes) n += fail_on_weight_change && !w.float_sensitive;
  return n;
}

size_t GateResult::regressions() const {
  size_t n = 0;
  for (const auto& c : checks) n += c.verdict == "regressed" || c.verdict == "error";
  return n;
}

json GateResult::to_json() const {
  json j;
  j["pass"] = pass();
  j["regressions"] = regressions();
  j["z"] = z;
  j["missing"] = missing;
  j["added"] = added;
  j["notes"] = notes;
  json wc = json::array();
  for (const auto& w : weight_changes)
    wc.push_back({{"name", w.name}, {"changed", w.changed}, {"layers", w.layers}, {"float_sensitive", w.float_sensitive}});
  j["weight_changes"] = wc;
  j["fail_on_weight_change"] = fail_on_weight_change;
  j["agreement_failures"] = agreement_failures;
  json cs = json::array();
  for (const auto& c : checks)
    cs.push_back({{"id", c.id},
                  {"name", c.name},
                  {"metric", c.metric},
                  {"baseline", num(c.baseline)},
                  {"current", num(c.current)},
                  {"worse_by", num(c.worse_by)},
                  {"tolerance", num(c.tolerance)},
                  {"basis", c.basis},
                  {"verdict", c.verdict},
                  {"note", c.note}});
  j["checks"] = cs;
  return j;
}

namespace {

struct Pair {
  const json* b;
  const json* c;
  bool same_sample;
};

// Pairs baseline runs with current ones: by id, else by sample-free key; the rest are missing / added.
std::vector<Pair> match_runs(const json& base, const json& cur, GateResult& res) {
  std::map<std::string, const json*> cur_by_id, cur_by_key;
  for (const auto& r : cur.at("runs")) {
    cur_by_id.emplace(r.at("id").get<std::string>(), &r);
    cur_by_key.emplace(sample_free_key(r.at("spec")), &r);
  }
  std::vector<Pair> pairs;
  std::map<std::string, bool> matched_cur;
  for (const auto& b : base.at("runs")) {
    const std::string id = b.at("id").get<std::string>();
    auto it = cur_by_id.find(id);
    if (it != cur_by_id.end()) {
      pairs.push_back({&b, it->second, true});
      matched_cur[id] = true;
      continue;
    }
    auto kt = cur_by_key.find(sample_free_key(b.at("spec")));
    if (kt != cur_by_key.end() && !matched_cur.count(kt->second->at("id").get<std::string>())) {
      pairs.push_back({&b, kt->second, false});
      matched_cur[kt->second->at("id").get<std::string>()] = true;
      continue;
    }
    res.missing.push_back(b.value("name", id) + " (" + id + ")");
  }
  for (const auto& r : cur.at("runs"))
    if (!matched_cur.count(r.at("id").get<std::string>())) res.added.push_back(r.value("name", r.at("id").get<std::string>()));
  return pairs;
}

const std::map<std::string, std::vector<MetricDef>>& metric_defs() {
  static const std::map<std::string, std::vector<MetricDef>> defs = {
      {"tensor", {{"sqnr_db", "/metrics/sqnr_db", true, true}, {"mse", "/metrics/mse", false, false}}},
      {"model", {{"kl_mean", "/metrics/kl/mean", false, false}, {"delta_ppl", "/metrics/delta_ppl", false, false}}},
  };
  return defs;
}

// Same-spec model runs: the layers whose fingerprint (eval/model/fingerprint.hpp) differs, exactly.
void compare_fingerprints(const json& b, const json& c, const std::string& name, GateResult& res) {
  const json::json_pointer lp("/metrics/fingerprint/layers");
  if (!b.contains(lp) || !c.contains(lp)) {
    if (b.contains(lp) != c.contains(lp))
      res.notes.push_back("run " + name + ": only one report has weight fingerprints (an older qeval made the other)");
    return;
  }
  const json& lb = b.at(lp);
  const json& lc = c.at(lp);
  WeightChange wc;
  wc.name = name;
  wc.layers = lb.size();
  for (const auto& [layer, h] : lb.items())
    if (!lc.contains(layer) || lc[layer] != h) wc.changed.push_back(layer);
  for (const auto& [layer, h] : lc.items())
    if (!lb.contains(layer)) wc.changed.push_back(layer + " (new)");
  if (wc.changed.empty()) return;
  // A run whose reassociation twin quantized differently has weights that float summation order moves
  // (GPTQ's Hessian, AWQ's search read the forward): a change is then expected on another machine.
  const json::json_pointer tp("/metrics/twin/fingerprint_equal");
  wc.float_sensitive = (b.contains(tp) && b.at(tp) == false) || (c.contains(tp) && c.at(tp) == false);
  res.weight_changes.push_back(wc);
}

// The twin's figures for a model metric: {delta, se} at /metrics/twin/<kl|delta_ppl>, or nullopt.
std::optional<std::pair<double, double>> twin_noise(const json& r, const std::string& metric) {
  const std::string base = std::string("/metrics/twin/") + (metric == "kl_mean" ? "kl" : "delta_ppl");
  const double d = num_at(r, (base + "/delta").c_str()), se = num_at(r, (base + "/se").c_str());
  if (!std::isfinite(d) || !std::isfinite(se)) return std::nullopt;
  return std::make_pair(d, se);
}

// Model metric tolerance. With a reassociation twin in either report (docs/regression-gate.md, case 3):
//   tol = z·max(se_b, se_c) + max(|Δ_b|, |Δ_c|)
// (the twin measured how far another summation order moves this very run; the two reports are two such orders).
// Without one: the sampling standard errors of the protocol, z·√(se_b² + se_c²) (+ the KL cache's bias bounds).
void model_tolerance(const json& b, const json& c, double z, MetricCheck& mc) {
  const auto tb = twin_noise(b, mc.metric), tc = twin_noise(c, mc.metric);
  if (tb || tc) {
    double se = 0, d = 0;
    for (const auto& t : {tb, tc})
      if (t) se = std::max(se, t->second), d = std::max(d, std::fabs(t->first));
    mc.tolerance = z * se + d;
    mc.basis = "twin";
    return;
  }
  double se_b = kNaN, se_c = kNaN, bias = 0;
  if (mc.metric == "kl_mean") {
    se_b = num_at(b, "/metrics/kl/se");
    se_c = num_at(c, "/metrics/kl/se");
    const double bb = num_at(b, "/metrics/kl/bias_bound"), bc = num_at(c, "/metrics/kl/bias_bound");
    bias = (std::isfinite(bb) ? bb : 0) + (std::isfinite(bc) ? bc : 0);
  } else {
    auto dse = [](const json& r) {
      const double ppl = num_at(r, "/metrics/ppl/ppl"), paired = num_at(r, "/metrics/delta_mean_nll_se");
      if (std::isfinite(ppl) && std::isfinite(paired)) return ppl * paired;  // delta method: dppl = ppl·dmean
      return num_at(r, "/metrics/ppl/ppl_se");
    };
    se_b = dse(b);
    se_c = dse(c);
  }
  if (!std::isfinite(se_b) || !std::isfinite(se_c)) {
    mc.verdict = "error";
    mc.note = "no standard error recorded for " + mc.metric;
    mc.tolerance = kNaN;
    return;
  }
  mc.tolerance = z * std::sqrt(se_b * se_b + se_c * se_c) + bias;
  mc.basis = "model-se";
  mc.note = "no reassociation twin in either report: tolerance from sampling standard errors (run with --twin)";
}

// Tensor metric tolerance: the deterministic bound, plus sampling noise across input samples (cases 1 and 2).
void tensor_tolerance(const json& b, const json& c, const MetricDef& d, bool same_sample, double z, MetricCheck& mc) {
  double rs_b = 0, rs_c = 0;
  const double re = std::max(deterministic_rel_noise(b.at("metrics"), &rs_b), deterministic_rel_noise(c.at("metrics"), &rs_c));
  const double rs = std::max(rs_b, rs_c);
  const bool sqnr = std::string(d.name) == "sqnr_db";
  mc.tolerance = sqnr ? kDbPerNeper * (re + rs) : std::max(mc.baseline, mc.current) * re;
  mc.basis = "deterministic";
  if (same_sample) return;
  const char* se_ptr = sqnr ? "/metrics/sampling/sqnr_se_db" : "/metrics/sampling/mse_se";
  const double se_b = num_at(b, se_ptr), se_c = num_at(c, se_ptr);
  if (!std::isfinite(se_b) || !std::isfinite(se_c)) {
    mc.verdict = "error";
    mc.note += "; no sampling standard error recorded (tensor protocol sampling \"rows\" is needed to compare "
               "different samples)";
    mc.tolerance = kNaN;
    return;
  }
  mc.tolerance += z * std::sqrt(se_b * se_b + se_c * se_c);
  mc.basis = "sampling";
}

// Nulls: SQNR null = exact (+inf, the best); elsewhere null = not computed. Returns false when a verdict was set.
bool judge_non_numbers(const json& b, const json& c, const MetricDef& d, MetricCheck& mc) {
  const bool bn = is_null_at(b, d.ptr), cn = is_null_at(c, d.ptr);
  if (!bn && !cn && std::isfinite(mc.baseline) && std::isfinite(mc.current)) return true;
  if (d.null_is_best && bn && cn) mc.verdict = "ok";
  else if (d.null_is_best && bn && std::isfinite(mc.current)) mc.verdict = "regressed", mc.note = "was exact";
  else if (d.null_is_best && cn && std::isfinite(mc.baseline)) mc.verdict = "improved", mc.note = "now exact";
  else if (!std::isfinite(mc.baseline) && !std::isfinite(mc.current)) mc.verdict = "ok", mc.note = "not measured";
  else mc.verdict = "error", mc.note = "the metric is missing from one of the reports";
  mc.worse_by = kNaN;
  mc.tolerance = kNaN;
  return false;
}

// Non-finite outputs for finite inputs are a scheme bug: never more than the baseline had.
void check_non_finite(const json& b, const json& c, const std::string& name, GateResult& res) {
  const double nf_b = num_at(b, "/metrics/non_finite_outputs"), nf_c = num_at(c, "/metrics/non_finite_outputs");
  if (!std::isfinite(nf_c) || nf_c <= (std::isfinite(nf_b) ? nf_b : 0.0)) return;
  MetricCheck mc;
  mc.id = b.at("id").get<std::string>();
  mc.name = name;
  mc.metric = "non_finite_outputs";
  mc.baseline = std::isfinite(nf_b) ? nf_b : 0.0;
  mc.current = nf_c;
  mc.worse_by = nf_c - mc.baseline;
  mc.basis = "exact";
  mc.verdict = "regressed";
  res.checks.push_back(mc);
}

void check_pair(const Pair& p, double z, GateResult& res) {
  const json& b = *p.b;
  const json& c = *p.c;
  const std::string kind = b.value("kind", std::string());
  const std::string name = b.value("name", b.at("id").get<std::string>());
  if (!metric_defs().count(kind)) {
    res.notes.push_back("run " + name + ": kind '" + kind + "' has no gated metrics in this qeval");
    return;
  }
  check_non_finite(b, c, name, res);
  if (kind == "model" && p.same_sample) compare_fingerprints(b, c, name, res);
  for (const MetricDef& d : metric_defs().at(kind)) {
    MetricCheck mc;
    mc.id = b.at("id").get<std::string>();
    mc.name = name;
    mc.metric = d.name;
    mc.baseline = num_at(b, d.ptr);
    mc.current = num_at(c, d.ptr);
    if (!p.same_sample) mc.note = "other input sample (seed " + c.at("spec").at("input").value("seed", json()).dump() +
                                  " vs " + b.at("spec").at("input").value("seed", json()).dump() + ")";
    if (judge_non_numbers(b, c, d, mc)) {
      mc.worse_by = d.higher_is_better ? mc.baseline - mc.current : mc.current - mc.baseline;
      if (kind == "tensor") tensor_tolerance(b, c, d, p.same_sample, z, mc);
      else model_tolerance(b, c, z, mc);
      if (mc.verdict.empty()) {
        if (mc.worse_by > mc.tolerance) mc.verdict = "regressed";
        else if (-mc.worse_by > mc.tolerance) mc.verdict = "improved";
        else mc.verdict = "ok";
      }
    }
    res.checks.push_back(mc);
  }
}

}  // namespace

namespace {
// Model runs on a real-kernel backend whose metrics.agreement says they left their bound.
void check_agreement(const json& cur, GateResult& res) {
  if (!cur.contains("runs") || !cur["runs"].is_array()) return;
  for (const json& r : cur["runs"]) {
    const json a = r.contains("metrics") && r["metrics"].is_object() ? r["metrics"].value("agreement", json()) : json();
    if (!a.is_object() || a.value("within_bound", true)) continue;
    res.agreement_failures.push_back(r.value("name", r.value("id", std::string("?"))) + ": " +
                                     a.value("exceeded", json::array()).dump() + " beyond the bound " +
                                     a.value("bound", json()).dump());
  }
}
}  // namespace

GateResult check_regression(const json& base, const json& cur, const GateOptions& o) {
  GateResult res;
  check_agreement(cur, res);
  if (base.contains("protocol") && cur.contains("protocol") && base["protocol"] != cur["protocol"])
    res.notes.push_back("the protocols differ (baseline " + base["protocol"].dump() + ", current " + cur["protocol"].dump() +
                        "): runs under another protocol do not match");
  if (cur.contains("fault_injection"))
    res.notes.push_back("the current report was produced with FAULT INJECTION " + cur["fault_injection"].dump());
  const std::vector<Pair> pairs = match_runs(base, cur, res);
  // Bonferroni: m = number of statistical comparisons (model runs; tensor runs across samples).
  size_t m = 0;
  for (const auto& p : pairs) {
    const std::string kind = p.b->value("kind", std::string());
    if (metric_defs().count(kind) && (kind == "model" || !p.same_sample)) m += metric_defs().at(kind).size();
  }
  res.z = m > 0 ? inverse_normal_cdf(1.0 - o.alpha / static_cast<double>(m)) : 0.0;
  for (const auto& p : pairs) check_pair(p, res.z, res);
  res.fail_on_weight_change = o.fail_on_weight_change;
  return res;
}

namespace {
std::string g(double v) {
  if (std::isnan(v)) return "null";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}
}  // namespace

std::string format_gate(const GateResult& r, const std::string& bpath, const std::string& cpath, const json& base) {
  std::ostringstream os;
  std::string prov;
  if (base.contains("producer")) {
    const auto& p = base["producer"];
    prov = " (made " + p.value("date", std::string("?")) + " at git " +
           (p.contains("git_sha") && p["git_sha"].is_string() ? p["git_sha"].get<std::string>().substr(0, 12) : std::string("?")) +
           " by `" + p.value("command", std::string("?")) + "`)";
  }
  os << "qeval check: " << cpath << " against baseline " << bpath << prov << "\n";
  size_t det = 0, samp = 0, model = 0, twin = 0, improved = 0;
  for (const auto& c : r.checks) {
    det += c.basis == "deterministic";
    samp += c.basis == "sampling";
    model += c.basis == "model-se";
    twin += c.basis == "twin";
    improved += c.verdict == "improved";
  }
  os << "  " << r.checks.size() << " metric comparison(s): " << det << " deterministic (float reassociation bound), " << samp
     << " across input samples, " << twin << " model (reassociation twin)";
  if (model) os << ", " << model << " model (standard errors only: no twin)";
  if (r.z > 0) os << "; z = " << g(r.z);
  os << "\n";
  for (const auto& n : r.notes) os << "  note: " << n << "\n";
  for (const auto& w : r.weight_changes) {
    std::string list;
    for (size_t i = 0; i < w.changed.size() && i < 6; ++i) list += (i ? ", " : "") + w.changed[i];
    if (w.changed.size() > 6) list += ", ...";
    os << (w.float_sensitive ? "  weights changed (expected: its twin shows float summation order moves them) "
                             : "WEIGHTS CHANGED  ")
       << w.name << ": " << w.changed.size() << " of " << w.layers << " layers (" << list << ")"
       << (w.float_sensitive || r.fail_on_weight_change ? "" : "; the metrics are judged below") << "\n";
  }
  for (const auto& c : r.checks) {
    if (c.verdict != "regressed" && c.verdict != "error") continue;
    os << (c.verdict == "error" ? "ERROR      " : "REGRESSED  ") << c.name << "  " << c.metric << " " << g(c.baseline) << " -> "
       << g(c.current);
    if (std::isfinite(c.worse_by)) os << "  worse by " << g(c.worse_by) << " (tolerance " << g(c.tolerance) << ", " << c.basis << ")";
    if (!c.note.empty()) os << "  [" << c.note << "]";
    os << "\n";
  }
  for (const auto& a : r.agreement_failures) os << "DISAGREES  " << a << " (agreement with backend ref)\n";
  for (const auto& m : r.missing) os << "MISSING    " << m << " (in the baseline, not in the current report)\n";
  if (!r.added.empty()) os << "  " << r.added.size() << " run(s) not in the baseline (not gated; refresh the baseline to gate them)\n";
  if (improved) os << "  " << improved << " metric(s) improved beyond tolerance: refresh the baseline to lock the gain in\n";
  if (r.pass())
    os << "PASS: no regression (" << r.checks.size() << " comparisons)\n";
  else
    os << "FAIL: " << r.regressions() << " regression(s), " << r.missing.size() << " missing run(s), "
       << r.agreement_failures.size() << " run(s) disagreeing with ref"
       << (r.fail_on_weight_change ? ", " + std::to_string(r.failing_weight_changes()) + " run(s) with changed weights" : "")
       << "\n";
  return os.str();
}

json as_baseline(const json& current, const std::string& current_path) {
  json j = current;
  const json prod = producer_json({});
  j["baseline"] = {{"refreshed", utc_now_iso()},
                   {"by", prod.value("user", std::string()) + "@" + prod.value("host", std::string())},
                   {"from", current_path},
                   {"command", current.contains("producer") ? current["producer"].value("command", std::string()) : ""},
                   {"git_sha", current.contains("producer") ? current["producer"].value("git_sha", json()) : json()}};
  return j;
}

}  // namespace qeval::report
