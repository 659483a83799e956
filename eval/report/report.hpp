// eval/report/report.hpp — the versioned JSON report: header, environment, configs, per-run results, atomic write.
//
// Schema (docs/report-schema.md is the reference; bump kSchemaVersion when a field's meaning changes):
//   { "schema_version": 2, "tool": {"name": "qeval", "version": "0.1.0"}, "created": "2024-02-29T12:00:00Z",
//     "command_line": ["qeval", "sweep", ...], "producer": {...}, "environment": {...}, "seed": 20240229,
//     "config": {...}, "protocol": {...}, "plan": {"runs": N, "ids": [...]}, "inputs": [...],
//     "runs": [ {"kind": "tensor", "id": "<xxh64 of spec>", "name": ..., "spec": {...}, "config": {...},
//                "tensor": {...}, "metrics": {...}, "timing_ms": {...}}, ... ],
//     "views": {"pareto": [...], "bound_by_tensor_type": [...], "blame": [...]} }
// Run kinds ("tensor"; "model" and "perf" later) and new sections may be added without a version bump;
// readers ignore keys they do not know (eval/report/schema.hpp validates what it knows). Non-finite
// numbers are written as null.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/metrics/metrics.hpp"
#include "schemes/scheme.hpp"

namespace qeval::report {

inline constexpr int kSchemaVersion = 2;
inline constexpr int kOldestReadableSchemaVersion = 1;  // v1 reports are migrated when read (schema.hpp)

// What the build knew about itself (configured by CMake into a generated header).
struct BuildInfo {
  std::string tool_version;  // PROJECT_VERSION
  std::string git_sha;       // `git rev-parse HEAD` at configure time, "unknown" outside a checkout
  bool git_dirty = false;    // `git status --porcelain` was non-empty at configure time
  bool git_known = false;
  std::string compiler_id, compiler_version, build_type;
  std::map<std::string, std::string> libraries;  // name → version; absent when not built in
};
const BuildInfo& build_info();

// "qeval 0.1.0 (git 1a2b3c4d5e6f-dirty, Release, GNU 12.2.0)"
std::string version_string();
// Current UTC time as ISO 8601, e.g. "2024-02-29T12:34:56Z".
std::string utc_now_iso();

// {"cpu": {"model", "flags", "fast_kernels"}, "os": {...}, "hardware_threads", "compiler": {...},
//  "build_type", "git": {"sha", "dirty"}, "libraries": {...}}
nlohmann::json environment_json();

// A report with every header field filled (schema_version, tool, created, command_line, producer,
// environment) and an empty "runs" array.
nlohmann::json new_report(const std::vector<std::string>& command_line);

// Who/what produced a report: {"command": "qeval sweep ...", "user", "host", "date", "git_sha",
// "git_dirty", "tool_version"} — so a committed baseline says how to reproduce it.
nlohmann::json producer_json(const std::vector<std::string>& command_line);

// The stable id of a run: xxh64 of the canonical dump of its spec (nlohmann/json sorts object keys and
// prints the shortest round-trip form of every double, so equal specs give equal text on every platform),
// as 16 lower-case hex digits.
std::string run_id(const nlohmann::json& spec);
// xxh64 of a byte string / a file's content, 16 hex digits (throws std::runtime_error naming the file).
std::string xxh64_hex(const std::string& bytes);
std::string file_xxh64(const std::string& path);

// A copy of a report without what legitimately differs between two executions of the same sweep:
// created, command_line, producer, environment, shard, merged_from, baseline, and every run's timing_ms.
// Two reports of the same sweep — uninterrupted, resumed, run with --jobs N, or merged from Slurm
// shards — are equal after this.
nlohmann::json strip_volatile(const nlohmann::json& report);

// Reads and parses a JSON file; errors name the file (and the parse position).
nlohmann::json read_json_file(const std::string& path);

// A number, or null when not finite (JSON has no NaN/Inf).
nlohmann::json num(double v);

// {"scheme", "label", "params": QuantParams JSON (quant/params_json.hpp), "options": {k: v}}
nlohmann::json config_json(const schemes::SchemeConfig& cfg);
// The metrics of one tensor run (docs/report-schema.md, "metrics").
nlohmann::json metrics_json(const metrics::TensorMetrics& m);

// The result fields of one `kind: "tensor"` entry of runs[] (the sweep engine adds id, name, spec, backend,
// input and the sampling statistics).
struct TensorRunRecord {
  std::string id;                     // unique within the report
  schemes::SchemeConfig config;
  std::string target;                 // the scheme's target: weight | activation | kv_cache
  std::string tensor_name;
  int64_t rows = 0, cols = 0;
  std::string dtype;
  uint64_t seed = 0;
  metrics::TensorMetrics metrics;
  std::map<std::string, double> timing_ms;  // "quantize", "dequantize", "metrics", ...
};
nlohmann::json tensor_run_json(const TensorRunRecord& r);

// Writes `j` to `path` atomically: to a temporary file in the same directory, fsync, then rename(2)
// over the target, so a crash leaves either the old file or the complete new one — never half a
// report. Throws std::runtime_error naming the path and the system error.
void write_json_atomic(const std::string& path, const nlohmann::json& j, int indent = 2);

}  // namespace qeval::report
