// eval/sweep/tensor_kind.cpp — the "tensor" run kind: config validation/expansion, execution, table row.
#include "eval/sweep/tensor_kind.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <set>
#include <sstream>

#include "eval/inputs/file.hpp"
#include "eval/inputs/synthetic.hpp"
#include "eval/metrics/quant_tester.hpp"
#include "eval/report/report.hpp"
#include "quant/params_json.hpp"
#include "schemes/scheme.hpp"

#if QEVAL_HAVE_OPENCL
#include "gpu/backend.hpp"
#include "gpu/device.hpp"
#endif

namespace qeval::sweep {

namespace {

using nlohmann::json;

const std::vector<std::string> kKeys = {"kind",       "name",        "schemes",     "bits",      "group_sizes",
                                        "mappings",   "backends",    "inputs",      "ranges",    "clip_ratios",
                                        "percentiles", "roundings",  "non_finite",  "options",   "protocol",
                                        "partial_groups"};

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

int64_t as_int(const json& v, const std::string& path, const char* what) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() && std::fabs(v.get<double>()) < 1e15)
    return static_cast<int64_t>(v.get<double>());
  throw ConfigError(path, shown_value(v) + " is not " + what);
}
double as_double(const json& v, const std::string& path, const char* what) {
  if (v.is_number()) return v.get<double>();
  throw ConfigError(path, shown_value(v) + " is not " + what);
}
std::string as_string(const json& v, const std::string& path, const char* what) {
  if (v.is_string()) return v.get<std::string>();
  throw ConfigError(path, shown_value(v) + " is not " + what);
}

std::string group_name(int64_t g) {
  if (g == quant::kPerRow) return "row";
  if (g == quant::kPerTensor) return "tensor";
  return std::to_string(g);
}

// Backends this build can run, and why not for the others.
bool backend_available(const std::string& b, std::string* why) {
  if (b == "cpu") return true;
  if (b == "opencl") {
#if QEVAL_HAVE_OPENCL
    try {
      if (gpu::default_device()) return true;
      *why = "no OpenCL device was found (install an ICD, e.g. pocl-opencl-icd, and check `clinfo`)";
    } catch (const std::exception& e) {
      *why = std::string("the OpenCL device could not be opened: ") + e.what();
    }
    return false;
#else
    *why = "backend 'opencl' is not built into this qeval (configure with -DQEVAL_OPENCL=ON; needs the OpenCL ICD "
           "loader and headers: ocl-icd-opencl-dev opencl-headers)";
    return false;
#endif
  }
  *why = "'" + b + "' is not a backend (cpu, opencl)";
  return false;
}

// One parsed input of an entry.
struct InputSpec {
  std::string path;  // JSON path in the config
  json description;  // source->describe() (+ xxh64 for files)
  std::vector<inputs::TensorInfo> tensors;
  std::string short_name;  // for run names: "gaussian-1024x4096", "w"
  std::string display;     // for messages: "gaussian 1024x4096", "w.npy"
};

std::string stem(const std::string& path) {
  std::string s = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  const size_t dot = s.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? s : s.substr(0, dot);
}

