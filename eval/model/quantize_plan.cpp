// eval/model/quantize_plan.cpp — stage 1 of quantize_model: the plan resolved on every linear layer from the
// schemes' traits and checked against the backend (quantize_stages.hpp), the KV-cache hook, and the plan queries of
// quantize_model.hpp (what a plan needs: calibration, an allocation, reference overrides).
#include <set>
#include <stdexcept>

#include "eval/model/model_util.hpp"
#include "eval/model/quantize_stages.hpp"

namespace qeval::model {

namespace stages {

SchemeSet::SchemeSet(SchemeFactory f) : f_(std::move(f)) {}

std::shared_ptr<const schemes::Scheme> SchemeSet::get(const schemes::SchemeConfig& c) {
  for (auto& [cfg, s] : made_)
    if (cfg == c) return s;
  std::shared_ptr<const schemes::Scheme> s = f_(c);
  if (!s) throw std::logic_error("scheme factory returned null for '" + c.scheme + "'");
  made_.emplace_back(c, s);
  return s;
}

std::vector<std::shared_ptr<const schemes::Scheme>> SchemeSet::all() const {
  std::vector<std::shared_ptr<const schemes::Scheme>> out;
  for (const auto& kv : made_) out.push_back(kv.second);
  return out;
}

SchemeFactory default_factory() {
  return [](const schemes::SchemeConfig& c) { return std::shared_ptr<const schemes::Scheme>(schemes::make_scheme(c)); };
}

LayerSlot& ResolvedPlan::at(const std::string& layer) { return slots.at(index.at(layer)); }
const LayerSlot& ResolvedPlan::at(const std::string& layer) const { return slots.at(index.at(layer)); }

bool ResolvedPlan::needs_capture() const {
  for (const auto& s : slots)
    if (s.reads_statistics()) return true;
  return false;
}

std::string ResolvedPlan::label() const {
  std::set<std::string> ids;
  for (const auto& s : slots)
    if (s.reads_statistics()) ids.insert(s.w_needs.any_statistics() ? s.ws->name() : s.as->name());
  std::string out = "quantize";
  for (const auto& i : ids) out += " " + i;
  return out;
}

void require_fresh(const LlamaModel& m) {
  if (!m.plan().empty())
    throw std::invalid_argument("quantize_model: the model has a plan installed (apply_plan); quantize a model in "
                                "full precision (a fresh LlamaModel)");
  for (const auto& n : m.linear_names()) {
    const LinearLayer& l = m.linear_layer(n);
    if (!l.effective.is_same(l.weight) || l.weight_scheme || l.act_scheme || l.linear_scheme || l.prepared)
      throw std::invalid_argument("quantize_model: layer " + n + " is already quantized (an earlier quantize_model "
                                  "or apply_plan); quantize a fresh LlamaModel — folds change the fp weights, so a "
                                  "model cannot be quantized twice");
  }
}

namespace {

// The weight side of a slot: a weight scheme, or a linear scheme that owns the product.
void resolve_weight(LayerSlot& s, std::shared_ptr<const schemes::Scheme> ws) {
  const schemes::SchemeTraits t = ws->traits();
  if (t.target != schemes::Target::weight && t.target != schemes::Target::linear)
    throw std::invalid_argument("quant plan: scheme '" + ws->name() + "' quantizes " + schemes::to_string(t.target) +
                                ", but it is named as the weight (or linear) scheme of " + s.name);
  s.role = t.target == schemes::Target::weight ? Role::weight : Role::linear;
  s.w_needs = t.calibration;
  s.w_migrates = t.migrates;
  s.ws = std::move(ws);
}

void resolve_activation(LayerSlot& s, std::shared_ptr<const schemes::Scheme> as) {
  const schemes::SchemeTraits t = as->traits();
  if (t.target != schemes::Target::activation)
    throw std::invalid_argument("quant plan: scheme '" + as->name() + "' quantizes " + schemes::to_string(t.target) +
                                ", but it is named as the activation scheme of " + s.name);
  if (s.ws && s.ws->traits().activation != schemes::ActivationQuant::none)
    throw std::invalid_argument("quant plan: layer " + s.name + " has the linear scheme '" + s.ws->name() +
                                "' (which quantizes its activations itself) and the activation scheme '" + as->name() +
                                "'; drop one (override \"activation\": \"skip\")");
  s.a_needs = t.calibration;
  s.as = std::move(as);
}

}  // namespace

ResolvedPlan resolve_plan(const LlamaModel& m, const QuantPlan& plan, SchemeSet& set, bool calibrated) {
  const std::vector<std::string> names = m.linear_names();
  plan.check_overrides(names);
  ResolvedPlan rp;
  for (const auto& n : names) {
    LayerSlot s;
    s.name = n;
    s.layer = const_cast<LinearLayer*>(&m.linear_layer(n));
    if (n.rfind("blk.", 0) == 0) s.block = std::stoll(n.substr(4));
    const QuantPlan::Resolved r = plan.resolve(n);
    if (r.weight) resolve_weight(s, set.get(*r.weight));
    if (r.activation) resolve_activation(s, set.get(*r.activation));
    if (s.reads_statistics() && !calibrated)
      throw std::invalid_argument("quantize_model: scheme '" + (s.w_needs.any_statistics() ? s.ws : s.as)->name() +
                                  "' of layer " + n + " needs calibration data; pass calibration windows (a "
                                  "calibration spec)");
    if (s.ws || s.as) require_supported(m.backend(), n, s.ws.get(), s.as.get());
    rp.index[n] = rp.slots.size();
    rp.slots.push_back(std::move(s));
  }
  return rp;
}

std::shared_ptr<std::atomic<bool>> install_kv_hook(LlamaModel& m, std::shared_ptr<const schemes::Scheme> kv) {
  if (kv->target() != schemes::Target::kv_cache && kv->target() != schemes::Target::activation)
    throw std::invalid_argument("quant plan: scheme '" + kv->name() + "' quantizes " +
                                schemes::to_string(kv->target()) + ", but it is named as the KV-cache scheme");
  auto enabled = std::make_shared<std::atomic<bool>>(true);
  LlamaModel* mp = &m;
  m.set_kv_hook([kv, enabled, mp](int, at::Tensor& k, at::Tensor& v) {
    if (enabled->load()) fake_quantize_kv_cache(*kv, k, v, mp->current_seq_len());
  });
  return enabled;
}

}  // namespace stages

// ---- plan queries ----------------------------------------------------------------------------------------------

schemes::SchemeTraits traits_of(const schemes::SchemeConfig& c) { return schemes::make_scheme(c)->traits(); }

bool needs_allocation(const schemes::SchemeConfig& c) {
  const schemes::SchemeTraits t = traits_of(c);
  return t.wrapper && !t.wrapper->allocated;
}

bool plan_needs_allocation(const QuantPlan& plan) {
  bool any = plan.weight && needs_allocation(*plan.weight);
  for (const auto& ov : plan.overrides) any = any || (ov.weight && needs_allocation(*ov.weight));
  return any;
}

bool plan_needs_calibration(const QuantPlan& plan, const std::vector<std::string>& layers) {
  std::vector<std::pair<schemes::SchemeConfig, bool>> seen;  // one scheme built per distinct config
  auto needs = [&](const schemes::SchemeConfig& c) {
    for (const auto& [cfg, v] : seen)
      if (cfg == c) return v;
    const schemes::SchemeTraits t = traits_of(c);
    const bool v = t.calibration.any() || (t.wrapper && !t.wrapper->allocated);
    seen.emplace_back(c, v);
    return v;
  };
  for (const auto& n : layers) {
    const QuantPlan::Resolved r = plan.resolve(n);
    if ((r.weight && needs(*r.weight)) || (r.activation && needs(*r.activation))) return true;
  }
  return false;
}

QuantPlan with_reference_overrides(QuantPlan plan) {
  if (!plan.weight) return plan;
  std::vector<LayerOverride> pre;
  for (const schemes::ReferenceOverride& ro : traits_of(*plan.weight).reference_overrides) {
    LayerOverride o;
    o.pattern = ro.pattern;
    schemes::SchemeConfig c = *plan.weight;
    for (const auto& [k, v] : ro.options.items()) c.options.set(k, v);
    o.weight = c;
    pre.push_back(o);
  }
  // Prepended: the user's own overrides (later) still refine them (e.g. a skip).
  plan.overrides.insert(plan.overrides.begin(), pre.begin(), pre.end());
  return plan;
}

QuantPlan with_allocation(QuantPlan plan, const std::string& path) {
  auto point = [&](std::optional<schemes::SchemeConfig>& c) {
    if (c && needs_allocation(*c)) c->options.set(traits_of(*c).wrapper->allocation_option, path);
  };
  point(plan.weight);
  for (auto& ov : plan.overrides) point(ov.weight);
  return plan;
}

}  // namespace qeval::model
