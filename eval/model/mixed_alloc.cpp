// eval/model/mixed_alloc.cpp — the allocation stage: per-layer sensitivities measured with each layer quantized
// alone, the bit allocation solved (schemes/mixed) and written, the plan's wrapper configs pointed at the file
// (quantize_model.hpp: allocate_mixed; quantize_stages.hpp: the pieces).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "eval/model/model_util.hpp"
#include "eval/model/ppl.hpp"
#include "eval/model/quantize_stages.hpp"
#include "schemes/mixed/mixed.hpp"

namespace qeval::model {

nlohmann::json MixedSpec::to_json() const {
  nlohmann::json c = nlohmann::json::array();
  for (const auto& [b, g] : candidates) c.push_back({{"bits", b}, {"group_size", g}});
  return {{"target_bits", target_bits}, {"candidates", c},          {"metric", metric},
          {"windows", windows},         {"allocation_path", allocation_path}};
}

MixedSpec MixedSpec::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("mixed: expected an object {\"target_bits\": ..., ...}");
  MixedSpec s;
  for (const auto& [k, v] : j.items()) {
    if (k == "target_bits") {
      if (!v.is_number() || !(v.get<double>() > 0))
        throw std::invalid_argument("mixed: \"target_bits\" must be a number > 0 (average bits/weight), got " + v.dump());
      s.target_bits = v.get<double>();
    } else if (k == "candidates") {
      if (!v.is_array()) throw std::invalid_argument("mixed: \"candidates\" must be an array of {bits, group_size}");
      for (const auto& c : v) {
        if (!c.is_object() || !c.contains("bits") || !c["bits"].is_number_integer())
          throw std::invalid_argument("mixed: candidate " + c.dump() + " must be {\"bits\": b, \"group_size\": g}");
        s.candidates.emplace_back(c["bits"].get<int>(), c.value("group_size", int64_t{128}));
      }
    } else if (k == "metric") {
      s.metric = v.get<std::string>();
      if (s.metric != "kl" && s.metric != "ppl" && s.metric != "nll")
        throw std::invalid_argument("mixed: \"metric\" '" + s.metric + "' unknown (accepted: kl, ppl, nll)");
    } else if (k == "windows") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1)
        throw std::invalid_argument("mixed: \"windows\" must be an integer ≥ 1, got " + v.dump());
      s.windows = v.get<int64_t>();
    } else if (k == "allocation_path") {
      s.allocation_path = v.get<std::string>();
    } else {
      throw std::invalid_argument("mixed: unknown key \"" + k +
                                  "\" (accepted: target_bits, candidates, metric, windows, allocation_path)");
    }
  }
  return s;
}

nlohmann::json MixedReport::to_json() const {
  return {{"allocation", allocation}, {"sensitivity", sensitivity}, {"path", path}, {"seconds", seconds}};
}

