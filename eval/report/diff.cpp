// eval/report/diff.cpp — report differences: sections, runs added/removed, metric deltas per run id.
#include "eval/report/diff.hpp"

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

namespace qeval::report {

namespace {
using nlohmann::json;

void walk(const json& a, const json& b, const std::string& path, json& out, size_t limit) {
  if (out.size() >= limit) return;
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (const auto& [k, v] : a.items()) keys.insert(k);
    for (const auto& [k, v] : b.items()) keys.insert(k);
    for (const auto& k : keys) {
      const std::string p = path.empty() ? k : path + "." + k;
      if (!a.contains(k)) out.push_back({{"path", p}, {"a", nullptr}, {"b", b[k]}, {"only", "b"}});
      else if (!b.contains(k)) out.push_back({{"path", p}, {"a", a[k]}, {"b", nullptr}, {"only", "a"}});
      else walk(a[k], b[k], p, out, limit);
      if (out.size() >= limit) return;
    }
    return;
  }
  if (a.is_array() && b.is_array() && a.size() == b.size()) {
    for (size_t i = 0; i < a.size(); ++i) walk(a[i], b[i], path + "[" + std::to_string(i) + "]", out, limit);
    return;
  }
  if (a != b) out.push_back({{"path", path}, {"a", a}, {"b", b}});
}

void flatten_numbers(const json& j, const std::string& path, std::map<std::string, json>& out) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) flatten_numbers(v, path.empty() ? k : path + "." + k, out);
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) flatten_numbers(j[i], path + "[" + std::to_string(i) + "]", out);
  } else if (j.is_number() || j.is_null() || j.is_boolean()) {
    out[path] = j;
  }
}

double total_ms(const json& runs) {
  double t = 0;
  for (const auto& r : runs)
    if (r.contains("timing_ms") && r["timing_ms"].is_object())
      for (const auto& [k, v] : r["timing_ms"].items())
        if (v.is_number()) t += v.get<double>();
  return t;
}

std::string g(const json& v) {
  if (!v.is_number()) return v.dump();
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.6g", v.get<double>());
  return buf;
}

std::string short_json(const json& v) {
  std::string s = v.dump();
  return s.size() > 70 ? s.substr(0, 67) + "..." : s;
}
}  // namespace

json json_differences(const json& a, const json& b, const std::string& path, size_t limit) {
  json out = json::array();
  walk(a, b, path, out, limit);
  return out;
}

json diff_reports(const json& a, const json& b, const std::string& a_path, const std::string& b_path) {
  json d;
  d["a"] = a_path;
  d["b"] = b_path;
  for (const char* sec : {"config", "protocol", "environment", "seed", "fault_injection", "shard"}) {
    const json av = a.contains(sec) ? a[sec] : json(), bv = b.contains(sec) ? b[sec] : json();
    d[sec] = json_differences(av, bv, sec);
  }
  std::map<std::string, const json*> ra, rb;
  for (const auto& r : a.at("runs")) ra.emplace(r.at("id").get<std::string>(), &r);
  for (const auto& r : b.at("runs")) rb.emplace(r.at("id").get<std::string>(), &r);
  d["added"] = json::array();
  d["removed"] = json::array();
  d["changed"] = json::array();
  size_t unchanged = 0;
  for (const auto& r : a.at("runs")) {
    const std::string id = r.at("id").get<std::string>();
    if (!rb.count(id)) {
      d["removed"].push_back({{"id", id}, {"name", r.value("name", id)}});
      continue;
    }
    std::map<std::string, json> ma, mb;
    flatten_numbers(r.value("metrics", json::object()), "", ma);
    flatten_numbers(rb[id]->value("metrics", json::object()), "", mb);
    std::set<std::string> keys;
    for (const auto& [k, v] : ma) keys.insert(k);
    for (const auto& [k, v] : mb) keys.insert(k);
    json ms = json::array();
    for (const auto& k : keys) {
      const json x = ma.count(k) ? ma[k] : json(), y = mb.count(k) ? mb[k] : json();
      if (x == y) continue;
      json e = {{"metric", k}, {"a", x}, {"b", y}};
      if (x.is_number() && y.is_number()) e["delta"] = y.get<double>() - x.get<double>();
      ms.push_back(e);
    }
    if (ms.empty()) ++unchanged;
    else d["changed"].push_back({{"id", id}, {"name", r.value("name", id)}, {"metrics", ms}});
  }
  for (const auto& r : b.at("runs")) {
    const std::string id = r.at("id").get<std::string>();
    if (!ra.count(id)) d["added"].push_back({{"id", id}, {"name", r.value("name", id)}});
  }
  d["unchanged"] = unchanged;
  d["timing"] = {{"a_ms", total_ms(a.at("runs"))}, {"b_ms", total_ms(b.at("runs"))}};
  return d;
}

std::string format_diff(const json& d) {
  std::ostringstream os;
  os << "qeval diff: a = " << d.value("a", std::string()) << ", b = " << d.value("b", std::string()) << "\n";
  for (const char* sec : {"config", "protocol", "seed", "fault_injection", "shard", "environment"}) {
    const json& s = d.at(sec);
    if (s.empty()) {
      os << sec << ": same\n";
      continue;
    }
    os << sec << ": " << s.size() << " difference(s)\n";
    size_t shown = 0;
    for (const auto& e : s) {
      if (++shown > 20) {
        os << "  ... (" << s.size() - 20 << " more; --json lists all)\n";
        break;
      }
      os << "  " << e.at("path").get<std::string>() << ": " << short_json(e.at("a")) << " -> " << short_json(e.at("b")) << "\n";
    }
  }
  os << "runs: " << d.at("added").size() << " added, " << d.at("removed").size() << " removed, " << d.at("changed").size()
     << " changed, " << d.at("unchanged").get<size_t>() << " unchanged\n";
  for (const auto& r : d.at("added")) os << "  + " << r.at("name").get<std::string>() << "  (" << r.at("id").get<std::string>() << ")\n";
  for (const auto& r : d.at("removed")) os << "  - " << r.at("name").get<std::string>() << "  (" << r.at("id").get<std::string>() << ")\n";
  if (!d.at("changed").empty()) {
    os << std::left << std::setw(44) << "  changed run" << std::setw(36) << "metric" << std::right << std::setw(14) << "a"
       << std::setw(14) << "b" << std::setw(14) << "b - a" << "\n";
    for (const auto& r : d.at("changed")) {
      std::string name = r.at("name").get<std::string>();
      if (name.size() > 41) name = name.substr(0, 40) + "~";
      bool first = true;
      for (const auto& m : r.at("metrics")) {
        std::string metric = m.at("metric").get<std::string>();
        if (metric.size() > 35) metric = "~" + metric.substr(metric.size() - 34);
        os << std::left << std::setw(44) << ("  " + (first ? name : std::string())) << std::setw(36) << metric << std::right
           << std::setw(14) << g(m.at("a")) << std::setw(14) << g(m.at("b")) << std::setw(14)
           << (m.contains("delta") ? g(m.at("delta")) : std::string("")) << "\n";
        first = false;
      }
    }
  }
  char buf[128];
  std::snprintf(buf, sizeof buf, "timing: %.1f ms -> %.1f ms in total\n", d.at("timing").at("a_ms").get<double>(),
                d.at("timing").at("b_ms").get<double>());
  os << buf;
  return os.str();
}

}  // namespace qeval::report
