// tests/eval/model/random_gguf.cpp — streaming writer of random Llama-shaped GGUF files (see random_gguf.hpp).
#include "tests/eval/model/random_gguf.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "quant/rng.hpp"

namespace qeval::test {
namespace {

constexpr int64_t kGpt2Vocab = 50257;
constexpr uint64_t kAlign = 32;

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;  // PyTorch order
  bool norm = false;
  int64_t numel() const { return shape.size() == 1 ? shape[0] : shape[0] * shape[1]; }
};

std::vector<TensorSpec> tensor_specs(const RandomGgufSpec& s) {
  const int64_t hd = s.d_model / s.n_heads, q = s.n_heads * hd, kv = s.n_kv_heads * hd;
  std::vector<TensorSpec> t{{"token_embd.weight", {s.vocab, s.d_model}}};
  for (int64_t i = 0; i < s.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    t.push_back({p + "attn_norm.weight", {s.d_model}, true});
    t.push_back({p + "attn_q.weight", {q, s.d_model}});
    t.push_back({p + "attn_k.weight", {kv, s.d_model}});
    t.push_back({p + "attn_v.weight", {kv, s.d_model}});
    t.push_back({p + "attn_output.weight", {s.d_model, q}});
    t.push_back({p + "ffn_norm.weight", {s.d_model}, true});
    t.push_back({p + "ffn_gate.weight", {s.d_ff, s.d_model}});
    t.push_back({p + "ffn_up.weight", {s.d_ff, s.d_model}});
    t.push_back({p + "ffn_down.weight", {s.d_model, s.d_ff}});
  }
  t.push_back({"output_norm.weight", {s.d_model}, true});
  if (!s.tied) t.push_back({"output.weight", {s.vocab, s.d_model}});
  return t;
}

// Sequential values of one tensor: one byte of generator output per value.
class ValueStream {
 public:
  ValueStream(const RandomGgufSpec& s, const TensorSpec& t) : rng_(tensor_seed(s.seed, t.name)), norm_(t.norm) {
    const double in = static_cast<double>(t.shape.back());
    const int e = std::min(9, static_cast<int>(std::lround(0.5 * std::log2(in))));
    scale_ = std::ldexp(1.0f, -(7 + e));  // k·2^-(7+e): spread ≈ 0.57/sqrt(in) for k uniform in [-127, 127]
  }
  float next() {
    if (left_ == 0) {
      bits_ = rng_.next_u64();
      left_ = 8;
    }
    const auto byte = static_cast<uint8_t>(bits_ & 0xff);
    bits_ >>= 8;
    --left_;
    if (norm_) return 1.0f + static_cast<float>(static_cast<int>(byte % 33) - 16) / 128.0f;
    const int k = std::max(-127, static_cast<int>(static_cast<int8_t>(byte)));
    return static_cast<float>(k) * scale_;
  }

 private:
  static uint64_t tensor_seed(uint64_t seed, const std::string& name) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a: the same on every standard library
    for (const char c : name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
    return seed ^ h;
  }
  Rng rng_;
  bool norm_;
  float scale_ = 1.0f;
  uint64_t bits_ = 0;
  int left_ = 0;
};

uint32_t float_bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}

// Exact for our values (8 significant bits, magnitude in [2^-16, 2]).
uint16_t to_f16(float v) {
  const uint32_t b = float_bits(v);
  const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000);
  if ((b & 0x7fffffff) == 0) return sign;
  const int exp = static_cast<int>((b >> 23) & 0xff) - 127 + 15;
  const uint32_t mant = (b & 0x7fffff) | 0x800000;
  if (exp <= 0) return static_cast<uint16_t>(sign | (mant >> (14 - exp)));  // subnormal
  return static_cast<uint16_t>(sign | (exp << 10) | ((b >> 13) & 0x3ff));
}

uint16_t to_bf16(float v) { return static_cast<uint16_t>(float_bits(v) >> 16); }

uint32_t ggml_type_id(const std::string& type) { return type == "F32" ? 0 : type == "F16" ? 1 : 30; }
uint32_t file_type_id(const std::string& type) { return type == "F32" ? 0 : type == "F16" ? 1 : 32; }

