// eval/model/model_run.cpp — one model run (load, fp reference, calibration, quantize, evaluate, blame) as JSON.
#include "eval/model/model_run.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "eval/model/model_util.hpp"

namespace qeval::model {

namespace {

Protocol protocol_of(const nlohmann::json& j, const std::string& root) {
  if (j.is_string()) return Protocol::load(resolve_path(root, j.get<std::string>()));
  if (j.is_object()) return Protocol::from_json(j);
  throw std::invalid_argument("model run: \"protocol\" must be a protocol file path or a protocol object, got " +
                              j.dump());
}

// Test-only fault injection (ModelRunContext::fault_scale_error): a weight scheme whose stored scales come out
// multiplied by (1 + e) — the codes unchanged, as a bad scale conversion would leave them. Everything else is the
// wrapped scheme's.
class ScaleErrorScheme final : public schemes::Scheme {
 public:
  ScaleErrorScheme(std::shared_ptr<const schemes::Scheme> inner, double e)
      : schemes::Scheme(inner->config()), inner_(std::move(inner)), e_(e) {}
  schemes::SchemeTraits traits() const override { return inner_->traits(); }
  schemes::Calibration calibrate(schemes::Calibration c) const override { return inner_->calibrate(std::move(c)); }
  std::vector<float> input_channel_scales(const schemes::Calibration& c,
                                          const std::vector<quant::MatrixView>& w) const override {
    return inner_->input_channel_scales(c, w);
  }
  quant::QuantizedMatrix quantize(quant::MatrixView x, const schemes::Calibration* c) const override {
    quant::QuantizedMatrix q = inner_->quantize(x, c);
    for (float& v : q.scales) v = static_cast<float>(v * (1.0 + e_));
    return q;
  }
  void dequantize(const quant::QuantizedMatrix& q, quant::MutableMatrixView out) const override {
    inner_->dequantize(q, out);
  }
  std::map<std::string, std::map<std::string, double>> run_stats() const override { return inner_->run_stats(); }

