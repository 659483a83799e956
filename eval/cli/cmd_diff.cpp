// eval/cli/cmd_diff.cpp — `qeval diff`: what changed between two reports (eval/report/diff.hpp).
#include <iostream>
#include <memory>
#include <string>

#include "eval/cli/command.hpp"
#include "eval/report/diff.hpp"
#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"

namespace qeval::cli {

namespace {
struct DiffArgs {
  std::string a, b;
  bool json = false;
};
}  // namespace

Command add_diff_command(CLI::App& app, const Invocation&) {
  auto d = std::make_shared<DiffArgs>();
  CLI::App* c = app.add_subcommand("diff",
                                   "What changed between two reports: runs added/removed, metric deltas per run id,\n"
                                   "config/protocol/environment differences");
  c->add_option("a", d->a, "Old report")->required();
  c->add_option("b", d->b, "New report")->required();
  c->add_flag("--json", d->json, "Print the differences as JSON");
  return {c, [d] {
            const nlohmann::json a = report::load_report(d->a), b = report::load_report(d->b);
            const nlohmann::json diff = report::diff_reports(a, b, d->a, d->b);
            if (d->json) std::cout << diff.dump(2) << "\n";
            else std::cout << report::format_diff(diff);
            return 0;
          }};
}

}  // namespace qeval::cli
