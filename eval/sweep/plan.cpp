// eval/sweep/plan.cpp — sweep config validation and expansion into the plan (all runs, before any executes).
#include "eval/sweep/plan.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace qeval::sweep {

namespace {

using nlohmann::json;

std::string kind_list() {
  std::string kinds;
  for (const auto& x : executor_kinds()) kinds += (kinds.empty() ? "" : ", ") + x;
  return kinds;
}

// The top-level keys: known, of the right types; returns the seed (default_seed when absent).
uint64_t check_top_level(const json& config, uint64_t default_seed) {
  if (!config.is_object()) throw ConfigError("(top level)", "a sweep config is a JSON object with \"sweeps\": [...]");
  static const std::set<std::string> top = {"version", "name", "description", "seed", "protocol", "twin", "sweeps"};
  for (const auto& [k, v] : config.items())
    if (!top.count(k)) throw ConfigError(k, "unknown key (known: version, name, description, seed, protocol, twin, sweeps)");
  if (config.contains("version") && config["version"] != kConfigVersion)
    throw ConfigError("version", config["version"].dump() + " is not a config version this qeval reads (" +
                                     std::to_string(kConfigVersion) + ")");
  for (const char* k : {"name", "description"})
    if (config.contains(k) && !config[k].is_string()) throw ConfigError(k, "is not a string");
  if (config.contains("twin") && !config["twin"].is_boolean())
    throw ConfigError("twin", config["twin"].dump() + " is not true or false (model runs with their reassociation twin)");
  return config.contains("seed") ? as_seed(config["seed"], "seed") : default_seed;
}

// The top-level protocol object, keyed by run kind (null when absent).
json top_protocol(const json& config) {
  if (!config.contains("protocol")) return json();
  if (!config["protocol"].is_object())
    throw ConfigError("protocol", "is not an object keyed by run kind, e.g. {\"tensor\": {\"sampling\": \"rows\"}}");
  for (const auto& [k, v] : config["protocol"].items())
    if (!find_executor(k))
      throw ConfigError(key_path("protocol", k), "'" + k + "' is not a run kind this qeval can execute (" + kind_list() + ")");
  return config["protocol"];
}

// The executor of sweeps[i] (`path`), after checking its keys are ones that kind reads.
const RunExecutor& entry_executor(const json& e, const std::string& path) {
  if (!e.is_object()) throw ConfigError(path, "is not an object");
  const std::string kind = e.contains("kind") ? as_string(e["kind"], key_path(path, "kind"), "a string") : "tensor";
  const RunExecutor* ex = find_executor(kind);
  if (!ex) {
    const std::string hint = kind == "model" ? "; model runs need the LibTorch model evaluator (configure with -DQEVAL_TORCH=ON)" : "";
    throw ConfigError(key_path(path, "kind"), "'" + kind + "' is not a run kind this qeval can execute (" + kind_list() + ")" + hint);
  }
  const std::vector<std::string> known = ex->known_keys();
  for (const auto& [k, v] : e.items()) {
    if (std::find(known.begin(), known.end(), k) != known.end()) continue;
    std::string list, hint;
    for (const auto& kk : known) {
      list += (list.empty() ? "" : ", ") + kk;
      if (kk == k + "s" || kk + "s" == k || kk == k + "_sizes") hint = " (did you mean \"" + kk + "\"?)";
    }
    throw ConfigError(key_path(path, k), "unknown key for a '" + kind + "' sweep" + hint + "; known: " + list);
  }
  return *ex;
}

// Appends an entry's runs to the plan: duplicates (by id) collapse; protocols and inputs are collected.
void add_runs(SweepPlan& plan, std::vector<Run> runs, std::set<std::string>& seen, std::set<std::string>& input_seen) {
  for (auto& r : runs) {
    if (!seen.insert(r.id).second) {
      ++plan.duplicates;
      continue;
    }
    if (r.spec.contains("protocol") && !plan.protocol.contains(r.kind)) plan.protocol[r.kind] = r.spec["protocol"];
    if (r.spec.contains("input") && input_seen.insert(r.spec["input"].dump()).second) plan.inputs.push_back(r.spec["input"]);
    plan.runs.push_back(std::move(r));
  }
}

// Preflight per kind (e.g. devices), still before any run.
void preflight(const SweepPlan& plan) {
  for (const auto& kind : executor_kinds()) {
    std::vector<const Run*> mine;
    for (const auto& r : plan.runs)
      if (r.kind == kind) mine.push_back(&r);
    if (!mine.empty()) find_executor(kind)->preflight(mine);
  }
}

}  // namespace

SweepPlan plan_sweep(const json& config, uint64_t default_seed, const std::string& base_dir) {
  SweepPlan plan;
  plan.seed = check_top_level(config, default_seed);
  plan.config = config;
  plan.config["seed"] = plan.seed;
  PlanContext ctx;
  ctx.seed = plan.seed;
  ctx.base_dir = base_dir;
  ctx.protocol = top_protocol(config);
  if (!config.contains("sweeps")) throw ConfigError("sweeps", "missing (a list of sweep entries)");
  const auto& sweeps = config["sweeps"];
  if (!sweeps.is_array() || sweeps.empty()) throw ConfigError("sweeps", "is not a non-empty list of sweep entries");
  std::set<std::string> seen, input_seen;
  plan.inputs = json::array();
  plan.protocol = json::object();
  for (size_t i = 0; i < sweeps.size(); ++i) {
    const std::string path = index_path("sweeps", i);
    add_runs(plan, entry_executor(sweeps[i], path).expand(sweeps[i], path, ctx), seen, input_seen);
  }
  preflight(plan);
  return plan;
}

void parse_shard(const std::string& text, int* index, int* count) {
  const size_t slash = text.find('/');
  auto bad = [&](const std::string& why) {
    throw std::invalid_argument("--shard '" + text + "': " + why + " (expected i/N with 0 <= i < N, e.g. 0/4)");
  };
  if (slash == std::string::npos) bad("no '/'");
  auto num = [&](const std::string& s) {
    errno = 0;
    char* end = nullptr;
    const long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE || v < 0 || v > 1000000) bad("'" + s + "' is not a non-negative integer");
    return static_cast<int>(v);
  };
  *index = num(text.substr(0, slash));
  *count = num(text.substr(slash + 1));
  if (*count < 1) bad("the shard count must be >= 1");
  if (*index >= *count) bad("the index must be < the count");
}

std::vector<const Run*> shard_runs(const SweepPlan& plan, int index, int count) {
  if (count < 1 || index < 0 || index >= count)
    throw std::invalid_argument("shard " + std::to_string(index) + "/" + std::to_string(count) + " is not valid");
  std::vector<const Run*> out;
  for (size_t i = static_cast<size_t>(index); i < plan.runs.size(); i += static_cast<size_t>(count))
    out.push_back(&plan.runs[i]);
  return out;
}

}  // namespace qeval::sweep
