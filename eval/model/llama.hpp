// eval/model/llama.hpp — Llama-family transformer in LibTorch (fp32): forward, fake-quant hooks, calibration capture.
//
// Architecture (one block, repeated n_layers times; x is [B, T, d_model]):
//   h = x + attn_output( attention( rope(attn_q(n1)), rope(attn_k(n1)), attn_v(n1) ) ),  n1 = rmsnorm(x)·attn_norm
//   x = h + ffn_down( silu(ffn_gate(n2)) ⊙ ffn_up(n2) ),                                  n2 = rmsnorm(h)·ffn_norm
//   logits = output( rmsnorm(x)·output_norm )        (output = token_embd when the embeddings are tied)
//   rmsnorm(v) = v / sqrt(mean(v²) + rms_eps)
// Families (ModelConfig's family features, checkpoint.hpp), each off for a plain Llama: a bias after any linear layer
// (Qwen2's q/k/v); q/k RMSNorm over each head before RoPE (Qwen3); head_dim ≠ d_model / n_heads (Qwen3); a sliding
// window on the layers config.layer_sliding marks (Mistral: query t sees keys t − W < s ≤ t); llama3 RoPE frequency
// scaling (Llama 3.1+). Phi-3's fused qkv_proj / gate_up_proj are split into q, k, v / gate, up when loaded (the
// product is the same rows; a per-tensor scheme then sees each part as its own tensor). Gemma 2 (checkpoint.hpp):
//   x = embed·embed_scale;  h = x + post_attn_norm(attention(attn_norm(x))),  scores = c·tanh(q·kᵀ·attn_scale / c);
//   x = h + post_ffw_norm(ffn_down(gelu_tanh(ffn_gate(n)) ⊙ ffn_up(n))), n = ffn_norm(h);  logits = c'·tanh(out/c').
// Gemma 3: Gemma 2's block without soft-capping, plus q/k RMSNorm (1 + w) and RoPE base rope_theta_local on the
// sliding layers (rope_theta, optionally linearly scaled, on the global ones).
// Mixtral / Qwen2-MoE: the FFN is a router and experts (eval/model/moe.hpp), one linear layer per expert matrix.
// Supported: kSupportedArchs.
// Attention: grouped-query (query head h reads key/value head h / (n_heads / n_kv_heads), the
// llama.cpp / Hugging Face repeat_kv convention), causal, scores scaled by 1/sqrt(head_dim), softmax in fp32.
// RoPE: GGUF "normal" mode (checkpoint.hpp): adjacent pairs (x[2i], x[2i+1]) of each head rotate by
// pos·θ_i, θ_i = rope_theta^(−2i/head_dim); positions restart at 0 in every window (each window is an
// independent sequence, as llama.cpp's perplexity tool clears its KV cache per chunk). The angles are
// computed in double and rounded to float once (cos/sin error ≤ 6e-8 even at pos 8192), so long windows do
// not accumulate float error in the angle (fp32 pos·θ at pos 2048 would be off by up to ~1e-4 rad).
//
// Every linear layer goes through LlamaModel::linear(), the single hook point:
//   * weights: a QuantPlan (hooks.hpp) names a weight scheme per layer; apply_plan() (or quantize_model) quantizes
//     each weight once with scheme->quantize and dequantizes into a copy (`effective`); the fp weight is kept, so
//     plans can be swapped without reloading.
//   * activations: an activation scheme quantizes the layer's input [tokens, in] at every forward.
//   * every layer that carries a quantization is computed by the model's LinearBackend (backend/linear_backend.hpp,
//     the one seam: `ref` = fake quantization, LibTorch fp32 — the default) from the form it prepared once
//     (LinearLayer::prepared); fp layers, the bypass and the training forward multiply in LibTorch fp32 directly.
//   * calibration capture (CalibrationCapture, hooks.hpp) records the inputs of chosen layers.
//   * an observer (used by per-layer blame) sees (layer, input as multiplied, output).
// KV-cache hook: inside attention, after RoPE, keys and values of layer `l` are handed as contiguous
// [B·T, n_kv_heads·head_dim] fp32 tensors (row = token, columns head-major: head g occupies columns
// [g·head_dim, (g+1)·head_dim)) first to the plan's kv_cache scheme (fake_quantize_kv_cache: each sequence's keys
// and values, in place), then to a user KvHook, which may modify them in place. This is the layout
// schemes::Target::kv_cache documents.
//
// Tied embeddings: the `output` layer's weight IS token_embd (one parameter); a weight scheme on "output"
// quantizes a copy used only by the head — the embedding lookup stays fp (llama.cpp, by contrast, uses the
// one quantized token_embd for both when a GGUF ties them).
// Eval vs training: in eval mode (the default) forward() runs under c10::InferenceMode (no autograd graph).
// set_training(true) makes every parameter require grad and keeps the forward differentiable (activation
// fake-quant then uses the straight-through estimator x + (q(x) − x).detach()). A weight plan is a one-time
// copy of the weights, so it is refused in training mode (re-apply it after training).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "eval/model/backend/linear_backend.hpp"
#include "eval/model/checkpoint.hpp"
#include "eval/model/hooks.hpp"
#include "schemes/scheme.hpp"