InputSpec parse_input(const json& v, const std::string& path, const PlanContext& ctx) {
  InputSpec in;
  in.path = path;
  std::unique_ptr<inputs::TensorSource> src;
  std::vector<std::string> wanted;
  try {
    std::string file;
    std::string shape;
    inputs::SyntheticSpec spec;
    spec.rows = kDefaultRows;
    spec.cols = kDefaultCols;
    spec.seed = ctx.seed;
    bool synthetic = false;
    if (v.is_string()) {
      const std::string s = v.get<std::string>();
      if (inputs::is_distribution_name(s)) {
        spec.dist = inputs::parse_distribution(s);
        synthetic = true;
      } else {
        file = s;
      }
    } else if (v.is_object()) {
      if (v.contains("distribution") == v.contains("file"))
        throw ConfigError(path, "an input object has either \"distribution\" (synthetic) or \"file\" (.npy/.f32)");
      static const std::set<std::string> syn_keys = {"distribution", "rows", "cols", "seed", "nu", "outlier_channels",
                                                     "outlier_scale"};
      static const std::set<std::string> file_keys = {"file", "shape", "tensors"};
      const auto& keys = v.contains("distribution") ? syn_keys : file_keys;
      for (const auto& [k, x] : v.items())
        if (!keys.count(k)) {
          std::string known;
          for (const auto& kk : keys) known += (known.empty() ? "" : ", ") + kk;
          throw ConfigError(key_path(path, k), "unknown key for this input (known: " + known + ")");
        }
      if (v.contains("distribution")) {
        synthetic = true;
        const std::string d = as_string(v["distribution"], key_path(path, "distribution"), "a distribution name");
        try {
          spec.dist = inputs::parse_distribution(d);
        } catch (const std::exception& e) {
          throw ConfigError(key_path(path, "distribution"), e.what());
        }
        if (v.contains("rows")) spec.rows = as_int(v["rows"], key_path(path, "rows"), "an integer");
        if (v.contains("cols")) spec.cols = as_int(v["cols"], key_path(path, "cols"), "an integer");
        if (v.contains("seed")) {
          if (!v["seed"].is_number_unsigned() && !(v["seed"].is_number_integer() && v["seed"].get<int64_t>() >= 0))
            throw ConfigError(key_path(path, "seed"), shown_value(v["seed"]) + " is not a non-negative integer");
          spec.seed = v["seed"].get<uint64_t>();
        }
        if (v.contains("nu")) spec.student_nu = static_cast<int>(as_int(v["nu"], key_path(path, "nu"), "an integer"));
        if (v.contains("outlier_channels"))
          spec.outlier_channels = as_int(v["outlier_channels"], key_path(path, "outlier_channels"), "an integer");
        if (v.contains("outlier_scale"))
          spec.outlier_scale = as_double(v["outlier_scale"], key_path(path, "outlier_scale"), "a number");
      } else {
        file = as_string(v["file"], key_path(path, "file"), "a file path");
        if (v.contains("shape")) shape = as_string(v["shape"], key_path(path, "shape"), "a shape such as \"4096x4096\"");
        if (v.contains("tensors")) {
          const json& t = v["tensors"];
          if (!t.is_array() || t.empty()) throw ConfigError(key_path(path, "tensors"), "is not a non-empty list of names");
          for (size_t i = 0; i < t.size(); ++i)
            wanted.push_back(as_string(t[i], index_path(key_path(path, "tensors"), i), "a tensor name"));
        }
      }
    } else {
      throw ConfigError(path, shown_value(v) + " is not an input (a distribution name, a file path, or an object)");
    }

    if (synthetic) {
      spec.validate();
      src = inputs::make_synthetic_source(spec);
      in.short_name = std::string(inputs::to_string(spec.dist)) + "-" + std::to_string(spec.rows) + "x" +
                      std::to_string(spec.cols) + (spec.seed != ctx.seed ? "-s" + std::to_string(spec.seed) : "");
      in.display = std::string(inputs::to_string(spec.dist)) + " " + std::to_string(spec.rows) + "x" +
                   std::to_string(spec.cols);
      in.description = src->describe();
    } else {
      const bool known_ext = ends_with(file, ".npy") || ends_with(file, ".f32");
      const std::string resolved = (file.empty() || file[0] == '/' || ctx.base_dir.empty()) ? file : ctx.base_dir + "/" + file;
      if (!known_ext && ::access(resolved.c_str(), F_OK) != 0)
        throw ConfigError(path, "'" + file +
                                    "' is neither a distribution (gaussian, laplace, student-t, uniform, outliers) nor "
                                    "an existing file (.npy, or .f32 with a shape)");
      int64_t r = 0, c = 0;
      if (!shape.empty()) {
        if (!ends_with(file, ".f32"))
          throw ConfigError(key_path(path, "shape"), "applies to raw .f32 files only ('" + file + "' carries its own shape)");
        inputs::parse_shape(shape, &r, &c);
      }
      src = inputs::open_file_source(resolved, r, c);
      in.short_name = stem(file);
      in.display = file;
      in.description = src->describe();
      in.description["path"] = resolved;
      in.description["xxh64"] = report::file_xxh64(resolved);
    }
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ConfigError(path, e.what());
  }
  in.tensors = src->tensors();
  if (!wanted.empty()) {
    std::vector<inputs::TensorInfo> sel;
    for (size_t i = 0; i < wanted.size(); ++i) {
      bool found = false;
      for (const auto& t : in.tensors)
        if (t.name == wanted[i]) {
          sel.push_back(t);
          found = true;
        }
      if (!found) {
        std::string names;
        for (const auto& t : in.tensors) names += (names.empty() ? "" : ", ") + t.name;
        throw ConfigError(index_path(key_path(path, "tensors"), i), "'" + wanted[i] + "' is not a tensor of '" +
                                                                       in.display + "' (it has: " + names + ")");
      }
    }
    in.tensors = sel;
  }
  return in;
}

json options_axis_values(const json& v, const std::string& path) {
  // A value or a list of values; each a string (numbers and booleans are accepted and written as text).
  json out = json::array();
  const json list = v.is_array() ? v : json::array({v});
  if (list.empty()) throw ConfigError(path, "is an empty list");
  for (size_t i = 0; i < list.size(); ++i) {
    const json& x = list[i];
    const std::string p = v.is_array() ? index_path(path, i) : path;
    if (x.is_string()) out.push_back(x);
    else if (x.is_boolean()) out.push_back(x.get<bool>() ? "true" : "false");
    else if (x.is_number_integer()) out.push_back(std::to_string(x.get<int64_t>()));
    else if (x.is_number_float()) out.push_back(x.dump());
    else throw ConfigError(p, shown_value(x) + " is not an option value (a string, number or boolean)");
  }
  return out;
}