 private:
  std::shared_ptr<const schemes::Scheme> inner_;
  double e_;
};

SchemeFactory scale_error_factory(double e) {
  return [e](const schemes::SchemeConfig& c) -> std::shared_ptr<const schemes::Scheme> {
    std::shared_ptr<const schemes::Scheme> s = schemes::make_scheme(c);
    if (s->target() != schemes::Target::weight) return s;
    return std::make_shared<ScaleErrorScheme>(std::move(s), e);
  };
}

// Mean and standard error of per-token differences d (token order, S scored tokens per window): the larger of the
// token-level and the window-level estimate, since the tokens of one window are correlated.
nlohmann::json diff_stats(const std::vector<double>& d, int64_t per_window, double scale = 1.0) {
  const NllStats st = nll_stats(d.data(), static_cast<int64_t>(d.size()), per_window);
  return {{"delta", scale * st.mean_nll}, {"se", scale * std::max(st.se_nll, st.se_nll_window)}};
}

// The loaded checkpoint as a shared pointer that keeps its Loaded alive (for LlamaModel's sharing constructor).
std::shared_ptr<const Checkpoint> shared_checkpoint(const std::shared_ptr<const ModelRunContext::Loaded>& l) {
  return std::shared_ptr<const Checkpoint>(l, &l->ck);
}

// What the reassociation twin needs of the run it shadows.
struct TwinInputs {
  const std::shared_ptr<const ModelRunContext::Loaded>& loaded;
  const Evaluator& ev;
  const QuantPlan& plan;
  const CalibrationWindows* calib;
  const QuantizeOptions& qo;
  const EvalOptions& eo;        // keep_tokens set
  const EvalResult& run;        // the run's own evaluation (per-token NLL and KL kept)
  const FpReference& ref;       // the run's fp reference
  const QuantizedModel& qm;
  const std::string& backend;   // the run's backend: the twin runs on it too
};

// The run again with Reassociation::split_k everywhere (reference, calibration forward, evaluation), compared
// token by token (model_run.hpp, "twin").
nlohmann::json run_twin(const TwinInputs& in, ModelRunContext& ctx) {
  const double t0 = now_s();
  LlamaModel t(shared_checkpoint(in.loaded));
  t.set_reassociation(Reassociation::split_k);
  t.set_backend(make_linear_backend(in.backend));
  const auto ref_t = in.ev.reference(t, ctx.cache_dir());
  const QuantizedModel qm_t = quantize_model(t, in.plan, in.calib, in.qo);
  const EvalResult r_t = in.ev.evaluate(t, ref_t.get(), in.eo);
  const int64_t n = static_cast<int64_t>(in.run.token_kl.size()), S = in.ev.windows().scored_per_window();
  if (static_cast<int64_t>(r_t.token_kl.size()) != n || static_cast<int64_t>(in.run.token_nll.size()) != n)
    throw std::logic_error("reassociation twin: the twin scored another number of tokens than the run");
  std::vector<double> dkl(n), dq(n), dfp(n);
  for (int64_t i = 0; i < n; ++i) {
    dkl[i] = r_t.token_kl[i] - in.run.token_kl[i];
    dq[i] = r_t.token_nll[i] - in.run.token_nll[i];
    dfp[i] = ref_t->nll()[i] - in.ref.nll()[i];
  }
  // Δppl = exp(mean nll_q) − exp(mean nll_fp): to first order its change is ppl_q·Δmean(nll_q) − ppl_fp·Δmean(nll_fp);
  // the two standard errors are added (the changes are correlated through the shared forward).
  const nlohmann::json sq = diff_stats(dq, S, in.run.ppl.ppl), sfp = diff_stats(dfp, S, in.run.ref_ppl.ppl);
  nlohmann::json changed = nlohmann::json::array();
  const nlohmann::json fa = in.qm.fingerprint_json()["layers"], fb = qm_t.fingerprint_json()["layers"];
  for (const auto& [layer, h] : fa.items())
    if (!fb.contains(layer) || fb[layer] != h) changed.push_back(layer);
  return {{"reassociation", to_string(Reassociation::split_k)},
          {"kl", diff_stats(dkl, S)},
          {"delta_ppl",
           {{"delta", r_t.delta_ppl - in.run.delta_ppl},
            {"se", sq["se"].get<double>() + sfp["se"].get<double>()}}},
          {"fp_ppl", {{"delta", r_t.ref_ppl.ppl - in.run.ref_ppl.ppl}}},
          {"fingerprint_equal", changed.empty() && fa.size() == fb.size()},
          {"changed_layers", changed},
          {"seconds", now_s() - t0}};
}

}  // namespace

// ---- spec ------------------------------------------------------------------------------------------------------

nlohmann::json normalize_plan_json(const nlohmann::json& plan) {
  if (!plan.is_object()) return plan;
  nlohmann::json p = plan;
  auto move_linear = [](nlohmann::json& o, const std::string& where) {
    if (!o.is_object() || !o.contains("linear")) return;
    if (o.contains("weight"))
      throw std::invalid_argument("quant plan" + where + ": both \"linear\" and \"weight\" given; a linear scheme "
                                  "(smoothquant, llm_int8) takes the weight's place — give one");
    o["weight"] = o["linear"];
    o.erase("linear");
  };
  move_linear(p, "");
  if (p.contains("overrides") && p["overrides"].is_array())
    for (size_t i = 0; i < p["overrides"].size(); ++i)
      move_linear(p["overrides"][i], " override " + std::to_string(i));
  return p;
}

nlohmann::json ModelRunSpec::to_json() const {
  nlohmann::json j = {{"model", model},
                      {"protocol", protocol},
                      {"plan", plan.to_json()},
                      {"calibration", calibration.to_json()},
                      {"lambada", lambada < 0 ? nlohmann::json("auto") : nlohmann::json(lambada == 1)},
                      {"blame_windows", blame_windows},
                      {"max_windows", max_windows},
                      {kReferenceOverridesKey, reference_overrides}};
  if (has_mixed) j["mixed"] = mixed.to_json();
  if (backend != "ref") j["backend"] = backend;
  return j;
}

ModelRunSpec ModelRunSpec::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("model run: the spec must be a JSON object");
  ModelRunSpec s;
  bool have_model = false, have_protocol = false;
  for (const auto& [k, v] : j.items()) {
    if (k == "model") {
      if (!v.is_string()) throw std::invalid_argument("model run: \"model\" must be a path string");
      s.model = v.get<std::string>();
      have_model = true;
    } else if (k == "protocol") {
      s.protocol = v;
      have_protocol = true;
    } else if (k == "plan") {
      s.plan = v.is_null() ? QuantPlan{} : QuantPlan::from_json(normalize_plan_json(v));
    } else if (k == "calibration") {
      s.calibration = CalibrationSpec::from_json(v);
    } else if (k == "mixed") {
      s.mixed = MixedSpec::from_json(v);
      s.has_mixed = true;
    } else if (k == "lambada") {
      if (v.is_boolean()) {
        s.lambada = v.get<bool>() ? 1 : 0;
      } else if (v.is_string() && v.get<std::string>() == "auto") {
        s.lambada = -1;
      } else {
        throw std::invalid_argument("model run: \"lambada\" must be true, false or \"auto\", got " + v.dump());
      }
    } else if (k == "blame_windows" || k == "max_windows") {
      if (!v.is_number_integer()) throw std::invalid_argument("model run: \"" + k + "\" must be an integer");
      (k == "blame_windows" ? s.blame_windows : s.max_windows) = v.get<int64_t>();
    } else if (k == kReferenceOverridesKey) {
      if (!v.is_boolean())
        throw std::invalid_argument(std::string("model run: \"") + kReferenceOverridesKey + "\" must be true or false");
      s.reference_overrides = v.get<bool>();
    } else if (k == "backend") {
      if (!v.is_string()) throw std::invalid_argument("model run: \"backend\" must be a backend name (ref, cpu, opencl)");
      s.backend = v.get<std::string>();
      (void)make_linear_backend(s.backend);  // an unknown name: an error naming the known ones
    } else if (k == "kind") {
      if (v != "model") throw std::invalid_argument("model run: \"kind\" must be \"model\", got " + v.dump());
    } else {
      throw std::invalid_argument("model run: unknown key \"" + k +
                                  "\" (accepted: model, protocol, plan, calibration, mixed, lambada, blame_windows, "
                                  "max_windows, backend, " + kReferenceOverridesKey + ")");
    }
  }
  if (!have_model) throw std::invalid_argument("model run: \"model\" (a GGUF or safetensors path) is required");
  if (!have_protocol)
    throw std::invalid_argument("model run: \"protocol\" is required (e.g. \"configs/protocol-wikitext2-512-quick.json\")");
  return s;
}

