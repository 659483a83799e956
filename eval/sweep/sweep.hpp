// eval/sweep/sweep.hpp — `qeval sweep`: options or --config → plan → engine → report.
//
//   SweepOptions ──config_from_options──▶ config JSON ─┐       (the config is what the report records)
//   --config configs/<name>.json ──load_config_file────┴─▶ plan_sweep (plan.hpp): each entry's axes parsed once
//        (axes.hpp + the kind's input) into typed runs (RunSpec: SchemeConfig/QuantParams + input), validated
//        ──▶ run_engine (engine.hpp: jobs, journal, resume, shards, progress) ──▶ report (report-schema.md)
//        or, with --dry-run / --explain / --plan-json, the plan itself (explain.hpp)
// Run kinds plug in through eval/sweep/run_kind.hpp and run_kinds.def ("tensor", "model").
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/sweep/engine.hpp"
#include "eval/sweep/plan.hpp"
#include "eval/sweep/tensor_kind.hpp"
#include "quant/affine.hpp"

namespace qeval::sweep {

inline constexpr const char* kDefaultReport = "qeval-report.json";

struct SweepOptions {
  // ---- the sweep: a config file, or the axes below (not both)
  std::string config_path;
  std::vector<std::string> schemes{"rtn"};
  std::vector<int64_t> bits;             // empty: each scheme's default (range-checked with the config: axes.hpp)
  std::vector<int64_t> group_sizes;      // empty: each scheme's default; 0 = per row, −1 = per tensor
  std::vector<quant::Mapping> mappings;  // empty: symmetric
  std::vector<std::string> backends;     // empty: cpu (tensor runs), ref (model runs)
  quant::RangeMethod range = quant::RangeMethod::minmax;
  double clip_ratio = 1.0;
  double clip_percentile = 99.99;
  quant::Rounding rounding = quant::Rounding::nearest_even;
  quant::NonFinitePolicy non_finite = quant::NonFinitePolicy::error;
  bool partial_groups = false;     // QuantParams::partial_last_group
  // Scheme options "key=value" (every scheme) or "scheme.key=value" (that scheme only); a key given several
  // times becomes an axis (every value is run).
  std::vector<std::string> options;

  // ---- model runs (kind "model", eval/sweep/model_kind.cpp): set `model` to run on a model instead of a tensor.
  // "default" = the embedded default model (configs/default-model.json) with its protocol. The CLI sets
  // "default" when neither a model nor a tensor input is named and the model runs are built in.
  std::string model;               // "" = tensor runs
  std::string protocol;            // a configs/protocol-*.json; "" = the default model's protocol
  std::vector<std::string> activations;  // activation schemes ("none" = fp activations); empty = none
  int64_t max_windows = -1;        // evaluate only the first N protocol windows (−1: all)
  bool lambada = false;            // also LAMBADA accuracy (when the protocol has a lambada section)
  int64_t blame_windows = 0;       // per-layer blame on this many windows (0: none)

  std::string input = "gaussian";  // a distribution name or a file path (.npy, .f32)
  int64_t rows = kDefaultRows, cols = kDefaultCols;
  bool shape_given = false;        // --rows/--cols given explicitly (an error with a file input)
  std::string raw_shape;           // --shape for .f32 files, e.g. "4096x4096"
  uint64_t seed = 0;
  int student_nu = 3;
  int64_t outlier_channels = 8;
  double outlier_scale = 20.0;

  // ---- execution
  std::string out = kDefaultReport;
  bool write_report = true;
  bool resume = false;
  int jobs = 1;
  std::string shard;               // "i/N", "" = all runs
  ProgressMode progress = ProgressMode::automatic;
  std::optional<quant::Rounding> inject_rounding;  // test-only (hidden --inject-rounding)
  double inject_scale_error = 0.0;                 // test-only (hidden --inject-scale-error)
  bool twin = false;                               // --twin (or the config's "twin": true)
  bool handle_signals = false;
  bool dry_run = false;            // plan (validate everything), list the runs, execute nothing
  bool explain = false;            // dry run that prints each run's typed spec and where it came from (explain.hpp)
  bool plan_json = false;          // dry run that prints the plan as JSON (explain.hpp's plan_json)
  // Versions of libraries only the caller links (e.g. CLI11 in the qeval binary), added to
  // environment.libraries.
  std::map<std::string, std::string> extra_libraries;
};

// The sweep config the axis options describe: {"seed", "sweeps": [{"kind": "tensor" | "model", ...}]} (one
// entry; both kinds share the scheme axes). Only syntax is checked here — --option key=value, --shape/--rows with
// the wrong input kind (std::invalid_argument naming the option); values are validated once, by plan_sweep.
nlohmann::json config_from_options(const SweepOptions& o);

// Rewrites "sweeps[0].group_sizes[0]: ..." as "--group-sizes: ..." for errors of an options-built config.
std::string options_error_text(const std::string& config_error);

// The whole subcommand. Returns the exit status (0, or 130 when interrupted); throws on errors.
int run_sweep(const SweepOptions& o, const std::vector<std::string>& command_line, std::ostream& out, std::ostream& err);

// Command-line list parsing (errors name the option and the value); ranges are checked by plan_sweep.
std::vector<std::string> parse_word_list(const std::string& comma_separated);  // "rtn,nf4" → {"rtn", "nf4"}
std::vector<int64_t> parse_bits_list(const std::vector<std::string>& items);
std::vector<int64_t> parse_group_list(const std::vector<std::string>& items);
std::vector<quant::Mapping> parse_mapping_list(const std::vector<std::string>& items);

}  // namespace qeval::sweep
