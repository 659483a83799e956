// eval/model/checkpoint.hpp — model checkpoints as plain fp32 tensors: the interface between the file readers and the forward.
//
// load_checkpoint() reads a GGUF file, or a Hugging Face safetensors checkpoint (a .safetensors file or a
// directory, single or sharded, with config.json beside it), validates it completely, and returns every
// tensor dequantized to fp32 under GGUF's canonical names. No LibTorch here: the forward wraps `data`.
//
// Canonical names and shapes (PyTorch order [out_features, in_features]; GGUF's ne[] is the reverse, ne[0]
// is the innermost dimension):
//   token_embd.weight              [vocab_size, d_model]
//   blk.{i}.attn_norm.weight       [d_model]
//   blk.{i}.attn_q.weight          [n_heads·head_dim, d_model]        head_dim = d_model / n_heads
//   blk.{i}.attn_k.weight          [n_kv_heads·head_dim, d_model]
//   blk.{i}.attn_v.weight          [n_kv_heads·head_dim, d_model]
//   blk.{i}.attn_output.weight     [d_model, n_heads·head_dim]
//   blk.{i}.ffn_norm.weight        [d_model]
//   blk.{i}.ffn_gate.weight        [d_ff, d_model]
//   blk.{i}.ffn_up.weight          [d_ff, d_model]
//   blk.{i}.ffn_down.weight        [d_model, d_ff]
//   output_norm.weight             [d_model]
//   output.weight                  [vocab_size, d_model]   — absent when tied_embeddings (use token_embd)
// Family extras (ModelConfig's family features): blk.{i}.attn_{q,k,v,output}.bias and blk.{i}.ffn_{gate,up,down}.bias
// ([out_features]; Qwen2's q/k/v, Llama's attention_bias / mlp_bias — q/k biases permuted like their rows),
// blk.{i}.attn_q_norm.weight / attn_k_norm.weight ([head_dim], Qwen3, permuted like one head's rows).
// Extra tensors a GGUF file carries (e.g. rope_freqs.weight) are kept under their own names.
//
// RoPE convention (important for the forward): the rows of attn_q / attn_k are in GGUF "llama" order, in
// which RoPE rotates ADJACENT pairs (x[2i], x[2i+1]) of each head by angle pos·θ^(−2i/head_dim) (ggml's
// "normal" rope mode). Hugging Face Llama checkpoints instead rotate (x[i], x[i + head_dim/2])
// ("rotate_half"). The safetensors reader converts exactly as llama.cpp's convert_hf_to_gguf.py does
// (its `permute`): within each head of head_dim rows, canonical row 2i+j = HF row j·head_dim/2 + i
// (i < head_dim/2, j ∈ {0,1}); q_proj is permuted per n_heads, k_proj per n_kv_heads. Worked case,
// head_dim = 4: HF rows (r0, r1, r2, r3) → canonical (r0, r2, r1, r3); head_dim = 6: (r0, r3, r1, r4, r2, r5).
// save_safetensors() applies the inverse, so a round trip is the identity.
//
// Errors: every structural problem throws CheckpointError (a std::runtime_error) whose what() names the
// file, the field and the problem, e.g.
//   "model.gguf: tensor_infos[3].offset: data [4096, 6400) ends past the end of the file (5000 bytes) — file
//    truncated or offset corrupt". Never a crash, never an out-of-bounds read (see tests/eval/model).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace qeval::model {