// ---- context ---------------------------------------------------------------------------------------------------

ModelRunContext::ModelRunContext(std::string root, std::string cache_dir, std::string work_dir)
    : root_(std::move(root)), cache_dir_(std::move(cache_dir)), work_dir_(std::move(work_dir)) {
  if (work_dir_.empty()) work_dir_ = cache_dir_.empty() ? "/tmp/qeval-allocations" : cache_dir_ + "/allocations";
}

std::shared_ptr<const ModelRunContext::Loaded> ModelRunContext::model(const std::string& path) {
  const std::string full = resolve_path(root_, path);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = models_.find(full);
    if (it != models_.end()) return it->second;
  }
  const double t0 = now_s();
  auto l = std::make_shared<Loaded>();
  l->path = full;
  l->ck = load_checkpoint(full, weight_precision_from_env(WeightPrecision::file));  // F16/BF16 stay 16-bit
  l->ts = token_source_for(l->ck);
  l->load_seconds = now_s() - t0;
  std::lock_guard<std::mutex> lock(mu_);
  return models_.emplace(full, l).first->second;
}

std::shared_ptr<const Evaluator> ModelRunContext::evaluator(const Loaded& m, const Protocol& p) {
  const std::string key = m.path + "|" + m.ts.hash + "|" + p.hash();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = evaluators_.find(key);
    if (it != evaluators_.end()) return it->second;
  }
  auto ev = std::make_shared<const Evaluator>(make_evaluator(p, m.ts, root_));
  std::lock_guard<std::mutex> lock(mu_);
  return evaluators_.emplace(key, ev).first->second;
}