namespace qeval::model {

// Sets ATen's intra-op thread count: `requested` > 0 → that; else OMP_NUM_THREADS when set (and > 0);
// else std::thread::hardware_concurrency(). Inter-op parallelism is not used by the forward. Returns the
// count in force. The evaluators set the protocol's count for their duration and restore it; metrics were
// measured bit-identical for 1 and 2 threads (tests/eval/model, Determinism.*).
int configure_threads(int requested = 0);

// One linear layer y = x·Wᵀ, W [out, in].
struct LinearLayer {
  std::string name;     // "blk.3.attn_q", ..., "output" (GGUF tensor name without ".weight")
  at::Tensor weight;    // fp32 [out, in]: the model's parameter (for tied output: token_embd)
  at::Tensor effective; // what the forward multiplies by: `weight`, or its fake-quantized copy
  at::Tensor bias;      // fp32 [out] or undefined: added after the product (never quantized; observers see x·Wᵀ)
  std::shared_ptr<const schemes::Scheme> weight_scheme;  // null: fp weights
  std::shared_ptr<const schemes::Scheme> act_scheme;     // null: fp inputs
  // Filled by apply_plan when the weight is quantized: effective bits per weight and weight SQNR (dB).
  double bits_per_weight = 32.0;
  double weight_sqnr_db = 0.0;  // meaningful only when weight_scheme is set
  // Installed by eval/model/quantize_model (calibrated schemes; clear_plan() resets them):
  //   act_calib      what act_scheme->fake_quantize receives (static activations: the scales calibrate() froze);
  //                  null: nothing (dynamic schemes)
  //   linear_scheme  a Target::linear scheme (SmoothQuant, LLM.int8) that computes the whole product:
  //                  y = linear_scheme->linear(x, weight, linear_calib) with the fp `weight` (migrated when a fold
  //                  was applied) — `effective` is not used for such a layer (unless linear() declines)
  std::shared_ptr<const schemes::Calibration> act_calib;
  std::shared_ptr<const schemes::Scheme> linear_scheme;
  std::shared_ptr<const schemes::Calibration> linear_calib;
  // The backend's form of the layer's quantization (LlamaModel::prepare_linear); null: the layer is fp.
  std::shared_ptr<const PreparedLinear> prepared;
  // A compact quantized layer (quantize_model's default for a Target::weight scheme; QEVAL_QUANT_WEIGHTS=fp32 keeps
  // the fp32 copy): the codes + scales/zero points weight_scheme stored. prepare_linear then releases `effective`
  // (undefined afterwards) and the backend dequantizes the codes at use; effective_weight() gives the fp32 copy.
  std::shared_ptr<const quant::QuantizedMatrix> codes;
  int64_t in_features() const;
  int64_t out_features() const;
  // What the forward multiplies by, fp32: `effective`, or the codes dequantized by weight_scheme (a fresh tensor).
  at::Tensor effective_weight() const;
  // Bytes the layer's quantized weight holds: the codes' parts (held_bytes) when compact, else 4 per effective value
  // when effective is a copy of its own; 0 for an fp layer.
  int64_t quantized_bytes() const;
};

// Bytes a QuantizedMatrix holds: its code bytes, 4 per scale, zero point, perm entry and column scale, 8 per
// non-finite index.
int64_t held_bytes(const quant::QuantizedMatrix& q);

// A mixture-of-experts FFN (eval/model/moe.hpp): the router and, per expert, its own gate / up / down layers.
struct MoeFfn {
  at::Tensor router;                        // [n_experts, d_model] fp32, never quantized (ffn_gate_inp)
  std::vector<LinearLayer> gate, up, down;  // one of each per expert: blk.{i}.ffn_{gate,up,down}.{e}
  at::Tensor shared_gate_inp;               // [1, d_model] (Qwen2-MoE's shared expert gate) or undefined
  LinearLayer shared_gate, shared_up, shared_down;  // blk.{i}.ffn_{gate,up,down}_shexp; undefined weights: none
};

struct LlamaBlock {
  at::Tensor attn_norm, ffn_norm;  // [d_model]
  at::Tensor attn_q_norm, attn_k_norm;  // [head_dim] (Qwen3) or undefined
  at::Tensor post_attn_norm, post_ffw_norm;  // [d_model] (Gemma 2) or undefined
  LinearLayer attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down;  // ffn_*: undefined in a MoE block
  MoeFfn moe;  // a MoE block's FFN (router undefined in a dense block)
  bool is_moe() const { return moe.router.defined(); }
  // Every linear layer in forward order: attn_q, attn_k, attn_v, attn_output, then ffn_gate, ffn_up, ffn_down — or,
  // in a MoE block, each expert's gate, up, down (expert 0 first), then the shared expert's.
  std::vector<LinearLayer*> linears();
  std::vector<const LinearLayer*> linears() const;
};

// Called inside attention of layer `layer` with keys (after RoPE) and values, each contiguous
// [B·T, n_kv_heads·head_dim] fp32; may modify them in place.
using KvHook = std::function<void(int layer, at::Tensor& keys, at::Tensor& values)>;
// Called after every linear layer with its (possibly fake-quantized) input [rows, in] and output
// [rows, out], both 2-D contiguous fp32. Used by per-layer blame.
using LinearObserver = std::function<void(const LinearLayer& layer, const at::Tensor& input,
                                          const at::Tensor& output)>;

// How the forward sums its reductions: Reassociation (backend/linear_backend.hpp), native or split_k. split_k
// reorders the linear layers (through the backend), attention's q·kᵀ and p·v and RMSNorm's Σx² alike.

class LlamaModel {
 public:
  // Copies the checkpoint's fp32 tensors (the checkpoint may be dropped afterwards). Throws
  // std::invalid_argument when the architecture is not Llama-family or a tensor is missing/misshaped.
  explicit LlamaModel(const Checkpoint& ckpt);
  // Shares the checkpoint's fp32 data instead of copying it (the tensors keep `ckpt` alive). Copy-on-write: code
  // that modifies weights in place (a migration fold, training) calls own_weights() first.
  explicit LlamaModel(std::shared_ptr<const Checkpoint> ckpt);
  // A randomly initialized model (training, tests): weights N(0, init_std²) from qeval::Rng(seed), norms 1.
  // init_std ≤ 0 → 1/sqrt(d_model) for matrices. content_hash = "random:<xxh64 of the weights>".
  LlamaModel(const ModelConfig& cfg, uint64_t seed, double init_std = 0.0);

