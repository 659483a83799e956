// eval/model/llama.cpp — Llama-family forward in LibTorch (fp32), the linear hook point, plan application.
#include "eval/model/llama.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <xxhash.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "eval/model/backend/ref_backend.hpp"
#include "eval/model/model_util.hpp"
#include "quant/rng.hpp"

namespace qeval::model {

int configure_threads(int requested) {
  int n = requested;
  if (n <= 0) {
    if (const char* s = std::getenv("OMP_NUM_THREADS"); s && *s) n = std::atoi(s);
  }
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  if (at::get_num_threads() != n) at::set_num_threads(n);
  return at::get_num_threads();
}

std::string xxh64_hex(const void* data, size_t bytes, uint64_t seed) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(XXH64(data, bytes, seed)));
  return buf;
}

std::vector<LinearLayer*> LlamaBlock::linears() {
  std::vector<LinearLayer*> out = {&attn_q, &attn_k, &attn_v, &attn_output};
  if (!is_moe()) {
    out.insert(out.end(), {&ffn_gate, &ffn_up, &ffn_down});
    return out;
  }
  for (size_t e = 0; e < moe.gate.size(); ++e) out.insert(out.end(), {&moe.gate[e], &moe.up[e], &moe.down[e]});
  if (moe.shared_gate.weight.defined()) out.insert(out.end(), {&moe.shared_gate, &moe.shared_up, &moe.shared_down});
  return out;
}

std::vector<const LinearLayer*> LlamaBlock::linears() const {
  std::vector<const LinearLayer*> out;
  for (LinearLayer* l : const_cast<LlamaBlock*>(this)->linears()) out.push_back(l);
  return out;
}

int64_t LinearLayer::in_features() const { return weight.defined() ? weight.size(1) : 0; }
int64_t LinearLayer::out_features() const { return weight.defined() ? weight.size(0) : 0; }

at::Tensor LinearLayer::effective_weight() const {
  if (effective.defined() || !codes) return fp32_of(effective);
  at::Tensor out = at::empty({codes->rows, codes->cols}, at::kFloat);
  weight_scheme->dequantize(*codes, mutable_view_of(out));
  return out;
}

int64_t LinearLayer::quantized_bytes() const {
  if (codes && !effective.defined()) return held_bytes(*codes);
  if (!effective.defined() || effective.is_same(weight)) return 0;
  return effective.numel() * static_cast<int64_t>(effective.element_size());
}

int64_t held_bytes(const quant::QuantizedMatrix& q) {
  const auto n4 = q.scales.size() + q.zero_points.size() + q.perm.size() + q.col_scale.size();
  return static_cast<int64_t>(q.codes.size() + 4 * n4 + 8 * q.non_finite.size());
}