std::shared_ptr<const CalibrationWindows> ModelRunContext::calibration(const Loaded& m, const CalibrationSpec& spec,
                                                                       int64_t length, BosMode bos,
                                                                       const std::string& eval_sha256,
                                                                       int64_t eval_begin_byte) {
  const std::string key = m.ts.hash + "|" + spec.to_json().dump() + "|" + std::to_string(length) + "|" +
                          to_string(bos) + "|" + std::to_string(m.ts.bos_id) + "|" + eval_sha256 + "|" +
                          std::to_string(eval_begin_byte);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = calibs_.find(key);
    if (it != calibs_.end()) return it->second;
  }
  auto w = std::make_shared<const CalibrationWindows>(
      make_calibration_windows(spec, length, m.ts, bos, root_, eval_sha256, eval_begin_byte));
  std::lock_guard<std::mutex> lock(mu_);
  return calibs_.emplace(key, w).first->second;
}

std::shared_ptr<const std::vector<LambadaItem>> ModelRunContext::lambada_items_for(const Loaded& m,
                                                                                   const LambadaProtocol& lp) {
  const std::string key = m.ts.hash + "|" + lp.path + "|" + lp.sha256 + "|" + std::to_string(lp.count) + "|" +
                          std::to_string(lp.offset) + "|" + std::to_string(lp.stride) + "|" +
                          std::to_string(lp.prepend_bos);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = lambada_.find(key);
    if (it != lambada_.end()) return it->second;
  }
  const std::string path = resolve_path(root_, lp.path);
  if (!lp.sha256.empty()) {
    const std::string got = sha256_file_hex(path);
    if (got != lp.sha256)
      throw std::runtime_error("LAMBADA file " + path + " has " + got + ", the protocol pins " + lp.sha256 +
                               " — restore the published file (data/SHA256SUMS)");
  }
  auto items = std::make_shared<const std::vector<LambadaItem>>(
      lambada_items(read_lambada(path), lp, m.ts.encode, m.ts.bos_id, m.ck.config.eos_id));
  std::lock_guard<std::mutex> lock(mu_);
  return lambada_.emplace(key, items).first->second;
}

LambadaResult ModelRunContext::fp_lambada(const Loaded& m, const LambadaProtocol& lp, LlamaModel& fp, int threads) {
  const std::string key = m.path + "|" + m.ck.content_hash + "|" + lp.path + "|" + std::to_string(lp.count) + "|" +
                          std::to_string(lp.offset) + "|" + std::to_string(lp.stride) + "|" +
                          std::to_string(lp.prepend_bos) + "|" + std::to_string(lp.batch);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = fp_lambada_.find(key);
    if (it != fp_lambada_.end()) return it->second;
  }
  const auto items = lambada_items_for(m, lp);
  LambadaResult r = eval_lambada(fp, *items, lp.batch, threads, m.ck.config.n_ctx_train);
  std::lock_guard<std::mutex> lock(mu_);
  return fp_lambada_.emplace(key, r).first->second;
}

// ---- the run ---------------------------------------------------------------------------------------------------

namespace {

// What the stages of one run share.
struct Run {
  Run(const ModelRunSpec& s, ModelRunContext& c) : spec(s), ctx(c) {}
  const ModelRunSpec& spec;
  ModelRunContext& ctx;
  nlohmann::json timings = nlohmann::json::object();
  std::shared_ptr<const ModelRunContext::Loaded> loaded;
  std::shared_ptr<const Evaluator> ev;
  std::unique_ptr<LlamaModel> q;  // a fresh fp copy: quantize_model changes it
  std::shared_ptr<const FpReference> ref;
  QuantPlan plan;
  std::shared_ptr<const CalibrationWindows> calib;
  nlohmann::json calib_json = nullptr, mixed_json = nullptr;