  const ModelConfig& config() const { return cfg_; }
  // The checkpoint's content hash (or "random:..." / "trained:..." — see recompute_content_hash()).
  const std::string& content_hash() const { return content_hash_; }
  // Recomputes the hash from the current fp weights ("weights:xxh64:<hex>"), e.g. after training.
  const std::string& recompute_content_hash();

  // tokens: [B, T] integer (int64 or int32), ids in [0, vocab). Returns logits [B, T, vocab] fp32.
  at::Tensor forward(const at::Tensor& tokens);
  // The hidden state after the final norm, [B, T, d_model]; head() maps rows [..., d_model] to logits
  // through the `output` layer (so evaluators can compute logits only for scored positions).
  at::Tensor forward_hidden(const at::Tensor& tokens);
  at::Tensor head(const at::Tensor& hidden);
  // The pieces of forward_hidden(), for block-by-block calibration (eval/model/quantize_model):
  // embed: tokens [B, T] → [B, T, d_model] (ids checked); forward_block: one transformer block (layer in
  // [0, n_layers)) on x [B, T, d_model]; final_norm: the output RMSNorm. forward_hidden(t) ≡
  // final_norm(forward_block(L−1, … forward_block(0, embed(t)))).
  at::Tensor embed(const at::Tensor& tokens);
  at::Tensor forward_block(int64_t layer, const at::Tensor& x);
  at::Tensor final_norm(const at::Tensor& x);
  // T (window length) of the latest block forward: KV hooks get keys/values as [B·T, ·] and need it to treat
  // each sequence separately (e.g. per-channel KV quantization).
  int64_t current_seq_len() const { return cur_seq_len_; }