namespace {

template <class Bad>
void check_moe_config(const ModelConfig& c, const Bad& bad) {
  if (c.is_moe() && (c.n_experts_used < 1 || c.n_experts_used > c.n_experts || c.d_ff_expert <= 0))
    bad("mixture of experts: need 1 ≤ n_experts_used (" + std::to_string(c.n_experts_used) + ") ≤ n_experts (" +
        std::to_string(c.n_experts) + ") and d_ff_expert > 0");
}

void check_config(const ModelConfig& c, const std::string& where) {
  auto bad = [&](const std::string& what) {
    throw std::invalid_argument(where + ": model config: " + what);
  };
  if (c.n_layers <= 0 || c.d_model <= 0 || c.n_heads <= 0 || c.d_ff <= 0 || c.vocab_size <= 0)
    bad("n_layers, d_model, n_heads, d_ff and vocab_size must be positive");
  if (c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0)
    bad("n_kv_heads (" + std::to_string(c.n_kv_heads) + ") must divide n_heads (" + std::to_string(c.n_heads) + ")");
  if (c.head_dim_explicit == 0 && c.d_model % c.n_heads != 0)
    bad("n_heads (" + std::to_string(c.n_heads) + ") must divide d_model (" + std::to_string(c.d_model) + ")");
  if (c.head_dim() % 2 != 0) bad("head_dim " + std::to_string(c.head_dim()) + " must be even for RoPE");
  if (!(c.rope_theta > 0)) bad("rope_theta must be positive");
  if (!(c.rms_eps >= 0)) bad("rms_eps must be ≥ 0");
  if (c.rope_scaling == "freq_factors" && c.rope_freq_factors.size() != static_cast<size_t>(c.head_dim() / 2))
    bad("rope_freq_factors holds " + std::to_string(c.rope_freq_factors.size()) + " values, head_dim / 2 = " +
        std::to_string(c.head_dim() / 2));
  if (!(c.rope_theta_local >= 0)) bad("rope_theta_local must be ≥ 0");
  check_moe_config(c, bad);
}


// The tensor `name` of ck with the given shape: a copy, or — when `keep` is set — a view of ck's data that keeps
// ck alive (the caller then owns nothing and must copy before modifying; LlamaModel::own_weights).
at::Tensor tensor_from(const Checkpoint& ck, const std::string& name, std::vector<int64_t> shape,
                       const std::shared_ptr<const Checkpoint>& keep = nullptr) {
  auto it = ck.tensors.find(name);
  if (it == ck.tensors.end())
    throw std::invalid_argument(ck.path + ": tensor '" + name + "' missing (needed by the Llama forward)");
  const TensorF32& t = it->second;
  if (t.shape != shape) {
    std::ostringstream os;
    os << ck.path << ": tensor '" << name << "' has shape [";
    for (size_t i = 0; i < t.shape.size(); ++i) os << (i ? ", " : "") << t.shape[i];
    os << "], the forward expects [";
    for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
    os << "]";
    throw std::invalid_argument(os.str());
  }
  int64_t n = 1;
  for (auto s : shape) n *= s;
  const size_t held = t.in_file_precision() ? t.bits16.size() : t.data.size();
  if (static_cast<int64_t>(held) != n)
    throw std::invalid_argument(ck.path + ": tensor '" + name + "' holds " + std::to_string(held) +
                                " values for " + std::to_string(n) + " elements");
  if (t.in_file_precision()) {  // shared: the 16-bit codes (converted per use, fp32_of); copied: fp32 now
    const at::ScalarType st = t.orig_type == "BF16" ? at::kBFloat16 : at::kHalf;
    uint16_t* codes = const_cast<uint16_t*>(t.bits16.data());
    if (keep) return at::from_blob(codes, shape, [keep](void*) {}, at::TensorOptions().dtype(st));
    return fp32_of(at::from_blob(codes, shape, at::TensorOptions().dtype(st)));
  }
  float* data = const_cast<float*>(t.data.data());
  if (keep) return at::from_blob(data, shape, [keep](void*) {}, at::TensorOptions().dtype(at::kFloat));
  return at::from_blob(data, shape, at::kFloat).clone();
}

LinearLayer make_linear(std::string name, at::Tensor w) {
  LinearLayer l;
  l.name = std::move(name);
  l.weight = std::move(w);
  l.effective = l.weight;
  return l;
}

// An optional family tensor (a bias, a q/k norm): undefined when the checkpoint has none.
at::Tensor optional_tensor(const Checkpoint& ck, const std::string& name, std::vector<int64_t> shape) {
  return ck.tensors.count(name) ? tensor_from(ck, name, std::move(shape)) : at::Tensor();
}

// Biases and q/k norms of block i, where the checkpoint has them.
void load_family_tensors(const Checkpoint& ck, int64_t i, LlamaBlock& b) {
  const ModelConfig& c = ck.config;
  const std::string p = "blk." + std::to_string(i) + ".";
  for (LinearLayer* l : b.linears()) l->bias = optional_tensor(ck, l->name + ".bias", {l->weight.size(0)});
  if (c.attn_qk_norm) {
    b.attn_q_norm = tensor_from(ck, p + "attn_q_norm.weight", {c.head_dim()});
    b.attn_k_norm = tensor_from(ck, p + "attn_k_norm.weight", {c.head_dim()});
  }
  if (c.post_norms) {
    b.post_attn_norm = tensor_from(ck, p + "post_attention_norm.weight", {c.d_model});
    b.post_ffw_norm = tensor_from(ck, p + "post_ffw_norm.weight", {c.d_model});
  }
}

// Block i's router and experts (MoeFfn), shared expert where the config has one.
void load_moe(const Checkpoint& ck, int64_t i, LlamaBlock& b, const std::shared_ptr<const Checkpoint>& keep) {
  const ModelConfig& c = ck.config;
  const int64_t D = c.d_model, F = c.d_ff_expert, S = c.d_ff_shared;
  const std::string p = "blk." + std::to_string(i) + ".";
  b.moe.router = tensor_from(ck, p + "ffn_gate_inp.weight", {c.n_experts, D}, keep);
  for (int64_t e = 0; e < c.n_experts; ++e) {
    const std::string x = "." + std::to_string(e);
    b.moe.gate.push_back(make_linear(p + "ffn_gate" + x, tensor_from(ck, p + "ffn_gate" + x + ".weight", {F, D}, keep)));
    b.moe.up.push_back(make_linear(p + "ffn_up" + x, tensor_from(ck, p + "ffn_up" + x + ".weight", {F, D}, keep)));
    b.moe.down.push_back(make_linear(p + "ffn_down" + x, tensor_from(ck, p + "ffn_down" + x + ".weight", {D, F}, keep)));
  }
  if (S <= 0) return;
  b.moe.shared_gate_inp = tensor_from(ck, p + "ffn_gate_inp_shexp.weight", {1, D}, keep);
  b.moe.shared_gate = make_linear(p + "ffn_gate_shexp", tensor_from(ck, p + "ffn_gate_shexp.weight", {S, D}, keep));
  b.moe.shared_up = make_linear(p + "ffn_up_shexp", tensor_from(ck, p + "ffn_up_shexp.weight", {S, D}, keep));
  b.moe.shared_down = make_linear(p + "ffn_down_shexp", tensor_from(ck, p + "ffn_down_shexp.weight", {D, S}, keep));
}

// c·tanh(x/c), in place (soft-capping; c = 0: none).
at::Tensor soft_cap(at::Tensor x, double c) { return c > 0 ? x.div_(c).tanh_().mul_(c) : x; }

}  // namespace

LlamaModel::LlamaModel(const Checkpoint& ck) : LlamaModel(ck, nullptr) {}

LlamaModel::LlamaModel(std::shared_ptr<const Checkpoint> ck) : LlamaModel(*ck, ck) { shares_weights_ = true; }

