// eval/model/moe.hpp — mixture-of-experts routing (Mixtral, Qwen2-MoE): which experts each token goes to, with what
// weight. The experts' forward is LlamaModel::moe_ffn (moe.cpp), through the linear hook like every other layer.
//
// Routing, as transformers' MixtralSparseMoeBlock / Qwen2MoeSparseMoeBlock compute it (all fp32 here):
//   p = softmax(x·Wrᵀ) over the n_experts router logits (Wr = blk.{i}.ffn_gate_inp.weight, never quantized);
//   the top n_experts_used of p per token (ties: torch.topk's order is not specified; random weights have none);
//   weights = those p, divided by their sum when expert_norm_topk (Mixtral always; Qwen2-MoE's norm_topk_prob).
//   y = Σ_k weight_k · down_e(silu(gate_e(x)) ⊙ up_e(x)), e = idx_k, accumulated expert by expert in index order
//   (as HF's index_add_ loop); Qwen2-MoE adds sigmoid(x·w_sᵀ) · shared(x) (w_s = ffn_gate_inp_shexp [1, d_model]).
// Each expert's gate, up and down is its own LinearLayer "blk.{i}.ffn_{gate,up,down}.{e}" (llama.cpp's
// pre-stacking tensor names), fed only the tokens routed to it: quantization plans, calibration capture, blame
// and schemes see one layer per expert matrix, and a calibrated scheme sees exactly that expert's tokens.
#pragma once

#include <ATen/core/Tensor.h>

#include "eval/model/backend/linear_backend.hpp"
#include "eval/model/checkpoint.hpp"

namespace qeval::model {

struct Routing {
  at::Tensor idx;     // [tokens, n_experts_used] int64: the chosen experts, most probable first
  at::Tensor weight;  // [tokens, n_experts_used] fp32: their weights
};

// x: [tokens, d_model] fp32; router: [n_experts, d_model]. The router product in `order` (as the linear layers).
Routing route(const ModelConfig& c, const at::Tensor& router, const at::Tensor& x, Reassociation order);

// How many of `r`'s token slots each expert got: [n_experts] counts summing to tokens·n_experts_used.
std::vector<int64_t> expert_token_counts(const Routing& r, int64_t n_experts);

}  // namespace qeval::model
