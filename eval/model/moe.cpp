// eval/model/moe.cpp — mixture-of-experts FFN: routing (moe.hpp) and LlamaModel::moe_ffn, each expert's SwiGLU on
// the tokens routed to it through the model's linear hook.
#include "eval/model/moe.hpp"

#include <ATen/ATen.h>

#include "eval/model/backend/ref_backend.hpp"
#include "eval/model/llama.hpp"

namespace qeval::model {

Routing route(const ModelConfig& c, const at::Tensor& router, const at::Tensor& x, Reassociation order) {
  const at::Tensor p = at::softmax(matmul_t(x, router, order), -1);  // [tokens, n_experts], fp32
  auto [w, idx] = at::topk(p, c.n_experts_used, -1, /*largest=*/true, /*sorted=*/true);
  if (c.expert_norm_topk) w = w / w.sum(-1, /*keepdim=*/true);
  return Routing{idx, w};
}

std::vector<int64_t> expert_token_counts(const Routing& r, int64_t n_experts) {
  const at::Tensor n = at::bincount(r.idx.reshape({-1}), {}, n_experts);
  std::vector<int64_t> out(static_cast<size_t>(n_experts));
  for (int64_t e = 0; e < n_experts; ++e) out[static_cast<size_t>(e)] = n[e].item<int64_t>();
  return out;
}

// x [..., d_model] → [..., d_model]: Σ over each token's chosen experts of weight · expert(x), experts in index order
// (an expert no token chose is not run: its layers see no input); plus the gated shared expert (Qwen2-MoE).
at::Tensor LlamaModel::moe_ffn(LlamaBlock& b, const at::Tensor& x_in) {
  const int64_t D = x_in.size(-1);
  const at::Tensor x = x_in.reshape({-1, D});
  const Routing r = route(cfg_, b.moe.router, x, reassociation_);
  at::Tensor out = at::zeros_like(x);
  for (int64_t e = 0; e < cfg_.n_experts; ++e) {
    const at::Tensor hit = r.idx.eq(e);                        // [tokens, k]: a token chooses e at most once
    const at::Tensor tok = hit.any(1).nonzero().reshape({-1});  // the rows routed to e, ascending
    if (tok.numel() == 0) continue;
    const at::Tensor w = (r.weight * hit).sum(1).index_select(0, tok).unsqueeze(1);
    const size_t k = static_cast<size_t>(e);
    const at::Tensor y = ffn(b.moe.gate[k], b.moe.up[k], b.moe.down[k], x.index_select(0, tok));
    out = out.index_add(0, tok, y * w);
  }
  if (b.moe.shared_gate.weight.defined()) {
    const at::Tensor s = ffn(b.moe.shared_gate, b.moe.shared_up, b.moe.shared_down, x);
    out = out + at::sigmoid(matmul_t(x, b.moe.shared_gate_inp, reassociation_)) * s;
  }
  return out.view(x_in.sizes());
}

}  // namespace qeval::model
