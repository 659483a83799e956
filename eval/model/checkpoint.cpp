// eval/model/checkpoint.cpp — format dispatch, checkpoint validation (config + required tensors), errors, hashes.
#include "eval/model/checkpoint.hpp"

#include <sys/stat.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "eval/model/checkpoint_internal.hpp"
#include "eval/model/mapped_file.hpp"
#include "eval/model/ref/ggml_dequant_ref.hpp"
#include "eval/model/sha256.hpp"

namespace qeval::model {

namespace fs = std::filesystem;

CheckpointError::CheckpointError(const std::string& file, const std::string& field, const std::string& problem)
    : std::runtime_error(file + ": " + field + ": " + problem), file_(file), field_(field) {}

Codes16 Codes16::copy_of(const uint16_t* begin, const uint16_t* end) {
  auto own = std::make_shared<const std::vector<uint16_t>>(begin, end);
  return Codes16(own->data(), own->size(), own);
}

int64_t TensorF32::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t TensorF32::cols() const { return shape.empty() ? 1 : shape.back(); }

std::vector<float> TensorF32::fp32() const {
  if (!in_file_precision()) return data;
  std::vector<float> out(bits16.size());
  const auto* src = reinterpret_cast<const uint8_t*>(bits16.data());  // little-endian host (gguf.cpp checks)
  const auto n = static_cast<int64_t>(bits16.size());
  if (orig_type == "BF16") {
    ref::dequantize_row_bf16(src, out.data(), n);
  } else {
    ref::dequantize_row_f16(src, out.data(), n);
  }
  return out;
}

int64_t TensorF32::resident_bytes() const {
  return static_cast<int64_t>(data.size() * sizeof(float) + bits16.size() * sizeof(uint16_t));
}

int64_t Checkpoint::resident_bytes() const {
  int64_t n = 0;
  for (const auto& kv : tensors) n += kv.second.resident_bytes();
  return n;
}

WeightPrecision weight_precision_from_env(WeightPrecision fallback) {
  const char* v = std::getenv("QEVAL_WEIGHTS");
  if (!v || !*v) return fallback;
  const std::string s(v);
  if (s == "fp32") return WeightPrecision::fp32;
  if (s == "file") return WeightPrecision::file;
  throw std::invalid_argument("QEVAL_WEIGHTS=" + s + ": unknown (use fp32 — every weight fp32 at load — or file — "
                              "F16/BF16 weights kept 16-bit, converted per layer at use)");
}

namespace {

// The config key of the routed expert count, as the file's format names it.
std::string expert_count_field(const ModelConfig& c) {
  if (c.source != "safetensors") return c.arch + ".expert_count";
  return c.arch == "mixtral" ? "num_local_experts" : "num_experts";
}


// Which config fields make a canonical tensor's expected shape, named as the file's format names them (a shape that
// disagrees with the weights then names the field to fix): "[num_attention_heads·head_dim, hidden_size]".
struct ShapeFieldNames {
  std::string D, F, H, KV, HD, V;
  explicit ShapeFieldNames(const ModelConfig& c) {
    const bool hf = c.source == "safetensors";
    const std::string a = c.arch.empty() ? "{arch}" : c.arch;
    D = hf ? "hidden_size" : a + ".embedding_length";
    F = hf ? "intermediate_size" : a + ".feed_forward_length";
    H = hf ? "num_attention_heads" : a + ".attention.head_count";
    KV = hf ? "num_key_value_heads" : a + ".attention.head_count_kv";
    V = hf ? "vocab_size" : "vocab size";
    if (c.head_dim_explicit > 0) HD = hf ? "head_dim" : a + ".attention.key_length";
    else HD = (hf ? "head_dim (" : "(") + D + "/" + H + ")";
  }
};

// A MoE block's FFN tensors: router [experts, D], shared gate [1, D], expert / shared matrices by their widths.
std::string moe_shape_fields(const std::string& tensor, const ModelConfig& c, const ShapeFieldNames& n) {
  const auto has = [&](const char* k) { return tensor.find(k) != std::string::npos; };
  const bool hf = c.source == "safetensors";
  std::string f = !hf ? (c.arch == "llama" ? n.F : c.arch + ".expert_feed_forward_length")
                      : c.arch == "mixtral" ? "intermediate_size" : "moe_intermediate_size";
  if (has("_shexp")) f = hf ? "shared_expert_intermediate_size" : c.arch + ".expert_shared_feed_forward_length";
  if (has("ffn_gate_inp")) return "[" + (has("_shexp") ? std::string("1") : expert_count_field(c)) + ", " + n.D + "]";
  return has("ffn_down") ? "[" + n.D + ", " + f + "]" : "[" + f + ", " + n.D + "]";
}

std::string shape_fields(const std::string& tensor, const ModelConfig& c) {
  const ShapeFieldNames n(c);
  const auto has = [&](const char* k) { return tensor.find(k) != std::string::npos; };
  if (has("token_embd") || tensor == "output.weight") return "[" + n.V + ", " + n.D + "]";
  if (has("_norm.weight")) return "[" + (has("attn_q_norm") || has("attn_k_norm") ? n.HD : n.D) + "]";
  if (c.is_moe() && has("ffn_")) return moe_shape_fields(tensor, c, n);
  std::pair<std::string, std::string> oi = {n.F, n.D};  // ffn_gate, ffn_up
  if (has("attn_q.")) oi = {n.H + "·" + n.HD, n.D};
  else if (has("attn_k.") || has("attn_v.")) oi = {n.KV + "·" + n.HD, n.D};
  else if (has("attn_output")) oi = {n.D, n.H + "·" + n.HD};
  else if (has("ffn_down")) oi = {n.D, n.F};
  return "[" + oi.first + (has(".bias") ? "" : ", " + oi.second) + "]";
}

// One tensor's element count against its data, and every value finite (16-bit codes checked by their bits).
void check_tensor_data(const std::string& file, const std::string& name, const TensorF32& t) {
  int64_t n = 1;
  for (int64_t x : t.shape) {
    if (x < 0 || __builtin_mul_overflow(n, x, &n)) {
      throw CheckpointError(file, "tensor '" + name + "'", "negative dimension or element count overflow");
    }
  }
  const size_t held = t.in_file_precision() ? t.bits16.size() : t.data.size();
  if (static_cast<size_t>(n) != held) {
    throw CheckpointError(file, "tensor '" + name + "'",
                          "shape " + shape_str(t.shape) + " has " + std::to_string(n) + " elements but data has " +
                              std::to_string(held));
  }
  const bool bf16 = t.orig_type == "BF16";
  int64_t bad = t.in_file_precision() ? first_nonfinite16(t.bits16.data(), t.bits16.size(), bf16) : -1;
  for (size_t i = 0; bad < 0 && i < t.data.size(); ++i)
    if (!std::isfinite(t.data[i])) bad = static_cast<int64_t>(i);
  if (bad >= 0) throw CheckpointError(file, "tensor '" + name + "'", "element " + std::to_string(bad) + " is not finite");
}

}  // namespace

// A MoE block i: router, every expert's three matrices, the shared expert where the config has one. An expert the
// weights lack names the config's expert count; one the config does not promise is refused by the reader.
template <class Expect>
void validate_moe_tensors(const Checkpoint& cp, int64_t i, const Expect& expect) {
  const ModelConfig& c = cp.config;
  const std::string b = "blk." + std::to_string(i) + ".";
  const int64_t d = c.d_model, f = c.d_ff_expert;
  if (c.n_experts_used <= 0 || c.n_experts_used > c.n_experts || f <= 0)
    throw CheckpointError(cp.path, "config.n_experts_used", std::to_string(c.n_experts_used) + " of " +
                                                                std::to_string(c.n_experts) + " experts (d_ff_expert " +
                                                                std::to_string(f) + ") — need 1 ≤ top-k ≤ experts");
  if (cp.tensors.count(b + "ffn_gate.weight"))
    throw CheckpointError(cp.path, "tensor '" + b + "ffn_gate.weight'", "a dense FFN in a mixture-of-experts block");
  expect(b + "ffn_gate_inp.weight", {c.n_experts, d});
  for (int64_t e = 0; e < c.n_experts; ++e) {
    const std::string x = "." + std::to_string(e) + ".weight";
    if (!cp.tensors.count(b + "ffn_gate" + x) || !cp.tensors.count(b + "ffn_up" + x) || !cp.tensors.count(b + "ffn_down" + x))
      throw CheckpointError(cp.path, "config['" + expert_count_field(c) + "']",
                            std::to_string(c.n_experts) + " experts, but the weights lack expert " + std::to_string(e) +
                                " of block " + std::to_string(i) + " (" + b + "ffn_{gate,up,down}" + x + ")");
    expect(b + "ffn_gate" + x, {f, d});
    expect(b + "ffn_up" + x, {f, d});
    expect(b + "ffn_down" + x, {d, f});
  }
  if (c.d_ff_shared <= 0) return;
  expect(b + "ffn_gate_inp_shexp.weight", {1, d});
  expect(b + "ffn_gate_shexp.weight", {c.d_ff_shared, d});
  expect(b + "ffn_up_shexp.weight", {c.d_ff_shared, d});
  expect(b + "ffn_down_shexp.weight", {d, c.d_ff_shared});
}

// Block i's FFN: gate, up, down — or a MoE block's router and experts.
template <class Expect>
void validate_ffn_tensors(const Checkpoint& cp, int64_t i, const Expect& expect) {
  const ModelConfig& c = cp.config;
  if (c.is_moe()) return validate_moe_tensors(cp, i, expect);
  const std::string b = "blk." + std::to_string(i) + ".";
  expect(b + "ffn_gate.weight", {c.d_ff, c.d_model});
  expect(b + "ffn_up.weight", {c.d_ff, c.d_model});
  expect(b + "ffn_down.weight", {c.d_model, c.d_ff});
}

// The family extras of block i (checkpoint.hpp): q/k norms when the config has them, any bias with the shape of its
// layer's output, and a sliding-window layer list that covers every block.
template <class Expect>
void validate_family_tensors(const Checkpoint& cp, int64_t i, const Expect& expect) {
  const ModelConfig& c = cp.config;
  const std::string b = "blk." + std::to_string(i) + ".";
  const int64_t hd = c.head_dim();
  if (c.attn_qk_norm) {
    expect(b + "attn_q_norm.weight", {hd});
    expect(b + "attn_k_norm.weight", {hd});
  }
  if (c.post_norms) {
    expect(b + "post_attention_norm.weight", {c.d_model});
    expect(b + "post_ffw_norm.weight", {c.d_model});
  }
  const std::pair<const char*, int64_t> outs[] = {{"attn_q", c.n_heads * hd}, {"attn_k", c.n_kv_heads * hd},
                                                  {"attn_v", c.n_kv_heads * hd}, {"attn_output", c.d_model},
                                                  {"ffn_gate", c.d_ff}, {"ffn_up", c.d_ff}, {"ffn_down", c.d_model}};
  for (const auto& [name, out] : outs)
    if (cp.tensors.count(b + name + ".bias")) expect(b + name + ".bias", {out});
  if (i == 0 && c.sliding_window > 0 && c.layer_sliding.size() != static_cast<size_t>(c.n_layers))
    throw CheckpointError(cp.path, "config.layer_sliding", std::to_string(c.layer_sliding.size()) + " entries for " +
                                                               std::to_string(c.n_layers) + " layers");
}

// The hyper-parameters on their own and against the tensor count (before anything loops over the blocks).
void validate_config(const Checkpoint& cp) {
  const ModelConfig& c = cp.config;
  const auto cfg_err = [&](const char* field, const std::string& problem) {
    throw CheckpointError(cp.path, std::string("config.") + field, problem);
  };
  if (c.arch.empty()) cfg_err("arch", "is empty");
  const std::pair<const char*, int64_t> sizes[] = {{"n_layers", c.n_layers},     {"d_model", c.d_model},
                                                   {"n_heads", c.n_heads},       {"n_kv_heads", c.n_kv_heads},
                                                   {"d_ff", c.d_ff},             {"vocab_size", c.vocab_size},
                                                   {"n_ctx_train", c.n_ctx_train}};
  for (const auto& [name, v] : sizes)
    if (v <= 0) cfg_err(name, "must be positive, got " + std::to_string(v));
  if (c.head_dim_explicit == 0 && c.d_model % c.n_heads != 0) {
    cfg_err("n_heads", "d_model " + std::to_string(c.d_model) + " is not a multiple of n_heads " + std::to_string(c.n_heads));
  }
  if (c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads != 0) {
    cfg_err("n_kv_heads", std::to_string(c.n_kv_heads) + " does not divide n_heads " + std::to_string(c.n_heads));
  }
  if (c.head_dim() % 2 != 0) cfg_err("n_heads", "head_dim " + std::to_string(c.head_dim()) + " is odd; RoPE needs pairs");
  if (!(c.rms_eps > 0) || !std::isfinite(c.rms_eps)) cfg_err("rms_eps", "must be positive and finite");
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) cfg_err("rope_theta", "must be positive and finite");
  // 9 tensors per block + embedding + final norm: a corrupt block_count of 2^40 is rejected here, before
  // anything loops over the blocks.
  const uint64_t needed = 9 * static_cast<uint64_t>(c.n_layers) + 2;
  if (c.n_layers > (int64_t{1} << 32) || needed > cp.tensors.size()) {
    cfg_err("n_layers", std::to_string(c.n_layers) + " blocks need at least " +
                            (c.n_layers > (int64_t{1} << 32) ? std::string("2^35") : std::to_string(needed)) +
                            " tensors but the checkpoint has " + std::to_string(cp.tensors.size()) +
                            " — block count corrupt or tensors missing");
  }
}