class TensorExecutor final : public RunExecutor {
 public:
  std::string kind() const override { return "tensor"; }
  std::string summary() const override {
    return "quantize + dequantize one tensor (synthetic or file) and measure MSE/SQNR against the 6.02*b bound";
  }
  std::vector<std::string> known_keys() const override { return kKeys; }

  std::vector<Run> expand(const json& entry, const std::string& path, const PlanContext& ctx) const override;
  json execute(const Run& run, ExecContext& ctx) const override;
  std::string table_header() const override;
  std::string table_row(const json& entry) const override;
  std::string table_legend() const override;
};

std::vector<Run> TensorExecutor::expand(const json& entry, const std::string& path, const PlanContext& ctx) const {
  // ---- protocol
  json proto_given = json::object();
  if (ctx.protocol.is_object() && ctx.protocol.contains("tensor")) proto_given = ctx.protocol["tensor"];
  std::string proto_path = "protocol.tensor";
  if (entry.contains("protocol")) {
    proto_given = entry["protocol"];
    proto_path = key_path(path, "protocol");
  }
  const json protocol = tensor_protocol(proto_given, proto_path);

  // ---- schemes
  struct SchemeAx {
    std::string id, path;
  };
  std::vector<SchemeAx> schemes_ax;
  for (const auto& [v, p] : config_axis(entry, path, "schemes", json::array({"rtn"}))) {
    const std::string id = as_string(v, p, "a scheme id (see `qeval list-schemes`)");
    if (!schemes::find_scheme(id)) {
      try {
        (void)schemes::default_config(id);  // the registry's message lists the ids
      } catch (const std::exception& e) {
        throw ConfigError(p, e.what());
      }
      throw ConfigError(p, "unknown scheme '" + id + "'");
    }
    schemes_ax.push_back({id, p});
  }
  // ---- bits / group sizes / mappings (empty: scheme default)
  std::vector<std::pair<int, std::string>> bits_ax;
  if (entry.contains("bits"))
    for (const auto& [v, p] : config_axis(entry, path, "bits", json::array())) {
      const int64_t b = as_int(v, p, "an integer bit width");
      quant::QuantParams q;
      q.bits = static_cast<int>(b);
      if (b < 1 || b > 64) throw ConfigError(p, "bits = " + std::to_string(b) + " is out of range (integer formats: 2..8)");
      try {
        q.validate();
      } catch (const std::exception& e) {
        throw ConfigError(p, e.what());
      }
      bits_ax.emplace_back(static_cast<int>(b), p);
    }
  std::vector<std::pair<int64_t, std::string>> groups_ax;
  if (entry.contains("group_sizes"))
    for (const auto& [v, p] : config_axis(entry, path, "group_sizes", json::array())) {
      int64_t g = 0;
      if (v.is_string()) {
        const std::string s = v.get<std::string>();
        if (s == "row" || s == "per-row") g = quant::kPerRow;
        else if (s == "tensor" || s == "per-tensor") g = quant::kPerTensor;
        else throw ConfigError(p, "'" + s + "' is not a group size (a positive integer, \"row\" = 0, \"tensor\" = -1)");
      } else {
        g = as_int(v, p, "a group size (a positive integer, \"row\" = 0, \"tensor\" = -1)");
        if (g < -1) throw ConfigError(p, std::to_string(g) + " is not a group size (a positive integer, 0 = per row, -1 = per tensor)");
      }
      groups_ax.emplace_back(g, p);
    }
  std::vector<std::pair<quant::Mapping, std::string>> maps_ax;
  for (const auto& [v, p] : config_axis(entry, path, "mappings", json::array({"sym"}))) {
    const std::string s = as_string(v, p, "a mapping (sym, asym)");
    if (s == "sym" || s == "symmetric") maps_ax.emplace_back(quant::Mapping::symmetric, p);
    else if (s == "asym" || s == "asymmetric") maps_ax.emplace_back(quant::Mapping::asymmetric, p);
    else throw ConfigError(p, "'" + s + "' is not sym or asym");
  }
  // ---- backends
  std::vector<std::pair<std::string, std::string>> backends_ax;
  for (const auto& [v, p] : config_axis(entry, path, "backends", json::array({"cpu"}))) {
    const std::string b = as_string(v, p, "a backend (cpu, opencl)");
    std::string why;
    if (!backend_available(b, &why)) throw ConfigError(p, why);
    backends_ax.emplace_back(b, p);
  }
  // ---- the other QuantParams axes
  std::vector<std::pair<quant::RangeMethod, std::string>> ranges_ax;
  for (const auto& [v, p] : config_axis(entry, path, "ranges", json::array({"minmax"}))) {
    try {
      ranges_ax.emplace_back(quant::parse_range_method(as_string(v, p, "a range method (minmax, percentile, mse)")), p);
    } catch (const ConfigError&) {
      throw;
    } catch (const std::exception& e) {
      throw ConfigError(p, e.what());
    }
  }
  std::vector<std::pair<double, std::string>> clips_ax, pct_ax;
  for (const auto& [v, p] : config_axis(entry, path, "clip_ratios", json::array({1.0})))
    clips_ax.emplace_back(as_double(v, p, "a clip ratio in (0, 1]"), p);
  for (const auto& [v, p] : config_axis(entry, path, "percentiles", json::array({99.99})))
    pct_ax.emplace_back(as_double(v, p, "a percentile in (50, 100]"), p);
  std::vector<std::pair<quant::Rounding, std::string>> round_ax;
  for (const auto& [v, p] : config_axis(entry, path, "roundings", json::array({"nearest_even"}))) {
    try {
      round_ax.emplace_back(quant::parse_rounding(as_string(v, p, "a rounding mode")), p);
    } catch (const ConfigError&) {
      throw;
    } catch (const std::exception& e) {
      throw ConfigError(p, e.what());
    }
  }
  std::vector<std::pair<quant::NonFinitePolicy, std::string>> nf_ax;
  for (const auto& [v, p] : config_axis(entry, path, "non_finite", json::array({"error"}))) {
    try {
      nf_ax.emplace_back(quant::parse_non_finite_policy(as_string(v, p, "a non-finite policy (error, propagate)")), p);
    } catch (const ConfigError&) {
      throw;
    } catch (const std::exception& e) {
      throw ConfigError(p, e.what());
    }
  }
  // ---- partial_groups: allow a shorter last group (QuantParams::partial_last_group), e.g. 576 = 4·128 + 64
  std::vector<std::pair<bool, std::string>> partial_ax;
  for (const auto& [v, p] : config_axis(entry, path, "partial_groups", json::array({false}))) {
    if (!v.is_boolean()) throw ConfigError(p, shown_value(v) + " is not true or false");
    partial_ax.emplace_back(v.get<bool>(), p);
  }
  // ---- options: key → values (an axis per key), "scheme.key" = that scheme only
  struct OptAx {
    std::string scheme, key, path;
    json values;
  };
  std::vector<OptAx> opts_ax;
  if (entry.contains("options")) {
    const std::string op = key_path(path, "options");
    if (!entry["options"].is_object())
      throw ConfigError(op, "is not an object of option values, e.g. {\"codebook\": [\"e2m1\", \"bnb\"]}");
    for (const auto& [k, v] : entry["options"].items()) {
      OptAx o;
      o.path = key_path(op, k);
      o.key = k;
      const size_t dot = k.find('.');
      if (dot != std::string::npos) {
        o.scheme = k.substr(0, dot);
        o.key = k.substr(dot + 1);
        if (!schemes::find_scheme(o.scheme)) throw ConfigError(o.path, "'" + o.scheme + "' is not a registered scheme");
        bool listed = false;
        for (const auto& s : schemes_ax) listed = listed || s.id == o.scheme;
        if (!listed) throw ConfigError(o.path, "scheme '" + o.scheme + "' is not in " + key_path(path, "schemes"));
      }
      if (o.key.empty()) throw ConfigError(o.path, "empty option name");
      o.values = options_axis_values(v, o.path);
      opts_ax.push_back(o);
    }
  }
  // ---- inputs
  std::vector<InputSpec> inputs_ax;
  for (const auto& [v, p] : config_axis(entry, path, "inputs", json::array({"gaussian"})))
    inputs_ax.push_back(parse_input(v, p, ctx));

  // ---- enumerate
  std::vector<Run> runs;
  std::set<std::string> seen;
  for (const InputSpec& in : inputs_ax)
    for (const inputs::TensorInfo& t : in.tensors)
      for (const SchemeAx& sc : schemes_ax) {
        const schemes::SchemeConfig def = schemes::default_config(sc.id);
        const auto bits = bits_ax.empty() ? std::vector<std::pair<int, std::string>>{{def.params.bits, sc.path + " (default bits)"}} : bits_ax;
        const auto groups = groups_ax.empty()
                                ? std::vector<std::pair<int64_t, std::string>>{{def.params.group_size, sc.path + " (default group size)"}}
                                : groups_ax;
        // Option combinations for this scheme: the cross product of the keys that apply to it.
        std::vector<std::vector<std::pair<std::string, std::string>>> combos = {{}};
        for (const OptAx& o : opts_ax) {
          if (!o.scheme.empty() && o.scheme != sc.id) continue;
          std::vector<std::vector<std::pair<std::string, std::string>>> next;
          for (const auto& c : combos)
            for (const auto& val : o.values) {
              auto cc = c;
              cc.emplace_back(o.key, val.get<std::string>());
              next.push_back(cc);
            }
          combos = next;
        }
        for (const auto& [b, bp] : bits)
          for (const auto& [g, gp] : groups)
            for (const auto& [m, mp] : maps_ax)
              for (const auto& [rg, rgp] : ranges_ax)
                for (const auto& [cr, crp] : clips_ax)
                  for (const auto& [pc, pcp] : pct_ax)
                    for (const auto& [rd, rdp] : round_ax)
                      for (const auto& [nf, nfp] : nf_ax)
                       for (const auto& [pg, pgp] : partial_ax)
                        for (const auto& combo : combos) {
                          schemes::SchemeConfig c = def;
                          c.params.bits = b;
                          c.params.group_size = g;
                          c.params.mapping = m;
                          c.params.range = rg;
                          c.params.clip_ratio = cr;
                          c.params.clip_percentile = pc;
                          c.params.rounding = rd;
                          c.params.non_finite = nf;
                          c.params.partial_last_group = pg;
                          for (const auto& [k, v] : combo) c.options.set(k, v);
                          try {
                            (void)schemes::make_scheme(c);  // validates params and the scheme's options
                          } catch (const std::exception& e) {
                            // The axis values that made this combination (defaults left out).
                            std::string where = sc.path;
                            for (const std::string* ap : {&bp, &gp, &mp, &rgp, &crp, &pcp, &rdp, &nfp, &pgp})
                              if (ap->find("(default") == std::string::npos) where += ", " + *ap;
                            for (const OptAx& o : opts_ax)
                              if (o.scheme.empty() || o.scheme == sc.id) where += ", " + o.path;
                            throw ConfigError(path, "config '" + c.label() + "' (" + where + "): " + e.what());
                          }
                          try {
                            c.params.validate_for_row_length(t.cols);
                          } catch (const std::exception& e) {
                            std::string what = in.display;
                            if (in.tensors.size() > 1 || in.description.value("kind", std::string()) != "synthetic")
                              what += (in.tensors.size() > 1 ? ", tensor '" + t.name + "' " : " ") + std::to_string(t.rows) +
                                      "x" + std::to_string(t.cols);
                            throw ConfigError(gp, std::string(e.what()) + " (" + in.path + ": " + what + ")");
                          }
                          for (const auto& [be, bep] : backends_ax) {
                            Run r;
                            r.kind = "tensor";
                            json cfg = report::config_json(c);
                            cfg.erase("label");  // derived from the rest
                            r.spec = {{"kind", "tensor"}, {"config", cfg},   {"backend", be},
                                      {"input", in.description}, {"tensor", t.name}, {"protocol", protocol}};
                            r.id = report::run_id(r.spec);
                            if (!seen.insert(r.id).second) continue;
                            std::string name = c.scheme + "/" + std::to_string(b) + "b/" +
                                               (m == quant::Mapping::symmetric ? "sym" : "asym") + "/" +
                                               (g > 0 ? "g" + group_name(g) + (pg ? "+tail" : "") : group_name(g));
                            if (rg != quant::RangeMethod::minmax) name += std::string("/") + quant::to_string(rg);
                            if (cr != 1.0) name += "/clip=" + json(cr).dump();
                            if (rg == quant::RangeMethod::percentile) name += "/p=" + json(pc).dump();
                            if (rd != quant::Rounding::nearest_even) name += std::string("/") + quant::to_string(rd);
                            if (nf != quant::NonFinitePolicy::error) name += "/nan=propagate";
                            for (const auto& [k, v] : c.options.items()) name += "/" + k + "=" + v;
                            name += "/" + be + "/" + in.short_name;
                            if (in.tensors.size() > 1 || t.name != in.short_name) {
                              if (t.name != "synthetic") name += "/" + t.name;
                            }
                            r.name = name;
                            r.origin = path;
                            r.cost = static_cast<double>(t.rows) * static_cast<double>(t.cols) *
                                     (rg == quant::RangeMethod::mse ? 8.0 : 1.0);  // the MSE search: ~8 passes
                            r.resource = in.description.dump() + "#" + t.name;
                            runs.push_back(std::move(r));
                          }
                        }
      }
  return runs;
}

}  // namespace

