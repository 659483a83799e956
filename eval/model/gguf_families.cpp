// eval/model/gguf_families.cpp — a family GGUF (llama.cpp's converter) into qeval's canonical tensors: Phi-3's
// fused matrices split, and the q/k rows of the NEOX-RoPE architectures put in the adjacent-pair order.
//
// llama.cpp's convert_hf_to_gguf.py permutes the q/k rows of a Llama (and of Mistral, written as "llama") into
// the adjacent-pair RoPE order its LLAMA_ROPE_TYPE_NORM kernel rotates; for the NEOX architectures (Qwen2, Qwen3,
// Phi-3, Gemma 2) it keeps Hugging Face's rotate_half order and llama.cpp rotates with LLAMA_ROPE_TYPE_NEOX.
// qeval's forward rotates adjacent pairs only, so those rows (and the q/k biases and per-head q/k norms that
// follow them) are permuted here exactly as the safetensors reader permutes a Hugging Face checkpoint.
// Mixture-of-experts files (Mixtral as "llama", Qwen2-MoE as "qwen2moe") stack each block's experts in one 3-D
// tensor blk.N.ffn_{gate,up,down}_exps [experts, rows, cols]; it is split here into the per-expert matrices
// blk.N.ffn_{gate,up,down}.{e}.weight the safetensors path builds, so every expert is its own layer either way.
#include "eval/model/gguf.hpp"

#include <algorithm>
#include <string>

#include "eval/model/checkpoint_internal.hpp"
#include "eval/model/safetensors.hpp"

