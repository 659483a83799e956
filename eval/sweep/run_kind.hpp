// eval/sweep/run_kind.hpp — the sweep engine's unit of work (Run) and the run-kind plug-in interface.
//
// A sweep config's sweeps[i] entries each have a "kind" ("tensor", "model").
// A RunExecutor per kind
//   * expands one entry into Runs with typed specs (eval/sweep/axes.hpp parses the scheme axes; the kind adds its
//     input) — validating every axis value BEFORE any run starts and naming the JSON
//     path of a problem (ConfigError "sweeps[2].group_sizes[1]: 100 does not divide the row length 576 …");
//   * executes one Run into the result fields of its runs[] entry (thread-safe: `--jobs N` calls it from
//     N threads at once, on different runs);
//   * prints a table row for it.
// A Run is self-contained: its `spec` (canonical JSON: scheme config, backend, input, protocol, …) decides
// the result, and its id is report::run_id(spec), so a run can be skipped when already in a journal,
// executed in another process (Slurm shard), and matched across reports (diff, regression gate).
//
// Kinds are listed once, in eval/sweep/run_kinds.def (STYLE.md 1: no static self-registration); tests may add
// kinds at run time with register_executor().
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/sweep/config.hpp"
#include "quant/affine.hpp"

namespace qeval::sweep {

// Table cells: a number with `prec` decimals, or "-" when `v` is not a number; the value at a JSON pointer, or null.
std::string table_number(const nlohmann::json& v, int prec);
const nlohmann::json& json_at(const nlohmann::json& j, const char* pointer);

// A run's typed spec, as its kind planned it: what the executor runs from (never re-parsed from JSON). Each kind
// derives its own (TensorRunSpec, ModelSweepRun). to_json() is the canonical spec JSON the run id hashes; explain()
// shows the typed fields (QuantParams, SchemeConfig, input) and the config paths they came from (`--explain`).
class RunSpec {
 public:
  virtual ~RunSpec() = default;
  virtual nlohmann::json to_json() const = 0;
  virtual nlohmann::json explain() const = 0;
};

struct Run {
  std::string kind;      // "tensor", "model"
  std::string id;        // report::run_id(spec): 16 hex digits
  std::string name;      // readable, e.g. "rtn/4b/sym/g128/cpu/gaussian-1024x4096"
  nlohmann::json spec;   // typed->to_json(): everything that determines the result (canonical JSON)
  std::shared_ptr<const RunSpec> typed;  // what execute() runs from
  std::string origin;    // the config entry it came from, e.g. "sweeps[1]" (for messages)
  double cost = 1.0;     // relative cost for the ETA (tensor runs: elements)
  std::string resource;  // what it loads (input/model key): runs sharing one are executed close together
};

// A Run of `typed`: spec = typed->to_json(), id = report::run_id(spec); the caller fills name, origin, cost, resource.
Run make_run(const std::string& kind, std::shared_ptr<const RunSpec> typed);

// Read-only context of planning (shared by every executor).
struct PlanContext {
  uint64_t seed = 0;             // the config's seed (synthetic inputs without their own)
  nlohmann::json protocol;       // the config's top-level protocol object (may be null)
  std::string base_dir;          // directory relative paths in the config resolve against ("" = cwd)
};

// Shared state of one execution (all runs, all threads). Executors keep loaded inputs here so runs on
// the same input do not reload it; the engine releases a resource when its last run has finished.
class ExecContext {
 public:
  // Test-only fault injection (`qeval sweep --inject-rounding toward_zero`): executors use this rounding
  // instead of the spec's, WITHOUT changing the spec (so the regression gate sees "the same run, worse").
  std::optional<quant::Rounding> inject_rounding;
  // Test-only: model runs' weight scales × (1 + e) after quantization (`--inject-scale-error e`), same contract.
  double inject_scale_error = 0.0;
  // Model runs also run their reassociation twin (`--twin`, config "twin": true): the noise figures of the CI
  // gate's tolerances (eval/model/model_run.hpp). Not part of any spec.
  bool twin = false;

  // Cached shared object for `key`, created by `make` on first use (at most once per key, thread-safe).
  std::shared_ptr<const void> get_or_load(const std::string& key,
                                          const std::function<std::shared_ptr<const void>()>& make);
  void release(const std::string& key);

 private:
  struct Slot {
    std::once_flag once;
    std::shared_ptr<const void> value;
    std::exception_ptr error;
  };
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Slot>> slots_;
};

class RunExecutor {
 public:
  virtual ~RunExecutor() = default;
  virtual std::string kind() const = 0;
  virtual std::string summary() const = 0;  // one line for --help / docs

  // Keys sweeps[i] of this kind may hold (besides "kind"); others are an error naming the path.
  virtual std::vector<std::string> known_keys() const = 0;
  // Validates sweeps[i] (`path` = "sweeps[i]") and expands it into runs, in a stable order. Throws
  // ConfigError naming the JSON path of the first problem. Must not execute anything expensive.
  virtual std::vector<Run> expand(const nlohmann::json& entry, const std::string& path, const PlanContext& ctx) const = 0;
  // Checks what can only be checked at run time on this machine but before any run starts
  // (e.g. that a requested backend is built in and has a device). Default: nothing.
  virtual void preflight(const std::vector<const Run*>& runs) const {}
  // Executes one run; returns the fields of its runs[] entry other than kind/id/name/spec (which the engine
  // adds). Thread-safe. Throws on failure (the message names the run's input and the fix).
  virtual nlohmann::json execute(const Run& run, ExecContext& ctx) const = 0;
  // Console table: header line and one row per finished run (`entry` is the complete runs[] entry).
  virtual std::string table_header() const = 0;
  virtual std::string table_row(const nlohmann::json& entry) const = 0;
  virtual std::string table_legend() const { return ""; }
  // Printed after the legend: what the finished runs of this kind say together (e.g. model runs ranked). `entries`
  // are complete runs[] entries of this kind, in plan order. Default: nothing.
  virtual std::string table_summary(const std::vector<nlohmann::json>& entries) const { return ""; }
};

// The executors of run_kinds.def plus registered ones; nullptr for an unknown kind.
const RunExecutor* find_executor(const std::string& kind);
std::vector<std::string> executor_kinds();
// Adds (or replaces) the executor of its kind — for tests and for kinds built outside qeval_sweep.
void register_executor(std::shared_ptr<RunExecutor> e);

// Factories named in run_kinds.def.
#define QEVAL_RUN_KIND(id, factory, summary) std::shared_ptr<RunExecutor> factory();
#include "eval/sweep/run_kinds.def"
#undef QEVAL_RUN_KIND

}  // namespace qeval::sweep