struct ModelConfig {
  std::string arch;          // "llama" (GGUF general.architecture; HF LlamaForCausalLM → "llama"); HF families:
                             // "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "mixtral", "qwen2_moe";
                             // GGUF MoE: "llama" with experts (Mixtral), "qwen2moe"
  int64_t n_layers = 0;      // {arch}.block_count | num_hidden_layers
  int64_t d_model = 0;       // {arch}.embedding_length | hidden_size
  int64_t n_heads = 0;       // {arch}.attention.head_count | num_attention_heads
  int64_t n_kv_heads = 0;    // {arch}.attention.head_count_kv | num_key_value_heads (default n_heads)
  int64_t d_ff = 0;          // {arch}.feed_forward_length | intermediate_size
  int64_t vocab_size = 0;    // len(tokenizer.ggml.tokens) (else {arch}.vocab_size) | vocab_size; == token_embd rows
  int64_t n_ctx_train = 0;   // {arch}.context_length | max_position_embeddings
  double rope_theta = 10000.0;  // {arch}.rope.freq_base | rope_theta (default 10000 in both)
  double rms_eps = 0.0;      // {arch}.attention.layer_norm_rms_epsilon | rms_norm_eps (GGUF stores float32)
  bool tied_embeddings = false;  // GGUF: output.weight absent; HF: tie_word_embeddings (default false)
  int64_t bos_id = -1, eos_id = -1;  // tokenizer.ggml.{bos,eos}_token_id | bos_token_id / eos_token_id
  std::string source;        // "gguf" or "safetensors"

  // ---- family features (Hugging Face config.json; all off for a plain Llama) ----
  // head_dim | config head_dim when it differs from d_model / n_heads (Qwen3: 128 with d_model 1024, 16 heads);
  // 0 = d_model / n_heads.
  int64_t head_dim_explicit = 0;
  // Qwen3: RMSNorm over each head's head_dim values of q and k, after the projection and before RoPE
  // (blk.{i}.attn_q_norm.weight, blk.{i}.attn_k_norm.weight, [head_dim], rows in the canonical RoPE order).
  bool attn_qk_norm = false;
  // Sliding-window attention (Mistral; Qwen2/3 with use_sliding_window; transformers' layer_types): a sliding
  // layer's query at position t sees keys t − sliding_window < s ≤ t — sliding_window positions, itself
  // included (transformers' sliding_window_overlay: kv_idx > q_idx − sliding_window). 0 = none.
  int64_t sliding_window = 0;
  std::vector<bool> layer_sliding;  // per layer (n_layers entries) when sliding_window > 0
  // RoPE frequency scaling (rope_parameters / rope_scaling with rope_type "llama3"; see llama.cpp's
  // rope_freqs and transformers' _compute_llama3_parameters): wavelengths above original_context / low_freq_factor
  // are divided by `factor`, those below original_context / high_freq_factor kept, the band between interpolated.
  // "linear" (Gemma 3's global layers): every θ_i divided by rope_factor (transformers' linear scaling).
  std::string rope_scaling = "none";  // "none" | "llama3" | "linear" | "freq_factors"
  double rope_factor = 1.0, rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;
  int64_t rope_original_context = 0;
  // "freq_factors" (a GGUF's rope_freqs.weight, where llama.cpp's converter stores Llama 3.1's scaling): θ_i is
  // divided by rope_freq_factors[i] (head_dim / 2 values), as llama.cpp's RoPE does.
  std::vector<float> rope_freq_factors;
  // Gemma 3: the sliding (local) layers' RoPE base, unscaled (rope_parameters.sliding_attention.rope_theta, or
  // rope_local_base_freq); rope_theta and rope_scaling then apply to the global layers only. 0: one base for all.
  double rope_theta_local = 0.0;

  // Gemma 2: norms stored as w and applied as 1 + w (the safetensors loader adds the 1, as llama.cpp's converter
  // does, so canonical norm weights are always multipliers); GeGLU with tanh-GELU; embeddings × embed_scale
  // (fp32 sqrt(hidden_size)); scores × attn_scale (query_pre_attn_scalar^−½); soft-capping c·tanh(x/c) of the
  // attention scores (before the mask) and of the logits; post-norms on the attention and FFN outputs before the
  // residual add (blk.{i}.post_attention_norm.weight, blk.{i}.post_ffw_norm.weight, llama.cpp's names).
  std::string ffn_act = "silu";  // "silu" | "gelu_tanh"
  double embed_scale = 0.0;      // 0: none
  double attn_scale = 0.0;       // 0: 1/sqrt(head_dim)
  double attn_softcap = 0.0, final_softcap = 0.0;  // 0: none
  bool post_norms = false;