LlamaModel::LlamaModel(const Checkpoint& ck, const std::shared_ptr<const Checkpoint>& keep)
    : cfg_(ck.config), content_hash_(ck.content_hash), backend_(make_ref_backend()) {
  if (!forward_supports_arch(cfg_.arch))
    throw std::invalid_argument(ck.path + ": architecture '" + cfg_.arch + "' is not supported by the forward (supported: " +
                                kSupportedArchs + ")");
  check_config(cfg_, ck.path);
  c10::InferenceMode guard(false);
  const int64_t D = cfg_.d_model, hd = cfg_.head_dim(), H = cfg_.n_heads, KV = cfg_.n_kv_heads, F = cfg_.d_ff,
                V = cfg_.vocab_size;
  tok_embd_ = tensor_from(ck, "token_embd.weight", {V, D}, keep);
  output_norm_ = tensor_from(ck, "output_norm.weight", {D}, keep);
  blocks_.resize(static_cast<size_t>(cfg_.n_layers));
  for (int64_t i = 0; i < cfg_.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LlamaBlock& b = blocks_[static_cast<size_t>(i)];
    b.attn_norm = tensor_from(ck, p + "attn_norm.weight", {D}, keep);
    b.ffn_norm = tensor_from(ck, p + "ffn_norm.weight", {D}, keep);
    b.attn_q = make_linear(p + "attn_q", tensor_from(ck, p + "attn_q.weight", {H * hd, D}, keep));
    b.attn_k = make_linear(p + "attn_k", tensor_from(ck, p + "attn_k.weight", {KV * hd, D}, keep));
    b.attn_v = make_linear(p + "attn_v", tensor_from(ck, p + "attn_v.weight", {KV * hd, D}, keep));
    b.attn_output = make_linear(p + "attn_output", tensor_from(ck, p + "attn_output.weight", {D, H * hd}, keep));
    if (cfg_.is_moe()) {
      load_moe(ck, i, b, keep);
    } else {
      b.ffn_gate = make_linear(p + "ffn_gate", tensor_from(ck, p + "ffn_gate.weight", {F, D}, keep));
      b.ffn_up = make_linear(p + "ffn_up", tensor_from(ck, p + "ffn_up.weight", {F, D}, keep));
      b.ffn_down = make_linear(p + "ffn_down", tensor_from(ck, p + "ffn_down.weight", {D, F}, keep));
    }
    load_family_tensors(ck, i, b);
  }
  const bool has_output = ck.tensors.count("output.weight") != 0;
  if (!cfg_.tied_embeddings && !has_output)
    throw std::invalid_argument(ck.path + ": tensor 'output.weight' missing and the config does not say the "
                                "embeddings are tied");
  // A GGUF that stores output.weight is used as stored even if it equals token_embd.
  output_ = make_linear("output", has_output ? tensor_from(ck, "output.weight", {V, D}, keep) : tok_embd_);
  if (has_output) cfg_.tied_embeddings = false;
  if (content_hash_.empty()) recompute_content_hash();
}

LlamaModel::LlamaModel(const ModelConfig& cfg, uint64_t seed, double init_std)
    : cfg_(cfg), backend_(make_ref_backend()) {
  check_config(cfg_, "random model");
  if (cfg_.is_moe()) throw std::invalid_argument("random model: mixture-of-experts configs are not supported (load one)");
  c10::InferenceMode guard(false);
  const int64_t D = cfg_.d_model, hd = cfg_.head_dim(), H = cfg_.n_heads, KV = cfg_.n_kv_heads, F = cfg_.d_ff,
                V = cfg_.vocab_size;
  const double sd = init_std > 0 ? init_std : 1.0 / std::sqrt(static_cast<double>(D));
  Rng rng(seed);
  auto randn = [&](std::vector<int64_t> shape, double s) {
    at::Tensor t = at::empty(shape, at::kFloat);
    float* p = t.data_ptr<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(rng.normal() * s);
    return t;
  };
  tok_embd_ = randn({V, D}, sd);
  output_norm_ = at::ones({D}, at::kFloat);
  blocks_.resize(static_cast<size_t>(cfg_.n_layers));
  for (int64_t i = 0; i < cfg_.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LlamaBlock& b = blocks_[static_cast<size_t>(i)];
    b.attn_norm = at::ones({D}, at::kFloat);
    b.ffn_norm = at::ones({D}, at::kFloat);
    b.attn_q = make_linear(p + "attn_q", randn({H * hd, D}, sd));
    b.attn_k = make_linear(p + "attn_k", randn({KV * hd, D}, sd));
    b.attn_v = make_linear(p + "attn_v", randn({KV * hd, D}, sd));
    b.attn_output = make_linear(p + "attn_output", randn({D, H * hd}, sd));
    b.ffn_gate = make_linear(p + "ffn_gate", randn({F, D}, sd));
    b.ffn_up = make_linear(p + "ffn_up", randn({F, D}, sd));
    b.ffn_down = make_linear(p + "ffn_down", randn({D, F}, 1.0 / std::sqrt(static_cast<double>(F))));
  }
  output_ = make_linear("output", cfg_.tied_embeddings ? tok_embd_ : randn({V, D}, sd));
  recompute_content_hash();
  content_hash_ = "random:" + content_hash_.substr(content_hash_.find("xxh64:") + 6);
}

const std::string& LlamaModel::recompute_content_hash() {
  // XXH64 chained over the parameters in named_parameters() order (name bytes, then fp32 data).
  uint64_t h = 0;
  for (auto& [name, t] : named_parameters()) {
    at::Tensor c = fp32_of(t.detach()).contiguous();
    h = XXH64(name.data(), name.size(), h);
    h = XXH64(c.data_ptr<float>(), static_cast<size_t>(c.numel()) * sizeof(float), h);
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  content_hash_ = std::string("weights:xxh64:") + buf;
  return content_hash_;
}

// ---- parameters / training ------------------------------------------------------------------

std::vector<std::pair<std::string, at::Tensor>> LlamaModel::named_parameters() {
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.emplace_back("token_embd.weight", tok_embd_);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    LlamaBlock& b = blocks_[i];
    const std::string p = "blk." + std::to_string(i) + ".";
    const std::vector<LinearLayer*> ls = b.linears();
    out.emplace_back(p + "attn_norm.weight", b.attn_norm);
    for (size_t k = 0; k < 4; ++k) out.emplace_back(ls[k]->name + ".weight", ls[k]->weight);
    out.emplace_back(p + "ffn_norm.weight", b.ffn_norm);
    if (b.is_moe()) out.emplace_back(p + "ffn_gate_inp.weight", b.moe.router);
    for (size_t k = 4; k < ls.size(); ++k) out.emplace_back(ls[k]->name + ".weight", ls[k]->weight);
    if (b.moe.shared_gate_inp.defined()) out.emplace_back(p + "ffn_gate_inp_shexp.weight", b.moe.shared_gate_inp);
    // Family tensors after the Llama ones (a Llama's list, and so its content hash, is unchanged).
    for (LinearLayer* l : ls)
      if (l->bias.defined()) out.emplace_back(l->name + ".bias", l->bias);
    if (b.attn_q_norm.defined()) out.emplace_back(p + "attn_q_norm.weight", b.attn_q_norm);
    if (b.attn_k_norm.defined()) out.emplace_back(p + "attn_k_norm.weight", b.attn_k_norm);
    if (b.post_attn_norm.defined()) out.emplace_back(p + "post_attention_norm.weight", b.post_attn_norm);
    if (b.post_ffw_norm.defined()) out.emplace_back(p + "post_ffw_norm.weight", b.post_ffw_norm);
  }
  out.emplace_back("output_norm.weight", output_norm_);
  if (!cfg_.tied_embeddings) out.emplace_back("output.weight", output_.weight);
  return out;
}

