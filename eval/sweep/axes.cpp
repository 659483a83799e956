// eval/sweep/axes.cpp — the shared scheme axes: parsing (each value once, with its JSON path) and the cross product.
#include "eval/sweep/axes.hpp"

#include <functional>

#include "eval/sweep/config.hpp"

namespace qeval::sweep {

namespace {

using nlohmann::json;

// Reads entry[key] (absent: empty, i.e. the scheme's default) with `one` turning each value into a T.
template <class T>
std::vector<AxisValue<T>> read_axis(const json& entry, const std::string& path, const char* key,
                                    const std::function<T(const json&, const std::string&)>& one) {
  std::vector<AxisValue<T>> out;
  if (!entry.contains(key)) return out;
  for (const auto& [v, p] : config_axis(entry, path, key, json::array())) out.push_back({one(v, p), p});
  return out;
}

int read_bits(const json& v, const std::string& p) {
  const int64_t b = as_int(v, p, "an integer bit width");
  if (b < quant::kMinBits || b > quant::kMaxBits)
    throw ConfigError(p, "bits = " + std::to_string(b) + " is out of range (" + std::to_string(quant::kMinBits) + ".." +
                             std::to_string(quant::kMaxBits) + " for integer formats; fp4 and nf4 take 4, fp8 8)");
  return static_cast<int>(b);
}

int64_t read_group(const json& v, const std::string& p) {
  int64_t g = 0;
  if (v.is_string()) {
    if (parse_group_word(v.get<std::string>(), &g)) return g;
    throw ConfigError(p, "'" + v.get<std::string>() + "' is not a group size (a positive integer, \"row\" = 0, \"tensor\" = -1)");
  }
  g = as_int(v, p, "a group size (a positive integer, \"row\" = 0, \"tensor\" = -1)");
  if (g < quant::kPerTensor)
    throw ConfigError(p, std::to_string(g) + " is not a group size (a positive integer, 0 = per row, -1 = per tensor)");
  return g;
}

quant::Mapping read_mapping(const json& v, const std::string& p) {
  const std::string s = as_string(v, p, "a mapping (sym, asym)");
  quant::Mapping m{};
  if (parse_mapping_word(s, &m)) return m;
  throw ConfigError(p, "'" + s + "' is not sym or asym");
}

// An enum axis read with quant/'s own parser (its message names the accepted values).
template <class E>
std::function<E(const json&, const std::string&)> enum_reader(E (*parse)(const std::string&), const char* what) {
  return [parse, what](const json& v, const std::string& p) {
    const std::string s = as_string(v, p, what);
    return at_path(p, [&] { return parse(s); });
  };
}

std::string read_scheme(const json& v, const std::string& p) {
  const std::string id = as_string(v, p, "a scheme id (see `qeval list-schemes`)");
  if (schemes::find_scheme(id)) return id;
  at_path(p, [&] { return schemes::default_config(id); });  // the registry's message lists the ids
  throw ConfigError(p, "unknown scheme '" + id + "'");
}

// A value or a list of values; each a string (numbers and booleans are accepted and written as text).
std::vector<std::string> option_values(const json& v, const std::string& path) {
  std::vector<std::string> out;
  const json list = v.is_array() ? v : json::array({v});
  if (list.empty()) throw ConfigError(path, "is an empty list");
  for (size_t i = 0; i < list.size(); ++i) {
    const json& x = list[i];
    const std::string p = v.is_array() ? index_path(path, i) : path;
    if (x.is_string()) out.push_back(x.get<std::string>());
    else if (x.is_boolean()) out.push_back(x.get<bool>() ? "true" : "false");
    else if (x.is_number_integer()) out.push_back(std::to_string(x.get<int64_t>()));
    else if (x.is_number_float()) out.push_back(x.dump());
    else throw ConfigError(p, shown_value(x) + " is not an option value (a string, number or boolean)");
  }
  return out;
}

std::vector<OptionAxis> read_options(const json& entry, const std::string& path,
                                     const std::vector<AxisValue<std::string>>& schemes_ax) {
  std::vector<OptionAxis> out;
  if (!entry.contains("options")) return out;
  const std::string op = key_path(path, "options");
  if (!entry["options"].is_object())
    throw ConfigError(op, "is not an object of option values, e.g. {\"codebook\": [\"e2m1\", \"bnb\"]}");
  for (const auto& [k, v] : entry["options"].items()) {
    OptionAxis o;
    o.path = key_path(op, k);
    o.key = k;
    if (const size_t dot = k.find('.'); dot != std::string::npos) {
      o.scheme = k.substr(0, dot);
      o.key = k.substr(dot + 1);
      if (!schemes::find_scheme(o.scheme)) throw ConfigError(o.path, "'" + o.scheme + "' is not a registered scheme");
      bool listed = false;
      for (const auto& s : schemes_ax) listed = listed || s.value == o.scheme;
      if (!listed) throw ConfigError(o.path, "scheme '" + o.scheme + "' is not in " + key_path(path, "schemes"));
    }
    if (o.key.empty()) throw ConfigError(o.path, "empty option name");
    o.values = option_values(v, o.path);
    out.push_back(o);
  }
  return out;
}

// Sets one axis' value on every point so far, multiplying the points by the axis' length (absent: unchanged).
template <class T>
void cross(std::vector<SchemePoint>& pts, const std::vector<AxisValue<T>>& axis,
           const std::function<void(SchemePoint&, const T&)>& set) {
  if (axis.empty()) return;
  std::vector<SchemePoint> next;
  for (const SchemePoint& p : pts)
    for (const AxisValue<T>& v : axis) {
      SchemePoint q = p;
      set(q, v.value);
      if (!v.is_default()) q.paths.push_back(v.path);
      next.push_back(std::move(q));
    }
  pts = std::move(next);
}

void validate_point(const SchemePoint& pt, const std::string& entry_path) {
  try {
    (void)schemes::make_scheme(pt.config);  // validates params and the scheme's options
  } catch (const std::exception& e) {
    std::string where;
    for (const auto& p : pt.paths) where += (where.empty() ? "" : ", ") + p;
    throw ConfigError(entry_path, "config '" + pt.config.label() + "' (" + where + "): " + e.what());
  }
}

}  // namespace

const std::vector<std::string> kSchemeKeys = {"schemes", "bits", "group_sizes", "mappings", "partial_groups", "options"};
const std::vector<std::string> kQuantDetailKeys = {"ranges", "clip_ratios", "percentiles", "roundings", "non_finite"};

bool parse_group_word(const std::string& s, int64_t* g) {
  if (s == "row" || s == "per-row") *g = quant::kPerRow;
  else if (s == "tensor" || s == "per-tensor") *g = quant::kPerTensor;
  else return false;
  return true;
}

bool parse_mapping_word(const std::string& s, quant::Mapping* m) {
  if (s == "sym" || s == "symmetric") *m = quant::Mapping::symmetric;
  else if (s == "asym" || s == "asymmetric") *m = quant::Mapping::asymmetric;
  else return false;
  return true;
}

std::string mapping_word(quant::Mapping m) { return m == quant::Mapping::symmetric ? "sym" : "asym"; }

SchemeAxes parse_scheme_axes(const json& entry, const std::string& path, bool detail) {
  SchemeAxes a;
  for (const auto& [v, p] : config_axis(entry, path, "schemes", json::array({"rtn"}))) a.schemes.push_back({read_scheme(v, p), p});
  a.bits = read_axis<int>(entry, path, "bits", read_bits);
  a.group_sizes = read_axis<int64_t>(entry, path, "group_sizes", read_group);
  a.mappings = read_axis<quant::Mapping>(entry, path, "mappings", read_mapping);
  a.partial_groups = read_axis<bool>(entry, path, "partial_groups", as_bool);
  a.options = read_options(entry, path, a.schemes);
  if (!detail) return a;
  a.ranges = read_axis<quant::RangeMethod>(entry, path, "ranges",
                                           enum_reader(quant::parse_range_method, "a range method (minmax, percentile, mse)"));
  a.clip_ratios = read_axis<double>(entry, path, "clip_ratios",
                                    [](const json& v, const std::string& p) { return as_double(v, p, "a clip ratio in (0, 1]"); });
  a.percentiles = read_axis<double>(entry, path, "percentiles", [](const json& v, const std::string& p) {
    return as_double(v, p, "a percentile in (50, 100]");
  });
  a.roundings = read_axis<quant::Rounding>(entry, path, "roundings", enum_reader(quant::parse_rounding, "a rounding mode"));
  a.non_finite = read_axis<quant::NonFinitePolicy>(
      entry, path, "non_finite", enum_reader(quant::parse_non_finite_policy, "a non-finite policy (error, propagate)"));
  return a;
}

std::vector<SchemePoint> scheme_points(const SchemeAxes& a, const AxisValue<std::string>& scheme,
                                       const std::string& entry_path) {
  SchemePoint start;
  start.config = schemes::default_config(scheme.value);
  start.paths = {scheme.path};
  start.group_path = scheme.path + " (default group size)";
  std::vector<SchemePoint> pts = {start};
  cross<int>(pts, a.bits, [](SchemePoint& p, const int& b) { p.config.params.bits = b; });
  cross<int64_t>(pts, a.group_sizes, [](SchemePoint& p, const int64_t& g) { p.config.params.group_size = g; });
  if (!a.group_sizes.empty())  // the group size's own path, for errors about it
    for (size_t i = 0; i < pts.size(); ++i) pts[i].group_path = a.group_sizes[i % a.group_sizes.size()].path;
  cross<quant::Mapping>(pts, a.mappings, [](SchemePoint& p, const quant::Mapping& m) { p.config.params.mapping = m; });
  cross<quant::RangeMethod>(pts, a.ranges, [](SchemePoint& p, const quant::RangeMethod& r) { p.config.params.range = r; });
  cross<double>(pts, a.clip_ratios, [](SchemePoint& p, const double& c) { p.config.params.clip_ratio = c; });
  cross<double>(pts, a.percentiles, [](SchemePoint& p, const double& c) { p.config.params.clip_percentile = c; });
  cross<quant::Rounding>(pts, a.roundings, [](SchemePoint& p, const quant::Rounding& r) { p.config.params.rounding = r; });
  cross<quant::NonFinitePolicy>(pts, a.non_finite,
                                [](SchemePoint& p, const quant::NonFinitePolicy& n) { p.config.params.non_finite = n; });
  cross<bool>(pts, a.partial_groups, [](SchemePoint& p, const bool& b) { p.config.params.partial_last_group = b; });
  for (const OptionAxis& o : a.options) {
    if (!o.applies_to(scheme.value)) continue;
    std::vector<AxisValue<std::string>> vals;
    for (const auto& v : o.values) vals.push_back({v, o.path});
    const std::string key = o.key;
    cross<std::string>(pts, vals, [key](SchemePoint& p, const std::string& v) { p.config.options.set(key, v); });
  }
  for (const SchemePoint& p : pts) validate_point(p, entry_path);
  return pts;
}

}  // namespace qeval::sweep
