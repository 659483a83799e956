// eval/cli/cmd_check.cpp — `qeval check`: the CI regression gate against a baseline (eval/report/check.hpp,
// docs/regression-gate.md), or --update-baseline.
#include <iostream>
#include <memory>
#include <string>

#include "eval/cli/command.hpp"
#include "eval/report/check.hpp"
#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"

namespace qeval::cli {

namespace {

struct CheckArgs {
  std::string baseline, current;
  bool json = false, update = false, fail_on_weight_change = false;
  double alpha = 0.01;
};

int run_check(const CheckArgs& a) {
  const nlohmann::json cur = report::load_report(a.current);
  if (a.update) {
    report::write_json_atomic(a.baseline, report::as_baseline(cur, a.current));
    std::cout << "qeval check: baseline " << a.baseline << " replaced by " << a.current << " (" << cur["runs"].size()
              << " runs, git " << cur["producer"].value("git_sha", nlohmann::json("unknown")).dump() << ")\n";
    return 0;
  }
  const nlohmann::json base = report::load_report(a.baseline);
  report::GateOptions go;
  go.alpha = a.alpha;
  go.fail_on_weight_change = a.fail_on_weight_change;
  const report::GateResult g = report::check_regression(base, cur, go);
  if (a.json) std::cout << g.to_json().dump(2) << "\n";
  else std::cout << report::format_gate(g, a.baseline, a.current, base);
  return g.pass() ? 0 : 1;
}

}  // namespace

Command add_check_command(CLI::App& app, const Invocation&) {
  auto a = std::make_shared<CheckArgs>();
  CLI::App* c = app.add_subcommand(
      "check", "Regression gate: fail (exit 1) when an error metric (SQNR, MSE, KL, dppl) of a run is worse than in\n"
               "the baseline by more than a tolerance derived from what can legitimately differ (float summation\n"
               "order: measured by the runs' reassociation twins; input samples); names the layers whose quantized\n"
               "weights changed (fingerprints)\n"
               "(docs/regression-gate.md). --update-baseline replaces the baseline with the current report.");
  c->add_option("--baseline", a->baseline, "Baseline report (reports/baseline/<name>.json)")->required();
  c->add_option("current", a->current, "Current report")->required();
  c->add_flag("--json", a->json, "Print the verdict as JSON");
  c->add_flag("--update-baseline", a->update,
              "Write the current report (validated, marked with who/when/from what) over the baseline instead");
  c->add_flag("--fail-on-weight-change", a->fail_on_weight_change,
              "Also fail when a model run's quantized weights changed (fingerprints differ) although they do not\n"
              "depend on float summation order (its twin kept them): for changes that must not move one code");
  c->add_option("--alpha", a->alpha,
                "Family-wise false-alarm probability of comparisons across input samples / model runs (default 0.01)")
      ->check(CLI::Range(1e-12, 0.5));
  return {c, [a] { return run_check(*a); }};
}

}  // namespace qeval::cli