std::vector<at::Tensor> LlamaModel::parameters() {
  std::vector<at::Tensor> out;
  for (auto& kv : named_parameters()) out.push_back(kv.second);
  return out;
}

void LlamaModel::own_weights() {
  if (!shares_weights_) return;
  c10::InferenceMode guard(false);
  std::map<const void*, at::Tensor> copies;  // keeps aliases aliased (tied output = token_embd)
  auto own = [&](at::Tensor& t) {
    auto [it, fresh] = copies.try_emplace(t.unsafeGetTensorImpl());
    if (fresh) it->second = t.scalar_type() == at::kFloat ? t.clone() : fp32_of(t);  // file precision → fp32
    t = it->second;
  };
  own(tok_embd_);
  own(output_norm_);
  for (auto& b : blocks_) {
    own(b.attn_norm), own(b.ffn_norm);
    if (b.is_moe()) own(b.moe.router);
    if (b.moe.shared_gate_inp.defined()) own(b.moe.shared_gate_inp);
  }
  for (const auto& n : linear_names()) {
    LinearLayer& l = linear_layer(n);
    const bool fp = l.effective.is_same(l.weight);
    own(l.weight);
    if (fp) l.effective = l.weight;
  }
  shares_weights_ = false;
}

void LlamaModel::set_training(bool on) {
  if (on) own_weights();
  if (on && (plan_.weight || [&] {
                for (const auto& o : plan_.overrides)
                  if (o.weight) return true;
                return false;
              }()))
    throw std::invalid_argument(
        "LlamaModel::set_training(true): a weight quantization plan is installed (a one-time copy of the "
        "weights that training would leave stale); clear_plan() first and re-apply it after training");
  training_ = on;
  for (auto& t : parameters()) t.set_requires_grad(on);
}

Checkpoint LlamaModel::to_checkpoint() const {
  Checkpoint ck;
  ck.config = cfg_;
  ck.content_hash = content_hash_;
  auto put = [&](const std::string& name, const at::Tensor& t) {
    at::Tensor c = fp32_of(t.detach()).contiguous();
    TensorF32 out;
    out.shape = c.sizes().vec();
    out.data.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    out.orig_type = "F32";
    ck.tensors[name] = std::move(out);
  };
  auto* self = const_cast<LlamaModel*>(this);  // named_parameters() only reads
  for (auto& [name, t] : self->named_parameters()) put(name, t);
  return ck;
}

// ---- plan -------------------------------------------------------------------------------------

std::vector<std::string> LlamaModel::linear_names() const {
  std::vector<std::string> out;
  for (const auto& b : blocks_)
    for (const LinearLayer* l : b.linears()) out.push_back(l->name);
  out.push_back(output_.name);
  return out;
}

const LinearLayer& LlamaModel::linear_layer(const std::string& name) const {
  return const_cast<LlamaModel*>(this)->linear_layer(name);
}

LinearLayer& LlamaModel::linear_layer(const std::string& name) {
  if (name == "output") return output_;
  // "blk.<i>.<kind>"
  if (name.rfind("blk.", 0) == 0) {
    const size_t dot = name.find('.', 4);
    if (dot != std::string::npos) {
      char* end = nullptr;
      const long i = std::strtol(name.c_str() + 4, &end, 10);
      if (end == name.c_str() + dot && i >= 0 && i < static_cast<long>(blocks_.size())) {
        LlamaBlock& b = blocks_[static_cast<size_t>(i)];
        for (LinearLayer* l : b.linears())
          if (l->name == name) return *l;
      }
    }
  }
  throw std::invalid_argument("no linear layer named '" + name + "' (layers: blk.{0.." +
                              std::to_string(blocks_.size() - 1) +
                              "}.{attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down}" +
                              (cfg_.is_moe() ? std::string(" with MoE experts as ffn_gate.{e} etc.") : std::string()) +
                              ", output)");
}

void LlamaModel::clear_plan() {
  plan_ = QuantPlan{};
  kv_scheme_.reset();
  for (const auto& n : linear_names()) {
    LinearLayer& l = linear_layer(n);
    l.effective = l.weight;
    l.weight_scheme.reset();
    l.act_scheme.reset();
    l.bits_per_weight = 32.0;
    l.weight_sqnr_db = 0.0;
    l.act_calib.reset();
    l.linear_scheme.reset();
    l.linear_calib.reset();
    l.prepared.reset();
    l.codes.reset();
  }
}

