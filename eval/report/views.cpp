// eval/report/views.cpp — Pareto fronts, SQNR vs bound per tensor type and per-layer blame from runs[].
#include "eval/report/views.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "eval/metrics/metrics.hpp"

namespace qeval::report {

namespace {

double number_at(const nlohmann::json& j, const std::string& pointer) {
  const nlohmann::json::json_pointer p(pointer);
  if (!j.contains(p)) return std::numeric_limits<double>::quiet_NaN();
  const auto& v = j.at(p);
  return v.is_number() ? v.get<double>() : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

int run_bits(const nlohmann::json& run) {
  const double b = number_at(run, "/metrics/bits");
  return b >= 0 && b <= 64 && b == std::floor(b) ? static_cast<int>(b) : -1;  // false for NaN
}

namespace {

std::string str_at(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

nlohmann::json num_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// Model runs: "<model path> <protocol name>" from the run (run_model() result fields) or its spec.
std::string model_label(const nlohmann::json& run) {
  auto name_of = [](const nlohmann::json& v, const char* key) -> std::string {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains(key) && v[key].is_string()) return v[key].get<std::string>();
    return "";
  };
  std::string model, protocol;
  for (const nlohmann::json* src : {&run, run.contains("metrics") ? &run["metrics"] : nullptr,
                                    run.contains("spec") ? &run["spec"] : nullptr}) {
    if (!src || !src->is_object()) continue;
    if (model.empty() && src->contains("model")) model = name_of((*src)["model"], "path");
    if (protocol.empty() && src->contains("protocol")) protocol = name_of((*src)["protocol"], "name");
  }
  if (model.empty()) return "";
  return protocol.empty() ? model : model + " " + protocol;
}

}  // namespace

const std::vector<ParetoMetric>& pareto_metrics() {
  static const std::vector<ParetoMetric> m = {
      {"tensor", "sqnr_db", "/metrics/sqnr_db", true},
      {"tensor", "mse", "/metrics/mse", false},
      {"model", "kl_mean", "/metrics/kl/mean", false},
      {"model", "delta_ppl", "/metrics/delta_ppl", false},
  };
  return m;
}

std::vector<size_t> pareto_front(const std::vector<double>& x, const std::vector<double>& y, bool higher) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i)
    if (std::isfinite(x[i]) && std::isfinite(y[i])) idx.push_back(i);
  // "Better" y as a minimization.
  auto yy = [&](size_t i) { return higher ? -y[i] : y[i]; };
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    if (x[a] != x[b]) return x[a] < x[b];
    if (yy(a) != yy(b)) return yy(a) < yy(b);
    return a < b;
  });
  // Sweep in ascending x: a point is on the front when its y beats every point with smaller x, and it is
  // not strictly beaten by a point with the same x. Equal (x, y) points are all kept.
  std::vector<size_t> front;
  double best = std::numeric_limits<double>::infinity();
  double best_x = std::numeric_limits<double>::quiet_NaN();
  for (size_t k = 0; k < idx.size(); ++k) {
    const size_t i = idx[k];
    const double v = yy(i);
    if (v < best) {
      front.push_back(i);
      best = v;
      best_x = x[i];
    } else if (v == best && x[i] == best_x) {
      front.push_back(i);  // an exact tie with the last front point
    }
  }
  return front;
}

std::string input_label(const nlohmann::json& run) {
  const nlohmann::json in = run.contains("input") ? run["input"] : nlohmann::json::object();
  std::string label;
  const std::string kind = str_at(in, "kind");
  if (kind == "synthetic") {
    label = str_at(in, "distribution") + " " + std::to_string(in.value("rows", 0)) + "x" +
            std::to_string(in.value("cols", 0)) + " seed " + std::to_string(in.value("seed", 0ull));
  } else if (!str_at(in, "path").empty()) {
    label = str_at(in, "path");
  } else if (!model_label(run).empty()) {
    label = model_label(run);
  } else {
    label = in.is_null() ? std::string("?") : in.dump();
  }
  if (run.contains("tensor") && run["tensor"].is_object()) {
    const std::string t = str_at(run["tensor"], "name");
    if (!t.empty() && t != "synthetic" && label.find(t) == std::string::npos) label += " / " + t;
  }
  return label;
}