nlohmann::json tensor_protocol(const nlohmann::json& given, const std::string& path) {
  json p = {{"kind", "tensor"}, {"measure", "quantize+dequantize"}, {"sampling", "rows"}, {"version", 1}};
  if (given.is_null()) return p;
  if (!given.is_object()) throw ConfigError(path, "is not an object (the tensor protocol, e.g. {\"sampling\": \"rows\"})");
  for (const auto& [k, v] : given.items()) {
    const std::string kp = key_path(path, k);
    if (k == "kind") {
      if (v != "tensor") throw ConfigError(kp, shown_value(v) + " is not \"tensor\"");
    } else if (k == "measure") {
      if (v != "quantize+dequantize") throw ConfigError(kp, shown_value(v) + " is not \"quantize+dequantize\" (the only one)");
    } else if (k == "sampling") {
      if (v != "rows" && v != "none") throw ConfigError(kp, shown_value(v) + " is not \"rows\" or \"none\"");
      p[k] = v;
    } else if (k == "version") {
      if (v != 1) throw ConfigError(kp, shown_value(v) + " is not 1");
    } else {
      throw ConfigError(kp, "unknown key (known: kind, measure, sampling, version)");
    }
  }
  return p;
}

std::unique_ptr<inputs::TensorSource> open_input(const nlohmann::json& d) {
  const std::string kind = d.value("kind", std::string());
  if (kind == "synthetic") {
    inputs::SyntheticSpec s;
    s.dist = inputs::parse_distribution(d.at("distribution").get<std::string>());
    s.rows = d.at("rows").get<int64_t>();
    s.cols = d.at("cols").get<int64_t>();
    s.seed = d.at("seed").get<uint64_t>();
    if (d.contains("nu")) s.student_nu = d["nu"].get<int>();
    if (d.contains("outlier_channels")) s.outlier_channels = d["outlier_channels"].get<int64_t>();
    if (d.contains("outlier_scale")) s.outlier_scale = d["outlier_scale"].get<double>();
    return inputs::make_synthetic_source(s);
  }
  const std::string path = d.at("path").get<std::string>();
  auto src = kind == "raw_f32" ? inputs::open_file_source(path, d.at("rows").get<int64_t>(), d.at("cols").get<int64_t>())
                               : inputs::open_file_source(path);
  if (d.contains("xxh64")) {
    const std::string h = report::file_xxh64(path);
    if (h != d["xxh64"].get<std::string>())
      throw std::runtime_error("input file '" + path + "' changed since the sweep was planned (xxh64 " + h + ", planned " +
                               d["xxh64"].get<std::string>() + "); re-plan the sweep (without --resume) or restore the file");
  }
  return src;
}