namespace {

// One scheme object per distinct config, each checked against the slot it is named for.
class PlanSchemes {
 public:
  std::shared_ptr<const schemes::Scheme> get(const schemes::SchemeConfig& c, schemes::Target want,
                                             const std::string& where) {
    for (auto& [cfg, s] : made_)
      if (cfg == c) return s;
    std::shared_ptr<const schemes::Scheme> s = schemes::make_scheme(c);
    const bool ok = s->target() == want ||
                    (want == schemes::Target::kv_cache && s->target() == schemes::Target::activation);
    if (!ok)
      throw std::invalid_argument("quant plan: scheme '" + c.scheme + "' quantizes " +
                                  schemes::to_string(s->target()) + ", but it is named as the " +
                                  schemes::to_string(want) + " scheme of " + where);
    made_.emplace_back(c, s);
    return s;
  }

 private:
  std::vector<std::pair<schemes::SchemeConfig, std::shared_ptr<const schemes::Scheme>>> made_;
};

// Quantizes l's weight once with its weight scheme (and calibration, when given); returns the stored codes.
quant::QuantizedMatrix quantize_weight(LinearLayer& l, const schemes::Calibration* c) {
  if (l.weight_scheme->needs_calibration() && !c)
    throw std::invalid_argument("quant plan: scheme '" + l.weight_scheme->name() + "' needs calibration data for " +
                                l.name + " (capture it with CalibrationCapture and pass it to apply_plan)");
  at::Tensor w = fp32_of(l.weight.detach()).contiguous();
  quant::QuantizedMatrix q = l.weight_scheme->quantize(view_of(w), c);
  at::Tensor eff = at::empty_like(w);
  l.weight_scheme->dequantize(q, mutable_view_of(eff));
  l.effective = eff;
  l.bits_per_weight = q.bits_per_weight();
  l.weight_sqnr_db = sqnr_db(w, eff);
  return q;
}

}  // namespace

void LlamaModel::apply_plan(const QuantPlan& plan, const std::map<std::string, schemes::Calibration>* calib) {
  bool has_weight = plan.weight.has_value();
  for (const auto& o : plan.overrides) has_weight = has_weight || o.weight.has_value();
  if (training_ && has_weight)
    throw std::invalid_argument("LlamaModel::apply_plan: weight quantization in training mode is not supported "
                                "(set_training(false) first)");
  const std::vector<std::string> names = linear_names();
  plan.check_overrides(names);
  clear_plan();
  c10::InferenceMode guard(false);
  at::NoGradGuard no_grad;
  PlanSchemes made;
  SqnrBufferScope sqnr_buffer;  // one double buffer for every layer's weight SQNR
  // Every plan error (targets, the backend's support) before anything is quantized.
  for (const auto& n : names) {
    LinearLayer& l = linear_layer(n);
    const QuantPlan::Resolved r = plan.resolve(n);
    if (r.weight) l.weight_scheme = made.get(*r.weight, schemes::Target::weight, n);
    if (r.activation) l.act_scheme = made.get(*r.activation, schemes::Target::activation, n);
    if (l.weight_scheme || l.act_scheme) require_supported(*backend_, n, l.weight_scheme.get(), l.act_scheme.get());
  }
  for (const auto& n : names) {
    LinearLayer& l = linear_layer(n);
    std::optional<quant::QuantizedMatrix> q;
    if (l.weight_scheme) {
      auto it = calib ? calib->find(n) : std::map<std::string, schemes::Calibration>::const_iterator();
      q = quantize_weight(l, calib && it != calib->end() ? &it->second : nullptr);
    }
    if (l.weight_scheme || l.act_scheme) prepare_linear(l, q ? &*q : nullptr);
  }
  if (plan.kv_cache) kv_scheme_ = made.get(*plan.kv_cache, schemes::Target::kv_cache, "the KV cache");
  plan_ = plan;
}

void LlamaModel::set_backend(std::shared_ptr<const LinearBackend> backend) {
  if (!backend) throw std::invalid_argument("LlamaModel::set_backend: null backend");
  for (const auto& n : linear_names())
    if (linear_layer(n).prepared)
      throw std::invalid_argument("LlamaModel::set_backend('" + backend->name() + "'): layer " + n +
                                  " is already prepared for backend '" + backend_->name() +
                                  "'; set the backend before quantizing (a fresh LlamaModel)");
  backend_ = std::move(backend);
}

void LlamaModel::prepare_linear(LinearLayer& layer, const quant::QuantizedMatrix* codes) {
  c10::InferenceMode guard(false);  // the backend keeps plain tensors, usable in and out of inference mode
  QuantizedLinear d;
  d.layer = layer.name;
  d.weight_scheme = layer.linear_scheme ? layer.linear_scheme : layer.weight_scheme;
  d.codes = codes;
  // A weight kept in file precision is converted for what the backend keeps: the effective weight (the weight itself
  // for an fp-weight layer) always, the fp weight only for a Target::linear scheme — the only reader of d.weight.
  const bool fp32_weight = layer.weight.scalar_type() == at::kFloat || layer.linear_scheme;
  const at::Tensor w = fp32_weight ? fp32_of(layer.weight.detach()).contiguous() : at::Tensor();
  const at::Tensor e = fp32_of(layer.effective.detach()).contiguous();
  if (w.defined()) d.weight = view_of(w);
  d.effective = view_of(e);
  d.linear_calib = layer.linear_calib;
  d.act_scheme = layer.act_scheme;
  d.act_calib = layer.act_calib;
  d.storage = std::make_shared<const std::pair<at::Tensor, at::Tensor>>(w, e);
  d.compact = layer.weight_scheme && !layer.linear_scheme ? layer.codes : nullptr;
  layer.prepared = backend_->prepare(d);
  if (d.compact) layer.effective = at::Tensor();  // held as codes from here on (what the backend kept aside)
}

// ---- forward ----------------------------------------------------------------------------------

