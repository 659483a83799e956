// eval/sweep/engine.hpp — the sweep engine: executes a plan's runs (in parallel with --jobs), journals each
// result durably as it finishes, resumes after a crash or Ctrl-C, shows progress, writes the final report.
//
// Journal: <out>.jsonl next to the report (journal.hpp: one fsync'ed line per finished run; a crash loses at most
// the runs in flight). Progress: progress.hpp.
// On completion the report is built from the journal (entries in plan order, whatever order they finished
// in), written atomically (report::write_json_atomic), and the journal is removed.
//
//   --resume     skips every run whose id is in the journal (or in an existing report at <out>); runs are
//                matched by id = hash of their spec, so a finished run is never repeated and never mixed up
//   SIGINT/TERM  first: no new runs start, running ones finish and are journaled, exit status 130 and a
//                "continue with ... --resume" line; second: abandon running runs at once (exit 130)
//   --jobs N     N worker threads take runs in plan order; every run is single-threaded and deterministic,
//                so the report equals --jobs 1's (table rows print in completion order)
//   --shard i/N  only runs i, i+N, i+2N, … of the plan; the report records the shard and the whole plan's
//                ids so `qeval merge` can check completeness and restore plan order
#pragma once

#include <atomic>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/sweep/journal.hpp"
#include "eval/sweep/plan.hpp"
#include "eval/sweep/progress.hpp"

namespace qeval::sweep {

struct EngineOptions {
  std::string out;              // report path; "" = no report and no journal (--no-report)
  bool resume = false;
  int jobs = 1;                 // ≥ 1
  int shard_index = 0, shard_count = 1;
  ProgressMode progress = ProgressMode::automatic;
  std::optional<quant::Rounding> inject_rounding;  // test-only fault injection (hidden --inject-rounding)
  double inject_scale_error = 0.0;                 // test-only (hidden --inject-scale-error)
  bool twin = false;                               // model runs with their reassociation twin (--twin)
  std::vector<std::string> command_line;
  std::map<std::string, std::string> extra_libraries;  // added to environment.libraries (e.g. cli11)
  bool handle_signals = false;  // install SIGINT/SIGTERM handlers (the CLI does)
  const std::atomic<bool>* stop = nullptr;  // tests: raise to stop scheduling new runs (as one SIGINT)
};

struct EngineResult {
  int exit_code = 0;        // 0 done; 130 interrupted
  size_t planned = 0;       // runs of this shard
  size_t skipped = 0;       // already finished (resume)
  size_t executed = 0;
  bool interrupted = false;
  nlohmann::json report;    // the final report (null when interrupted)
};

// Runs the plan. Throws (after letting running runs finish and journaling them) when a run fails; the
// journal then allows --resume once the cause is fixed.
EngineResult run_engine(const SweepPlan& plan, const EngineOptions& o, std::ostream& out, std::ostream& err);

// The report of `entries` (complete runs[] entries, any order) under `plan`: header, producer, config,
// protocol, seed, inputs, plan ids, shard, runs in plan order, views.
nlohmann::json build_report(const SweepPlan& plan, const std::vector<nlohmann::json>& entries, const EngineOptions& o);


}  // namespace qeval::sweep