void validate_checkpoint_impl(const Checkpoint& cp, bool check_data) {
  validate_config(cp);
  const ModelConfig& c = cp.config;
  const std::string& file = cp.path;
  const int64_t d = c.d_model, hd = c.head_dim();
  const auto expect = [&](const std::string& name, std::vector<int64_t> shape) {
    const auto it = cp.tensors.find(name);
    if (it == cp.tensors.end()) {
      throw CheckpointError(file, "tensor '" + name + "'", "required tensor is missing");
    }
    if (it->second.shape != shape) {
      throw CheckpointError(file, "tensor '" + name + "'",
                            "shape " + shape_str(it->second.shape) + " does not match the config, expected " +
                                shape_str(shape) + " = " + shape_fields(name, c));
    }
  };
  expect("token_embd.weight", {c.vocab_size, d});
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    expect(b + "attn_norm.weight", {d});
    expect(b + "attn_q.weight", {c.n_heads * hd, d});
    expect(b + "attn_k.weight", {c.n_kv_heads * hd, d});
    expect(b + "attn_v.weight", {c.n_kv_heads * hd, d});
    expect(b + "attn_output.weight", {d, c.n_heads * hd});
    expect(b + "ffn_norm.weight", {d});
    validate_ffn_tensors(cp, i, expect);
    validate_family_tensors(cp, i, expect);
  }
  expect("output_norm.weight", {d});
  if (c.tied_embeddings) {
    if (cp.tensors.count("output.weight")) {
      throw CheckpointError(file, "tensor 'output.weight'", "present although tied_embeddings is set");
    }
  } else {
    expect("output.weight", {c.vocab_size, d});
  }
  if (!check_data) return;
  for (const auto& [name, t] : cp.tensors) check_tensor_data(file, name, t);
}