  // Training support.
  void set_training(bool on);  // on: own_weights() first
  // Gives the model its own copy of every parameter when it shares a checkpoint's data (no-op otherwise).
  void own_weights();
  bool shares_weights() const { return shares_weights_; }
  bool training() const { return training_; }
  // Every parameter once (tied: token_embd once), named with GGUF names (".weight" included).
  std::vector<std::pair<std::string, at::Tensor>> named_parameters();
  std::vector<at::Tensor> parameters();
  // Back to a Checkpoint (fp32, canonical names) — e.g. to save a trained model with save_safetensors().
  Checkpoint to_checkpoint() const;

  // ---- hooks ----
  // Quantizes weights once and installs activation / KV schemes per the plan (replacing any earlier plan).
  // `calib` maps layer names to calibration data for schemes that need it (missing → clear error).
  void apply_plan(const QuantPlan& plan, const std::map<std::string, schemes::Calibration>* calib = nullptr);
  void clear_plan();  // back to fp: effective = weight, no activation / KV schemes
  const QuantPlan& plan() const { return plan_; }
  // Run the fp path (fp weights, no activation/KV quantization) while a plan stays installed — used by
  // blame to feed each quantized layer the fp model's inputs.
  void set_bypass_plan(bool on) { bypass_plan_ = on; }

  void set_reassociation(Reassociation r) { reassociation_ = r; }
  Reassociation reassociation() const { return reassociation_; }

  // The backend every quantized layer runs on (default: make_linear_backend("ref")). Set it before quantizing:
  // prepared layers belong to the backend that prepared them (std::invalid_argument otherwise).
  void set_backend(std::shared_ptr<const LinearBackend> backend);
  const LinearBackend& backend() const { return *backend_; }
  // (Re)makes layer.prepared through the backend from the layer's schemes, calibrations, weight and effective
  // weight, and `codes` (what its weight or linear scheme stored; null when it has none). Called once per
  // quantized layer by apply_plan and quantize_model.
  void prepare_linear(LinearLayer& layer, const quant::QuantizedMatrix* codes);
  // The layer's quantized product on x [rows, in] (contiguous fp32) through the backend, in the model's
  // reassociation — what the forward computes for the layer — whatever set_bypass_plan says (blame feeds it the
  // fp model's inputs). Throws std::invalid_argument for a layer that carries no quantization.
  at::Tensor quantized_product(const LinearLayer& layer, const at::Tensor& x, at::Tensor* input_seen = nullptr) const;

