// eval/sweep/tensor_kind.cpp — the "tensor" run kind: entry → typed TensorRunSpecs (expand), one run (execute),
// its table row.
#include "eval/sweep/tensor_kind.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <limits>
#include <set>
#include <sstream>

#include "eval/metrics/quant_tester.hpp"
#include "eval/report/report.hpp"
#include "eval/sweep/axes.hpp"
#include "quant/params_json.hpp"
#include "schemes/scheme.hpp"

#if QEVAL_HAVE_OPENCL
#include "gpu/backend.hpp"
#include "gpu/device.hpp"
#endif

namespace qeval::sweep {

namespace {

using nlohmann::json;

const std::vector<std::string> kInputKeys = {"kind", "name", "backends", "inputs", "protocol"};

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

// The backends axis: each must be built in and have a device.
std::vector<AxisValue<std::string>> parse_backends(const json& entry, const std::string& path) {
  std::vector<AxisValue<std::string>> out;
  for (const auto& [v, p] : config_axis(entry, path, "backends", json::array({"cpu"}))) {
    const std::string b = as_string(v, p, "a backend (cpu, opencl)");
    std::string why;
    if (!backend_available(b, &why)) throw ConfigError(p, why);
    out.push_back({b, p});
  }
  return out;
}

// The protocol of an entry: its own "protocol", else the config's protocol.tensor.
TensorProtocol entry_protocol(const json& entry, const std::string& path, const PlanContext& ctx) {
  if (entry.contains("protocol")) return parse_tensor_protocol(entry["protocol"], key_path(path, "protocol"));
  json given = json::object();
  if (ctx.protocol.is_object() && ctx.protocol.contains("tensor")) given = ctx.protocol["tensor"];
  return parse_tensor_protocol(given, "protocol.tensor");
}

// The group size must fit the tensor's rows (or partial groups be allowed): an error names both the group-size
// value and the input.
void check_row_length(const SchemePoint& pt, const TensorInput& in, const inputs::TensorInfo& t) {
  try {
    pt.config.params.validate_for_row_length(t.cols);
  } catch (const std::exception& e) {
    std::string what = in.display;
    if (in.tensors.size() > 1 || !in.synthetic)
      what += (in.tensors.size() > 1 ? ", tensor '" + t.name + "' " : " ") + std::to_string(t.rows) + "x" +
              std::to_string(t.cols);
    throw ConfigError(pt.group_path, std::string(e.what()) + " (" + in.path + ": " + what + ")");
  }
}

// "rtn/4b/sym/g128/cpu/gaussian-1024x4096" plus whatever differs from the defaults.
std::string run_name(const TensorRunSpec& s) {
  const quant::QuantParams& q = s.config.params;
  const int64_t g = q.group_size;
  std::string name = s.config.scheme + "/" + std::to_string(q.bits) + "b/" + mapping_word(q.mapping) + "/" +
                     (g > 0 ? "g" + group_name(g) + (q.partial_last_group ? "+tail" : "") : group_name(g));
  if (q.range != quant::RangeMethod::minmax) name += std::string("/") + quant::to_string(q.range);
  if (q.clip_ratio != 1.0) name += "/clip=" + json(q.clip_ratio).dump();
  if (q.range == quant::RangeMethod::percentile) name += "/p=" + json(q.clip_percentile).dump();
  if (q.rounding != quant::Rounding::nearest_even) name += std::string("/") + quant::to_string(q.rounding);
  if (q.non_finite != quant::NonFinitePolicy::error) name += "/nan=propagate";
  for (const auto& [k, v] : s.config.options.items()) name += "/" + k + "=" + v;
  name += "/" + s.backend + "/" + s.input->short_name;
  if ((s.input->tensors.size() > 1 || s.tensor.name != s.input->short_name) && s.tensor.name != "synthetic")
    name += "/" + s.tensor.name;
  return name;
}

Run tensor_run(std::shared_ptr<const TensorRunSpec> s, const std::string& origin) {
  Run r = make_run("tensor", s);
  r.name = run_name(*s);
  r.origin = origin;
  r.cost = static_cast<double>(s->tensor.rows) * static_cast<double>(s->tensor.cols) *
           (s->config.params.range == quant::RangeMethod::mse ? 8.0 : 1.0);  // the MSE search: ~8 passes
  r.resource = s->input->description.dump() + "#" + s->tensor.name;
  return r;
}

class TensorExecutor final : public RunExecutor {
 public:
  std::string kind() const override { return "tensor"; }
  std::string summary() const override {
    return "quantize + dequantize one tensor (synthetic or file) and measure MSE/SQNR against the 6.02*b bound";
  }
  std::vector<std::string> known_keys() const override {
    std::vector<std::string> k = kInputKeys;
    k.insert(k.end(), kSchemeKeys.begin(), kSchemeKeys.end());
    k.insert(k.end(), kQuantDetailKeys.begin(), kQuantDetailKeys.end());
    return k;
  }
  std::vector<Run> expand(const json& entry, const std::string& path, const PlanContext& ctx) const override;
  json execute(const Run& run, ExecContext& ctx) const override;
  std::string table_header() const override;
  std::string table_row(const json& entry) const override;
  std::string table_legend() const override;
};

// Stages: protocol, scheme axes, backends, inputs (all parsed and validated once), then the cross product
// inputs × tensors × schemes × scheme points × backends.
std::vector<Run> TensorExecutor::expand(const json& entry, const std::string& path, const PlanContext& ctx) const {
  const TensorProtocol protocol = entry_protocol(entry, path, ctx);
  const SchemeAxes axes = parse_scheme_axes(entry, path, /*detail=*/true);
  const std::vector<AxisValue<std::string>> backends = parse_backends(entry, path);
  std::vector<std::shared_ptr<const TensorInput>> ins;
  for (const auto& [v, p] : config_axis(entry, path, "inputs", json::array({"gaussian"})))
    ins.push_back(std::make_shared<const TensorInput>(parse_tensor_input(v, p, ctx.seed, ctx.base_dir)));
  std::vector<std::vector<SchemePoint>> points;  // per scheme
  for (const auto& sc : axes.schemes) points.push_back(scheme_points(axes, sc, path));

  std::vector<Run> runs;
  std::set<std::string> seen;
  for (const auto& in : ins)
    for (const inputs::TensorInfo& t : in->tensors)
      for (const auto& pts : points)
        for (const SchemePoint& pt : pts) {
          check_row_length(pt, *in, t);
          for (const auto& be : backends) {
            auto s = std::make_shared<TensorRunSpec>();
            s->config = pt.config;
            s->backend = be.value;
            s->input = in;
            s->tensor = t;
            s->protocol = protocol;
            s->axes = pt.paths;
            if (!be.is_default()) s->axes.push_back(be.path);
            s->axes.push_back(in->path);
            Run r = tensor_run(std::move(s), path);
            if (seen.insert(r.id).second) runs.push_back(std::move(r));
          }
        }
  return runs;
}

struct LoadedTensor {
  inputs::Tensor tensor;
};

// Fault injection changes what executes, never the spec (so reports still match the baseline by id). Schemes that
// fix their own rounding (code books: fp4, nf4, fp8) refuse another one; a one-group probe finds out, and those run
// unchanged (*applied says whether the fault was applied).
schemes::SchemeConfig injected_config(const schemes::SchemeConfig& cfg, const ExecContext& ctx, bool* applied) {
  *applied = false;
  if (!ctx.inject_rounding) return cfg;
  schemes::SchemeConfig probe_cfg = cfg;
  probe_cfg.params.rounding = *ctx.inject_rounding;
  try {
    const int64_t n = cfg.params.group_size > 0 ? cfg.params.group_size : 8;
    quant::Matrix probe(1, n);
    for (int64_t i = 0; i < n; ++i) probe(0, i) = 0.1f * static_cast<float>(i) - 0.3f;
    (void)schemes::make_scheme(probe_cfg)->quantize(probe.view(), nullptr);
  } catch (const std::invalid_argument&) {
    return cfg;
  }
  *applied = true;
  return probe_cfg;
}

// The runs[] fields of one finished run.
json result_entry(const TensorRunSpec& s, const schemes::Scheme& scheme, const eval::QuantTestResult& res,
                  const SamplingStats* ss, double sampling_ms, const ExecContext& ctx, bool injected) {
  json e;
  e["config"] = report::config_json(s.config);
  e["backend"] = s.backend;
  e["target"] = schemes::to_string(scheme.target());
  e["input"] = s.input->description;
  e["tensor"] = {{"name", s.tensor.name}, {"rows", s.tensor.rows}, {"cols", s.tensor.cols}, {"dtype", s.tensor.dtype}};
  e["seed"] = s.input->description.value("seed", static_cast<uint64_t>(0));
  e["path"] = "quantize+dequantize";
  if (ctx.inject_rounding)
    e["fault_injection"] = {{"rounding", quant::to_string(*ctx.inject_rounding)}, {"applied", injected}};
  json m = report::metrics_json(res.metrics);
  if (ss) m["sampling"] = {{"rows", ss->rows}, {"sqnr_se_db", report::num(ss->sqnr_se_db)}, {"mse_se", report::num(ss->mse_se)}};
  e["metrics"] = m;
  e["timing_ms"] = {{"quantize", report::num(res.timing.quantize_ms)},
                    {"dequantize", report::num(res.timing.dequantize_ms - sampling_ms)},
                    {"metrics", report::num(res.timing.metrics_ms)},
                    {"sampling", report::num(sampling_ms)}};
  return e;
}

// Where a run on `opencl` quantizes: on the device when the scheme's codes are its params' plain affine formula
// (traits().plain_affine) and the kernel takes those params (gpu::ActQuantSpec::from_params: minmax range, per row
// or grouped) — bit-exact with the host, so the metrics equal the cpu run's; otherwise on the host, and the entry
// says why. Returns "" for the device, else the reason.
std::string host_quantize_reason(const schemes::Scheme& scheme) {
  if (!scheme.traits().plain_affine)
    return "the scheme quantizes with its own algorithm or code book (only plain affine codes have a device kernel)";
  const quant::QuantParams& p = scheme.params();
  if (p.range != quant::RangeMethod::minmax)
    return std::string("range ") + quant::to_string(p.range) + " (the kernel does minmax)";
  if (p.group_size == quant::kPerTensor) return "per-tensor scale (the kernel works per row or per group)";
  return "";
}

json TensorExecutor::execute(const Run& run, ExecContext& ctx) const {
  const auto& s = static_cast<const TensorRunSpec&>(*run.typed);
  auto loaded = std::static_pointer_cast<const LoadedTensor>(ctx.get_or_load(run.resource, [&] {
    auto lt = std::make_shared<LoadedTensor>();
    lt->tensor = s.input->open()->load(s.tensor.name);
    return std::shared_ptr<const void>(lt);
  }));
  const inputs::Tensor& tensor = loaded->tensor;
  check_input_finite(tensor, s.input->source_name(), s.config.params.non_finite);

  bool injected = false;
  const schemes::SchemeConfig exec_cfg = injected_config(s.config, ctx, &injected);
  const auto scheme = schemes::make_scheme(exec_cfg);
  SamplingStats ss;
  double sampling_ms = 0;
  const bool want_sampling = s.protocol.sampling == "rows";
  const quant::MatrixView x = tensor.view;
  eval::DequantizeFn dq = [&](const quant::QuantizedMatrix& q, quant::MutableMatrixView out) {
    if (s.backend == "cpu") {
      scheme->dequantize(q, out);
    } else {
#if QEVAL_HAVE_OPENCL
      gpu::dequantize_cl(*gpu::default_device(), q, out);
#else
      throw std::runtime_error("backend '" + s.backend + "' is not built into this qeval");
#endif
    }
    if (!want_sampling) return;
    // Timed separately so timing_ms.dequantize stays the backend's own time.
    const auto t0 = std::chrono::steady_clock::now();
    ss = sampling_stats(x, quant::MatrixView{out.data, out.rows, out.cols, out.row_stride});
    sampling_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  const std::string host_reason = s.backend == "cpu" ? "" : host_quantize_reason(*scheme);
  eval::QuantizeFn q = [&](quant::MatrixView v, const quant::QuantParams&) {
#if QEVAL_HAVE_OPENCL
    if (s.backend == "opencl" && host_reason.empty())
      return gpu::quantize_cl(*gpu::default_device(), v, scheme->params());
#endif
    return scheme->quantize(v, nullptr);
  };
  const eval::QuantTestResult res =
      eval::QuantTester()
          .config(exec_cfg)
          .input(x, tensor.info.name + " " + std::to_string(tensor.info.rows) + "x" + std::to_string(tensor.info.cols))
          .no_checks()
          .Test(q, dq);
  json e = result_entry(s, *scheme, res, want_sampling ? &ss : nullptr, sampling_ms, ctx, injected);
  if (s.backend != "cpu") e["quantized_on"] = host_reason.empty() ? s.backend : "host: " + host_reason;
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

json TensorProtocol::to_json() const {
  return {{"kind", "tensor"}, {"measure", "quantize+dequantize"}, {"sampling", sampling}, {"version", 1}};
}

TensorProtocol parse_tensor_protocol(const json& given, const std::string& path) {
  TensorProtocol p;
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
      p.sampling = v.get<std::string>();
    } else if (k == "version") {
      if (v != 1) throw ConfigError(kp, shown_value(v) + " is not 1");
    } else {
      throw ConfigError(kp, "unknown key (known: kind, measure, sampling, version)");
    }
  }
  return p;
}

json TensorRunSpec::to_json() const {
  json cfg = report::config_json(config);
  cfg.erase("label");  // derived from the rest
  return {{"kind", "tensor"}, {"config", cfg},           {"backend", backend},
          {"input", input->description}, {"tensor", tensor.name}, {"protocol", protocol.to_json()}};
}

json TensorRunSpec::explain() const {
  json params;
  quant::to_json(params, config.params);
  return {{"type", "sweep::TensorRunSpec"},
          {"scheme_config", {{"type", "schemes::SchemeConfig"}, {"scheme", config.scheme}, {"label", config.label()},
                             {"params", {{"type", "quant::QuantParams"}, {"value", params}}},
                             {"options", json(config.options.items())}}},
          {"backend", backend},
          {"input", {{"type", "sweep::TensorInput"}, {"from", input->path}, {"display", input->display},
                     {"tensor", tensor.name + " " + std::to_string(tensor.rows) + "x" + std::to_string(tensor.cols)}}},
          {"protocol", protocol.to_json()},
          {"from", axes}};
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

std::shared_ptr<RunExecutor> make_tensor_executor() { return std::make_shared<TensorExecutor>(); }

}  // namespace qeval::sweep
