// eval/cli/cmd_merge.cpp — `qeval merge`: one report from the reports of a sweep's shards (eval/report/merge.hpp).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "eval/cli/command.hpp"
#include "eval/report/merge.hpp"
#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"

namespace qeval::cli {

namespace {
struct MergeArgs {
  std::vector<std::string> parts;
  std::string out;
  bool allow_partial = false;
};
}  // namespace

Command add_merge_command(CLI::App& app, const Invocation& inv) {
  auto a = std::make_shared<MergeArgs>();
  CLI::App* c = app.add_subcommand(
      "merge", "Merge the reports of one sweep's shards (qeval sweep --shard i/N, Slurm array tasks) into one\n"
               "report in plan order; checks they come from the same sweep and that no run is missing");
  c->add_option("parts", a->parts, "Shard reports")->required();
  c->add_option("-o,--out", a->out, "Merged report path")->required();
  c->add_flag("--allow-partial", a->allow_partial, "Write the merged report even when planned runs are missing");
  return {c, [a, inv] {
            std::vector<nlohmann::json> parts;
            for (const auto& p : a->parts) parts.push_back(report::load_report(p));
            const nlohmann::json m = report::merge_reports(parts, a->parts, inv.command_line, a->allow_partial);
            report::validate(m);
            report::write_json_atomic(a->out, m);
            std::cout << "merge: " << m["runs"].size() << " run(s) from " << parts.size() << " report(s) written to "
                      << a->out << "\n";
            return 0;
          }};
}

}  // namespace qeval::cli
