// eval/sweep/explain.hpp — the trace of a plan: for each run, the typed spec its kind built (SchemeConfig with its
// QuantParams, the input, the backend), the config paths its values came from, the canonical spec JSON and the id
// (xxh64 of that JSON). `qeval sweep --explain` prints explain_text; `qeval sweep --plan-json` prints plan_json.
//
//   config path (sweeps[0].group_sizes[1]) → axes.hpp (AxisValue<int64_t>) → SchemeConfig.params.group_size
//     → RunSpec::to_json() "config.params.group_size" → run id → execute() hands the typed spec to the scheme
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/sweep/plan.hpp"

namespace qeval::sweep {

// {"seed", "runs": [{"index", "id", "kind", "name", "origin", "typed": RunSpec::explain(), "spec"}], "plan_runs",
//  "duplicates"} for `runs` (a shard's, or all of plan.runs).
nlohmann::json plan_json(const SweepPlan& plan, const std::vector<const Run*>& runs);

// The same as readable text, one block per run.
std::string explain_text(const std::vector<const Run*>& runs);

}  // namespace qeval::sweep
