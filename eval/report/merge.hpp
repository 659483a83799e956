// eval/report/merge.hpp — `qeval merge parts... -o merged.json`: per-shard (Slurm task) reports into one.
//
// The parts must come from the same sweep: equal config, protocol, seed and plan (plan.ids, the whole
// sweep's run ids in plan order, which every shard report carries). Runs are taken by id; a run present in
// several parts must have identical results there (timing aside); the merged report lists the runs in
// plan order, so it equals the report of the same sweep run in one process, up to report::strip_volatile
// fields. Missing runs are an error naming how many and which shards are present, unless allow_partial.
// The merged report's environment is the first part's; each part's environment, host, shard and creation
// time are kept in merged_from[].
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qeval::report {

nlohmann::json merge_reports(const std::vector<nlohmann::json>& parts, const std::vector<std::string>& paths,
                             const std::vector<std::string>& command_line, bool allow_partial = false);

}  // namespace qeval::report