void validate_checkpoint(const Checkpoint& cp) { validate_checkpoint_impl(cp, true); }

bool forward_supports_arch(const std::string& a) {
  return a == "llama" || a == "mistral" || a == "qwen2" || a == "qwen3" || a == "phi3" || a == "gemma2" ||
         a == "gemma3" || a == "mixtral" || a == "qwen2_moe" || a == "qwen2moe";  // qwen2moe: llama.cpp's name
}

namespace {
std::string sha256_mapped(const std::string& path) {
  const MappedFile m(path);
  return "sha256:" + sha256_hex(m.data(), m.size());
}
}  // namespace

std::string sha256_file_hex(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return sha256_mapped(path);  // MappedFile names the problem
  static std::mutex mu;
  static std::map<std::string, std::string> cache;
  const std::string key = path + "|" + std::to_string(st.st_size) + "|" + std::to_string(st.st_mtim.tv_sec) + "." +
                          std::to_string(st.st_mtim.tv_nsec);
  {
    std::lock_guard<std::mutex> lk(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  std::string hex = sha256_mapped(path);
  std::lock_guard<std::mutex> lk(mu);
  return cache.emplace(key, std::move(hex)).first->second;
}

Checkpoint load_checkpoint(const std::string& path, WeightPrecision precision) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    throw CheckpointError(path, "path", "does not exist — expected a .gguf file, a .safetensors file or a "
                                        "directory with config.json");
  }
  if (fs::is_directory(st)) return load_safetensors(path);
  const auto ends_with = [&](const char* suf) {
    const size_t n = std::strlen(suf);
    return path.size() >= n && path.compare(path.size() - n, n, suf) == 0;
  };
  if (ends_with(".gguf")) return load_gguf(path, precision);
  if (ends_with(".safetensors") || ends_with(".index.json")) return load_safetensors(path);
  char magic[4] = {0, 0, 0, 0};
  {
    std::ifstream in(path, std::ios::binary);
    in.read(magic, 4);
  }
  if (std::memcmp(magic, "GGUF", 4) == 0) return load_gguf(path, precision);
  throw CheckpointError(path, "path",
                        "unrecognized model file: expected a .gguf file (or one starting with 'GGUF'), a .safetensors "
                        "file or a directory with config.json");
}

}  // namespace qeval::model