class Writer {
 public:
  explicit Writer(std::ofstream& f) : f_(f) {}
  void raw(const void* p, size_t n) {
    f_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    pos_ += n;
  }
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void str(const std::string& s) {
    u64(s.size());
    raw(s.data(), s.size());
  }
  void kv_u32(const std::string& k, uint32_t v) { head(k, 4), u32(v); }
  void kv_f32(const std::string& k, float v) { head(k, 6), raw(&v, 4); }
  void kv_str(const std::string& k, const std::string& v) { head(k, 8), str(v); }
  void kv_strs(const std::string& k, const std::vector<std::string>& v) {
    head(k, 9), u32(8), u64(v.size());
    for (const auto& s : v) str(s);
  }
  void pad() {
    static const char zeros[kAlign] = {};
    raw(zeros, (kAlign - pos_ % kAlign) % kAlign);
  }

 private:
  void head(const std::string& k, uint32_t type) { str(k), u32(type); }
  std::ofstream& f_;
  uint64_t pos_ = 0;
};

struct Vocabulary {
  std::vector<std::string> tokens, merges;
};

Vocabulary gpt2_vocabulary(const std::string& dir, int64_t vocab) {
  std::ifstream enc(dir + "/encoder.json"), bpe(dir + "/vocab.bpe");
  if (!enc || !bpe) {
    throw std::invalid_argument("GPT-2 vocabulary not found: " + dir +
                                "/{encoder.json,vocab.bpe} — pass the data/gpt2-bpe directory");
  }
  const nlohmann::json j = nlohmann::json::parse(enc);
  Vocabulary v;
  v.tokens.resize(static_cast<size_t>(vocab));
  for (const auto& [tok, id] : j.items()) v.tokens.at(id.get<size_t>()) = tok;
  for (int64_t i = kGpt2Vocab; i < vocab; ++i) v.tokens[static_cast<size_t>(i)] = "<|pad" + std::to_string(i) + "|>";
  std::string line;
  while (std::getline(bpe, line)) {
    if (!line.empty() && line[0] != '#') v.merges.push_back(line);
  }
  return v;
}

void write_metadata(Writer& w, const RandomGgufSpec& s, const Vocabulary& v) {
  w.kv_str("general.architecture", "llama");
  w.kv_str("general.name", "qeval random llama");
  w.kv_u32("general.file_type", file_type_id(s.type));
  w.kv_u32("llama.block_count", static_cast<uint32_t>(s.n_layers));
  w.kv_u32("llama.context_length", static_cast<uint32_t>(s.n_ctx));
  w.kv_u32("llama.embedding_length", static_cast<uint32_t>(s.d_model));
  w.kv_u32("llama.feed_forward_length", static_cast<uint32_t>(s.d_ff));
  w.kv_u32("llama.attention.head_count", static_cast<uint32_t>(s.n_heads));
  w.kv_u32("llama.attention.head_count_kv", static_cast<uint32_t>(s.n_kv_heads));
  w.kv_f32("llama.rope.freq_base", 10000.0f);
  w.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.kv_u32("llama.rope.dimension_count", static_cast<uint32_t>(s.d_model / s.n_heads));
  w.kv_u32("llama.vocab_size", static_cast<uint32_t>(s.vocab));
  w.kv_str("tokenizer.ggml.model", "gpt2");
  w.kv_str("tokenizer.ggml.pre", "gpt-2");
  w.kv_strs("tokenizer.ggml.tokens", v.tokens);
  w.kv_strs("tokenizer.ggml.merges", v.merges);
  w.kv_u32("tokenizer.ggml.bos_token_id", kGpt2Vocab - 1);
  w.kv_u32("tokenizer.ggml.eos_token_id", kGpt2Vocab - 1);
}
constexpr uint64_t kMetadataKvs = 19;

uint64_t stored_bytes(const RandomGgufSpec& s, const TensorSpec& t) {
  const uint64_t elem = (t.norm || s.type == "F32") ? 4 : 2;
  return static_cast<uint64_t>(t.numel()) * elem;
}

void write_tensor_infos(Writer& w, const RandomGgufSpec& s, const std::vector<TensorSpec>& ts) {
  uint64_t offset = 0;
  for (const auto& t : ts) {
    w.str(t.name);
    w.u32(static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) w.u64(static_cast<uint64_t>(*it));
    w.u32(t.norm ? 0 : ggml_type_id(s.type));
    w.u64(offset);
    offset += (stored_bytes(s, t) + kAlign - 1) / kAlign * kAlign;
  }
}