  const Protocol& protocol() const { return ev->protocol(); }  // hashes filled, bos resolved
  nlohmann::json memory = nlohmann::json::object();  // per stage: the resident set after it and the peak so far
  // Runs f, recording its wall time as timings[key] and the resident set after it (note_memory).
  template <class F>
  auto timed(const char* key, F&& f) {
    const double t0 = now_s();
    auto r = f();
    timings[key] = now_s() - t0;
    note_memory(key);
    return r;
  }
  void note_memory(const char* key) {
    const ResidentSet m = resident_set();
    memory[key] = {{"rss", m.rss_gb}, {"peak", m.peak_gb}};
  }
};

// Stage 1: the model, the protocol's evaluator, a fresh fp copy and its reference distribution.
void load(Run& r) {
  r.loaded = r.timed("load_s", [&] { return r.ctx.model(r.spec.model); });
  const Protocol proto = protocol_of(r.spec.protocol, r.ctx.root());
  r.ev = r.timed("protocol_tokenize_s", [&] { return r.ctx.evaluator(*r.loaded, proto); });
  // shares the loaded fp32 weights (copy-on-write: a migration fold copies first), so no second copy of the model
  r.q = r.timed("model_copy_s", [&] { return std::make_unique<LlamaModel>(shared_checkpoint(r.loaded)); });
  // q is still fp: its content hash is the checkpoint's.
  r.ref = r.timed("reference_s", [&] { return r.ev->reference(*r.q, r.ctx.cache_dir()); });
}

bool wants_lambada(const Run& r) {
  const Protocol& p = r.protocol();
  const bool on = r.spec.lambada < 0 ? p.lambada.enabled : r.spec.lambada == 1;
  if (on && !p.lambada.enabled)
    throw std::invalid_argument("model run: \"lambada\": true but protocol '" + p.name +
                                "' has no lambada section (path, sha256, count, ...)");
  return on;
}

// Stage 2: the plan as run (reference overrides), its calibration windows when a scheme needs them, and the
// allocation of a wrapper scheme that has none yet.
void plan_and_calibrate(Run& r) {
  const Protocol& p = r.protocol();
  r.plan = r.spec.reference_overrides ? with_reference_overrides(r.spec.plan) : r.spec.plan;
  if (plan_needs_calibration(r.plan, r.q->linear_names())) {
    const int64_t length = r.spec.calibration.length > 0 ? r.spec.calibration.length : p.n_ctx;
    r.calib = r.timed("calibration_windows_s", [&] {
      return r.ctx.calibration(*r.loaded, r.spec.calibration, length, p.bos, p.text_sha256, p.text_begin_byte);
    });
    r.calib_json = {{"spec", r.spec.calibration.to_json()}, {"windows", r.calib->record}};
  }
  if (!plan_needs_allocation(r.plan)) return;
  if (!r.spec.has_mixed)
    throw std::invalid_argument("model run: the plan's `mixed` scheme has no allocation file; give \"mixed\": "
                                "{\"target_bits\": ...} to measure sensitivities and allocate, or the option "
                                "allocation=<file>");
  const MixedReport rep = r.timed("mixed_s", [&] {
    return allocate_mixed(*r.q, r.plan, r.spec.mixed, *r.calib, r.ctx.work_dir(), p.threads, r.ctx.progress);
  });
  r.plan = rep.plan;
  r.mixed_json = rep.to_json();
  r.mixed_json["spec"] = r.spec.mixed.to_json();
}

nlohmann::json lambada_json(Run& r, const LambadaResult& fp) {
  const Protocol& p = r.protocol();
  const auto items = r.ctx.lambada_items_for(*r.loaded, p.lambada);
  const LambadaResult la = r.timed("lambada_s", [&] {
    return eval_lambada(*r.q, *items, p.lambada.batch, p.threads, r.loaded->ck.config.n_ctx_train);
  });
  nlohmann::json j = la.to_json();
  j["fp"] = fp.to_json();
  j["delta_accuracy"] = la.accuracy - fp.accuracy;
  return j;
}

nlohmann::json blame_json(Run& r, const QuantizedModel& qm) {
  nlohmann::json blame = nlohmann::json::array();
  if (r.spec.blame_windows <= 0 || qm.layers.empty()) return blame;
  const Protocol& p = r.protocol();
  const double t0 = now_s();
  const int threads_before = at::get_num_threads();
  configure_threads(p.threads);
  for (const auto& b : blame_layers(*r.q, qm, r.ev->windows().tokens, p.n_ctx, r.spec.blame_windows, p.batch))
    blame.push_back(b.to_json());
  at::set_num_threads(threads_before);
  r.timings["blame_s"] = now_s() - t0;
  return blame;
}

nlohmann::json model_json(const Run& r) {
  const ModelConfig& c = r.loaded->ck.config;
  nlohmann::json j = {{"path", r.spec.model},
          {"content_hash", r.loaded->ck.content_hash},
          {"config",
           {{"arch", c.arch},
            {"n_layers", c.n_layers},
            {"d_model", c.d_model},
            {"n_heads", c.n_heads},
            {"n_kv_heads", c.n_kv_heads},
            {"d_ff", c.d_ff},
            {"vocab_size", c.vocab_size},
            {"tied_embeddings", c.tied_embeddings}}}};
  if (c.is_moe()) {  // only for MoE models: the dense models' results keep their bytes
    j["config"]["n_experts"] = c.n_experts;
    j["config"]["n_experts_used"] = c.n_experts_used;
  }
  return j;
}

// The evaluation's figures, as the result JSON names them.
void put_metrics(nlohmann::json& res, const EvalResult& e) {
  res["n_windows"] = e.n_windows;
  res["ppl"] = e.ppl.to_json();
  res["fp_ppl"] = e.ref_ppl.to_json();
  res["delta_ppl"] = e.delta_ppl;
  res["delta_mean_nll"] = e.delta_mean_nll;
  res["delta_mean_nll_se"] = e.delta_mean_nll_se;
  res["kl"] = {{"mean", e.kl_mean},     {"se", e.kl_se},   {"median", e.kl_median},
               {"p99", e.kl_p99},       {"max", e.kl_max}, {"bias_bound", e.kl_bias_bound},
               {"token_bound_max", e.kl_token_bound_max}};
  res["top1"] = e.top1;
  res["top1_se"] = e.top1_se;
}

// What quantize_model left: storage, per-layer records, the schemes' statistics, fingerprints.
void put_quantization(nlohmann::json& res, const Run& r, const QuantizedModel& qm, const nlohmann::json& stats) {
  int64_t linear_params = 0;
  for (const auto& n : r.q->linear_names()) {
    const LinearLayer& l = r.q->linear_layer(n);
    linear_params += l.out_features() * l.in_features();
  }
  res["bits_per_weight"] = qm.quantized_params() > 0 ? nlohmann::json(qm.bits_per_weight()) : nlohmann::json(nullptr);
  res["quantized_params"] = qm.quantized_params();
  res["linear_params"] = linear_params;
  res["calibration_tokens"] = qm.calibration_tokens;
  if (!qm.expert_tokens.empty()) res["expert_calibration_tokens"] = qm.expert_tokens;
  res["layers"] = qm.layers_json();
  res["scheme_stats"] = stats;
  res["scheme_stats_summary"] = scheme_stats_summary(stats);
  res["fingerprint"] = qm.fingerprint_json();
}

// ---- throughput and agreement with ref -------------------------------------------------------------------------

nlohmann::json rate_json(int64_t windows, int64_t n_ctx, double seconds) {
  const int64_t tokens = windows * n_ctx;
  return {{"windows", windows}, {"tokens", tokens}, {"seconds", seconds},
          {"tokens_per_s", seconds > 0 ? nlohmann::json(static_cast<double>(tokens) / seconds) : nlohmann::json(nullptr)}};
}

// Tokens/s of the protocol's prefill windows (every token of a window is forwarded): the quantized run on its
// backend, and the fp reference pass (its own header: when it came from the cache, the pass that made it).
nlohmann::json throughput_json(const Run& r, const EvalResult& e) {
  const int64_t n_ctx = r.protocol().n_ctx;
  nlohmann::json q = rate_json(e.n_windows, n_ctx, e.seconds);
  q["backend"] = r.spec.backend;
  const nlohmann::json& h = r.ref->header();
  nlohmann::json fp = rate_json(h.value("n_windows", int64_t{0}), n_ctx, h.value("seconds", 0.0));
  // Computed in this run when fetching it took about as long as computing it did.
  fp["computed_in_run"] = r.timings.value("reference_s", 0.0) >= 0.5 * h.value("seconds", 0.0);
  return {{"quantized", q}, {"fp_reference", fp}};
}

// How many times the reference path's own reassociation noise a real-kernel backend may differ from it
// (docs/model-eval.md, "cpu backend: agreement with ref"): 2 for the per-layer rounding bounds ((B + 2)·u for the
// blocked epilogue vs up to K·u for a reordered fp32 sum — the backend's is not larger, but it perturbs layers the
// twin's split also perturbs, with other signs) × 2 for comparing one realization's tail (max, p99) with another's.
constexpr double kAgreementFactor = 4.0;
// Floors for a noise figure that happens to be 0: KL in nats and logits below what fp32 can resolve at their scale.
constexpr double kKlFloor = 1e-9;
constexpr double kLogitFloor = 1e-5;

nlohmann::json pair_json(const EvalResult& e) {
  return {{"kl", {{"mean", e.kl_mean}, {"p99", e.kl_p99}, {"max", e.kl_max}}},
          {"max_abs_dlogit", e.max_abs_dlogit},
          {"top1", e.top1},
          {"delta_ppl", e.delta_ppl}};
}

// Bounds from the noise pair (ref vs its split_k twin). Δppl follows from the logit bound M: every token's NLL moves
// by at most 2M (its log-sum-exp and its target logit each by ≤ M), so ppl moves by a factor within e^(±2M).
nlohmann::json agreement_bound(const EvalResult& noise, double ref_ppl, int64_t n_tokens) {
  const double m = kAgreementFactor * noise.max_abs_dlogit + kLogitFloor;
  return {{"factor", kAgreementFactor},
          {"kl_mean", kAgreementFactor * noise.kl_mean + kKlFloor},
          {"kl_p99", kAgreementFactor * noise.kl_p99 + kKlFloor},
          {"max_abs_dlogit", m},
          {"top1_min", std::max(0.0, 1.0 - kAgreementFactor * (1.0 - noise.top1) - 1.0 / std::max<int64_t>(1, n_tokens))},
          {"abs_delta_ppl", ref_ppl * std::expm1(2.0 * m)}};
}

nlohmann::json exceeded_json(const EvalResult& a, const nlohmann::json& b) {
  nlohmann::json out = nlohmann::json::array();
  if (a.kl_mean > b["kl_mean"].get<double>()) out.push_back("kl_mean");
  if (a.kl_p99 > b["kl_p99"].get<double>()) out.push_back("kl_p99");
  if (a.max_abs_dlogit > b["max_abs_dlogit"].get<double>()) out.push_back("max_abs_dlogit");
  if (a.top1 < b["top1_min"].get<double>()) out.push_back("top1");
  if (std::fabs(a.delta_ppl) > b["abs_delta_ppl"].get<double>()) out.push_back("delta_ppl");
  return out;
}

// A run on a real-kernel backend against the ref path on the same windows: the same plan quantized on ref (and on
// ref with split_k, the noise), both compared with exact log-softmaxes (Evaluator::evaluate_pair).
nlohmann::json agreement_json(Run& r, const QuantizedModel& qm, const QuantizeOptions& qo, const EvalOptions& eo) {
  const double t0 = now_s();
  LlamaModel ref(shared_checkpoint(r.loaded)), twin(shared_checkpoint(r.loaded));  // copy-on-write: shared weights
  twin.set_reassociation(Reassociation::split_k);
  const QuantizedModel qr = quantize_model(ref, r.plan, r.calib.get(), qo);
  (void)quantize_model(twin, r.plan, r.calib.get(), qo);
  EvalOptions po = eo;
  po.keep_tokens = false;
  const EvalResult a = r.ev->evaluate_pair(*r.q, ref, po);
  const EvalResult n = r.ev->evaluate_pair(twin, ref, po);
  const int64_t n_tokens = a.n_windows * r.ev->windows().scored_per_window(), n_ctx = r.protocol().n_ctx;
  nlohmann::json j = pair_json(a);
  j["against"] = "ref";
  j["backend"] = r.spec.backend;
  j["fingerprint_equal"] = qr.fingerprint_json() == qm.fingerprint_json();
  j["noise"] = pair_json(n);
  j["noise"]["reassociation"] = to_string(Reassociation::split_k);
  j["bound"] = agreement_bound(n, a.ref_ppl.ppl, n_tokens);
  j["exceeded"] = exceeded_json(a, j["bound"]);
  j["within_bound"] = j["exceeded"].empty();
  j["throughput"] = {{"ref", rate_json(a.n_windows, n_ctx, a.pair_seconds_fp)},
                     {r.spec.backend, rate_json(a.n_windows, n_ctx, a.pair_seconds_q)}};
  j["seconds"] = now_s() - t0;
  return j;
}

nlohmann::json backend_json(const LinearBackend& be) {
  nlohmann::json j = {{"name", be.name()}};
  for (const auto& [k, v] : be.environment()) j[k] = v;
  return j;
}

}  // namespace