  void set_capture(CalibrationCapture* capture) { capture_ = capture; }  // nullptr: off
  void set_kv_hook(KvHook hook) { kv_hook_ = std::move(hook); }
  void set_observer(LinearObserver obs) { observer_ = std::move(obs); }

  // Layer names in forward order: blk.0.attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down,
  // blk.1..., output.
  std::vector<std::string> linear_names() const;
  LinearLayer& linear_layer(const std::string& name);  // throws std::invalid_argument listing the names
  const LinearLayer& linear_layer(const std::string& name) const;

  // The single linear hook point: x [..., in] → [..., out].
  at::Tensor linear(LinearLayer& layer, const at::Tensor& x);

  // RoPE tables for positions [0, T): cos, sin, each [T, head_dim/2] fp32 (cached per T and base). local: the
  // sliding layers' base (Gemma 3's rope_theta_local), else rope_theta with its scaling.
  std::pair<at::Tensor, at::Tensor> rope_tables(int64_t T, bool local = false);
  // Applies RoPE to x [B, T, heads, head_dim] (GGUF adjacent-pair convention), positions 0..T-1.
  at::Tensor apply_rope(const at::Tensor& x, bool local = false);

 private:
  LlamaModel(const Checkpoint& ck, const std::shared_ptr<const Checkpoint>& keep);
  void init_layers();
  at::Tensor rmsnorm(const at::Tensor& x, const at::Tensor& w) const;
  at::Tensor matmul(const at::Tensor& a, const at::Tensor& b) const;    // at::matmul(a, b) in the reassociation_ order
  at::Tensor fp_linear(LinearLayer& layer, at::Tensor x2);  // no quantization, the bypass, or training
  at::Tensor attention(int layer, LlamaBlock& blk, const at::Tensor& x);
  at::Tensor ffn(LinearLayer& gate, LinearLayer& up, LinearLayer& down, const at::Tensor& x);  // down(act(gate)·up)
  at::Tensor moe_ffn(LlamaBlock& blk, const at::Tensor& x);  // eval/model/moe.cpp
  at::Tensor attention_scores(int layer, const at::Tensor& qh, const at::Tensor& kh, int64_t T) const;
  at::Tensor logits_of(const at::Tensor& hidden);  // the output layer, then the final soft-cap (Gemma 2)
  at::Tensor forward_hidden_impl(const at::Tensor& tokens);
  at::Tensor embed_impl(const at::Tensor& tokens);
  at::Tensor block_impl(int64_t layer, const at::Tensor& x);

  ModelConfig cfg_;
  std::string content_hash_;
  at::Tensor tok_embd_;     // [vocab, d_model]
  at::Tensor output_norm_;  // [d_model]
  std::vector<LlamaBlock> blocks_;
  LinearLayer output_;      // weight aliases tok_embd_ when tied
  bool training_ = false;
  bool shares_weights_ = false;
  bool bypass_plan_ = false;
  Reassociation reassociation_ = Reassociation::native;
  std::shared_ptr<const LinearBackend> backend_;
  int64_t cur_seq_len_ = 0;
  QuantPlan plan_;
  std::shared_ptr<const schemes::Scheme> kv_scheme_;
  CalibrationCapture* capture_ = nullptr;
  KvHook kv_hook_;
  LinearObserver observer_;
  std::map<std::pair<int64_t, bool>, std::pair<at::Tensor, at::Tensor>> rope_cache_;
};

// A kv_cache (or activation) scheme on the keys and values [B·T, n_kv_heads·head_dim] of a batch, in place: each
// sequence's block of T rows through fake_quantize_kv(key, ·) and (value, ·). The plan's kv_cache slot (apply_plan)
// and quantize_model's KV hook both apply it.
void fake_quantize_kv_cache(const schemes::Scheme& s, at::Tensor& keys, at::Tensor& values, int64_t T);

// xxh64 of a float buffer, as 16 hex digits (content hashes of weights).
std::string xxh64_hex(const void* data, size_t bytes, uint64_t seed = 0);

}  // namespace qeval::model