namespace stages {

std::vector<std::pair<int, int64_t>> mixed_candidates(const MixedSpec& spec, const quant::QuantParams& p) {
  if (!spec.candidates.empty()) return spec.candidates;
  std::vector<std::pair<int, int64_t>> c;
  if (p.bits > 2) c.emplace_back(p.bits - 1, p.group_size);
  c.emplace_back(p.bits, p.group_size);
  return c;
}

Evaluator sensitivity_evaluator(const CalibrationWindows& calib, int64_t k) {
  Protocol p;
  p.name = "calibration-sensitivity";
  p.text = calib.record.value("text", std::string("calibration"));
  p.n_ctx = calib.length;
  p.n_chunks = k;
  p.bos = BosMode::none;  // the windows carry BOS already when the protocol wants it
  p.threads = at::get_num_threads();
  p.batch = 1;
  Windows w;
  w.n_ctx = calib.length;
  w.first = p.first_scored_position();
  const int64_t S = w.scored_per_window();
  for (int64_t i = 0; i < k; ++i) w.chunk_ids.push_back(i);
  w.tokens.assign(calib.tokens.begin(), calib.tokens.begin() + k * calib.length);
  w.targets.assign(calib.targets.begin(), calib.targets.begin() + k * S);
  w.n_stream_tokens = k * calib.length;
  w.stream_hash = xxh64_hex(w.tokens.data(), w.tokens.size() * sizeof(int32_t));
  return Evaluator(p, w);
}

namespace {

// `layer` quantized by `sch` for the scope of one measurement, through the model's backend; fp again afterwards
// (also when the measurement throws).
struct QuantizedAlone {
  LinearLayer& layer;
  QuantizedAlone(LlamaModel& m, LinearLayer& l, std::shared_ptr<const schemes::Scheme> sch) : layer(l) {
    c10::InferenceMode gi(false);
    at::NoGradGuard ng;
    const at::Tensor wt = fp32_of(l.weight.detach()).contiguous();
    schemes::Calibration cal;
    cal.layer_name = l.name;
    const quant::QuantizedMatrix q = sch->quantize(view_of(wt), &cal);
    at::Tensor eff = at::empty_like(wt);
    sch->dequantize(q, mutable_view_of(eff));
    l.effective = eff;
    l.weight_scheme = std::move(sch);
    m.prepare_linear(l, &q);
  }
  ~QuantizedAlone() {
    layer.effective = layer.weight;
    layer.weight_scheme.reset();
    layer.prepared.reset();
  }
};

}  // namespace

double layer_sensitivity(LlamaModel& m, const std::string& layer, std::shared_ptr<const schemes::Scheme> sch,
                         const Evaluator& ev, const FpReference& ref, const std::string& metric) {
  const NllStats fp = nll_stats(ref.nll(), ref.n_tokens(), ev.windows().scored_per_window());
  EvalResult r;
  {
    QuantizedAlone q(m, m.linear_layer(layer), std::move(sch));
    r = ev.evaluate(m, &ref);
  }
  return metric == "kl" ? r.kl_mean : metric == "ppl" ? r.ppl.ppl - fp.ppl : r.delta_mean_nll;
}

std::string write_allocation(const nlohmann::json& allocation, const std::string& path, const std::string& work_dir) {
  std::string out = path;
  if (out.empty()) {
    ::mkdir(work_dir.c_str(), 0755);  // one level; an existing directory is fine
    const std::string d = allocation.dump();
    out = work_dir + "/mixed-" + xxh64_hex(d.data(), d.size()) + ".json";
  }
  const std::string tmp = out + ".tmp";
  std::ofstream f(tmp);
  if (!f) throw std::runtime_error("mixed precision: cannot write the allocation file " + tmp);
  f << allocation.dump(2) << "\n";
  f.close();
  if (!f || std::rename(tmp.c_str(), out.c_str()) != 0)
    throw std::runtime_error("mixed precision: cannot write the allocation file " + out);
  return out;
}

}  // namespace stages