QuantizeOptions quantize_options(const ModelRunSpec& spec, const ModelRunContext& ctx, int threads) {
  QuantizeOptions qo;
  qo.threads = threads;
  qo.progress = ctx.progress;
  qo.max_rows = spec.calibration.max_rows;
  qo.batch = spec.calibration.batch;
  qo.sequential = spec.calibration.sequential;
  if (ctx.fault_scale_error != 0.0) qo.make_scheme = scale_error_factory(ctx.fault_scale_error);
  return qo;
}

nlohmann::json scheme_stats_summary(const nlohmann::json& stats) {
  nlohmann::json summary = nlohmann::json::object();
  for (const auto& [scheme, per_layer] : stats.items()) {
    std::map<std::string, std::pair<double, double>> agg;  // sum, max
    std::map<std::string, int64_t> cnt;
    for (const auto& [layer, kv] : per_layer.items())
      for (const auto& [k, v] : kv.items()) {
        if (!v.is_number()) continue;
        const double x = v.get<double>();
        auto& a = agg[k];
        a.first += x;
        a.second = cnt[k] == 0 ? x : std::max(a.second, x);
        ++cnt[k];
      }
    for (const auto& [k, a] : agg)
      summary[scheme][k] = {{"mean", a.first / static_cast<double>(cnt[k])}, {"max", a.second}, {"layers", cnt[k]}};
  }
  return summary;
}

