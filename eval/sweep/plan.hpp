// eval/sweep/plan.hpp — sweep configs (configs/<name>.json) and the plan: every run, validated before any runs.
//
// A sweep config:
//   {
//     "version": 1,                       // config format version (optional; 1)
//     "name": "ci-fast",                  // optional
//     "description": "...",              // optional
//     "seed": 20240229,                   // synthetic inputs without their own seed (default: $QEVAL_SEED or 20240229)
//     "protocol": {"tensor": {...}, "model": "configs/protocol-wikitext2-512-quick.json"},  // per run kind, optional
//     "twin": true,                       // model runs also run their reassociation twin (the CI gate's noise
//                                         // figures, eval/model/model_run.hpp); not part of any run's id
//     "sweeps": [ {"kind": "tensor", "schemes": [...], "bits": [...], ...}, ... ]       // eval/sweep/tensor_kind.hpp
//   }
// Every problem is a ConfigError naming its JSON path, raised before any run starts:
//   sweeps[2].group_sizes[1]: group size 100 does not divide the row length 576 … (sweeps[2].inputs[0]: …)
// `qeval sweep` without --config builds the same JSON from its options (one sweeps[] entry), so both go
// through one path.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/sweep/run_kind.hpp"

namespace qeval::sweep {

struct SweepPlan {
  nlohmann::json config;    // the config as given, with "seed" filled in
  nlohmann::json protocol;  // per run kind actually used: {"tensor": {...}}
  uint64_t seed = 0;
  std::vector<Run> runs;    // plan order (sweeps[] order, then each kind's enumeration order), duplicates removed
  nlohmann::json inputs;    // distinct input descriptions of the runs, in order of first use
  size_t duplicates = 0;    // runs that appeared more than once (collapsed)
};

// Validates and expands a config. `base_dir`: where relative input paths in the config resolve ("" = cwd).
// `default_seed`: used when the config has no "seed".
SweepPlan plan_sweep(const nlohmann::json& config, uint64_t default_seed, const std::string& base_dir = "");

// The runs of shard `index` of `count` (0-based): every count-th run of the plan starting at index, so
// shards get similar mixes of cheap and expensive runs. Throws std::invalid_argument for a bad shard.
std::vector<const Run*> shard_runs(const SweepPlan& plan, int index, int count);

// "i/N" → (i, N); throws std::invalid_argument naming the text ("--shard 3/2: index must be < count").
void parse_shard(const std::string& text, int* index, int* count);

}  // namespace qeval::sweep
