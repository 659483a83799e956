// eval/report/merge.cpp — merge shard reports: same-sweep checks, dedup by id, plan order, provenance.
#include "eval/report/merge.hpp"

#include <map>
#include <set>
#include <stdexcept>

#include "eval/report/report.hpp"
#include "eval/report/views.hpp"

namespace qeval::report {

using nlohmann::json;

namespace {

// Every part comes from the same sweep (config, protocol, seed, plan) with the same fault injection.
void check_same_sweep(const std::vector<json>& parts, const std::vector<std::string>& paths) {
  const json& first = parts[0];
  for (size_t i = 1; i < parts.size(); ++i)
    for (const char* k : {"config", "protocol", "seed", "plan"}) {
      const json a = first.contains(k) ? first[k] : json(), b = parts[i].contains(k) ? parts[i][k] : json();
      if (a != b)
        throw std::invalid_argument("merge: '" + paths[i] + "' is not from the same sweep as '" + paths[0] + "': its " +
                                    k + " differs (" + (std::string(k) == "plan" ? "other runs planned" : "different config") +
                                    ")");
    }
  const bool fi0 = first.contains("fault_injection");
  for (size_t i = 1; i < parts.size(); ++i)
    if (parts[i].contains("fault_injection") != fi0 ||
        (fi0 && parts[i]["fault_injection"] != first["fault_injection"]))
      throw std::invalid_argument("merge: '" + paths[i] + "' and '" + paths[0] + "' differ in fault injection");
}

// Runs by id (a run in two parts must agree except in timing), and each part's provenance.
struct Collected {
  std::map<std::string, json> runs;
  json merged_from = json::array();
};

Collected collect_runs(const std::vector<json>& parts, const std::vector<std::string>& paths) {
  Collected c;
  std::map<std::string, json>& runs = c.runs;
  json& merged_from = c.merged_from;
  std::map<std::string, std::string> from;
  std::set<std::string> shard_seen;
  for (size_t i = 0; i < parts.size(); ++i) {
    const json& p = parts[i];
    json mf = {{"path", paths[i]}, {"runs", p["runs"].size()}, {"created", p.value("created", std::string())}};
    if (p.contains("shard")) {
      mf["shard"] = p["shard"];
      const std::string key = p["shard"].dump();
      if (!shard_seen.insert(key).second)
        throw std::invalid_argument("merge: shard " + std::to_string(p["shard"].value("index", 0)) + "/" +
                                    std::to_string(p["shard"].value("count", 0)) + " appears twice ('" + paths[i] + "')");
    }
    if (p.contains("producer")) mf["host"] = p["producer"].value("host", std::string());
    if (p.contains("environment")) mf["environment"] = p["environment"];
    merged_from.push_back(mf);
    for (const auto& r : p.at("runs")) {
      const std::string id = r.at("id").get<std::string>();
      auto it = runs.find(id);
      if (it == runs.end()) {
        runs.emplace(id, r);
        from.emplace(id, paths[i]);
        continue;
      }
      json a = it->second, b = r;
      a.erase("timing_ms");
      b.erase("timing_ms");
      if (a != b)
        throw std::invalid_argument("merge: run " + r.value("name", id) + " (" + id + ") differs between '" + from[id] +
                                    "' and '" + paths[i] + "' (same spec, different results: different builds or machines?)");
    }
  }
  return c;
}

// Runs in plan order (or in the parts' order without a plan); ids the plan has but no part has go to `missing`.
json ordered_runs(const std::vector<json>& parts, std::map<std::string, json>& runs, std::vector<std::string>& missing) {
  const json& first = parts[0];
  json ordered = json::array();
  if (first.contains("plan") && first["plan"].contains("ids")) {
    for (const auto& idj : first["plan"]["ids"]) {
      const std::string id = idj.get<std::string>();
      auto it = runs.find(id);
      if (it == runs.end()) missing.push_back(id);
      else ordered.push_back(it->second);
    }
  } else {
    for (const auto& p : parts)
      for (const auto& r : p.at("runs"))
        if (runs.count(r.at("id").get<std::string>())) {
          ordered.push_back(runs[r.at("id").get<std::string>()]);
          runs.erase(r.at("id").get<std::string>());
        }
  }
  return ordered;
}

[[noreturn]] void fail_missing(const std::vector<json>& parts, const std::vector<std::string>& missing) {
  const json& first = parts[0];
  std::string shards;
  for (const auto& p : parts)
    if (p.contains("shard"))
      shards += (shards.empty() ? "" : ", ") + std::to_string(p["shard"].value("index", 0)) + "/" +
                std::to_string(p["shard"].value("count", 0));
  throw std::invalid_argument("merge: " + std::to_string(missing.size()) + " of " +
                              std::to_string(first["plan"]["ids"].size()) + " planned run(s) are in none of the parts (first: " +
                              missing[0] + "; shards present: " + (shards.empty() ? "none" : shards) +
                              "); rerun the missing shards, or pass --allow-partial");
}

}  // namespace

json merge_reports(const std::vector<json>& parts, const std::vector<std::string>& paths,
                   const std::vector<std::string>& command_line, bool allow_partial) {
  if (parts.empty()) throw std::invalid_argument("merge: no reports given");
  const json& first = parts[0];
  check_same_sweep(parts, paths);
  Collected c = collect_runs(parts, paths);
  json out = new_report(command_line);
  out["environment"] = first.contains("environment") ? first["environment"] : out["environment"];
  for (const char* k : {"seed", "config", "protocol", "inputs", "input", "plan", "fault_injection"})
    if (first.contains(k)) out[k] = first[k];
  out["merged_from"] = c.merged_from;
  std::vector<std::string> missing;
  json ordered = ordered_runs(parts, c.runs, missing);
  if (!missing.empty() && !allow_partial) fail_missing(parts, missing);
  if (!missing.empty()) out["partial"] = {{"missing", missing.size()}};
  out["runs"] = ordered;
  out["views"] = compute_views(out["runs"]);
  return out;
}

}  // namespace qeval::report