  // Mixture of experts (Mixtral: num_local_experts; Qwen2-MoE: num_experts, eval/model/moe.hpp): each block's FFN is
  // a router blk.{i}.ffn_gate_inp.weight [n_experts, d_model] (kept fp), softmax over the experts in fp32, the top
  // n_experts_used (renormalised to sum 1 when expert_norm_topk: Mixtral always, Qwen2-MoE norm_topk_prob) and per
  // expert e a SwiGLU blk.{i}.ffn_{gate,up}.{e}.weight [d_ff_expert, d_model], ffn_down.{e}.weight [d_model,
  // d_ff_expert] (llama.cpp's pre-stacking names); Qwen2-MoE adds a shared expert ffn_{gate,up,down}_shexp (d_ff_shared)
  // scaled by sigmoid(x·ffn_gate_inp_shexp [1, d_model]). n_experts = 0: a dense FFN.
  int64_t n_experts = 0, n_experts_used = 0, d_ff_expert = 0, d_ff_shared = 0;
  bool expert_norm_topk = true;

  bool is_moe() const { return n_experts > 0; }
  bool local_rope(int64_t layer) const { return rope_theta_local > 0 && is_sliding(layer); }
  int64_t head_dim() const { return head_dim_explicit > 0 ? head_dim_explicit : n_heads > 0 ? d_model / n_heads : 0; }
  bool is_sliding(int64_t layer) const {
    return sliding_window > 0 && layer >= 0 && static_cast<size_t>(layer) < layer_sliding.size() &&
           layer_sliding[static_cast<size_t>(layer)];
  }
};

// A tensor's F16/BF16 codes, read-only: a view into the memory-mapped file they were loaded from (`owner` keeps the
// mapping alive while any view lives, so the file's bytes are not copied — issue 15), or an array of their own.
// Copies share the codes.
class Codes16 {
 public:
  Codes16() = default;
  Codes16(const uint16_t* p, size_t n, std::shared_ptr<const void> owner) : p_(p), n_(n), owner_(std::move(owner)) {}
  static Codes16 copy_of(const uint16_t* begin, const uint16_t* end);  // an array of its own
  const uint16_t* data() const { return p_; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  const uint16_t* begin() const { return p_; }
  const uint16_t* end() const { return p_ + n_; }
  Codes16 slice(size_t offset, size_t n) const { return Codes16(p_ + offset, n, owner_); }  // shares the owner
  void clear() { *this = Codes16(); }

 private:
  const uint16_t* p_ = nullptr;
  size_t n_ = 0;
  std::shared_ptr<const void> owner_;
};

// One tensor, dequantized to fp32, row-major, shape in PyTorch order — or, loaded with WeightPrecision::file, a 2-D
// F16/BF16 tensor kept in its file's 16 bits (`bits16`, `data` empty; f16/bf16 → fp32 is exact, so converting at use
// gives the same floats as converting at load).
struct TensorF32 {
  std::vector<int64_t> shape;
  std::vector<float> data;
  std::string orig_type;  // storage type in the file: "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K"
  Codes16 bits16 = {};  // the F16/BF16 codes (orig_type says which) when kept in file precision