at::Tensor LlamaModel::linear(LinearLayer& layer, const at::Tensor& x) {
  const int64_t in = x.size(-1);
  if (in != layer.in_features())
    throw std::invalid_argument("linear " + layer.name + ": input has " + std::to_string(in) +
                                " features, the weight expects " + std::to_string(layer.in_features()));
  std::vector<int64_t> out_shape = x.sizes().vec();
  out_shape.back() = layer.out_features();
  at::Tensor x2 = x.reshape({-1, in}).contiguous();
  if (capture_ && capture_->wants(layer.name)) {
    at::Tensor c = x2.detach();
    capture_->record(layer.name, c.data_ptr<float>(), c.size(0), c.size(1));
  }
  const auto with_bias = [&](const at::Tensor& y) { return layer.bias.defined() ? y + layer.bias : y; };
  if (bypass_plan_ || !layer.prepared || training_) return with_bias(fp_linear(layer, x2)).view(out_shape);
  // The seam: a quantized layer is computed by the backend.
  at::Tensor seen;
  const at::Tensor y = quantized_product(layer, x2, observer_ ? &seen : nullptr);
  if (observer_) observer_(layer, seen, y);
  return with_bias(y).view(out_shape);
}

at::Tensor LlamaModel::quantized_product(const LinearLayer& layer, const at::Tensor& x, at::Tensor* input_seen) const {
  if (!layer.prepared)
    throw std::invalid_argument("quantized_product: layer " + layer.name + " carries no quantization");
  const at::Tensor xs = x.detach().contiguous();
  at::Tensor y = at::empty({xs.size(0), layer.out_features()}, at::kFloat);
  LinearCall call;
  call.order = reassociation_;
  if (input_seen) {
    *input_seen = at::empty_like(xs);
    call.input_seen = mutable_view_of(*input_seen);
  }
  backend_->linear(*layer.prepared, view_of(xs), mutable_view_of(y), call);
  return y;
}

// A layer without quantization, every layer under the bypass (fp weights, fp inputs), and the differentiable
// training forward (activation fake-quant through the straight-through estimator): LibTorch fp32.
at::Tensor LlamaModel::fp_linear(LinearLayer& layer, at::Tensor x2) {
  const bool use_plan = !bypass_plan_;
  if (use_plan && layer.linear_scheme)
    throw std::invalid_argument("linear " + layer.name + ": scheme '" + layer.linear_scheme->name() +
                                "' replaces the product and is not differentiable; set_training(false) first");
  if (use_plan && layer.act_scheme) {
    at::Tensor src = x2.detach();
    at::Tensor q = at::empty_like(src);
    layer.act_scheme->fake_quantize(view_of(src), mutable_view_of(q), layer.act_calib.get());
    // Straight-through estimator when differentiable; the plain quantized input otherwise.
    x2 = training_ ? x2 + (q - x2).detach() : q;
  }
  const at::Tensor y = matmul_t(x2, use_plan ? layer.effective_weight() : fp32_of(layer.weight), reassociation_);
  if (observer_) observer_(layer, x2, y);
  return y;
}

at::Tensor LlamaModel::matmul(const at::Tensor& a, const at::Tensor& b) const {
  const int64_t k = a.size(-1), h = split_point(k);
  if (reassociation_ == Reassociation::native || h == 0) return at::matmul(a, b);
  return at::matmul(a.narrow(-1, 0, h), b.narrow(-2, 0, h)).add_(at::matmul(a.narrow(-1, h, k - h), b.narrow(-2, h, k - h)));
}

at::Tensor LlamaModel::rmsnorm(const at::Tensor& x, const at::Tensor& w) const {
  // v / sqrt(mean(v²) + eps) · w, all fp32 (as llama.cpp's ggml_rms_norm and HF's LlamaRMSNorm in fp32).
  const int64_t d = x.size(-1), h = split_point(d);
  if (reassociation_ == Reassociation::native || h == 0)
    return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + cfg_.rms_eps) * w;
  const at::Tensor ss = x.narrow(-1, 0, h).pow(2).sum(-1, true).add_(x.narrow(-1, h, d - h).pow(2).sum(-1, true));
  return x * at::rsqrt(ss.div_(static_cast<double>(d)) + cfg_.rms_eps) * w;
}

namespace {

// θ_i = base^(−2i/head_dim), in double; with llama3 scaling (transformers' _compute_llama3_parameters, llama.cpp's
// rope_freqs): wavelength λ = 2π/θ; λ < L/high_freq_factor keeps θ, λ > L/low_freq_factor takes θ/factor, between
// them s = (L/λ − low)/(high − low) mixes (1 − s)·θ/factor + s·θ (L = original_max_position_embeddings).
// Worked case (the llama3 fixture: base 5·10⁵, head_dim 16, L 32, factor 8, low 1, high 4): i = 0 (λ = 6.28 < 8)
// keeps θ = 1; i = 1 (θ = 0.1935, λ = 32.5 > 32) → θ/8. Linear scaling (Gemma 3's global layers): θ/factor for all i;
// a local (sliding) layer of Gemma 3 uses base rope_theta_local, unscaled.
double rope_frequency(const ModelConfig& c, int64_t i, bool local) {
  const double base = local ? c.rope_theta_local : c.rope_theta;
  const double theta = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim()));
  if (local) return theta;  // Gemma 3: the local base is never scaled
  if (c.rope_scaling == "freq_factors") return theta / static_cast<double>(c.rope_freq_factors[static_cast<size_t>(i)]);
  if (c.rope_scaling == "linear") return theta / c.rope_factor;
  if (c.rope_scaling != "llama3") return theta;
  const double pi = 3.14159265358979323846, wavelen = 2 * pi / theta, L = static_cast<double>(c.rope_original_context);
  if (wavelen < L / c.rope_high_freq_factor) return theta;
  if (wavelen > L / c.rope_low_freq_factor) return theta / c.rope_factor;
  const double s = (L / wavelen - c.rope_low_freq_factor) / (c.rope_high_freq_factor - c.rope_low_freq_factor);
  return (1 - s) * theta / c.rope_factor + s * theta;
}

}  // namespace

