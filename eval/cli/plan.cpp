// eval/cli/plan.cpp — sweep config validation and expansion into the plan (all runs, before any executes).
#include "eval/cli/plan.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "quant/json_text.hpp"

namespace qeval::cli {

nlohmann::json load_config_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open sweep config '" + path + "' (" + std::strerror(errno) + ")");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return parse_json_text(ss.str());
  } catch (const std::invalid_argument& e) {  // a syntax error, a number beyond double, nesting too deep
    throw std::runtime_error("sweep config '" + path + "' is not valid JSON: " + e.what());
  }
}

SweepPlan plan_sweep(const nlohmann::json& config, uint64_t default_seed, const std::string& base_dir) {
  if (!config.is_object()) throw ConfigError("(top level)", "a sweep config is a JSON object with \"sweeps\": [...]");
  static const std::set<std::string> top = {"version", "name", "description", "seed", "protocol", "sweeps"};
  for (const auto& [k, v] : config.items())
    if (!top.count(k)) throw ConfigError(k, "unknown key (known: version, name, description, seed, protocol, sweeps)");
  if (config.contains("version") && config["version"] != kConfigVersion)
    throw ConfigError("version", config["version"].dump() + " is not a config version this qeval reads (" +
                                     std::to_string(kConfigVersion) + ")");
  for (const char* k : {"name", "description"})
    if (config.contains(k) && !config[k].is_string()) throw ConfigError(k, "is not a string");

  SweepPlan plan;
  plan.config = config;
  plan.seed = default_seed;
  if (config.contains("seed")) {
    const auto& s = config["seed"];
    if (!s.is_number_unsigned() && !(s.is_number_integer() && s.get<int64_t>() >= 0))
      throw ConfigError("seed", s.dump() + " is not a non-negative integer");
    plan.seed = s.get<uint64_t>();
  }
  plan.config["seed"] = plan.seed;

  PlanContext ctx;
  ctx.seed = plan.seed;
  ctx.base_dir = base_dir;
  if (config.contains("protocol")) {
    if (!config["protocol"].is_object())
      throw ConfigError("protocol", "is not an object keyed by run kind, e.g. {\"tensor\": {\"sampling\": \"rows\"}}");
    for (const auto& [k, v] : config["protocol"].items())
      if (!find_executor(k)) {
        std::string kinds;
        for (const auto& x : executor_kinds()) kinds += (kinds.empty() ? "" : ", ") + x;
        throw ConfigError(key_path("protocol", k), "'" + k + "' is not a run kind this qeval can execute (" + kinds + ")");
      }
    ctx.protocol = config["protocol"];
  }

  if (!config.contains("sweeps")) throw ConfigError("sweeps", "missing (a list of sweep entries)");
  const auto& sweeps = config["sweeps"];
  if (!sweeps.is_array() || sweeps.empty()) throw ConfigError("sweeps", "is not a non-empty list of sweep entries");

  std::set<std::string> seen;
  std::set<std::string> input_seen;
  plan.inputs = nlohmann::json::array();
  plan.protocol = nlohmann::json::object();
  for (size_t i = 0; i < sweeps.size(); ++i) {
    const std::string path = index_path("sweeps", i);
    const auto& e = sweeps[i];
    if (!e.is_object()) throw ConfigError(path, "is not an object");
    std::string kind = "tensor";
    if (e.contains("kind")) {
      if (!e["kind"].is_string()) throw ConfigError(key_path(path, "kind"), "is not a string");
      kind = e["kind"].get<std::string>();
    }
    const RunExecutor* ex = find_executor(kind);
    if (!ex) {
      std::string kinds;
      for (const auto& x : executor_kinds()) kinds += (kinds.empty() ? "" : ", ") + x;
      std::string hint;
      if (kind == "model")
        hint = "; model runs plug in when eval/model's executor is built (issue 4: configure with -DQEVAL_TORCH=ON once "
               "it lands)";
      throw ConfigError(key_path(path, "kind"), "'" + kind + "' is not a run kind this qeval can execute (" + kinds + ")" + hint);
    }
    const std::vector<std::string> known = ex->known_keys();
    for (const auto& [k, v] : e.items()) {
      bool ok = false;
      for (const auto& kk : known) ok = ok || kk == k;
      if (!ok) {
        std::string list;
        for (const auto& kk : known) list += (list.empty() ? "" : ", ") + kk;
        std::string hint;
        for (const auto& kk : known)
          if (kk == k + "s" || kk + "s" == k || kk == k + "_sizes") hint = " (did you mean \"" + kk + "\"?)";
        throw ConfigError(key_path(path, k), "unknown key for a '" + kind + "' sweep" + hint + "; known: " + list);
      }
    }
    std::vector<Run> runs = ex->expand(e, path, ctx);
    for (auto& r : runs) {
      if (!seen.insert(r.id).second) {
        ++plan.duplicates;
        continue;
      }
      if (r.spec.contains("protocol") && !plan.protocol.contains(r.kind)) plan.protocol[r.kind] = r.spec["protocol"];
      if (r.spec.contains("input")) {
        const std::string key = r.spec["input"].dump();
        if (input_seen.insert(key).second) plan.inputs.push_back(r.spec["input"]);
      }
      plan.runs.push_back(std::move(r));
    }
  }
  // Preflight per kind (e.g. devices), still before any run.
  for (const auto& kind : executor_kinds()) {
    std::vector<const Run*> mine;
    for (const auto& r : plan.runs)
      if (r.kind == kind) mine.push_back(&r);
    if (!mine.empty()) find_executor(kind)->preflight(mine);
  }
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

}  // namespace qeval::cli