std::string tensor_type(const nlohmann::json& run) {
  if (run.contains("input") && str_at(run["input"], "kind") == "synthetic") return str_at(run["input"], "distribution");
  std::string name = run.contains("tensor") ? str_at(run["tensor"], "name") : std::string();
  if (name.empty()) name = input_label(run);
  // ".12." → ".*.": layers of one type share a row.
  std::string out;
  for (size_t i = 0; i < name.size();) {
    if (name[i] == '.' && i + 1 < name.size() && std::isdigit(static_cast<unsigned char>(name[i + 1]))) {
      size_t j = i + 1;
      while (j < name.size() && std::isdigit(static_cast<unsigned char>(name[j]))) ++j;
      if (j == name.size() || name[j] == '.') {
        out += ".*";
        i = j;
        continue;
      }
    }
    out += name[i++];
  }
  return out;
}

namespace {

// Pareto fronts, one per (kind, input, metric), inputs in order of first appearance.
nlohmann::json pareto_view(const nlohmann::json& runs) {
  nlohmann::json out = nlohmann::json::array();
  for (const ParetoMetric& pm : pareto_metrics()) {
    std::vector<std::string> order;
    std::map<std::string, std::vector<size_t>> by_input;
    for (size_t i = 0; i < runs.size(); ++i) {
      if (str_at(runs[i], "kind") != pm.kind) continue;
      const std::string in = input_label(runs[i]);
      if (!by_input.count(in)) order.push_back(in);
      by_input[in].push_back(i);
    }
    for (const auto& in : order) {
      const auto& members = by_input[in];
      std::vector<double> x, y;
      for (size_t i : members) {
        x.push_back(number_at(runs[i], "/metrics/bits_per_weight"));
        y.push_back(number_at(runs[i], pm.pointer));
      }
      const std::vector<size_t> front = pareto_front(x, y, pm.higher_is_better);
      nlohmann::json pts = nlohmann::json::array();
      for (size_t k = 0; k < members.size(); ++k)
        pts.push_back({{"id", str_at(runs[members[k]], "id")},
                       {"name", str_at(runs[members[k]], "name")},
                       {"bits_per_weight", num_or_null(x[k])},
                       {"value", num_or_null(y[k])}});
      nlohmann::json f = nlohmann::json::array();
      for (size_t k : front) f.push_back(str_at(runs[members[k]], "id"));
      out.push_back({{"kind", pm.kind},
                     {"input", in},
                     {"metric", pm.name},
                     {"better", pm.higher_is_better ? "higher" : "lower"},
                     {"points", pts},
                     {"front", f}});
    }
  }
  return out;
}

// One row of bound_by_tensor_type: runs of one (tensor type, config label) averaged.
struct BoundAcc {
  std::string type, label;
  int bits = 0;
  int64_t n = 0, n_expected = 0;
  double sqnr = 0, expected = 0;
  bool sqnr_finite = true;
};

nlohmann::json bound_row(const BoundAcc& a) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double sqnr = a.sqnr_finite && a.n > 0 ? a.sqnr / static_cast<double>(a.n) : nan;
  const double bound = metrics::bound_db(a.bits);
  return {{"tensor_type", a.type},
          {"config", a.label},
          {"bits", a.bits},
          {"runs", a.n},
          {"sqnr_db", num_or_null(sqnr)},
          {"expected_sqnr_db", num_or_null(a.n_expected == a.n && a.n > 0 ? a.expected / static_cast<double>(a.n) : nan)},
          {"bound_db", num_or_null(bound)},
          {"grid_adjusted_db", num_or_null(metrics::grid_adjusted_db(a.bits))},
          {"gap_db", num_or_null(bound - sqnr)}};
}