  bool in_file_precision() const { return !bits16.empty(); }
  // The values as fp32 (a converted copy when kept in file precision, else `data`).
  std::vector<float> fp32() const;
  // Bytes this tensor holds in memory (4 per value, or 2 in file precision).
  int64_t resident_bytes() const;
  int64_t numel() const;
  int64_t rows() const { return shape.empty() ? 1 : shape.front(); }  // [out, in] → out
  int64_t cols() const;                                               // innermost dimension
};

// How a loader keeps the weights: fp32 (every tensor converted at load, the default) or file (F16/BF16 matrices stay
// 16-bit and the forward converts each layer when it uses it: half the resident bytes of an F16/BF16 model).
enum class WeightPrecision : uint8_t { fp32, file };
// QEVAL_WEIGHTS=fp32 → fp32, anything else (or unset) → `fallback`: how a model run chooses.
WeightPrecision weight_precision_from_env(WeightPrecision fallback);

struct Checkpoint {
  ModelConfig config;
  std::map<std::string, TensorF32> tensors;  // canonical names (above)
  // GGUF: every key/value pair (arrays as JSON arrays; tokenizer.ggml.tokens etc. for the tokenizer). GGUF
  // strings are kept byte for byte (not UTF-8-validated): dump them with json::error_handler_t::replace.
  // safetensors: the keys of config.json.
  std::map<std::string, nlohmann::json> metadata;
  std::string path;          // what was loaded (file or directory)
  // "sha256:<hex>". GGUF: SHA-256 of the file (= `sha256sum model.gguf`). safetensors: SHA-256 of the manifest
  // of `sha256sum`-style lines "<hex>  <file name>\n" for config.json, model.safetensors.index.json (if sharded)
  // and every weight file, sorted by file name.
  std::string content_hash;

  // Σ resident_bytes() over the tensors: what the store holds (not RSS).
  int64_t resident_bytes() const;
};

// Structural problem in a checkpoint: file, field and problem, all in what().
class CheckpointError : public std::runtime_error {
 public:
  CheckpointError(const std::string& file, const std::string& field, const std::string& problem);
  const std::string& file() const { return file_; }
  const std::string& field() const { return field_; }

 private:
  std::string file_, field_;
};

// A .gguf file (recognized by extension or by its "GGUF" magic), or a .safetensors file or a directory
// holding config.json with model.safetensors or model.safetensors.index.json (sharded).
// `precision` applies to GGUF files (safetensors are always loaded as fp32 for now).
Checkpoint load_checkpoint(const std::string& path, WeightPrecision precision = WeightPrecision::fp32);
Checkpoint load_gguf(const std::string& path, WeightPrecision precision = WeightPrecision::fp32);
Checkpoint load_safetensors(const std::string& path);
// The GGUF loader on bytes in memory (`name` is used in error messages); for fuzzing and tests.
Checkpoint load_gguf_bytes(const uint8_t* data, size_t size, const std::string& name,
                           WeightPrecision precision = WeightPrecision::fp32);

// Checks a checkpoint's config (positive sizes, n_heads | d_model, n_kv_heads | n_heads) and that every
// required canonical tensor is present with the shape above and finite values. Throws CheckpointError with
// `file` = cp.path. Called by the loaders and the writers.
void validate_checkpoint(const Checkpoint& cp);

// The ModelConfig::arch values the forward runs (and how an error lists them). GGUF writes Mistral and Llama 3
// as "llama"; the others under these names (llama.cpp's converter).
inline constexpr const char* kSupportedArchs = "llama, mistral, qwen2, qwen3, phi3, gemma2, gemma3, mixtral, qwen2_moe";
bool forward_supports_arch(const std::string& arch);

// Writes a GGUF v3 file with every tensor as F32, the {arch}.* hyperparameters from cp.config (rope.freq_base
// and rms epsilon as float32, as llama.cpp expects) and the namespaced metadata keys (those containing a '.',
// e.g. general.*, tokenizer.*) of cp.metadata that the config does not define. Loadable by llama.cpp and
// gguf-py. Written to `path + ".tmp"` and renamed.
void save_gguf_f32(const Checkpoint& cp, const std::string& path);

// Writes `dir`/config.json (LlamaForCausalLM) and `dir`/model.safetensors (F32, Hugging Face names, q/k rows
// back in HF rotate_half order) so that transformers' LlamaForCausalLM.from_pretrained(dir) loads it.
// Tokenizer files are not written. Creates `dir` if needed.
void save_safetensors(const Checkpoint& cp, const std::string& dir);

// SHA-256 of a file / of bytes, as "sha256:<64 hex digits>".
// Cached per process by (path, size, mtime): a model file is hashed once however many runs load or plan it.
std::string sha256_file_hex(const std::string& path);

}  // namespace qeval::model
