// eval/model/migration.cpp — stage 3 of quantize_model: difficulty migration (SmoothQuant, AWQ) — which factors
// each input group gets (decide_migrations) and how they are folded into the model (fold_migration), exact in full
// precision (quantize_model.hpp, quantize_stages.hpp).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <stdexcept>

#include "eval/model/model_util.hpp"
#include "eval/model/quantize_stages.hpp"

namespace qeval::model {

const char* to_string(InputGroup g) {
  switch (g) {
    case InputGroup::attn_in: return "attn_in";
    case InputGroup::attn_out: return "attn_out";
    case InputGroup::ffn_in: return "ffn_in";
    case InputGroup::ffn_out: return "ffn_out";
  }
  return "?";
}

std::vector<std::string> group_members(int64_t block, InputGroup g) {
  const std::string p = "blk." + std::to_string(block) + ".";
  switch (g) {
    case InputGroup::attn_in: return {p + "attn_q", p + "attn_k", p + "attn_v"};
    case InputGroup::attn_out: return {p + "attn_output"};
    case InputGroup::ffn_in: return {p + "ffn_gate", p + "ffn_up"};
    case InputGroup::ffn_out: return {p + "ffn_down"};
  }
  return {};
}

bool group_foldable(const LlamaModel& m, InputGroup g) {
  // o's input column j (head h = j / head_dim) pairs with v's output row j only when every query head has its own
  // value head; under GQA one v row feeds n_heads/n_kv_heads columns of o, which would need equal s over them.
  if (g == InputGroup::attn_out) return m.config().n_heads == m.config().n_kv_heads;
  return true;
}

std::vector<BlockGroup> block_groups(const LlamaModel& m, int64_t block) {
  std::vector<BlockGroup> out;
  for (InputGroup g : kInputGroups) {
    if (m.config().is_moe() && (g == InputGroup::ffn_in || g == InputGroup::ffn_out)) continue;
    out.push_back({g, group_members(block, g), group_foldable(m, g)});
  }
  if (!m.config().is_moe()) return out;
  const std::string p = "blk." + std::to_string(block) + ".";
  for (int64_t e = 0; e < m.config().n_experts; ++e) {
    const std::string x = "." + std::to_string(e);
    out.push_back({InputGroup::ffn_in, {p + "ffn_gate" + x, p + "ffn_up" + x}, false});
    out.push_back({InputGroup::ffn_out, {p + "ffn_down" + x}, false});
  }
  if (m.config().d_ff_shared > 0) {
    out.push_back({InputGroup::ffn_in, {p + "ffn_gate_shexp", p + "ffn_up_shexp"}, false});
    out.push_back({InputGroup::ffn_out, {p + "ffn_down_shexp"}, false});
  }
  return out;
}

namespace {

at::Tensor& norm_param(LlamaModel& m, const std::string& name, std::vector<std::pair<std::string, at::Tensor>>& params) {
  for (auto& [n, t] : params)
    if (n == name) return t;
  throw std::logic_error("no parameter " + name);
}

}  // namespace

std::string fold_migration(LlamaModel& m, int64_t block, InputGroup g, const std::vector<float>& s) {
  if (block < 0 || block >= m.config().n_layers)
    throw std::invalid_argument("fold_migration: block " + std::to_string(block) + " outside [0, " +
                                std::to_string(m.config().n_layers) + ")");
  if (!group_foldable(m, g))
    throw std::invalid_argument("fold_migration: group " + std::string(to_string(g)) + " of block " +
                                std::to_string(block) + " cannot be folded (n_heads " +
                                std::to_string(m.config().n_heads) + " != n_kv_heads " +
                                std::to_string(m.config().n_kv_heads) + ": v's output is narrower than o's input)");
  const std::vector<std::string> members = group_members(block, g);
  const int64_t in = m.linear_layer(members[0]).in_features();
  if (static_cast<int64_t>(s.size()) != in)
    throw std::invalid_argument("fold_migration: " + std::to_string(s.size()) + " scales for " +
                                std::to_string(in) + " input features of " + members[0]);
  for (size_t j = 0; j < s.size(); ++j)
    if (!(s[j] > 0.0f) || !std::isfinite(s[j]) || !std::isfinite(1.0f / s[j]))
      throw std::invalid_argument("fold_migration: s[" + std::to_string(j) + "] = " + std::to_string(s[j]) +
                                  " must be finite and > 0 (with a finite reciprocal)");
  m.own_weights();  // copy-on-write: the fold modifies weights a shared checkpoint still holds
  c10::InferenceMode guard(false);
  at::NoGradGuard no_grad;
  const at::Tensor sv = at::from_blob(const_cast<float*>(s.data()), {in}, at::kFloat).clone();
  const at::Tensor inv = at::reciprocal(sv);
  std::string producer;
  const std::string p = "blk." + std::to_string(block) + ".";
  if (g == InputGroup::attn_in || g == InputGroup::ffn_in) {
    auto params = m.named_parameters();
    producer = p + (g == InputGroup::attn_in ? "attn_norm" : "ffn_norm");
    norm_param(m, producer + ".weight", params).mul_(inv);  // aliases the model's norm weight
  } else {
    LinearLayer& prev = m.linear_layer(p + (g == InputGroup::attn_out ? "attn_v" : "ffn_up"));
    if (prev.out_features() != in)
      throw std::logic_error("fold_migration: " + prev.name + " has " + std::to_string(prev.out_features()) +
                             " outputs for " + std::to_string(in) + " inputs of " + members[0]);
    prev.weight.mul_(inv.unsqueeze(1));  // row j of the producer ·= 1/s_j
    producer = prev.name + " rows";
  }
  for (const auto& name : members) m.linear_layer(name).weight.mul_(sv.unsqueeze(0));  // column j ·= s_j
  return producer;
}


namespace stages {

namespace {

// One set of factors for every quantized member (they share scheme id and params), from the first of them.
void shared_migration(LlamaModel& m, int64_t l, const BlockGroup& g, const std::vector<const LayerSlot*>& quantized,
                      const schemes::Calibration& captured, BlockMigrations& out) {
  const LayerSlot& lead = *quantized[0];
  if (!lead.w_migrates) return;
  std::vector<at::Tensor> keep;
  std::vector<quant::MatrixView> views;
  for (const LayerSlot* s : quantized) {
    keep.push_back(fp32_of(s->layer->weight.detach()).contiguous());
    views.push_back(view_of(keep.back()));
  }
  schemes::Calibration c = captured;
  c.layer_name = lead.name;
  const std::vector<float> sc = lead.ws->input_channel_scales(c, views);
  if (sc.empty()) return;
  Migration mg;
  mg.s = sc;
  mg.folded = g.foldable;
  if (mg.folded) {
    mg.producer = fold_migration(m, l, g.kind, sc);
    std::vector<float> inv(sc.size());
    for (size_t j = 0; j < sc.size(); ++j) inv[j] = 1.0f / sc[j];
    out.runtime_inv[g.kind] = inv;
  }
  for (const LayerSlot* s : quantized) out.by_layer[s->name] = mg;
}

// Members that differ: each migrating member gets factors for its own weight, unfolded.
void per_layer_migrations(const std::vector<const LayerSlot*>& quantized, const schemes::Calibration& captured,
                          BlockMigrations& out) {
  for (const LayerSlot* s : quantized) {
    if (!s->w_needs.any_statistics() || !s->w_migrates) continue;
    const at::Tensor w = fp32_of(s->layer->weight.detach()).contiguous();
    schemes::Calibration c = captured;
    c.layer_name = s->name;
    const std::vector<float> sc = s->ws->input_channel_scales(c, {view_of(w)});
    if (!sc.empty()) out.by_layer[s->name] = Migration{sc, false, ""};
  }
}

}  // namespace

BlockMigrations decide_migrations(LlamaModel& m, int64_t l, const ResolvedPlan& plan,
                                  const std::map<std::string, schemes::Calibration>& captured) {
  BlockMigrations out;
  c10::InferenceMode gi(false);
  at::NoGradGuard ng;
  for (const BlockGroup& g : block_groups(m, l)) {
    const auto& members = g.members;
    auto it = captured.find(members[0]);
    if (it == captured.end()) continue;
    std::vector<const LayerSlot*> quantized;
    for (const auto& name : members)
      if (plan.at(name).ws) quantized.push_back(&plan.at(name));
    if (quantized.empty()) continue;
    bool uniform = true;
    for (const LayerSlot* s : quantized)
      uniform = uniform && s->ws->name() == quantized[0]->ws->name() && s->ws->params() == quantized[0]->ws->params();
    if (uniform) {
      shared_migration(m, l, g, quantized, it->second, out);
    } else {
      per_layer_migrations(quantized, it->second, out);
    }
  }
  return out;
}

std::optional<Migration> head_migration(const LayerSlot& head, const schemes::Calibration& c) {
  if (!head.ws || !head.w_needs.any_statistics() || !head.w_migrates) return std::nullopt;
  c10::InferenceMode gi(false);
  const at::Tensor w = fp32_of(head.layer->weight.detach()).contiguous();
  Migration mg;
  mg.s = head.ws->input_channel_scales(c, {view_of(w)});
  if (mg.s.empty()) return std::nullopt;
  return mg;
}

}  // namespace stages

}  // namespace qeval::model
