// eval/report/schema.hpp — reading reports: validation against docs/report-schema.md, v1 → v2 migration.
//
// Every `qeval` command that reads a report (report, diff, check, merge, sweep --resume) goes through
// load_report(): it parses the file, migrates an older schema_version to the current one in memory, and
// validates the fields this qeval knows — type and presence — naming the JSON path of the first problem:
//   report 'cur.json': runs[3].metrics.sqnr_db: expected a number or null, got string "18.6"
// Unknown keys are ignored (later versions may add them); unknown run kinds are accepted with only the
// common fields (kind, id, name, spec) checked; a schema_version newer than this qeval is an error.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace qeval::report {

// A report that does not follow the schema. what() = "<path>: <problem>"; path() alone is kept too.
class ReportError : public std::runtime_error {
 public:
  ReportError(std::string path, const std::string& problem)
      : std::runtime_error((path.empty() ? std::string("(top level)") : path) + ": " + problem), path_(std::move(path)) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Upgrades a parsed report to kSchemaVersion (a no-op for current reports). v1 → v2: runs[].id (the
// readable "rtn/4b/sym/g128/synthetic") moves to runs[].name; runs[].spec is rebuilt from the v1 fields
// and runs[].id becomes run_id(spec); runs[].backend = "cpu", runs[].input = the top-level input;
// producer, config ({"migrated_from_schema": 1}), protocol (the tensor default), plan and views are filled.
// Throws ReportError for a missing/unknown schema_version.
nlohmann::json migrate(nlohmann::json report);

// Validates a current-version report; throws ReportError naming the JSON path of the first problem.
void validate(const nlohmann::json& report);

// read_json_file + migrate + validate; errors are std::runtime_error "report '<path>': <json path>: <problem>".
nlohmann::json load_report(const std::string& path);

}  // namespace qeval::report