nlohmann::json run_model(const nlohmann::json& spec, ModelRunContext& ctx) {
  return run_model(ModelRunSpec::from_json(spec), ctx);
}

nlohmann::json run_model(const ModelRunSpec& spec, ModelRunContext& ctx) {
  const double t_start = now_s();
  Run r(spec, ctx);
  load(r);
  const Protocol& p = r.protocol();
  const bool lambada = wants_lambada(r);
  LambadaResult fp_la;
  if (lambada) fp_la = r.timed("lambada_fp_s", [&] { return ctx.fp_lambada(*r.loaded, p.lambada, *r.q, p.threads); });
  plan_and_calibrate(r);
  const QuantizeOptions qo = quantize_options(spec, ctx, p.threads);
  const std::shared_ptr<const LinearBackend> backend = make_linear_backend(spec.backend);
  r.q->set_backend(backend);
  const QuantizedModel qm = r.timed("quantize_s", [&] { return quantize_model(*r.q, r.plan, r.calib.get(), qo); });
  r.timings["quantize"] = qm.timings;
  EvalOptions eo;
  eo.max_windows = spec.max_windows;
  eo.progress = false;
  eo.keep_tokens = ctx.reassociation_twin;  // the twin compares token by token
  const EvalResult e = r.ev->evaluate(*r.q, r.ref.get(), eo);
  r.timings["eval_s"] = e.seconds;
  r.note_memory("eval_s");
  const nlohmann::json stats = qm.run_stats();  // before LAMBADA and blame call the schemes again
  nlohmann::json res;
  res["model"] = model_json(r);
  res["protocol"] = p.to_json();
  res["plan"] = r.plan.to_json();
  res["calibration"] = r.calib_json;
  put_metrics(res, e);
  res["lambada"] = lambada ? lambada_json(r, fp_la) : nlohmann::json(nullptr);
  put_quantization(res, r, qm, stats);
  res["blame"] = blame_json(r, qm);
  res["mixed"] = r.mixed_json;
  res["backend"] = backend_json(*backend);
  res["throughput"] = throughput_json(r, e);
  res["agreement"] = nullptr;
  if (spec.backend != "ref") {
    res["agreement"] = agreement_json(r, qm, qo, eo);
    r.timings["agreement_s"] = res["agreement"]["seconds"];
  }
  res["twin"] = nullptr;
  if (ctx.reassociation_twin) {
    res["twin"] = run_twin({r.loaded, *r.ev, r.plan, r.calib.get(), qo, eo, e, *r.ref, qm, spec.backend}, ctx);
    r.timings["twin_s"] = res["twin"]["seconds"];
  }
  r.timings["total_s"] = now_s() - t_start;
  r.timings["memory_gb"] = r.memory;
  res["timings"] = r.timings;
  return res;
}

}  // namespace qeval::model