void check_input_finite(const inputs::Tensor& t, const std::string& source_name, quant::NonFinitePolicy p) {
  if (p != quant::NonFinitePolicy::error) return;
  const quant::MatrixView v = t.view;
  for (int64_t r = 0; r < v.rows; ++r) {
    const float* row = v.row(r);
    for (int64_t c = 0; c < v.cols; ++c)
      if (!std::isfinite(row[c])) {
        std::ostringstream os;
        os << "input '" << source_name << "' holds " << (std::isnan(row[c]) ? "NaN" : (row[c] > 0 ? "+Inf" : "-Inf"))
           << " at row " << r << ", col " << c << "; clean the input or pass --non-finite propagate";
        throw quant::NonFiniteError(os.str());
      }
  }
}

SamplingStats sampling_stats(quant::MatrixView x, quant::MatrixView xhat) {
  SamplingStats s;
  s.rows = x.rows;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  s.sqnr_se_db = s.mse_se = nan;
  if (x.rows < 2 || x.cols < 1) return s;
  const auto R = static_cast<size_t>(x.rows);
  std::vector<double> a(R), b(R);
  std::vector<int64_t> n(R);
  for (int64_t r = 0; r < x.rows; ++r) {
    double sa = 0, sb = 0;
    int64_t k = 0;
    const float* xr = x.row(r);
    const float* yr = xhat.row(r);
    for (int64_t c = 0; c < x.cols; ++c) {
      if (!std::isfinite(xr[c])) continue;
      const double e = static_cast<double>(xr[c]) - static_cast<double>(yr[c]);
      sa += static_cast<double>(xr[c]) * xr[c];
      sb += e * e;
      ++k;
    }
    a[r] = sa;
    b[r] = sb;
    n[r] = k;
  }
  double ma = 0, mb = 0, mn = 0;
  for (size_t r = 0; r < R; ++r) {
    ma += a[r];
    mb += b[r];
    mn += static_cast<double>(n[r]);
  }
  ma /= static_cast<double>(R);
  mb /= static_cast<double>(R);
  mn /= static_cast<double>(R);
  double vaa = 0, vbb = 0, vab = 0;
  for (size_t r = 0; r < R; ++r) {
    vaa += (a[r] - ma) * (a[r] - ma);
    vbb += (b[r] - mb) * (b[r] - mb);
    vab += (a[r] - ma) * (b[r] - mb);
  }
  const double d = static_cast<double>(R - 1);
  vaa /= d;
  vbb /= d;
  vab /= d;
  if (ma > 0 && mb > 0) {
    const double var_ln = (vaa / (ma * ma) + vbb / (mb * mb) - 2.0 * vab / (ma * mb)) / static_cast<double>(R);
    s.sqnr_se_db = 10.0 / std::log(10.0) * std::sqrt(std::max(var_ln, 0.0));
  }
  if (mn > 0) s.mse_se = std::sqrt(vbb) / (mn * std::sqrt(static_cast<double>(R)));
  if (!std::isfinite(s.sqnr_se_db)) s.sqnr_se_db = nan;
  if (!std::isfinite(s.mse_se)) s.mse_se = nan;
  return s;
}