namespace {

struct ToAllocate {
  std::string name;
  schemes::SchemeConfig cfg;
};

// The layers a wrapper scheme without an allocation quantizes, forward order.
std::vector<ToAllocate> layers_to_allocate(const LlamaModel& m, const QuantPlan& plan) {
  std::vector<ToAllocate> out;
  for (const auto& n : m.linear_names()) {
    const QuantPlan::Resolved r = plan.resolve(n);
    if (r.weight && needs_allocation(*r.weight)) out.push_back({n, *r.weight});
  }
  return out;
}

// One layer's sensitivity per candidate, with the wrapper's calibration-free stand-in for its base scheme.
schemes::MixedLayer measure_layer(LlamaModel& m, const ToAllocate& l, const std::vector<std::pair<int, int64_t>>& cands,
                                  stages::SchemeSet& set, const Evaluator& ev, const FpReference& ref,
                                  const std::string& metric) {
  const schemes::SchemeConfig base = traits_of(l.cfg).wrapper->sensitivity;
  schemes::MixedLayer ml;
  ml.name = l.name;
  ml.rows = m.linear_layer(l.name).out_features();
  ml.cols = m.linear_layer(l.name).in_features();
  for (const auto& [bits, g] : cands) {
    schemes::SchemeConfig c = base;
    c.params.bits = bits;
    c.params.group_size = g;
    std::shared_ptr<const schemes::Scheme> sch;
    try {
      sch = set.get(c);
      c.params.validate_for_row_length(ml.cols);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("mixed precision: candidate " + std::to_string(bits) + " bits, group " +
                                  std::to_string(g) + " does not fit layer " + ml.name + ": " + e.what());
    }
    ml.sensitivity.push_back(stages::layer_sensitivity(m, l.name, sch, ev, ref, metric));
  }
  return ml;
}

// The solver's answer as the allocation file's JSON, with how it was measured.
nlohmann::json allocation_json(const schemes::MixedProblem& prob, const MixedSpec& spec,
                               const std::vector<std::pair<int, int64_t>>& cands, const std::string& sens_scheme,
                               int64_t k, double fp_ppl) {
  const schemes::MixedAllocation a = schemes::allocate_bits(prob);
  nlohmann::json j = schemes::allocation_to_json(prob, a);
  j["metric"] = spec.metric;
  j["sensitivity_scheme"] = sens_scheme;
  j["sensitivity_windows"] = k;
  j["fp_ppl_on_windows"] = fp_ppl;
  j["lower_bound"] = a.lower_bound;
  j["unit_bits"] = a.unit_bits;
  nlohmann::json cj = nlohmann::json::array();
  for (const auto& [bits, g] : cands) cj.push_back({{"bits", bits}, {"group_size", g}});
  j["candidates"] = cj;
  return j;
}

}  // namespace

MixedReport allocate_mixed(LlamaModel& m, const QuantPlan& plan, const MixedSpec& spec, const CalibrationWindows& calib,
                           const std::string& work_dir, int threads, bool progress) {
  const double t_start = now_s();
  if (!(spec.target_bits > 0))
    throw std::invalid_argument("mixed precision: target_bits must be > 0 (the average bits/weight to meet)");
  if (!plan_needs_allocation(plan))
    throw std::invalid_argument("mixed precision: the plan has no `mixed` weight scheme without an allocation file; "
                                "name {\"scheme\": \"mixed\"} as the weight scheme");
  const int64_t k = std::min<int64_t>(spec.windows, calib.count);
  if (k < 1) throw std::invalid_argument("mixed precision: no calibration windows to measure sensitivity on");
  ThreadScope ts(threads);
  const std::vector<ToAllocate> layers = layers_to_allocate(m, plan);
  const auto cands = stages::mixed_candidates(spec, layers.front().cfg.params);
  const Evaluator ev = stages::sensitivity_evaluator(calib, k);
  const auto ref = ev.compute_reference(m);  // fp, in memory
  const NllStats fp = nll_stats(ref->nll(), ref->n_tokens(), ev.windows().scored_per_window());

  stages::SchemeSet set(stages::default_factory());
  schemes::MixedProblem prob;
  prob.target_bits_per_weight = spec.target_bits;
  MixedReport rep;
  rep.sensitivity = nlohmann::json::object();
  Progress bar("mixed-precision sensitivity", static_cast<int64_t>(layers.size()), progress);
  for (size_t li = 0; li < layers.size(); ++li) {
    prob.layers.push_back(measure_layer(m, layers[li], cands, set, ev, *ref, spec.metric));
    rep.sensitivity[layers[li].name] = prob.layers.back().sensitivity;
    bar.step(static_cast<int64_t>(li + 1), layers[li].name);
  }
  bar.finish();
  for (const auto& [bits, g] : cands) {
    quant::QuantParams q = layers.front().cfg.params;
    q.bits = bits;
    q.group_size = g;
    prob.candidates.push_back(q);
  }
  const std::string sens_scheme = traits_of(layers.front().cfg).wrapper->sensitivity.scheme;
  rep.allocation = allocation_json(prob, spec, cands, sens_scheme, k, fp.ppl);
  rep.path = stages::write_allocation(rep.allocation, spec.allocation_path, work_dir);
  rep.plan = with_allocation(plan, rep.path);
  rep.seconds = now_s() - t_start;
  return rep;
}

}  // namespace qeval::model
