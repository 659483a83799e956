// eval/model/quantize_model.cpp — quantize_model: the stages of quantize_stages.hpp run block by block, and what it
// leaves (LayerQuantInfo, QuantizedModel). Calibration windows, folding, blame and allocation live beside it
// (calibration_windows.cpp, migration.cpp, blame.cpp, mixed_alloc.cpp).
#include "eval/model/quantize_model.hpp"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "eval/model/fingerprint.hpp"
#include "eval/model/model_util.hpp"
#include "eval/model/quantize_stages.hpp"

namespace qeval::model {

nlohmann::json LayerQuantInfo::to_json() const {
  nlohmann::json j = {{"layer", layer}, {"role", role}, {"scheme", scheme}, {"act_scheme", act_scheme},
                      {"rows", rows},   {"cols", cols}, {"seconds", seconds}};
  if (role != "act") {
    j["bits_per_weight"] = bits_per_weight;
    j["weight_sqnr_db"] = finite_or_null(weight_sqnr_db);
  }
  if (calibration_tokens >= 0) j["calibration_tokens"] = calibration_tokens;
  if (!migration.empty()) {
    j["migration"] = migration;
    double mn = std::numeric_limits<double>::infinity(), mx = 0.0;
    for (float v : migration_scales) {
      mn = std::min(mn, static_cast<double>(v));
      mx = std::max(mx, static_cast<double>(v));
    }
    j["migration_scale_min"] = finite_or_null(mn);
    j["migration_scale_max"] = mx;
  }
  return j;
}

double QuantizedModel::bits_per_weight() const {
  double bits = 0.0, n = 0.0;
  for (const auto& l : layers)
    if (l.role != "act") {
      const double k = static_cast<double>(l.rows) * static_cast<double>(l.cols);
      bits += l.bits_per_weight * k;
      n += k;
    }
  return n > 0 ? bits / n : 32.0;
}

int64_t QuantizedModel::quantized_params() const {
  int64_t n = 0;
  for (const auto& l : layers)
    if (l.role != "act") n += l.rows * l.cols;
  return n;
}

nlohmann::json QuantizedModel::run_stats() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& s : schemes) {
    const auto st = s->run_stats();
    if (st.empty()) continue;
    nlohmann::json& dst = j[s->config().label()];
    for (const auto& [layer, kv] : st)
      for (const auto& [k, v] : kv) dst[layer][k] = finite_or_null(v);
  }
  return j;
}

nlohmann::json QuantizedModel::layers_json() const {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& l : layers) a.push_back(l.to_json());
  return a;
}

nlohmann::json QuantizedModel::fingerprint_json() const {
  Fingerprint model;
  nlohmann::json per_layer = nlohmann::json::object();
  for (const auto& l : layers) {
    if (l.fingerprint.empty()) continue;
    model.add(l.layer.data(), l.layer.size()).add(l.fingerprint.data(), l.fingerprint.size());
    per_layer[l.layer] = l.fingerprint;
  }
  return {{"model", model.hex()}, {"layers", per_layer}};
}

// ---- the quantizer ---------------------------------------------------------------------------------------------