std::pair<at::Tensor, at::Tensor> LlamaModel::rope_tables(int64_t T, bool local) {
  local = local && cfg_.rope_theta_local > 0;
  auto it = rope_cache_.find({T, local});
  if (it != rope_cache_.end()) return it->second;
  c10::InferenceMode guard(false);  // plain tensors: usable in training graphs too
  const int64_t half = cfg_.head_dim() / 2;
  at::Tensor c = at::empty({T, half}, at::kFloat), s = at::empty({T, half}, at::kFloat);
  float* cp = c.data_ptr<float>();
  float* sp = s.data_ptr<float>();
  for (int64_t i = 0; i < half; ++i) {
    const double theta = rope_frequency(cfg_, i, local);
    for (int64_t p = 0; p < T; ++p) {
      const double a = static_cast<double>(p) * theta;
      cp[p * half + i] = static_cast<float>(std::cos(a));
      sp[p * half + i] = static_cast<float>(std::sin(a));
    }
  }
  rope_cache_[{T, local}] = {c, s};
  return {c, s};
}

at::Tensor LlamaModel::apply_rope(const at::Tensor& x, bool local) {
  const int64_t B = x.size(0), T = x.size(1), h = x.size(2), hd = x.size(3);
  if (hd != cfg_.head_dim())
    throw std::invalid_argument("apply_rope: head_dim " + std::to_string(hd) + " != config's " +
                                std::to_string(cfg_.head_dim()));
  auto [c, s] = rope_tables(T, local);
  const at::Tensor cb = c.view({1, T, 1, hd / 2}), sb = s.view({1, T, 1, hd / 2});
  const at::Tensor xp = x.reshape({B, T, h, hd / 2, 2});
  const at::Tensor x0 = xp.select(-1, 0), x1 = xp.select(-1, 1);
  // (x0, x1) → (x0·cos − x1·sin, x0·sin + x1·cos)
  return at::stack({x0 * cb - x1 * sb, x0 * sb + x1 * cb}, -1).reshape({B, T, h, hd});
}

void fake_quantize_kv_cache(const schemes::Scheme& s, at::Tensor& keys, at::Tensor& values, int64_t T) {
  const int64_t rows = keys.size(0), cols = keys.size(1);
  if (T <= 0 || rows % T != 0)
    throw std::logic_error("KV cache: " + std::to_string(rows) + " key rows are not a multiple of T = " +
                           std::to_string(T));
  float* kp = keys.data_ptr<float>();
  float* vp = values.data_ptr<float>();
  for (int64_t b = 0; b < rows / T; ++b) {
    const int64_t off = b * T * cols;
    s.fake_quantize_kv(schemes::KvPart::key, quant::MatrixView(kp + off, T, cols),
                       quant::MutableMatrixView(kp + off, T, cols));
    s.fake_quantize_kv(schemes::KvPart::value, quant::MatrixView(vp + off, T, cols),
                       quant::MutableMatrixView(vp + off, T, cols));
  }
}

// Scaled, soft-capped (Gemma 2), masked scores [B, KV, rep, T, T] of qh [B, KV, rep·T, hd] against kh [B, KV, T, hd].
at::Tensor LlamaModel::attention_scores(int layer, const at::Tensor& qh, const at::Tensor& kh, int64_t T) const {
  const double scale = cfg_.attn_scale > 0 ? cfg_.attn_scale : 1.0 / std::sqrt(static_cast<double>(cfg_.head_dim()));
  at::Tensor scores = matmul(qh, kh.transpose(-1, -2)).mul_(scale);
  scores = soft_cap(scores, cfg_.attn_softcap).view({qh.size(0), qh.size(1), qh.size(2) / T, T, T});
  // Causal mask: position t sees 0..t; on a sliding layer only t − W < s ≤ t (W = sliding_window).
  at::Tensor mask;
  {
    c10::InferenceMode g(false);
    const at::Tensor inf = at::full({T, T}, -std::numeric_limits<float>::infinity(), at::kFloat);
    mask = inf.triu(1);
    if (cfg_.is_sliding(layer) && cfg_.sliding_window < T) mask = mask + inf.tril(-cfg_.sliding_window);
  }
  return scores + mask;
}

at::Tensor LlamaModel::attention(int layer, LlamaBlock& blk, const at::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), H = cfg_.n_heads, KV = cfg_.n_kv_heads, hd = cfg_.head_dim();
  const int64_t rep = H / KV;
  at::Tensor q = linear(blk.attn_q, x).view({B, T, H, hd});
  at::Tensor k = linear(blk.attn_k, x).view({B, T, KV, hd});
  if (blk.attn_q_norm.defined()) q = rmsnorm(q, blk.attn_q_norm);  // Qwen3: per head, before RoPE
  if (blk.attn_k_norm.defined()) k = rmsnorm(k, blk.attn_k_norm);
  q = apply_rope(q, cfg_.local_rope(layer));
  k = apply_rope(k, cfg_.local_rope(layer));
  at::Tensor v = linear(blk.attn_v, x).view({B, T, KV, hd});

  const bool kv_quant = kv_scheme_ && !bypass_plan_;
  if (kv_quant || kv_hook_) {
    at::Tensor k2 = k.reshape({B * T, KV * hd}).contiguous();
    at::Tensor v2 = v.reshape({B * T, KV * hd}).contiguous();
    at::Tensor kq = training_ ? k2.detach().clone() : k2.detach();
    at::Tensor vq = training_ ? v2.detach().clone() : v2.detach();
    // In eval mode kq/vq may share storage with k/v (fresh tensors of this forward): modifying them in
    // place is intended.
    if (kv_quant) fake_quantize_kv_cache(*kv_scheme_, kq, vq, T);
    if (kv_hook_) kv_hook_(layer, kq, vq);
    if (training_) {
      k2 = k2 + (kq - k2).detach();
      v2 = v2 + (vq - v2).detach();
    } else {
      k2 = kq;
      v2 = vq;
    }
    k = k2.view({B, T, KV, hd});
    v = v2.view({B, T, KV, hd});
  }

  // [B, H, T, hd] → [B, KV, rep·T, hd]: the rep query heads sharing a KV head become one matmul.
  const at::Tensor qh = q.permute({0, 2, 1, 3}).contiguous().view({B, KV, rep * T, hd});
  const at::Tensor kh = k.permute({0, 2, 1, 3});  // [B, KV, T, hd]
  const at::Tensor vh = v.permute({0, 2, 1, 3});
  at::Tensor p = at::softmax(attention_scores(layer, qh, kh, T), -1).view({B, KV, rep * T, T});
  at::Tensor o = matmul(p, vh)                        // [B, KV, rep·T, hd]
                     .view({B, H, T, hd})
                     .permute({0, 2, 1, 3})
                     .reshape({B, T, H * hd});
  return linear(blk.attn_output, o);
}