namespace qeval::model {

namespace {

bool neox_rope(const std::string& arch) {
  return arch == "qwen2" || arch == "qwen3" || arch == "phi3" || arch == "gemma2" || arch == "qwen2moe" ||
         arch == "gemma3";
}

// Rows [r0, r0 + n) of `t` as a tensor of their own, in the storage `t` has (fp32 or its file's 16 bits; shape
// only when `t` holds no values).
TensorF32 row_slice(const TensorF32& t, int64_t r0, int64_t n) {
  TensorF32 out;
  out.shape = t.shape;
  out.shape[0] = n;
  out.orig_type = t.orig_type;
  const int64_t cols = t.shape.size() > 1 ? t.shape[1] : 1;
  if (!t.data.empty()) out.data.assign(t.data.begin() + r0 * cols, t.data.begin() + (r0 + n) * cols);
  if (!t.bits16.empty()) out.bits16 = t.bits16.slice(static_cast<size_t>(r0 * cols), static_cast<size_t>(n * cols));
  return out;
}

// Replaces `fused` by its row blocks, named and sized by `parts`; its row count must be their sum.
void split_rows(Checkpoint& cp, const std::string& fused, const std::vector<std::pair<std::string, int64_t>>& parts) {
  auto it = cp.tensors.find(fused);
  if (it == cp.tensors.end()) return;  // validate_checkpoint names whatever is then missing
  int64_t total = 0;
  for (const auto& p : parts) total += p.second;
  const TensorF32 t = std::move(it->second);
  cp.tensors.erase(it);
  if (t.shape.size() != 2 || t.shape[0] != total)
    throw CheckpointError(cp.path, "tensor '" + fused + "'",
                          "has " + std::to_string(t.shape.empty() ? 0 : t.shape[0]) + " rows, the config makes " +
                              std::to_string(total) + " (the fused parts' sum)");
  int64_t r0 = 0;
  for (const auto& [name, n] : parts) {
    cp.tensors[name] = row_slice(t, r0, n);
    r0 += n;
  }
}

// Phi-3: attn_qkv = [q; k; v] rows, ffn_up = [gate; up] rows (transformers' Phi3MLP chunks gate first).
void split_phi3(Checkpoint& cp, const std::string& b) {
  const ModelConfig& c = cp.config;
  const int64_t hd = c.head_dim();
  split_rows(cp, b + "attn_qkv.weight",
             {{b + "attn_q.weight", c.n_heads * hd}, {b + "attn_k.weight", c.n_kv_heads * hd},
              {b + "attn_v.weight", c.n_kv_heads * hd}});
  const auto up = cp.tensors.find(b + "ffn_up.weight");
  if (up != cp.tensors.end() && !up->second.shape.empty() && up->second.shape[0] == 2 * c.d_ff)
    split_rows(cp, b + "ffn_up.weight", {{b + "ffn_gate.weight", c.d_ff}, {b + "ffn_up.weight", c.d_ff}});
}

// Expert e of a stacked [experts, rows, cols] tensor as its own [rows, cols] matrix, in the storage `t` has.
TensorF32 expert_slice(const TensorF32& t, int64_t e) {
  TensorF32 out;
  out.shape = {t.shape[1], t.shape[2]};
  out.orig_type = t.orig_type;
  const int64_t n = t.shape[1] * t.shape[2];
  if (!t.data.empty()) out.data.assign(t.data.begin() + e * n, t.data.begin() + (e + 1) * n);
  if (!t.bits16.empty()) out.bits16 = t.bits16.slice(static_cast<size_t>(e * n), static_cast<size_t>(n));  // shares the mapping
  return out;
}

// blk.N.ffn_{gate,up,down}_exps → blk.N.ffn_{gate,up,down}.{e}.weight; the stack's expert count must be the key's.
// (Quantized stacks were dequantized whole: a block never spans two rows, so that is expert by expert.)
void split_experts(Checkpoint& cp, const std::string& b) {
  const ModelConfig& c = cp.config;
  for (const char* m : {"ffn_gate", "ffn_up", "ffn_down"}) {
    const std::string name = b + m + "_exps.weight";
    auto it = cp.tensors.find(name);
    if (it == cp.tensors.end()) continue;  // validate_checkpoint names the missing expert
    const TensorF32 t = std::move(it->second);
    cp.tensors.erase(it);
    if (t.shape.size() != 3 || t.shape[0] != c.n_experts)
      throw CheckpointError(cp.path, "kv '" + c.arch + ".expert_count'",
                            std::to_string(c.n_experts) + " experts, but tensor '" + name + "' has shape " +
                                shape_str(t.shape) + " (expected [" + std::to_string(c.n_experts) + ", rows, cols])");
    for (int64_t e = 0; e < c.n_experts; ++e)
      cp.tensors[b + m + "." + std::to_string(e) + ".weight"] = expert_slice(t, e);
  }
}

// A tensor kept in file precision is converted to fp32 first (exact; q/k only, a small part of the weights).
void permute_if_present(Checkpoint& cp, const std::string& name, int64_t n_head) {
  auto it = cp.tensors.find(name);
  if (it == cp.tensors.end()) return;
  TensorF32& t = it->second;
  if (t.in_file_precision()) {
    t.data = t.fp32();
    t.bits16.clear();
  }
  if (t.data.empty()) return;  // shapes only
  permute_rows_hf_to_gguf(t, n_head, cp.path, name);
}

}  // namespace

void gguf_family_tensors(Checkpoint& cp) {
  const ModelConfig& c = cp.config;
  if (c.n_layers > (int64_t{1} << 20)) return;  // a corrupt block count: validate_checkpoint names it
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    if (c.arch == "phi3") split_phi3(cp, b);
    if (c.is_moe()) split_experts(cp, b);
    if (!neox_rope(c.arch)) continue;
    for (const char* s : {"weight", "bias"}) {
      permute_if_present(cp, b + "attn_q." + s, c.n_heads);
      permute_if_present(cp, b + "attn_k." + s, c.n_kv_heads);
    }
    permute_if_present(cp, b + "attn_q_norm.weight", 1);  // one head_dim vector, shared by every head
    permute_if_present(cp, b + "attn_k_norm.weight", 1);
  }
}

}  // namespace qeval::model