namespace {

using stages::LayerSlot;

struct Timings {
  double search = 0, quantize = 0;
};

void install(LlamaModel& m, const LayerSlot& s, const schemes::Calibration& c, const std::vector<float>* inv,
             const stages::Migration* mig, QuantizedModel& out, Timings& t) {
  out.layers.push_back(stages::install_layer(m, s, c, inv, mig));
  t.quantize += out.layers.back().seconds;
}

// MoE block l: the calibration tokens each of its expert layers saw (their input group's capture), and per block the
// experts' counts when every expert was captured.
void record_expert_tokens(const LlamaModel& m, int64_t l, const std::map<std::string, schemes::Calibration>& captured,
                          QuantizedModel& out) {
  const std::string block = "blk." + std::to_string(l) + ".";
  for (const BlockGroup& g : block_groups(m, l)) {
    auto it = captured.find(g.members[0]);
    if (g.members[0].find(".ffn_") == std::string::npos || it == captured.end()) continue;
    for (auto& info : out.layers)
      for (const auto& name : g.members)
        if (info.layer == name) info.calibration_tokens = it->second.n_samples;
  }
  nlohmann::json counts = nlohmann::json::array();
  for (int64_t e = 0; e < m.config().n_experts; ++e) {
    auto it = captured.find("blk." + std::to_string(l) + ".ffn_gate." + std::to_string(e));
    if (it == captured.end()) return;
    counts.push_back(it->second.n_samples);
  }
  out.expert_tokens["blk." + std::to_string(l)] = counts;
}

// Block l: capture its input groups, decide their migrations, install its layers in forward order.
void quantize_block(LlamaModel& m, int64_t l, const stages::ResolvedPlan& rp, stages::Calibrator& cal,
                    QuantizedModel& out, Timings& t) {
  std::map<std::string, stages::CaptureNeeds> reps;  // input group representative → what to record
  const std::vector<BlockGroup> groups = block_groups(m, l);
  for (const BlockGroup& g : groups) {
    const auto& members = g.members;
    std::vector<const LayerSlot*> slots;
    for (const auto& n : members) slots.push_back(&rp.at(n));
    const stages::CaptureNeeds n = stages::capture_needs(slots);
    if (n.any) reps[members[0]] = n;
  }
  const auto captured = cal.capture(l, reps);
  const double t0 = now_s();
  const stages::BlockMigrations mig = stages::decide_migrations(m, l, rp, captured);
  t.search += now_s() - t0;
  for (const BlockGroup& g : groups) {
    const auto& members = g.members;
    auto it = captured.find(members[0]);
    auto inv = g.foldable ? mig.runtime_inv.find(g.kind) : mig.runtime_inv.end();
    for (const auto& name : members) {
      const LayerSlot& s = rp.at(name);
      if (!s.ws && !s.as) continue;
      auto mi = mig.by_layer.find(name);
      const stages::Migration* mg = mi != mig.by_layer.end() ? &mi->second : nullptr;
      install(m, s, stages::layer_calibration(name, it != captured.end() ? &it->second : nullptr, mg),
              inv != mig.runtime_inv.end() ? &inv->second : nullptr, mg, out, t);
    }
  }
  if (m.config().is_moe()) record_expert_tokens(m, l, captured, out);
}

// The output head: its input is the final norm of the last hidden state; no fold (a migrating scheme applies s).
void quantize_head(LlamaModel& m, const LayerSlot& head, stages::Calibrator& cal, QuantizedModel& out, Timings& t) {
  const schemes::Calibration c = cal.capture_head(stages::capture_needs({&head}));
  const double t0 = now_s();
  const std::optional<stages::Migration> mg = stages::head_migration(head, c);
  t.search += now_s() - t0;
  install(m, head, stages::layer_calibration("output", &c, mg ? &*mg : nullptr), nullptr, mg ? &*mg : nullptr, out, t);
}

void quantize_calibrated(LlamaModel& m, const stages::ResolvedPlan& rp, const CalibrationWindows& calib,
                         const QuantizeOptions& o, QuantizedModel& out, Timings& t, nlohmann::json& timings) {
  stages::Calibrator cal(m, calib, o, out.kv_enabled);
  out.calibration_tokens = cal.tokens();
  const LayerSlot& head = rp.at("output");
  const int64_t nL = m.config().n_layers;
  Progress bar(rp.label(), nL + (head.reads_statistics() ? 1 : 0), o.progress);
  for (int64_t l = 0; l < nL; ++l) {
    quantize_block(m, l, rp, cal, out, t);
    cal.propagate(l);
    bar.step(l + 1, "block " + std::to_string(l));
  }
  if (head.reads_statistics()) {
    quantize_head(m, head, cal, out, t);
    bar.step(nL + 1, "output");
  } else if (head.ws || head.as) {
    install(m, head, stages::layer_calibration("output", nullptr, nullptr), nullptr, nullptr, out, t);
  }
  bar.finish();
  timings = {{"embed_s", cal.embed_s}, {"capture_s", cal.capture_s}, {"propagate_s", cal.propagate_s}};
}

// This machine's single-thread memcpy bandwidth in GB/s (best of 3 copies of 64 MiB, pages touched first): the
// yardstick for the quantize stage's throughput (issue 15: quantize at ≥ 50 % of memcpy), measured in the run.
double memcpy_gbps() {
  constexpr size_t kBytes = size_t{64} << 20;
  std::vector<char> src(kBytes, 1), dst(kBytes, 0);
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < 3; ++i) {
    const double t0 = now_s();
    std::memcpy(dst.data(), src.data(), kBytes);
    best = std::min(best, now_s() - t0);
  }
  return dst[kBytes / 2] == 1 && best > 0 ? static_cast<double>(kBytes) / best / 1e9 : 0.0;
}

// Throughput of the quantize stage: fp32 bytes of the weights it quantized per second of install time; and the
// bytes the quantized weights hold afterwards (held_gb: codes + params when compact, an fp32 copy otherwise).
void throughput_timings(const LlamaModel& m, const QuantizedModel& out, double quantize_s, nlohmann::json& timings) {
  double bytes = 0, held = 0;
  for (const auto& l : out.layers) {
    if (l.role != "act") bytes += 4.0 * static_cast<double>(l.rows) * static_cast<double>(l.cols);
    held += static_cast<double>(m.linear_layer(l.layer).quantized_bytes());
  }
  timings["weight_gb"] = bytes / 1e9;
  timings["held_gb"] = held / 1e9;
  timings["quantize_gbps"] = quantize_s > 0 ? bytes / quantize_s / 1e9 : 0.0;
  timings["memcpy_gbps"] = memcpy_gbps();
}

}  // namespace

QuantizedModel quantize_model(LlamaModel& m, const QuantPlan& plan, const CalibrationWindows* calib,
                              const QuantizeOptions& o) {
  const double t_start = now_s();
  ThreadScope threads(o.threads);
  SqnrBufferScope sqnr_buffer;  // one double buffer for every layer's weight SQNR
  c10::InferenceMode inference;
  stages::require_fresh(m);
  stages::SchemeSet set(o.make_scheme ? o.make_scheme : stages::default_factory());
  const stages::ResolvedPlan rp = stages::resolve_plan(m, plan, set, calib && calib->count >= 1);
  QuantizedModel out;
  if (plan.kv_cache) out.kv_enabled = stages::install_kv_hook(m, set.get(*plan.kv_cache));
  Timings t;
  nlohmann::json timings = {{"embed_s", 0.0}, {"capture_s", 0.0}, {"propagate_s", 0.0}};
  if (rp.needs_capture()) {
    quantize_calibrated(m, rp, *calib, o, out, t, timings);
  } else {
    for (const auto& s : rp.slots)
      if (s.ws || s.as) install(m, s, stages::layer_calibration(s.name, nullptr, nullptr), nullptr, nullptr, out, t);
  }
  out.schemes = set.all();
  timings["search_s"] = t.search;
  timings["quantize_s"] = t.quantize;
  throughput_timings(m, out, t.quantize, timings);
  timings["total_s"] = now_s() - t_start;
  out.timings = timings;
  return out;
}

}  // namespace qeval::model
