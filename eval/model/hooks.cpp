// eval/model/hooks.cpp — QuantPlan resolution and JSON, glob matching, calibration capture (Hessian, absmax, absmean).
#include "eval/model/hooks.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "quant/params_json.hpp"

namespace qeval::model {

bool glob_match(const std::string& pattern, const std::string& name) {
  // Iterative wildcard matching with backtracking to the last '*': O(|p|·|n|) worst case.
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

void QuantPlan::check_overrides(const std::vector<std::string>& layers) const {
  for (const auto& o : overrides) {
    bool hit = false;
    for (const auto& n : layers) hit = hit || glob_match(o.pattern, n);
    if (!hit)
      throw std::invalid_argument("quant plan: override pattern '" + o.pattern +
                                  "' matches no linear layer (names look like blk.3.ffn_down, output)");
  }
}

QuantPlan::Resolved QuantPlan::resolve(const std::string& layer) const {
  Resolved r{weight, activation};
  for (const auto& o : overrides) {
    if (!glob_match(o.pattern, layer)) continue;
    if (o.skip) {
      r.weight.reset();
      r.activation.reset();
      continue;
    }
    if (o.skip_weight) r.weight.reset();
    if (o.skip_activation) r.activation.reset();
    if (o.weight) r.weight = o.weight;
    if (o.activation) r.activation = o.activation;
  }
  return r;
}

nlohmann::json scheme_config_to_json(const schemes::SchemeConfig& c) {
  nlohmann::json j;
  j["scheme"] = c.scheme;
  nlohmann::json p;
  quant::to_json(p, c.params);
  j["params"] = p;
  nlohmann::json o = nlohmann::json::object();
  for (const auto& [k, v] : c.options.items()) o[k] = v;
  j["options"] = o;
  return j;
}

schemes::SchemeConfig scheme_config_from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("scheme") || !j["scheme"].is_string())
    throw std::invalid_argument(
        "quant plan: a scheme must be an object {\"scheme\": \"<id>\", \"params\": {...}, \"options\": {...}}, got " +
        j.dump());
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "scheme" && it.key() != "params" && it.key() != "options")
      throw std::invalid_argument("quant plan: unknown key '" + it.key() +
                                  "' in a scheme object (accepted: scheme, params, options)");
  schemes::SchemeConfig c = schemes::default_config(j["scheme"].get<std::string>());
  if (j.contains("params")) {
    // Missing keys keep the scheme's defaults (bits, group size from schemes.def).
    nlohmann::json p;
    quant::to_json(p, c.params);
    for (auto it = j["params"].begin(); it != j["params"].end(); ++it) p[it.key()] = it.value();
    quant::from_json(p, c.params);
  }
  if (j.contains("options")) {
    if (!j["options"].is_object())
      throw std::invalid_argument("quant plan: \"options\" must be an object of strings");
    for (auto it = j["options"].begin(); it != j["options"].end(); ++it) {
      const auto& v = it.value();
      c.options.set(it.key(), v.is_string() ? v.get<std::string>() : v.dump());
    }
  }
  return c;
}

namespace {
nlohmann::json opt_scheme(const std::optional<schemes::SchemeConfig>& c) {
  return c ? scheme_config_to_json(*c) : nlohmann::json(nullptr);
}
std::optional<schemes::SchemeConfig> opt_scheme_from(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  return scheme_config_from_json(j[key]);
}
}  // namespace

nlohmann::json QuantPlan::to_json() const {
  nlohmann::json j;
  j["weight"] = opt_scheme(weight);
  j["activation"] = opt_scheme(activation);
  j["kv_cache"] = opt_scheme(kv_cache);
  nlohmann::json ov = nlohmann::json::array();
  for (const auto& o : overrides) {
    nlohmann::json e;
    e["pattern"] = o.pattern;
    if (o.skip) e["skip"] = true;
    if (o.skip_weight) e["weight"] = "skip";
    else if (o.weight) e["weight"] = scheme_config_to_json(*o.weight);
    if (o.skip_activation) e["activation"] = "skip";
    else if (o.activation) e["activation"] = scheme_config_to_json(*o.activation);
    ov.push_back(e);
  }
  j["overrides"] = ov;
  return j;
}

QuantPlan QuantPlan::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("quant plan: expected a JSON object, got " + j.dump());
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k != "weight" && k != "activation" && k != "kv_cache" && k != "overrides")
      throw std::invalid_argument("quant plan: unknown key '" + k +
                                  "' (accepted: weight, activation, kv_cache, overrides)");
  }
  QuantPlan p;
  p.weight = opt_scheme_from(j, "weight");
  p.activation = opt_scheme_from(j, "activation");
  p.kv_cache = opt_scheme_from(j, "kv_cache");
  if (j.contains("overrides")) {
    if (!j["overrides"].is_array()) throw std::invalid_argument("quant plan: \"overrides\" must be an array");
    for (const auto& e : j["overrides"]) {
      if (!e.is_object() || !e.contains("pattern") || !e["pattern"].is_string())
        throw std::invalid_argument("quant plan: each override needs a string \"pattern\", got " + e.dump());
      LayerOverride o;
      o.pattern = e["pattern"].get<std::string>();
      for (auto it = e.begin(); it != e.end(); ++it) {
        const std::string& k = it.key();
        const auto& v = it.value();
        if (k == "pattern") continue;
        if (k == "skip") {
          if (!v.is_boolean()) throw std::invalid_argument("quant plan: override \"skip\" must be true/false");
          o.skip = v.get<bool>();
        } else if (k == "weight" || k == "activation") {
          const bool is_w = k == "weight";
          if (v.is_string() && v.get<std::string>() == "skip") {
            (is_w ? o.skip_weight : o.skip_activation) = true;
          } else {
            (is_w ? o.weight : o.activation) = scheme_config_from_json(v);
          }
        } else {
          throw std::invalid_argument("quant plan: unknown override key '" + k +
                                      "' (accepted: pattern, skip, weight, activation)");
        }
      }
      p.overrides.push_back(std::move(o));
    }
  }
  return p;
}