namespace {

struct LoadedTensor {
  inputs::Tensor tensor;
  std::string display;
};

std::string input_display(const json& d) {
  if (d.value("kind", std::string()) == "synthetic")
    return "synthetic " + d.value("distribution", std::string());
  std::string p = d.value("path", std::string());
  return p;
}

json TensorExecutor::execute(const Run& run, ExecContext& ctx) const {
  const json& spec = run.spec;
  schemes::SchemeConfig cfg;
  cfg.scheme = spec.at("config").at("scheme").get<std::string>();
  quant::from_json(spec.at("config").at("params"), cfg.params);
  for (const auto& [k, v] : spec.at("config").at("options").items()) cfg.options.set(k, v.get<std::string>());
  const std::string backend = spec.at("backend").get<std::string>();
  const std::string tname = spec.at("tensor").get<std::string>();

  auto loaded = std::static_pointer_cast<const LoadedTensor>(ctx.get_or_load(run.resource, [&] {
    auto lt = std::make_shared<LoadedTensor>();
    auto src = open_input(spec.at("input"));
    lt->tensor = src->load(tname);
    lt->display = input_display(spec.at("input"));
    return std::shared_ptr<const void>(lt);
  }));
  const inputs::Tensor& tensor = loaded->tensor;
  check_input_finite(tensor, loaded->display, cfg.params.non_finite);

  // Fault injection changes what executes, never the spec (so reports still match the baseline by id).
  // Schemes that fix their own rounding (code books: fp4, nf4, fp8) refuse another one; a one-group probe finds
  // out, and those run unchanged (the entry says whether the fault was applied).
  schemes::SchemeConfig exec_cfg = cfg;
  bool injected = false;
  if (ctx.inject_rounding) {
    schemes::SchemeConfig probe_cfg = cfg;
    probe_cfg.params.rounding = *ctx.inject_rounding;
    try {
      const int64_t n = cfg.params.group_size > 0 ? cfg.params.group_size : 8;
      quant::Matrix probe(1, n);
      for (int64_t i = 0; i < n; ++i) probe(0, i) = 0.1f * static_cast<float>(i) - 0.3f;
      (void)schemes::make_scheme(probe_cfg)->quantize(probe.view(), nullptr);
      exec_cfg = probe_cfg;
      injected = true;
    } catch (const std::invalid_argument&) {
    }
  }
  const auto scheme = schemes::make_scheme(exec_cfg);

  SamplingStats ss;
  double sampling_ms = 0;
  const bool want_sampling = spec.at("protocol").value("sampling", std::string("rows")) == "rows";
  const quant::MatrixView x = tensor.view;
  eval::DequantizeFn dq = [&](const quant::QuantizedMatrix& q, quant::MutableMatrixView out) {
    if (backend == "cpu") {
      scheme->dequantize(q, out);
    } else {
#if QEVAL_HAVE_OPENCL
      gpu::dequantize_cl(*gpu::default_device(), q, out);
#else
      throw std::runtime_error("backend '" + backend + "' is not built into this qeval");
#endif
    }
    if (want_sampling) {
      // Timed separately so timing_ms.dequantize stays the backend's own time.
      const auto t0 = std::chrono::steady_clock::now();
      ss = sampling_stats(x, quant::MatrixView{out.data, out.rows, out.cols, out.row_stride});
      sampling_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
  };
  const eval::QuantTestResult res =
      eval::QuantTester()
          .config(exec_cfg)
          .input(x, tensor.info.name + " " + std::to_string(tensor.info.rows) + "x" + std::to_string(tensor.info.cols))
          .no_checks()
          .Test([&](quant::MatrixView v, const quant::QuantParams&) { return scheme->quantize(v, nullptr); }, dq);

  json e;
  e["config"] = report::config_json(cfg);
  e["backend"] = backend;
  e["target"] = schemes::to_string(scheme->target());
  e["input"] = spec.at("input");
  e["tensor"] = {{"name", tensor.info.name}, {"rows", tensor.info.rows}, {"cols", tensor.info.cols}, {"dtype", tensor.info.dtype}};
  e["seed"] = spec.at("input").value("seed", static_cast<uint64_t>(0));
  e["path"] = "quantize+dequantize";
  if (ctx.inject_rounding)
    e["fault_injection"] = {{"rounding", quant::to_string(*ctx.inject_rounding)}, {"applied", injected}};
  json m = report::metrics_json(res.metrics);
  if (want_sampling)
    m["sampling"] = {{"rows", ss.rows}, {"sqnr_se_db", report::num(ss.sqnr_se_db)}, {"mse_se", report::num(ss.mse_se)}};
  e["metrics"] = m;
  e["timing_ms"] = {{"quantize", report::num(res.timing.quantize_ms)},
                    {"dequantize", report::num(res.timing.dequantize_ms - sampling_ms)},
                    {"metrics", report::num(res.timing.metrics_ms)},
                    {"sampling", report::num(sampling_ms)}};
  return e;
}

std::string fmte(const json& v) {
  if (!v.is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3e", v.get<double>());
  return buf;
}

constexpr int kSchemeW = 22;
constexpr int kInputW = 20;

std::string TensorExecutor::table_header() const {
  std::ostringstream os;
  os << std::left << std::setw(kSchemeW) << "scheme" << std::right << std::setw(5) << "bits" << std::setw(7) << "group"
     << std::setw(5) << "map" << "  " << std::left << std::setw(kInputW) << "input" << std::right << std::setw(7) << "b/w"
     << std::setw(11) << "MSE" << std::setw(8) << "SQNR" << std::setw(7) << "+-se" << std::setw(7) << "bound" << std::setw(7)
     << "grid" << std::setw(7) << "expect" << std::setw(7) << "gap" << std::setw(7) << "=grid" << std::setw(7) << "+range"
     << std::setw(7) << "+other" << std::setw(10) << "max|err|" << std::setw(9) << "cosine" << std::setw(7) << "clip%";
  return os.str();
}

std::string TensorExecutor::table_row(const json& r) const {
  const json& c = r.at("config");
  std::string name = c.at("scheme").get<std::string>();
  for (const auto& [k, v] : c.at("options").items()) name += " " + k + "=" + v.get<std::string>();
  const json& p = c.at("params");
  if (p.value("range", std::string("minmax")) != "minmax") name += " " + p.value("range", std::string());
  if (p.value("rounding", std::string("nearest_even")) != "nearest_even") name += " " + p.value("rounding", std::string());
  if (r.value("backend", std::string("cpu")) != "cpu") name += " @" + r.value("backend", std::string());
  if (name.size() > static_cast<size_t>(kSchemeW - 1)) name = name.substr(0, kSchemeW - 2) + "~";
  std::string input;
  const json& in = r.at("input");
  if (in.value("kind", std::string()) == "synthetic")
    input = in.value("distribution", std::string()) + " " + std::to_string(in.value("rows", 0)) + "x" +
            std::to_string(in.value("cols", 0));
  else
    input = in.value("path", std::string());
  const std::string tn = r.at("tensor").value("name", std::string());
  if (tn != "synthetic" && input.find(tn) == std::string::npos) input += ":" + tn;
  if (input.size() > static_cast<size_t>(kInputW - 1)) input = "~" + input.substr(input.size() - (kInputW - 2));
  const json& m = r.at("metrics");
  json clip = json_at(m, "/clipping/fraction");
  if (clip.is_number()) clip = 100.0 * clip.get<double>();
  auto num = [&](const char* ptr, int prec) { return table_number(json_at(m, ptr), prec); };
  std::ostringstream os;
  os << std::left << std::setw(kSchemeW) << name << std::right << std::setw(5) << p.value("bits", 0) << std::setw(7)
     << (group_name(p.value("group_size", int64_t{0})) + (p.value("partial_last_group", false) ? "+" : "")) << std::setw(5)
     << (p.value("mapping", std::string()) == "symmetric" ? "sym" : "asym") << "  " << std::left << std::setw(kInputW)
     << input << std::right << std::setw(7) << num("/bits_per_weight", 3) << std::setw(11) << fmte(json_at(m, "/mse"))
     << std::setw(8) << num("/sqnr_db", 2) << std::setw(7) << num("/sampling/sqnr_se_db", 3) << std::setw(7)
     << num("/bound_db", 2) << std::setw(7) << num("/grid_adjusted_db", 2) << std::setw(7)
     << num("/expected_sqnr_db", 2) << std::setw(7) << num("/gap_db/total", 2) << std::setw(7)
     << num("/gap_db/grid", 2) << std::setw(7) << num("/gap_db/range", 2) << std::setw(7)
     << num("/gap_db/other", 2) << std::setw(10) << fmte(json_at(m, "/max_abs_error")) << std::setw(9)
     << num("/cosine", 6) << std::setw(7) << table_number(clip, 3);
  return os.str();
}

std::string TensorExecutor::table_legend() const {
  return "SQNR, bound (6.02*b), grid (6.02*b + 20*log10((2^b-1)/2^b)), expect (10*log10(sigma^2/mean(s^2/12))) in dB;\n"
         "+-se = standard error of SQNR over the rows (sampling noise, docs/regression-gate.md);\n"
         "gap = bound - SQNR = grid loss + range loss (crest factor, group range vs sigma) + other (clipping, model "
         "departures);\n"
         "b/w = bits/weight with fp16 scales and zero points; '-' = not defined for code-book formats. "
         "See docs/metrics.md.";
}

}  // namespace

std::shared_ptr<RunExecutor> make_tensor_executor() { return std::make_shared<TensorExecutor>(); }

}  // namespace qeval::sweep
