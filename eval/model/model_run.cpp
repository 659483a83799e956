// eval/model/model_run.cpp — one model run (load, fp reference, calibration, quantize, evaluate, blame) as JSON.
#include "eval/model/model_run.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <stdexcept>

namespace qeval::model {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string resolve_path(const std::string& root, const std::string& p) {
  if (p.empty() || p[0] == '/' || root.empty()) return p;
  return root + "/" + p;
}

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

// What the reassociation twin needs of the run it shadows.
struct TwinInputs {
  const ModelRunContext::Loaded& loaded;
  const Evaluator& ev;
  const QuantPlan& plan;
  const CalibrationWindows* calib;
  const QuantizeOptions& qo;
  const EvalOptions& eo;        // keep_tokens set
  const EvalResult& run;        // the run's own evaluation (per-token NLL and KL kept)
  const FpReference& ref;       // the run's fp reference
  const QuantizedModel& qm;
};

// The run again with Reassociation::split_k everywhere (reference, calibration forward, evaluation), compared
// token by token (model_run.hpp, "twin").
nlohmann::json run_twin(const TwinInputs& in, ModelRunContext& ctx) {
  const double t0 = now_s();
  LlamaModel t(in.loaded.ck);
  t.set_reassociation(Reassociation::split_k);
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
    } else if (k == "kind") {
      if (v != "model") throw std::invalid_argument("model run: \"kind\" must be \"model\", got " + v.dump());
    } else {
      throw std::invalid_argument("model run: unknown key \"" + k +
                                  "\" (accepted: model, protocol, plan, calibration, mixed, lambada, blame_windows, "
                                  "max_windows, " + kReferenceOverridesKey + ")");
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
  l->ck = load_checkpoint(full);
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

nlohmann::json run_model(const nlohmann::json& spec, ModelRunContext& ctx) {
  return run_model(ModelRunSpec::from_json(spec), ctx);
}

nlohmann::json run_model(const ModelRunSpec& spec, ModelRunContext& ctx) {
  const double t_start = now_s();
  nlohmann::json timings;
  double t0 = now_s();
  const auto loaded = ctx.model(spec.model);
  timings["load_s"] = now_s() - t0;
  const Protocol proto = protocol_of(spec.protocol, ctx.root());
  t0 = now_s();
  const auto ev = ctx.evaluator(*loaded, proto);
  timings["protocol_tokenize_s"] = now_s() - t0;
  const Protocol& p = ev->protocol();  // hashes filled, bos resolved

  t0 = now_s();
  LlamaModel q(loaded->ck);  // a fresh fp copy: quantize_model changes it
  timings["model_copy_s"] = now_s() - t0;
  t0 = now_s();
  const auto ref = ev->reference(q, ctx.cache_dir());  // q is still fp: its content hash is the checkpoint's
  timings["reference_s"] = now_s() - t0;

  const bool do_lambada = spec.lambada < 0 ? p.lambada.enabled : spec.lambada == 1;
  if (do_lambada && !p.lambada.enabled)
    throw std::invalid_argument("model run: \"lambada\": true but protocol '" + p.name +
                                "' has no lambada section (path, sha256, count, ...)");
  LambadaResult fp_la;
  if (do_lambada) {
    t0 = now_s();
    fp_la = ctx.fp_lambada(*loaded, p.lambada, q, p.threads);
    timings["lambada_fp_s"] = now_s() - t0;
  }

  QuantPlan plan = spec.reference_overrides ? with_reference_overrides(spec.plan) : spec.plan;
  const std::vector<std::string> names = q.linear_names();
  std::shared_ptr<const CalibrationWindows> calib;
  nlohmann::json calib_json = nullptr;
  if (plan_needs_calibration(plan, names)) {
    t0 = now_s();
    const int64_t length = spec.calibration.length > 0 ? spec.calibration.length : p.n_ctx;
    calib = ctx.calibration(*loaded, spec.calibration, length, p.bos, p.text_sha256, p.text_begin_byte);
    timings["calibration_windows_s"] = now_s() - t0;
    calib_json = {{"spec", spec.calibration.to_json()}, {"windows", calib->record}};
  }

  nlohmann::json mixed_json = nullptr;
  if (plan_needs_allocation(plan)) {
    if (!spec.has_mixed)
      throw std::invalid_argument("model run: the plan's `mixed` scheme has no allocation file; give \"mixed\": "
                                  "{\"target_bits\": ...} to measure sensitivities and allocate, or the option "
                                  "allocation=<file>");
    t0 = now_s();
    const MixedReport rep = allocate_mixed(q, plan, spec.mixed, *calib, ctx.work_dir(), p.threads, ctx.progress);
    timings["mixed_s"] = now_s() - t0;
    plan = rep.plan;
    mixed_json = rep.to_json();
    mixed_json["spec"] = spec.mixed.to_json();
  }

  QuantizeOptions qo;
  qo.threads = p.threads;
  qo.progress = ctx.progress;
  qo.max_rows = spec.calibration.max_rows;
  qo.batch = spec.calibration.batch;
  qo.sequential = spec.calibration.sequential;
  if (ctx.fault_scale_error != 0.0) qo.make_scheme = scale_error_factory(ctx.fault_scale_error);
  t0 = now_s();
  const QuantizedModel qm = quantize_model(q, plan, calib.get(), qo);
  timings["quantize_s"] = now_s() - t0;
  timings["quantize"] = qm.timings;

  EvalOptions eo;
  eo.max_windows = spec.max_windows;
  eo.progress = false;
  eo.keep_tokens = ctx.reassociation_twin;  // the twin compares token by token
  const EvalResult r = ev->evaluate(q, ref.get(), eo);
  timings["eval_s"] = r.seconds;
  const nlohmann::json stats = qm.run_stats();  // before LAMBADA and blame call the schemes again

  nlohmann::json lambada_json = nullptr;
  if (do_lambada) {
    t0 = now_s();
    const auto items = ctx.lambada_items_for(*loaded, p.lambada);
    const LambadaResult la = eval_lambada(q, *items, p.lambada.batch, p.threads, loaded->ck.config.n_ctx_train);
    timings["lambada_s"] = now_s() - t0;
    lambada_json = la.to_json();
    lambada_json["fp"] = fp_la.to_json();
    lambada_json["delta_accuracy"] = la.accuracy - fp_la.accuracy;
  }

  nlohmann::json blame = nlohmann::json::array();
  if (spec.blame_windows > 0 && !qm.layers.empty()) {
    t0 = now_s();
    const int threads_before = at::get_num_threads();
    configure_threads(p.threads);
    for (const auto& b : blame_layers(q, qm, ev->windows().tokens, p.n_ctx, spec.blame_windows, p.batch))
      blame.push_back(b.to_json());
    at::set_num_threads(threads_before);
    timings["blame_s"] = now_s() - t0;
  }

  // Summary of the schemes' run statistics: per scheme and statistic, the mean and max over layers.
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

  int64_t linear_params = 0;
  for (const auto& n : names) {
    const LinearLayer& l = q.linear_layer(n);
    linear_params += l.out_features() * l.in_features();
  }
  const ModelConfig& c = loaded->ck.config;
  nlohmann::json res;
  res["model"] = {{"path", spec.model},
                  {"content_hash", loaded->ck.content_hash},
                  {"config",
                   {{"arch", c.arch},
                    {"n_layers", c.n_layers},
                    {"d_model", c.d_model},
                    {"n_heads", c.n_heads},
                    {"n_kv_heads", c.n_kv_heads},
                    {"d_ff", c.d_ff},
                    {"vocab_size", c.vocab_size},
                    {"tied_embeddings", c.tied_embeddings}}}};
  res["protocol"] = p.to_json();
  res["plan"] = plan.to_json();
  res["calibration"] = calib_json;
  res["n_windows"] = r.n_windows;
  res["ppl"] = r.ppl.to_json();
  res["fp_ppl"] = r.ref_ppl.to_json();
  res["delta_ppl"] = r.delta_ppl;
  res["delta_mean_nll"] = r.delta_mean_nll;
  res["delta_mean_nll_se"] = r.delta_mean_nll_se;
  res["kl"] = {{"mean", r.kl_mean},     {"se", r.kl_se},   {"median", r.kl_median},
               {"p99", r.kl_p99},       {"max", r.kl_max}, {"bias_bound", r.kl_bias_bound},
               {"token_bound_max", r.kl_token_bound_max}};
  res["top1"] = r.top1;
  res["top1_se"] = r.top1_se;
  res["lambada"] = lambada_json;
  res["bits_per_weight"] = qm.quantized_params() > 0 ? nlohmann::json(qm.bits_per_weight()) : nlohmann::json(nullptr);
  res["quantized_params"] = qm.quantized_params();
  res["linear_params"] = linear_params;
  res["calibration_tokens"] = qm.calibration_tokens;
  res["layers"] = qm.layers_json();
  res["blame"] = blame;
  res["scheme_stats"] = stats;
  res["scheme_stats_summary"] = summary;
  res["mixed"] = mixed_json;
  res["fingerprint"] = qm.fingerprint_json();
  res["twin"] = nullptr;
  if (ctx.reassociation_twin) {
    res["twin"] = run_twin({*loaded, *ev, plan, calib.get(), qo, eo, r, *ref, qm}, ctx);
    timings["twin_s"] = res["twin"]["seconds"];
  }
  timings["total_s"] = now_s() - t_start;
  res["timings"] = timings;
  return res;
}

}  // namespace qeval::model