// ---- calibration capture ----------------------------------------------------------------------

CalibrationCapture::CalibrationCapture(CaptureOptions opt) : opt_(std::move(opt)) {
  if (opt_.layers.empty())
    throw std::invalid_argument("calibration capture: no layers named (give globs such as \"blk.*.ffn_down\")");
}

bool CalibrationCapture::wants(const std::string& layer) const {
  for (const auto& g : opt_.layers)
    if (glob_match(g, layer)) return true;
  return false;
}

void CalibrationCapture::record(const std::string& name, const float* x, int64_t rows, int64_t cols) {
  if (rows <= 0) return;
  Layer& L = layers_[name];
  if (L.cols == 0) {
    L.cols = cols;
    if (opt_.hessian) L.xtx.assign(static_cast<size_t>(cols * cols), 0.0);
    if (opt_.act_stats) {
      L.absmax.assign(static_cast<size_t>(cols), 0.0);
      L.abssum.assign(static_cast<size_t>(cols), 0.0);
    }
  } else if (L.cols != cols) {
    throw std::invalid_argument("calibration capture: layer " + name + " had " + std::to_string(L.cols) +
                                " input features, now " + std::to_string(cols));
  }
  if (opt_.keep_inputs) {
    int64_t take = rows;
    if (opt_.max_rows >= 0) take = std::min<int64_t>(rows, std::max<int64_t>(0, opt_.max_rows - L.kept));
    L.inputs.insert(L.inputs.end(), x, x + take * cols);
    L.kept += take;
  }
  if (opt_.act_stats) {
    // Row order, double accumulation: thread-count independent.
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        const double a = std::fabs(static_cast<double>(xr[c]));
        if (a > L.absmax[c]) L.absmax[c] = a;
        L.abssum[c] += a;
      }
    }
  }
  if (opt_.hessian) {
    // Σ xᵀx of this batch by one double GEMM (exact products of floats in double; the sum's rounding is
    // ~rows·2⁻⁵³ relative, far below anything GPTQ is sensitive to).
    at::Tensor X = at::from_blob(const_cast<float*>(x), {rows, cols}, at::kFloat).to(at::kDouble);
    at::Tensor G = at::mm(X.t(), X).contiguous();
    const double* g = G.data_ptr<double>();
    for (int64_t i = 0; i < cols * cols; ++i) L.xtx[static_cast<size_t>(i)] += g[i];
  }
  L.n += rows;
}

std::vector<std::string> CalibrationCapture::layers() const {
  std::vector<std::string> out;
  for (const auto& kv : layers_) out.push_back(kv.first);
  return out;
}

const CalibrationCapture::Layer& CalibrationCapture::get(const std::string& layer) const {
  auto it = layers_.find(layer);
  if (it == layers_.end()) {
    std::string names;
    for (const auto& kv : layers_) names += (names.empty() ? "" : ", ") + kv.first;
    throw std::invalid_argument("calibration capture: nothing recorded for layer '" + layer +
                                "' (captured: " + (names.empty() ? "none — run forwards first" : names) + ")");
  }
  return it->second;
}

int64_t CalibrationCapture::rows_seen(const std::string& layer) const {
  auto it = layers_.find(layer);
  return it == layers_.end() ? 0 : it->second.n;
}

schemes::Calibration CalibrationCapture::calibration(const std::string& layer) const {
  const Layer& L = get(layer);
  schemes::Calibration c;
  c.layer_name = layer;
  c.n_samples = L.n;
  if (opt_.keep_inputs && L.kept > 0) c.inputs = quant::MatrixView(L.inputs.data(), L.kept, L.cols);
  if (opt_.hessian) {
    // H = 2·XᵀX / n (GPTQ's convention: the Hessian of the layer's squared output error Σ‖Xw − Xŵ‖²/n).
    c.hessian.resize(L.xtx.size());
    const double f = 2.0 / static_cast<double>(L.n);
    for (size_t i = 0; i < L.xtx.size(); ++i) c.hessian[i] = L.xtx[i] * f;
  }
  if (opt_.act_stats) {
    c.act_absmax.resize(static_cast<size_t>(L.cols));
    c.act_absmean.resize(static_cast<size_t>(L.cols));
    for (int64_t j = 0; j < L.cols; ++j) {
      c.act_absmax[j] = static_cast<float>(L.absmax[j]);
      c.act_absmean[j] = static_cast<float>(L.abssum[j] / static_cast<double>(L.n));
    }
  }
  return c;
}

std::map<std::string, schemes::Calibration> CalibrationCapture::calibrations() const {
  std::map<std::string, schemes::Calibration> out;
  for (const auto& kv : layers_) out.emplace(kv.first, calibration(kv.first));
  return out;
}

}  // namespace qeval::model