at::Tensor LlamaModel::embed_impl(const at::Tensor& tokens) {
  if (tokens.dim() != 2)
    throw std::invalid_argument("LlamaModel::forward: tokens must be [batch, time], got " +
                                std::to_string(tokens.dim()) + " dimensions");
  if (tokens.numel() == 0) throw std::invalid_argument("LlamaModel::forward: empty token batch");
  at::Tensor tok = tokens.to(at::kLong);
  const int64_t lo = tok.min().item<int64_t>(), hi = tok.max().item<int64_t>();
  if (lo < 0 || hi >= cfg_.vocab_size)
    throw std::invalid_argument("LlamaModel::forward: token id " + std::to_string(lo < 0 ? lo : hi) +
                                " outside the vocabulary [0, " + std::to_string(cfg_.vocab_size) +
                                ") — tokenizer and model do not match");
  const at::Tensor e = fp32_of(at::embedding(tok_embd_, tok));  // [B, T, D] (F16/BF16 rows: converted exactly)
  return cfg_.embed_scale > 0 ? e * cfg_.embed_scale : e;
}

at::Tensor LlamaModel::block_impl(int64_t l, const at::Tensor& x_in) {
  if (l < 0 || l >= static_cast<int64_t>(blocks_.size()))
    throw std::invalid_argument("LlamaModel::forward_block: layer " + std::to_string(l) + " outside [0, " +
                                std::to_string(blocks_.size()) + ")");
  if (x_in.dim() != 3 || x_in.size(2) != cfg_.d_model)
    throw std::invalid_argument("LlamaModel::forward_block: x must be [batch, time, " + std::to_string(cfg_.d_model) +
                                "]");
  cur_seq_len_ = x_in.size(1);
  LlamaBlock& b = blocks_[static_cast<size_t>(l)];
  at::Tensor a = attention(static_cast<int>(l), b, rmsnorm(x_in, b.attn_norm));
  if (b.post_attn_norm.defined()) a = rmsnorm(a, b.post_attn_norm);
  const at::Tensor x = x_in + a;
  const at::Tensor n2 = rmsnorm(x, b.ffn_norm);
  at::Tensor f = b.is_moe() ? moe_ffn(b, n2) : ffn(b.ffn_gate, b.ffn_up, b.ffn_down, n2);
  if (b.post_ffw_norm.defined()) f = rmsnorm(f, b.post_ffw_norm);
  return x + f;
}

at::Tensor LlamaModel::ffn(LinearLayer& gate, LinearLayer& up, LinearLayer& down, const at::Tensor& x) {
  const at::Tensor g = linear(gate, x);
  const at::Tensor u = linear(up, x);
  return linear(down, (cfg_.ffn_act == "gelu_tanh" ? at::gelu(g, "tanh") : at::silu(g)) * u);
}

at::Tensor LlamaModel::forward_hidden_impl(const at::Tensor& tokens) {
  at::Tensor x = embed_impl(tokens);
  for (size_t l = 0; l < blocks_.size(); ++l) x = block_impl(static_cast<int64_t>(l), x);
  return rmsnorm(x, output_norm_);
}

at::Tensor LlamaModel::embed(const at::Tensor& tokens) {
  if (training_) return embed_impl(tokens);
  c10::InferenceMode guard;
  return embed_impl(tokens);
}

at::Tensor LlamaModel::forward_block(int64_t layer, const at::Tensor& x) {
  if (training_) return block_impl(layer, x);
  c10::InferenceMode guard;
  return block_impl(layer, x);
}

at::Tensor LlamaModel::final_norm(const at::Tensor& x) {
  if (training_) return rmsnorm(x, output_norm_);
  c10::InferenceMode guard;
  return rmsnorm(x, output_norm_);
}

at::Tensor LlamaModel::forward_hidden(const at::Tensor& tokens) {
  if (training_) return forward_hidden_impl(tokens);
  c10::InferenceMode guard;
  return forward_hidden_impl(tokens);
}

at::Tensor LlamaModel::logits_of(const at::Tensor& hidden) {
  at::Tensor y = linear(output_, hidden);
  return cfg_.final_softcap > 0 ? at::tanh(y / cfg_.final_softcap) * cfg_.final_softcap : y;
}

at::Tensor LlamaModel::head(const at::Tensor& hidden) {
  if (training_) return logits_of(hidden);
  c10::InferenceMode guard;
  return logits_of(hidden);
}

at::Tensor LlamaModel::forward(const at::Tensor& tokens) {
  if (training_) return logits_of(forward_hidden_impl(tokens));
  c10::InferenceMode guard;
  return logits_of(forward_hidden_impl(tokens));
}

}  // namespace qeval::model
