// eval/sweep/explain.cpp — a plan's runs as their typed specs, config paths, spec JSON and ids (JSON or text).
#include "eval/sweep/explain.hpp"

#include <algorithm>
#include <sstream>

namespace qeval::sweep {

namespace {

using nlohmann::json;

json run_json(const Run& r, size_t index) {
  return {{"index", index}, {"id", r.id},         {"kind", r.kind},
          {"name", r.name}, {"origin", r.origin}, {"typed", r.typed ? r.typed->explain() : json()},
          {"spec", r.spec}};
}

// Keys in the order a reader follows a parameter (what quantizes, then on what), the others after them.
std::vector<std::string> reading_order(const json& obj) {
  static const std::vector<std::string> first = {"scheme_config", "weight", "activation", "scheme", "label", "params",
                                                 "options", "backend", "input", "model", "file", "protocol"};
  std::vector<std::string> keys;
  for (const auto& k : first)
    if (obj.contains(k)) keys.push_back(k);
  for (const auto& [k, v] : obj.items())
    if (std::find(first.begin(), first.end(), k) == first.end()) keys.push_back(k);
  return keys;
}

// "  <key>  <type>  <value>" for each field of a RunSpec::explain() object ("type" and "from" are shown apart).
void field_lines(std::ostringstream& os, const json& typed, const std::string& indent) {
  for (const std::string& k : reading_order(typed)) {
    const json& v = typed[k];
    if (k == "type" || k == "from") continue;
    os << indent << k;
    if (v.is_object() && v.contains("type")) {
      os << "  (" << v["type"].get<std::string>() << ")\n";
      json rest = v;
      rest.erase("type");
      if (rest.contains("value") && rest.size() == 1) os << indent << "  " << rest["value"].dump() << "\n";
      else field_lines(os, rest, indent + "  ");
      continue;
    }
    os << "  " << (v.is_string() ? v.get<std::string>() : v.dump()) << "\n";
  }
}

}  // namespace

json plan_json(const SweepPlan& plan, const std::vector<const Run*>& runs) {
  json out = {{"seed", plan.seed}, {"plan_runs", plan.runs.size()}, {"duplicates", plan.duplicates}};
  json list = json::array();
  for (size_t i = 0; i < runs.size(); ++i) list.push_back(run_json(*runs[i], i));
  out["runs"] = list;
  return out;
}

std::string explain_text(const std::vector<const Run*>& runs) {
  std::ostringstream os;
  for (size_t i = 0; i < runs.size(); ++i) {
    const Run& r = *runs[i];
    os << "\n[" << i + 1 << "/" << runs.size() << "] " << r.name << "\n";
    const json typed = r.typed ? r.typed->explain() : json::object();
    os << "  from      " << r.origin;
    for (const auto& p : typed.value("from", json::array())) os << "  " << p.get<std::string>();
    os << "\n  typed     " << typed.value("type", std::string("(none)")) << "\n";
    field_lines(os, typed, "    ");
    os << "  spec      " << r.spec.dump() << "\n";
    os << "  id        " << r.id << " = xxh64(spec)\n";
  }
  return os.str();
}

}  // namespace qeval::sweep