// SQNR vs the bound per (tensor type, config label + options), in order of first appearance.
nlohmann::json bound_view(const nlohmann::json& runs) {
  std::vector<BoundAcc> accs;
  std::map<std::string, size_t> where;
  for (const auto& r : runs) {
    if (str_at(r, "kind") != "tensor" || !r.contains("config") || run_bits(r) < 0) continue;
    // The label names every non-default field (SchemeConfig::label), so different configs never merge.
    const std::string label = str_at(r["config"], "label");
    const std::string type = tensor_type(r);
    auto it = where.find(type + "\n" + label);
    if (it == where.end()) {
      it = where.emplace(type + "\n" + label, accs.size()).first;
      BoundAcc a;
      a.type = type;
      a.label = label;
      a.bits = run_bits(r);
      accs.push_back(a);
    }
    BoundAcc& a = accs[it->second];
    const double s = number_at(r, "/metrics/sqnr_db");
    if (std::isfinite(s)) a.sqnr += s; else a.sqnr_finite = false;
    ++a.n;
    const double e = number_at(r, "/metrics/expected_sqnr_db");
    if (std::isfinite(e)) {
      a.expected += e;
      ++a.n_expected;
    }
  }
  nlohmann::json out = nlohmann::json::array();
  for (const BoundAcc& a : accs) out.push_back(bound_row(a));
  return out;
}

// A run's per-layer list: "blame" (eval/model's run_model() result) or "per_layer", at the run or metrics level.
const nlohmann::json* per_layer_list(const nlohmann::json& r) {
  for (const char* key : {"per_layer", "blame"}) {
    if (r.contains(key) && r[key].is_array()) return &r[key];
    if (r.contains("metrics") && r["metrics"].is_object() && r["metrics"].contains(key) && r["metrics"][key].is_array())
      return &r["metrics"][key];
  }
  return nullptr;
}

// Blame: runs with per_layer[], worst layer first.
nlohmann::json blame_view(const nlohmann::json& runs) {
  nlohmann::json views_out = nlohmann::json::array();
  for (const auto& r : runs) {
    const nlohmann::json* pl = per_layer_list(r);
    if (!pl || pl->empty()) continue;
    std::vector<nlohmann::json> layers(pl->begin(), pl->end());
    auto kl = [](const nlohmann::json& l) { return number_at(l, "/kl_alone"); };
    auto sq = [](const nlohmann::json& l) { return number_at(l, "/output_sqnr_db"); };
    bool have_kl = false;
    for (const auto& l : layers) have_kl = have_kl || std::isfinite(kl(l));
    std::stable_sort(layers.begin(), layers.end(), [&](const nlohmann::json& a, const nlohmann::json& b) {
      if (have_kl) {
        const double ka = std::isfinite(kl(a)) ? kl(a) : -1, kb = std::isfinite(kl(b)) ? kl(b) : -1;
        return ka > kb;
      }
      const double sa = std::isfinite(sq(a)) ? sq(a) : 1e300, sb = std::isfinite(sq(b)) ? sq(b) : 1e300;
      return sa < sb;
    });
    nlohmann::json out = nlohmann::json::array();
    for (const auto& l : layers)
      out.push_back({{"layer", str_at(l, "layer")},
                     {"output_sqnr_db", num_or_null(sq(l))},
                     {"kl_alone", num_or_null(kl(l))},
                     {"bits_per_weight", num_or_null(number_at(l, "/bits_per_weight"))}});
    views_out.push_back({{"id", str_at(r, "id")},
                         {"name", str_at(r, "name")},
                         {"ranked_by", have_kl ? "kl_alone" : "output_sqnr_db"},
                         {"layers", out}});
  }
  return views_out;
}

}  // namespace

nlohmann::json compute_views(const nlohmann::json& runs) {
  nlohmann::json views;
  views["pareto"] = nlohmann::json::array();
  views["bound_by_tensor_type"] = nlohmann::json::array();
  views["blame"] = nlohmann::json::array();
  if (!runs.is_array()) return views;
  views["pareto"] = pareto_view(runs);
  views["bound_by_tensor_type"] = bound_view(runs);
  views["blame"] = blame_view(runs);
  return views;
}

}  // namespace qeval::report
