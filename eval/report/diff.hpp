// eval/report/diff.hpp — `qeval diff a.json b.json`: what changed between two reports.
//
//   {"a": path, "b": path,
//    "config": [{"path": "sweeps[0].bits[1]", "a": 4, "b": 3}, ...],   (also "protocol", "environment",
//    "seed", "fault_injection" differences)
//    "added": [{"id", "name"}], "removed": [{"id", "name"}],
//    "changed": [{"id", "name", "metrics": [{"metric": "sqnr_db", "a": 18.6, "b": 18.1, "delta": -0.5}, ...]}],
//    "unchanged": 12, "timing": {"a_ms": total, "b_ms": total}}
// Runs are matched by id (= the hash of the spec, so a match is the same experiment). Every numeric leaf
// of metrics is compared exactly; timing is summarized, not diffed per run.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace qeval::report {

// Structural differences between two JSON values: [{"path", "a", "b"}] (absent side = null + "only").
nlohmann::json json_differences(const nlohmann::json& a, const nlohmann::json& b, const std::string& path = "",
                                size_t limit = 200);

nlohmann::json diff_reports(const nlohmann::json& a, const nlohmann::json& b, const std::string& a_path,
                            const std::string& b_path);

// The readable table of a diff_reports() result.
std::string format_diff(const nlohmann::json& d);

}  // namespace qeval::report
