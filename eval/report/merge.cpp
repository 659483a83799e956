// eval/report/merge.cpp — merge shard reports: same-sweep checks, dedup by id, plan order, provenance.
#include "eval/report/merge.hpp"

#include <map>
#include <set>
#include <stdexcept>

#include "eval/report/report.hpp"
#include "eval/report/views.hpp"

namespace qeval::report {

using nlohmann::json;

json merge_reports(const std::vector<json>& parts, const std::vector<std::string>& paths,
                   const std::vector<std::string>& command_line, bool allow_partial) {
  if (parts.empty()) throw std::invalid_argument("merge: no reports given");
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

  std::map<std::string, json> runs;
  std::map<std::string, std::string> from;
  std::set<std::string> shard_seen;
  json merged_from = json::array();
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

  json out = new_report(command_line);
  out["environment"] = first.contains("environment") ? first["environment"] : out["environment"];
  for (const char* k : {"seed", "config", "protocol", "inputs", "input", "plan", "fault_injection"})
    if (first.contains(k)) out[k] = first[k];
  out["merged_from"] = merged_from;
  json ordered = json::array();
  std::vector<std::string> missing;
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
  if (!missing.empty() && !allow_partial) {
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
  if (!missing.empty()) out["partial"] = {{"missing", missing.size()}};
  out["runs"] = ordered;
  out["views"] = compute_views(out["runs"]);
  return out;
}

}  // namespace qeval::report