void write_tensor_data(Writer& w, const RandomGgufSpec& s, const TensorSpec& t) {
  ValueStream vs(s, t);
  const bool f32 = t.norm || s.type == "F32";
  std::vector<uint8_t> buf;
  constexpr int64_t kChunk = 1 << 20;
  for (int64_t done = 0; done < t.numel(); done += kChunk) {
    const int64_t n = std::min(kChunk, t.numel() - done);
    buf.resize(static_cast<size_t>(n) * (f32 ? 4 : 2));
    for (int64_t i = 0; i < n; ++i) {
      const float v = vs.next();
      if (f32) {
        std::memcpy(buf.data() + 4 * i, &v, 4);
      } else {
        const uint16_t h = s.type == "F16" ? to_f16(v) : to_bf16(v);
        std::memcpy(buf.data() + 2 * i, &h, 2);
      }
    }
    w.raw(buf.data(), buf.size());
  }
  w.pad();
}

void require(bool ok, const std::string& problem) {
  if (!ok) throw std::invalid_argument("random GGUF: " + problem);
}

}  // namespace

RandomGgufSpec random_gguf_preset(const std::string& name) {
  RandomGgufSpec s;
  if (name == "460m") {
    s.d_model = 2048, s.n_layers = 8, s.d_ff = 2432, s.n_heads = 16, s.n_kv_heads = 16;
  } else if (name == "7b") {
    s.d_model = 4096, s.n_layers = 2, s.d_ff = 11008, s.n_heads = 32, s.n_kv_heads = 32;
  } else {
    throw std::invalid_argument("unknown preset '" + name + "' — use 460m or 7b");
  }
  return s;
}

void validate_random_gguf_spec(const RandomGgufSpec& s) {
  require(s.d_model > 0 && s.n_layers > 0 && s.d_ff > 0 && s.n_heads > 0 && s.n_kv_heads > 0 && s.n_ctx > 0,
          "d_model, layers, ff, heads, kv heads and n_ctx must be positive");
  require(s.d_model % s.n_heads == 0, "d_model " + std::to_string(s.d_model) + " is not a multiple of heads " +
                                          std::to_string(s.n_heads) + " — choose heads dividing d_model");
  require((s.d_model / s.n_heads) % 2 == 0, "head_dim " + std::to_string(s.d_model / s.n_heads) +
                                                " is odd — RoPE needs an even head_dim (d_model / heads)");
  require(s.n_heads % s.n_kv_heads == 0, "heads " + std::to_string(s.n_heads) + " is not a multiple of kv heads " +
                                             std::to_string(s.n_kv_heads) + " — choose kv heads dividing heads");
  require(s.vocab >= kGpt2Vocab, "vocab " + std::to_string(s.vocab) + " is below GPT-2's 50257 tokens — use ≥ 50257");
  require(s.vocab <= (int64_t{1} << 31) && s.d_model <= (int64_t{1} << 20) && s.d_ff <= (int64_t{1} << 24),
          "sizes too large (vocab ≤ 2^31, d_model ≤ 2^20, ff ≤ 2^24)");
  require(s.type == "F32" || s.type == "F16" || s.type == "BF16", "type '" + s.type + "' — use F32, F16 or BF16");
}

int64_t random_gguf_parameters(const RandomGgufSpec& s) {
  int64_t n = 0;
  for (const auto& t : tensor_specs(s)) n += t.numel();
  return n;
}

std::vector<float> random_tensor_values(const RandomGgufSpec& s, const std::string& name) {
  for (const auto& t : tensor_specs(s)) {
    if (t.name != name) continue;
    ValueStream vs(s, t);
    std::vector<float> v(static_cast<size_t>(t.numel()));
    for (auto& x : v) x = vs.next();
    return v;
  }
  throw std::invalid_argument("random GGUF: no tensor '" + name + "' in this shape");
}

void write_random_gguf(const RandomGgufSpec& s, const std::string& path, const std::string& gpt2_dir) {
  validate_random_gguf_spec(s);
  const Vocabulary v = gpt2_vocabulary(gpt2_dir, s.vocab);
  const std::vector<TensorSpec> ts = tensor_specs(s);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + tmp + " — check the directory exists and is writable");
    Writer w(f);
    w.u32(0x46554747u);  // "GGUF"
    w.u32(3);
    w.u64(ts.size());
    w.u64(kMetadataKvs);
    write_metadata(w, s, v);
    write_tensor_infos(w, s, ts);
    w.pad();
    for (const auto& t : ts) write_tensor_data(w, s, t);
    if (!f.flush()) throw std::runtime_error("write failed: " + tmp + " (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace qeval::test
