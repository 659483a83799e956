// eval/model/safetensors.cpp — safetensors parsing/writing, HF Llama config and name mapping, sharded loading.
#include "eval/model/safetensors.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "eval/model/checkpoint_internal.hpp"
#include "eval/model/mapped_file.hpp"
#include "eval/model/ref/ggml_dequant_ref.hpp"
#include "eval/model/sha256.hpp"

namespace qeval::model {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Bytes per element of the safetensors dtypes (safetensors README); nullopt for unknown dtypes.
std::optional<uint64_t> dtype_size(const std::string& d) {
  static const std::map<std::string, uint64_t> kSizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
      {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1}};
  const auto it = kSizes.find(d);
  if (it == kSizes.end()) return std::nullopt;
  return it->second;
}

std::string entry_field(const std::string& name, const char* what) { return "header['" + name + "']." + what; }

uint64_t nonneg_int(const json& v, const std::string& file, const std::string& field) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  throw CheckpointError(file, field, "must be a non-negative integer, got " + json_for_message(v, 60));
}

json parse_json_limited(const char* begin, const char* end, const std::string& file, const std::string& field) {
  // Depth-limited: deeply nested JSON ("[[[[…") is rejected before it can exhaust the stack anywhere.
  const json::parser_callback_t limit = [&](int depth, json::parse_event_t, json&) {
    if (depth > kSafetensorsMaxJsonDepth) {
      throw CheckpointError(file, field, "JSON nested deeper than " + std::to_string(kSafetensorsMaxJsonDepth) + " levels");
    }
    return true;
  };
  try {
    return json::parse(begin, end, limit);
  } catch (const json::exception& e) {
    throw CheckpointError(file, field, std::string("invalid JSON: ") + e.what());
  }
}

json read_json_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw CheckpointError(path, what, "file not found — a Hugging Face checkpoint directory needs " + what);
  }
  const MappedFile m(path);
  const char* p = reinterpret_cast<const char*>(m.data());
  if (m.size() == 0) throw CheckpointError(path, what, "file is empty");
  json j = parse_json_limited(p, p + m.size(), path, what);
  if (!j.is_object()) throw CheckpointError(path, what, "must be a JSON object");
  return j;
}

}  // namespace

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  for (const auto& e : tensors)
    if (e.name == name) return &e;
  return nullptr;
}

namespace {

// The 8-byte header length: inside the file, under the limit, followed by a JSON object. Returns it.
uint64_t read_header_length(const uint8_t* data, size_t size, const std::string& file) {
  if (size < 8) {
    throw CheckpointError(file, "header.length", "file has " + std::to_string(size) +
                                                     " bytes; a safetensors file starts with an 8-byte header "
                                                     "length — file truncated or not safetensors");
  }
  uint64_t n;
  std::memcpy(&n, data, 8);
  if (n > size - 8) {
    throw CheckpointError(file, "header.length", "header length " + std::to_string(n) + " exceeds the " +
                                                     std::to_string(size - 8) +
                                                     " bytes after it — file truncated or not safetensors");
  }
  if (n > kSafetensorsMaxHeader) {
    throw CheckpointError(file, "header.length", "header length " + std::to_string(n) + " exceeds the 100 MB limit");
  }
  if (n < 2 || data[8] != '{') {
    throw CheckpointError(file, "header", "header must be a JSON object starting with '{' — not a safetensors file");
  }
  return n;
}

// header['__metadata__']: an object of strings.
json read_header_metadata(const json& v, const std::string& file) {
  if (!v.is_object()) throw CheckpointError(file, "header['__metadata__']", "must be an object of strings");
  for (const auto& [k, mv] : v.items()) {
    if (!mv.is_string()) throw CheckpointError(file, "header['__metadata__']['" + k + "']", "must be a string");
  }
  return v;
}

// shape: at most 8 non-negative dimensions whose product fits int64. Returns the element count.
uint64_t read_entry_shape(const json& v, const std::string& name, const std::string& file, SafetensorsEntry& e) {
  const auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) throw CheckpointError(file, entry_field(name, "shape"), "missing or not an array");
  if (sh->size() > 8) throw CheckpointError(file, entry_field(name, "shape"), "more than 8 dimensions");
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    const uint64_t x = nonneg_int(d, file, entry_field(name, "shape"));
    if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (x != 0 && numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / x)) {
      throw CheckpointError(file, entry_field(name, "shape"), "element count overflows int64");
    }
    numel *= x;
    e.shape.push_back(static_cast<int64_t>(x));
  }
  return numel;
}

// One tensor entry: dtype, shape, data_offsets inside the data section and matching shape × dtype size.
SafetensorsEntry read_entry(const std::string& name, const json& v, uint64_t data_size, const std::string& file) {
  if (name.empty()) throw CheckpointError(file, "header", "empty tensor name");
  if (!v.is_object()) throw CheckpointError(file, "header['" + name + "']", "must be an object");
  SafetensorsEntry e;
  e.name = name;
  const auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) throw CheckpointError(file, entry_field(name, "dtype"), "missing or not a string");
  e.dtype = dt->get<std::string>();
  const auto ds = dtype_size(e.dtype);
  if (!ds) throw CheckpointError(file, entry_field(name, "dtype"), "unknown dtype '" + e.dtype + "'");
  const uint64_t numel = read_entry_shape(v, name, file, e);
  const auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2) {
    throw CheckpointError(file, entry_field(name, "data_offsets"), "missing or not a [begin, end] pair");
  }
  e.begin = nonneg_int((*off)[0], file, entry_field(name, "data_offsets"));
  e.end = nonneg_int((*off)[1], file, entry_field(name, "data_offsets"));
  if (e.begin > e.end || e.end > data_size) {
    throw CheckpointError(file, entry_field(name, "data_offsets"),
                          "[" + std::to_string(e.begin) + ", " + std::to_string(e.end) + ") is not inside the " +
                              std::to_string(data_size) + "-byte data section — file truncated or offsets corrupt");
  }
  // numel ≤ 2^63 and dtype size ≤ 8: compare without overflow
  if (numel > (e.end - e.begin) / *ds || numel * *ds != e.end - e.begin) {
    throw CheckpointError(file, entry_field(name, "data_offsets"),
                          "byte range of " + std::to_string(e.end - e.begin) + " bytes does not match shape × " +
                              e.dtype + " size (" + std::to_string(numel) + " × " + std::to_string(*ds) +
                              ") — shape/size mismatch");
  }
  return e;
}

// The entries, sorted by offset, tile the data section exactly: no overlap, no hole, no trailing bytes.
void check_data_coverage(std::vector<SafetensorsEntry>& tensors, uint64_t data_size, const std::string& file) {
  std::sort(tensors.begin(), tensors.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expect = 0;
  for (const auto& e : tensors) {
    if (e.begin < expect) {
      throw CheckpointError(file, entry_field(e.name, "data_offsets"),
                            "[" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                                ") overlaps the previous tensor, which ends at " + std::to_string(expect));
    }
    if (e.begin > expect) {
      throw CheckpointError(file, entry_field(e.name, "data_offsets"),
                            "leaves a hole [" + std::to_string(expect) + ", " + std::to_string(e.begin) +
                                ") in the data section (safetensors data must be fully indexed)");
    }
    expect = e.end;
  }
  if (expect != data_size) {
    throw CheckpointError(file, "header", "tensors cover " + std::to_string(expect) + " of the " +
                                              std::to_string(data_size) +
                                              " data bytes — trailing bytes not described by the header");
  }
}

}  // namespace

SafetensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& file) {
  SafetensorsFile f;
  f.file = file;
  f.data = data;
  f.size = size;
  const uint64_t n = read_header_length(data, size, file);
  f.data_offset = 8 + n;
  const uint64_t data_size = size - f.data_offset;
  const char* hb = reinterpret_cast<const char*>(data + 8);
  const json h = parse_json_limited(hb, hb + n, file, "header");
  if (!h.is_object()) throw CheckpointError(file, "header", "must be a JSON object");
  for (const auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      f.metadata = read_header_metadata(v, file);
      continue;
    }
    f.tensors.push_back(read_entry(name, v, data_size, file));
  }
  check_data_coverage(f.tensors, data_size, file);
  return f;
}

TensorF32 read_safetensors_tensor(const SafetensorsFile& f, const SafetensorsEntry& e) {
  TensorF32 t;
  t.shape = e.shape;
  t.orig_type = e.dtype;
  const uint8_t* src = f.data + f.data_offset + e.begin;  // in bounds: checked by parse_safetensors
  const uint64_t bytes = e.end - e.begin;
  if (e.dtype == "F32") {
    t.data.resize(bytes / 4);
    if (bytes) ref::dequantize_row_f32(src, t.data.data(), static_cast<int64_t>(bytes / 4));
  } else if (e.dtype == "F16" || e.dtype == "BF16") {
    t.data.resize(bytes / 2);
    if (bytes) {
      if (e.dtype == "F16") ref::dequantize_row_f16(src, t.data.data(), static_cast<int64_t>(bytes / 2));
      else ref::dequantize_row_bf16(src, t.data.data(), static_cast<int64_t>(bytes / 2));
    }
  } else {
    throw CheckpointError(f.file, entry_field(e.name, "dtype"),
                          "dtype " + e.dtype + " is not supported for weights (supported: F32, F16, BF16)");
  }
  for (size_t i = 0; i < t.data.size(); ++i) {
    if (!std::isfinite(t.data[i])) {
      throw CheckpointError(f.file, "tensor '" + e.name + "'",
                            "element " + std::to_string(i) + " is not finite — the weights contain NaN/Inf");
    }
  }
  return t;
}

// ------------------------------------------------------------------------------------ HF Llama mapping

namespace {
HfFused fused_kind(const std::string& kind) {
  return kind == "attn_qkv" ? HfFused::qkv : kind == "ffn_gate_up" ? HfFused::gate_up : HfFused::none;
}
std::string tensor_suffix(const std::string& n) {
  return n.size() > 5 && n.compare(n.size() - 5, 5, ".bias") == 0 ? ".bias" : ".weight";
}
}  // namespace

namespace {
// A routed expert's matrix, "block_sparse_moe.experts.{e}.w1.weight" (Mixtral: w1 gate, w3 up, w2 down) or
// "mlp.experts.{e}.gate_proj.weight" (Qwen2-MoE) → ("ffn_gate.{e}", e); nullopt for other names.
std::optional<std::pair<std::string, int64_t>> hf_expert(const std::string& rest) {
  static const std::map<std::string, std::string> kPart = {{"w1", "ffn_gate"},        {"w3", "ffn_up"},
                                                           {"w2", "ffn_down"},        {"gate_proj", "ffn_gate"},
                                                           {"up_proj", "ffn_up"},     {"down_proj", "ffn_down"}};
  for (const std::string pre : {"block_sparse_moe.experts.", "mlp.experts."}) {
    if (rest.compare(0, pre.size(), pre) != 0) continue;
    size_t q = pre.size();
    while (q < rest.size() && q - pre.size() < 9 && rest[q] >= '0' && rest[q] <= '9') ++q;
    if (q == pre.size() || q >= rest.size() || rest[q] != '.' || (rest[pre.size()] == '0' && q - pre.size() > 1))
      return std::nullopt;
    const std::string part = rest.substr(q + 1);
    const auto it = part.size() > 7 ? kPart.find(part.substr(0, part.size() - 7)) : kPart.end();
    if (it == kPart.end() || part.compare(part.size() - 7, 7, ".weight") != 0) return std::nullopt;
    const int64_t e = std::stoll(rest.substr(pre.size(), q - pre.size()));
    return std::make_pair(it->second + "." + std::to_string(e), e);
  }
  return std::nullopt;
}

// A block tensor's mapping from its name after "model.layers.{layer}."; nullopt when it is none of the families'.
std::optional<HfMapping> hf_block_mapping(const std::string& rest, int64_t layer) {
  static const std::map<std::string, std::pair<std::string, RopePermute>> kBlk = {
      {"input_layernorm.weight", {"attn_norm", RopePermute::none}},
      {"self_attn.q_proj.weight", {"attn_q", RopePermute::q}},
      {"self_attn.k_proj.weight", {"attn_k", RopePermute::k}},
      {"self_attn.v_proj.weight", {"attn_v", RopePermute::none}},
      {"self_attn.o_proj.weight", {"attn_output", RopePermute::none}},
      {"post_attention_layernorm.weight", {"ffn_norm", RopePermute::none}},
      {"mlp.gate_proj.weight", {"ffn_gate", RopePermute::none}},
      {"mlp.up_proj.weight", {"ffn_up", RopePermute::none}},
      {"mlp.down_proj.weight", {"ffn_down", RopePermute::none}},
      {"self_attn.q_proj.bias", {"attn_q", RopePermute::q}},
      {"self_attn.k_proj.bias", {"attn_k", RopePermute::k}},
      {"self_attn.v_proj.bias", {"attn_v", RopePermute::none}},
      {"self_attn.o_proj.bias", {"attn_output", RopePermute::none}},
      {"mlp.gate_proj.bias", {"ffn_gate", RopePermute::none}},
      {"mlp.up_proj.bias", {"ffn_up", RopePermute::none}},
      {"mlp.down_proj.bias", {"ffn_down", RopePermute::none}},
      {"self_attn.q_norm.weight", {"attn_q_norm", RopePermute::head}},
      {"self_attn.k_norm.weight", {"attn_k_norm", RopePermute::head}},
      {"self_attn.qkv_proj.weight", {"attn_qkv", RopePermute::none}},
      {"mlp.gate_up_proj.weight", {"ffn_gate_up", RopePermute::none}},
      {"pre_feedforward_layernorm.weight", {"ffn_pre_norm", RopePermute::none}},
      {"post_feedforward_layernorm.weight", {"post_ffw_norm", RopePermute::none}},
      {"block_sparse_moe.gate.weight", {"ffn_gate_inp", RopePermute::none}},
      {"mlp.gate.weight", {"ffn_gate_inp", RopePermute::none}},
      {"mlp.shared_expert.gate_proj.weight", {"ffn_gate_shexp", RopePermute::none}},
      {"mlp.shared_expert.up_proj.weight", {"ffn_up_shexp", RopePermute::none}},
      {"mlp.shared_expert.down_proj.weight", {"ffn_down_shexp", RopePermute::none}},
      {"mlp.shared_expert_gate.weight", {"ffn_gate_inp_shexp", RopePermute::none}}};
  if (const auto ex = hf_expert(rest)) {
    HfMapping m{"blk." + std::to_string(layer) + "." + ex->first + ".weight", RopePermute::none, layer};
    m.expert = ex->second;
    return m;
  }
  if (const auto it = kBlk.find(rest); it != kBlk.end()) {
    return HfMapping{"blk." + std::to_string(layer) + "." + it->second.first + tensor_suffix(rest), it->second.second,
                     layer, fused_kind(it->second.first)};
  }
  return std::nullopt;
}

}  // namespace

std::optional<HfMapping> hf_to_canonical(const std::string& n, const std::string& file) {
  static const std::map<std::string, std::string> kTop = {{"model.embed_tokens.weight", "token_embd.weight"},
                                                          {"model.norm.weight", "output_norm.weight"},
                                                          {"lm_head.weight", "output.weight"}};
  if (const auto it = kTop.find(n); it != kTop.end()) return HfMapping{it->second, RopePermute::none, -1};
  if (n == "model.rotary_emb.inv_freq") return std::nullopt;
  static const std::string kPrefix = "model.layers.";
  if (n.compare(0, kPrefix.size(), kPrefix) == 0) {
    size_t p = kPrefix.size();
    size_t q = p;
    while (q < n.size() && q - p < 9 && n[q] >= '0' && n[q] <= '9') ++q;
    if (q > p && q < n.size() && n[q] == '.' && !(n[p] == '0' && q - p > 1)) {
      const int64_t layer = std::stoll(n.substr(p, q - p));
      const std::string rest = n.substr(q + 1);
      if (rest == "self_attn.rotary_emb.inv_freq") return std::nullopt;
      if (auto m = hf_block_mapping(rest, layer)) return m;
    }
  }
  throw CheckpointError(file, "tensor '" + n + "'",
                        "not a weight of the supported families (Llama, Mistral, Qwen2, Qwen3, Phi-3, Gemma 2, Mixtral, Qwen2-MoE; "
                        "adapters and other architectures are "
                        "not supported)");
}

std::string canonical_to_hf(const std::string& c, const std::string& file) {
  static const std::map<std::string, std::string> kTop = {{"token_embd.weight", "model.embed_tokens.weight"},
                                                          {"output_norm.weight", "model.norm.weight"},
                                                          {"output.weight", "lm_head.weight"}};
  if (const auto it = kTop.find(c); it != kTop.end()) return it->second;
  static const std::map<std::string, std::string> kBlk = {
      {"attn_norm", "input_layernorm"},        {"attn_q", "self_attn.q_proj"},    {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},          {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
      {"ffn_gate", "mlp.gate_proj"},           {"ffn_up", "mlp.up_proj"},         {"ffn_down", "mlp.down_proj"},
      {"attn_q_norm", "self_attn.q_norm"},     {"attn_k_norm", "self_attn.k_norm"}};
  if (c.compare(0, 4, "blk.") == 0) {
    const size_t dot = c.find('.', 4);
    const bool bias = c.size() > 5 && c.compare(c.size() - 5, 5, ".bias") == 0;
    const size_t wdot = c.rfind(bias ? ".bias" : ".weight");
    if (dot != std::string::npos && wdot != std::string::npos && wdot > dot && wdot + (bias ? 5 : 7) == c.size()) {
      const std::string kind = c.substr(dot + 1, wdot - dot - 1);
      const auto it = kBlk.find(kind);
      if (it != kBlk.end() && !(bias && kind.find("norm") != std::string::npos))
        return "model.layers." + c.substr(4, dot - 4) + "." + it->second + (bias ? ".bias" : ".weight");
    }
  }
  throw CheckpointError(file, "tensor '" + c + "'", "has no Hugging Face LlamaForCausalLM name");
}

namespace {

void permute_rows(TensorF32& t, int64_t n_head, bool to_gguf, const std::string& file, const std::string& name) {
  if (t.shape.size() == 1) {  // a bias or a norm weight: one column
    t.shape.push_back(1);
    permute_rows(t, n_head, to_gguf, file, name);
    t.shape.pop_back();
    return;
  }
  if (t.shape.size() != 2 || n_head <= 0 || t.shape[0] % n_head != 0 || (t.shape[0] / n_head) % 2 != 0) {
    throw CheckpointError(file, "tensor '" + name + "'",
                          "cannot apply the RoPE row permutation: need a 2-D [n_head·head_dim, in] matrix with even "
                          "head_dim, n_head = " + std::to_string(n_head));
  }
  const int64_t rows = t.shape[0], cols = t.shape[1], hd = rows / n_head, half = hd / 2;
  std::vector<float> out(t.data.size());
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t canon = h * hd + 2 * i + j;   // adjacent-pair (GGUF) row
        const int64_t hf = h * hd + j * half + i;   // rotate_half (HF) row
        const int64_t dst = to_gguf ? canon : hf, src = to_gguf ? hf : canon;
        std::copy_n(t.data.begin() + src * cols, cols, out.begin() + dst * cols);
      }
    }
  }
  t.data.swap(out);
}

}  // namespace

void permute_rows_hf_to_gguf(TensorF32& t, int64_t n_head, const std::string& file, const std::string& name) {
  permute_rows(t, n_head, true, file, name);
}
void permute_rows_gguf_to_hf(TensorF32& t, int64_t n_head, const std::string& file, const std::string& name) {
  permute_rows(t, n_head, false, file, name);
}

namespace {

// Gemma's four norms per block: input_layernorm → attn_norm, post_attention_layernorm → post_attention_norm,
// pre_feedforward_layernorm → ffn_norm, post_feedforward_layernorm → post_ffw_norm (llama.cpp's names). Other
// families have no pre/post FFN norm.
std::string family_canonical(const std::string& canonical, const ModelConfig& c, const std::string& file,
                             const std::string& hf_name) {
  const bool pre = canonical.find(".ffn_pre_norm.") != std::string::npos,
             post = canonical.find(".post_ffw_norm.") != std::string::npos;
  if (!c.post_norms) {
    if (pre || post)
      throw CheckpointError(file, "tensor '" + hf_name + "'", "a Gemma norm in a " + c.arch + " checkpoint");
    return canonical;
  }
  const size_t dot = canonical.find('.', 4);
  const std::string b = canonical.substr(0, dot + 1);
  if (pre) return b + "ffn_norm.weight";
  if (canonical == b + "ffn_norm.weight") return b + "post_attention_norm.weight";
  return canonical;
}

}  // namespace

std::vector<HfPart> hf_parts(const HfMapping& m, const ModelConfig& c, int64_t rows, const std::string& file,
                             const std::string& hf_name) {
  if (m.fused == HfFused::none) return {HfPart{family_canonical(m.canonical, c, file, hf_name), 0, rows, m.permute}};
  const std::string b = "blk." + std::to_string(m.layer) + ".";
  const int64_t hd = c.head_dim(), q = c.n_heads * hd, kv = c.n_kv_heads * hd;
  std::vector<HfPart> parts;
  if (m.fused == HfFused::qkv) {
    parts = {{b + "attn_q.weight", 0, q, RopePermute::q}, {b + "attn_k.weight", q, kv, RopePermute::k},
             {b + "attn_v.weight", q + kv, kv, RopePermute::none}};
  } else {
    parts = {{b + "ffn_gate.weight", 0, c.d_ff, RopePermute::none}, {b + "ffn_up.weight", c.d_ff, c.d_ff, RopePermute::none}};
  }
  const int64_t want = parts.back().row_begin + parts.back().rows;
  if (rows != want)
    throw CheckpointError(file, "tensor '" + hf_name + "'",
                          std::to_string(rows) + " rows, the config makes " + std::to_string(want) +
                              (m.fused == HfFused::qkv ? " = (num_attention_heads + 2·num_key_value_heads)·head_dim"
                                                       : " = 2·intermediate_size"));
  return parts;
}

// ------------------------------------------------------------------------------------ config.json

namespace {

// Typed reads of config.json keys; every error names the key ("config['hidden_size']").
struct ConfigReader {
  const json& c;
  const std::string& file;
  std::string parent = "";  // a nested object's key: errors name "config['rope_scaling']['factor']"
  std::string field(const std::string& k) const {
    return "config" + (parent.empty() ? "" : "['" + parent + "']") + "['" + k + "']";
  }
  [[noreturn]] void fail(const std::string& k, const std::string& problem) const {
    throw CheckpointError(file, field(k), problem);
  }
  const json* find(const std::string& k) const {
    const auto it = c.find(k);
    return it == c.end() || it->is_null() ? nullptr : &*it;
  }
  int64_t integer(const std::string& k, bool required, int64_t fallback) const {
    const json* v = find(k);
    if (!v) {
      if (required) fail(k, "required key is missing");
      return fallback;
    }
    if (!v->is_number_integer()) fail(k, "must be an integer, got " + json_for_message(*v));
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(k, "out of range");
    const int64_t x = v->get<int64_t>();
    if (x <= 0 && required) fail(k, "must be positive, got " + std::to_string(x));
    return x;
  }
  double real(const std::string& k, bool required, double fallback) const {
    const json* v = find(k);
    if (!v) {
      if (required) fail(k, "required key is missing");
      return fallback;
    }
    if (!v->is_number()) fail(k, "must be a number, got " + json_for_message(*v));
    return v->get<double>();
  }
  int64_t token_id(const std::string& k) const {
    const json* p = find(k);
    if (!p) return -1;
    const json& v = p->is_array() && !p->empty() ? (*p)[0] : *p;  // Llama-3 lists several eos ids
    if (!v.is_number_integer() || v.get<int64_t>() < 0) fail(k, "must be a token id");
    return v.get<int64_t>();
  }
  bool flag(const std::string& k, bool fallback) const {
    const json* v = find(k);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(k, "must be true or false");
    return v->get<bool>();
  }
};

// HF class → qeval family (ModelConfig::arch). Published checkpoints name the class in `architectures`;
// `model_type` is the fallback.
const std::vector<std::pair<std::string, std::string>>& hf_families() {
  static const std::vector<std::pair<std::string, std::string>> k = {{"LlamaForCausalLM", "llama"},
                                                                     {"MistralForCausalLM", "mistral"},
                                                                     {"Qwen2ForCausalLM", "qwen2"},
                                                                     {"Qwen3ForCausalLM", "qwen3"},
                                                                     {"Phi3ForCausalLM", "phi3"},
                                                                     {"Gemma2ForCausalLM", "gemma2"},
                                                                     {"Gemma3ForCausalLM", "gemma3_text"},
                                                                     {"MixtralForCausalLM", "mixtral"},
                                                                     {"Qwen2MoeForCausalLM", "qwen2_moe"}};
  return k;
}

std::string hf_family(const ConfigReader& r) {
  std::string supported, arch;
  for (const auto& [cls, fam] : hf_families()) supported += (supported.empty() ? "" : ", ") + cls;
  const json* mt = r.find("model_type");
  if (const json* a = r.find("architectures"); a && a->is_array() && !a->empty() && (*a)[0].is_string())
    arch = (*a)[0].get<std::string>();
  for (const auto& [cls, fam] : hf_families())
    if (arch == cls || (arch.empty() && mt && mt->is_string() && mt->get<std::string>() == fam)) return fam;
  r.fail("architectures", "architecture " + (arch.empty() ? "absent" : "'" + arch + "'") + " (model_type " +
                              (mt ? json_for_message(*mt) : std::string("absent")) +
                              ") is not supported — supported: " + supported);
}

// llama3 frequency scaling: its four fields, all required.
void hf_rope_llama3(const ConfigReader& s, ModelConfig& m) {
  m.rope_scaling = "llama3";
  m.rope_factor = s.real("factor", true, 0);
  m.rope_low_freq_factor = s.real("low_freq_factor", true, 0);
  m.rope_high_freq_factor = s.real("high_freq_factor", true, 0);
  m.rope_original_context = s.integer("original_max_position_embeddings", true, 0);
  if (!(m.rope_factor > 0) || !(m.rope_low_freq_factor > 0) || !(m.rope_high_freq_factor > m.rope_low_freq_factor))
    s.fail("factor", "llama3 scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0");
}

// partial_rotary_factor (Phi-3, in rope_parameters or at the top level) must be 1: every dimension rotates.
void check_full_rotary(const ConfigReader& r, const json* params, const std::string& key) {
  const json* prf = params && params->contains("partial_rotary_factor") ? &(*params)["partial_rotary_factor"]
                                                                       : r.find("partial_rotary_factor");
  if (prf && !(prf->is_number() && prf->get<double>() == 1.0))
    r.fail(params ? key : "partial_rotary_factor",
           "partial rotary embedding " + json_for_message(*prf) + " is not supported (1.0 only)");
}

// RoPE: transformers 5's rope_parameters {rope_theta, rope_type, …} or the older rope_theta + rope_scaling.
void hf_rope(const ConfigReader& r, ModelConfig& m) {
  const json* params = r.find("rope_parameters");
  const std::string key = params ? "rope_parameters" : "rope_scaling";
  if (params && !params->is_object()) r.fail(key, "must be an object, got " + json_for_message(*params));
  m.rope_theta = params && params->contains("rope_theta") ? ConfigReader{*params, r.file, key}.real("rope_theta", true, 0)
                                                          : r.real("rope_theta", false, 10000.0);
  check_full_rotary(r, params, key);
  const json* sc = params ? params : r.find("rope_scaling");
  if (!sc) return;
  if (!sc->is_object()) r.fail(key, "must be an object, got " + json_for_message(*sc));
  const ConfigReader s{*sc, r.file, key};
  const json* type = s.find("rope_type") ? s.find("rope_type") : s.find("type");
  const std::string t = type && type->is_string() ? type->get<std::string>() : "default";
  if (t == "default") return;
  if (t != "llama3") r.fail(key, "RoPE type '" + t + "' is not supported (supported: default, llama3)");
  hf_rope_llama3(s, m);
}

// Sliding windows: layer_types (transformers 5) lists each layer; without it Mistral slides every layer when
// sliding_window is set, Qwen2/3 when use_sliding_window is true.
void hf_sliding(const ConfigReader& r, const std::string& family, ModelConfig& m) {
  const int64_t window = r.integer("sliding_window", false, 0);
  std::vector<bool> sliding(static_cast<size_t>(m.n_layers), false);
  if (const json* lt = r.find("layer_types")) {
    if (!lt->is_array() || lt->size() != static_cast<size_t>(m.n_layers))
      r.fail("layer_types", "must list one entry per layer (" + std::to_string(m.n_layers) + ")");
    for (size_t i = 0; i < lt->size(); ++i) {
      const json& e = (*lt)[i];
      if (e != "sliding_attention" && e != "full_attention")
        r.fail("layer_types", "entry " + std::to_string(i) + " " + json_for_message(e) +
                                  " is not supported (full_attention, sliding_attention)");
      sliding[i] = e == "sliding_attention";
    }
  } else if (window > 0 && (family == "mistral" || r.flag("use_sliding_window", false))) {
    sliding.assign(sliding.size(), true);
  }
  if (std::find(sliding.begin(), sliding.end(), true) == sliding.end()) return;
  if (window <= 0) r.fail("sliding_window", "sliding layers need a positive sliding_window");
  m.sliding_window = window;
  m.layer_sliding = sliding;
}

// A Gemma 3 RoPE entry ({rope_theta, rope_type, factor}): its base; linear scaling only where `scaled` (global).
double hf_rope_entry(const ConfigReader& s, ModelConfig& m, bool scaled) {
  const json* type = s.find("rope_type") ? s.find("rope_type") : s.find("type");
  const std::string t = type && type->is_string() ? type->get<std::string>() : "default";
  if (t == "linear" && scaled) {
    m.rope_scaling = "linear";
    m.rope_factor = s.real("factor", true, 0);
    if (!(m.rope_factor > 0)) s.fail("factor", "must be positive");
  } else if (t != "default") {
    s.fail("rope_type", "RoPE type '" + t + "' is not supported here (supported: default" +
                            (scaled ? ", linear)" : " on the sliding layers)"));
  }
  return s.real("rope_theta", true, 0);
}

// Gemma 3's two RoPE bases: rope_parameters per layer type {"full_attention": {…}, "sliding_attention": {…}}
// (transformers 5), or rope_theta + rope_scaling (global) and rope_local_base_freq (sliding) before.
void hf_rope_gemma3(const ConfigReader& r, ModelConfig& m) {
  m.rope_scaling = "none";
  const json* p = r.find("rope_parameters");
  if (p && p->is_object() && p->contains("full_attention") && p->contains("sliding_attention")) {
    m.rope_theta = hf_rope_entry({(*p)["full_attention"], r.file, "rope_parameters']['full_attention"}, m, true);
    m.rope_theta_local = hf_rope_entry({(*p)["sliding_attention"], r.file, "rope_parameters']['sliding_attention"}, m, false);
  } else {
    m.rope_theta = r.real("rope_theta", false, 1000000.0);
    m.rope_theta_local = r.real("rope_local_base_freq", false, 10000.0);
    if (const json* sc = r.find("rope_scaling"); sc && sc->is_object()) {
      json e = *sc;
      e["rope_theta"] = m.rope_theta;
      hf_rope_entry({e, r.file, "rope_scaling"}, m, true);
    }
  }
  if (!(m.rope_theta > 0) || !(m.rope_theta_local > 0)) r.fail("rope_parameters", "RoPE bases must be positive");
}

// Gemma 2's config: hidden_activation gelu_pytorch_tanh, sqrt(hidden_size) embedding scale (in fp32, as HF's
// normalizer tensor), query_pre_attn_scalar, soft-caps (null = none), pre+post norms.
void hf_gemma2(const ConfigReader& r, ModelConfig& m) {
  const json* act = r.find("hidden_activation") ? r.find("hidden_activation") : r.find("hidden_act");
  if (!act || *act != "gelu_pytorch_tanh")
    r.fail("hidden_activation", "activation " + (act ? json_for_message(*act) : std::string("absent")) +
                                    " is not supported for Gemma (gelu_pytorch_tanh only)");
  m.ffn_act = "gelu_tanh";
  m.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(m.d_model)));
  m.attn_scale = 1.0 / std::sqrt(r.real("query_pre_attn_scalar", true, 0));
  m.attn_softcap = r.real("attn_logit_softcapping", false, 0);
  m.final_softcap = r.real("final_logit_softcapping", false, 0);
  m.post_norms = true;
}

// The number of routed experts' key: Mixtral's num_local_experts, Qwen2-MoE's num_experts.
const char* hf_expert_count_key(const std::string& family) {
  return family == "mixtral" ? "num_local_experts" : "num_experts";
}

// Mixtral / Qwen2-MoE: expert count, top-k, the experts' FFN width, renormalisation, the shared expert (Qwen2-MoE).
// Every layer must be sparse (Qwen2-MoE's mlp_only_layers / decoder_sparse_step would mix dense blocks in).
void hf_moe(const ConfigReader& r, const std::string& family, ModelConfig& m) {
  m.n_experts = r.integer(hf_expert_count_key(family), true, 0);
  m.n_experts_used = r.integer("num_experts_per_tok", true, 0);
  if (m.n_experts_used > m.n_experts)
    r.fail("num_experts_per_tok", std::to_string(m.n_experts_used) + " exceeds " + hf_expert_count_key(family) + " " +
                                      std::to_string(m.n_experts));
  if (family == "mixtral") {
    m.d_ff_expert = m.d_ff;
    return;
  }
  m.d_ff_expert = r.integer("moe_intermediate_size", true, 0);
  m.d_ff_shared = r.integer("shared_expert_intermediate_size", false, 0);
  m.expert_norm_topk = r.flag("norm_topk_prob", false);
  if (r.integer("decoder_sparse_step", false, 1) != 1)
    r.fail("decoder_sparse_step", "only 1 (every layer sparse) is supported");
  if (const json* d = r.find("mlp_only_layers"); d && !(d->is_array() && d->empty()))
    r.fail("mlp_only_layers", "dense layers in a MoE model are not supported (must be empty)");
}

// What each family adds to the Llama config: RoPE layout, q/k norms, sliding windows, experts, Gemma's specifics, and
// the activation (SwiGLU's silu for every non-Gemma family).
void hf_family_features(const ConfigReader& r, const std::string& family, ModelConfig& m) {
  const bool gemma = family == "gemma2" || family == "gemma3_text";
  m.attn_qk_norm = family == "qwen3" || family == "gemma3_text";
  if (family == "gemma3_text") {
    hf_rope_gemma3(r, m);
  } else {
    hf_rope(r, m);
  }
  if (m.n_layers > 0 && m.n_layers <= (int64_t{1} << 20)) hf_sliding(r, family, m);
  if (family == "mixtral" || family == "qwen2_moe") hf_moe(r, family, m);
  if (gemma) return hf_gemma2(r, m);
  if (const json* act = r.find("hidden_act"); act && !(act->is_string() && act->get<std::string>() == "silu"))
    r.fail("hidden_act", "activation " + json_for_message(*act) + " is not supported (silu only)");
}

}  // namespace

// A routed expert's index beyond the config's expert count names the config key.
void check_expert_index(const ModelConfig& c, const HfMapping& mp, const std::string& config_path,
                        const std::string& name) {
  if (mp.expert < 0 || mp.expert < c.n_experts) return;
  throw CheckpointError(config_path, std::string("config['") + hf_expert_count_key(c.arch) + "']",
                        std::to_string(c.n_experts) + " experts, but the weights hold " + name + " (expert " +
                            std::to_string(mp.expert) + ")");
}

ModelConfig hf_llama_config(const json& c, const std::string& file) {
  const ConfigReader r{c, file};
  const std::string family = hf_family(r);
  ModelConfig m;
  m.arch = family == "gemma3_text" ? "gemma3" : family;  // model_type gemma3_text: the text-only Gemma 3
  m.source = "safetensors";
  m.n_layers = r.integer("num_hidden_layers", true, 0);
  m.d_model = r.integer("hidden_size", true, 0);
  m.n_heads = r.integer("num_attention_heads", true, 0);
  m.n_kv_heads = r.integer("num_key_value_heads", false, m.n_heads);
  m.d_ff = r.integer("intermediate_size", true, 0);
  m.vocab_size = r.integer("vocab_size", true, 0);
  m.n_ctx_train = r.integer("max_position_embeddings", true, 0);
  m.rms_eps = r.real("rms_norm_eps", true, 0.0);
  m.bos_id = r.token_id("bos_token_id");
  m.eos_id = r.token_id("eos_token_id");
  m.tied_embeddings = r.flag("tie_word_embeddings", false);
  if (const int64_t hd = r.integer("head_dim", false, 0); hd > 0 && m.n_heads > 0 && hd * m.n_heads != m.d_model)
    m.head_dim_explicit = hd;
  hf_family_features(r, family, m);
  return m;
}

namespace {

// Which biases the config promises (Qwen2: q/k/v always; attention_bias: q/k/v/o; mlp_bias: gate/up/down); a bias in
// the file the config does not promise, or a promised one missing, names the config key.
void check_biases(const json& c, const Checkpoint& cp, const std::string& file) {
  const ConfigReader r{c, file};
  const bool attn = r.flag("attention_bias", false), mlp = r.flag("mlp_bias", false), qwen2 = cp.config.arch == "qwen2" || cp.config.arch == "qwen2_moe";
  const std::pair<const char*, int> layers[] = {{"attn_q", 0}, {"attn_k", 0}, {"attn_v", 0}, {"attn_output", 1},
                                                {"ffn_gate", 2}, {"ffn_up", 2}, {"ffn_down", 2}};
  for (int64_t i = 0; i < cp.config.n_layers; ++i) {
    for (const auto& [name, kind] : layers) {
      const bool want = kind == 0 ? attn || qwen2 : kind == 1 ? attn : mlp;
      const std::string key = kind == 2 ? "mlp_bias" : qwen2 && kind == 0 ? "architectures" : "attention_bias";
      const std::string t = "blk." + std::to_string(i) + "." + name + ".bias";
      if (want != (cp.tensors.count(t) != 0))
        r.fail(key, want ? "promises the bias " + t + " (" + canonical_to_hf(t, file) + "), which the weights lack"
                         : "does not promise the bias " + canonical_to_hf(t, file) + " the weights carry");
    }
  }
}

}  // namespace

// ------------------------------------------------------------------------------------ loading

namespace {

struct Shard {
  std::string path;
  MappedFile map;
  SafetensorsFile st;
};

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

std::string file_sha(const MappedFile& m) { return sha256_hex(m.data(), m.size()); }

}  // namespace

namespace {

// Puts an HF tensor into the checkpoint under its canonical name(s): fused matrices split, q/k rows permuted.
void add_hf_tensor(Checkpoint& cp, const HfMapping& mp, TensorF32 t, const std::string& file, const std::string& name) {
  for (const HfPart& p : hf_parts(mp, cp.config, t.rows(), file, name)) {
    TensorF32 part;
    part.shape = t.shape;
    part.shape[0] = p.rows;
    part.orig_type = t.orig_type;
    const int64_t cols = t.numel() / std::max<int64_t>(t.rows(), 1);
    part.data.assign(t.data.begin() + p.row_begin * cols, t.data.begin() + (p.row_begin + p.rows) * cols);
    if (p.permute == RopePermute::q) permute_rows_hf_to_gguf(part, cp.config.n_heads, file, name);
    if (p.permute == RopePermute::k) permute_rows_hf_to_gguf(part, cp.config.n_kv_heads, file, name);
    if (p.permute == RopePermute::head) permute_rows_hf_to_gguf(part, 1, file, name);
    if ((cp.config.arch == "gemma2" || cp.config.arch == "gemma3") && p.canonical.size() > 12 && p.canonical.find("norm.weight") == p.canonical.size() - 11)
      for (float& v : part.data) v += 1.0f;  // Gemma applies 1 + w (exact for the fixtures' w = k/64)
    cp.tensors.emplace(p.canonical, std::move(part));
  }
}

}  // namespace

namespace {

// Where a checkpoint's shards are: a directory (index, model.safetensors or one *.safetensors), an index file, or
// one shard file; with an index, which shard holds each tensor.
struct ShardSet {
  std::string dir, index_path, index_sha;
  std::vector<std::string> shard_names;           // relative to dir
  std::map<std::string, std::string> weight_map;  // tensor → shard file name
};

void locate_in_directory(const std::string& path, ShardSet& s) {
  std::error_code ec;
  s.dir = path;
  if (fs::is_regular_file(fs::path(s.dir) / "model.safetensors.index.json", ec)) {
    s.index_path = (fs::path(s.dir) / "model.safetensors.index.json").string();
  } else if (fs::is_regular_file(fs::path(s.dir) / "model.safetensors", ec)) {
    s.shard_names.push_back("model.safetensors");
  } else {
    std::vector<std::string> found;
    for (const auto& de : fs::directory_iterator(s.dir, ec))
      if (ends_with(de.path().filename().string(), ".safetensors")) found.push_back(de.path().filename().string());
    if (found.size() != 1) {
      throw CheckpointError(path, "directory",
                            found.empty() ? "no model.safetensors, model.safetensors.index.json or *.safetensors found"
                                          : "several *.safetensors files but no model.safetensors.index.json");
    }
    s.shard_names = found;
  }
}

// model.safetensors.index.json: weight_map of plain shard file names in the same directory.
void read_index(ShardSet& s) {
  const json idx = read_json_file(s.index_path, "model.safetensors.index.json");
  const auto wm = idx.find("weight_map");
  if (wm == idx.end() || !wm->is_object() || wm->empty()) {
    throw CheckpointError(s.index_path, "weight_map", "missing, empty or not an object");
  }
  std::set<std::string> shards;
  for (const auto& [tname, v] : wm->items()) {
    if (!v.is_string()) throw CheckpointError(s.index_path, "weight_map['" + tname + "']", "must be a file name");
    const std::string f = v.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos || f == "." ||
        f == ".." || !ends_with(f, ".safetensors")) {
      throw CheckpointError(s.index_path, "weight_map['" + tname + "']",
                            "shard name '" + f + "' must be a plain *.safetensors file name in the same directory");
    }
    s.weight_map[tname] = f;
    shards.insert(f);
  }
  s.shard_names.assign(shards.begin(), shards.end());
  s.index_sha = sha256_file_hex(s.index_path).substr(7);
}

ShardSet locate_shards(const std::string& path) {
  std::error_code ec;
  ShardSet s;
  if (fs::is_directory(path, ec)) {
    locate_in_directory(path, s);
  } else if (ends_with(path, ".index.json")) {
    s.dir = fs::path(path).parent_path().string();
    s.index_path = path;
  } else {
    s.dir = fs::path(path).parent_path().string();
    s.shard_names.push_back(fs::path(path).filename().string());
  }
  if (s.dir.empty()) s.dir = ".";
  if (!s.index_path.empty()) read_index(s);
  return s;
}

// What the loader has seen so far: HF tensor names (each once) and the manifest (file name, sha256) of the content hash.
struct LoadState {
  std::set<std::string> seen_hf;
  std::vector<std::pair<std::string, std::string>> manifest;
};

// One shard's tensors into the checkpoint, each checked against the index and the config.
void load_shard(Checkpoint& cp, const ShardSet& s, const std::string& sn, const std::string& config_path,
                LoadState& st) {
  const std::string sp = (fs::path(s.dir) / sn).string();
  const MappedFile m(sp);
  const SafetensorsFile f = parse_safetensors(m.data(), m.size(), sp);
  st.manifest.emplace_back(sn, file_sha(m));
  for (const auto& e : f.tensors) {
    if (!s.index_path.empty()) {
      const auto it = s.weight_map.find(e.name);
      if (it == s.weight_map.end() || it->second != sn) {
        throw CheckpointError(sp, "tensor '" + e.name + "'",
                              it == s.weight_map.end() ? "is not listed in the index weight_map"
                                                       : "is listed in the index under shard '" + it->second + "'");
      }
    }
    if (!st.seen_hf.insert(e.name).second) {
      throw CheckpointError(sp, "tensor '" + e.name + "'", "appears in more than one shard");
    }
    const auto mp = hf_to_canonical(e.name, sp);
    if (!mp) continue;
    if (mp->layer >= cp.config.n_layers) {
      throw CheckpointError(sp, "tensor '" + e.name + "'",
                            "layer " + std::to_string(mp->layer) + " ≥ num_hidden_layers " +
                                std::to_string(cp.config.n_layers));
    }
    check_expert_index(cp.config, *mp, config_path, e.name);
    if (mp->canonical == "output.weight" && cp.config.tied_embeddings) continue;  // tied: lm_head = embed_tokens
    add_hf_tensor(cp, *mp, read_safetensors_tensor(f, e), sp, e.name);
  }
}

}  // namespace

Checkpoint load_safetensors(const std::string& path) {
  const ShardSet s = locate_shards(path);
  const std::string config_path = (fs::path(s.dir) / "config.json").string();
  const json config = read_json_file(config_path, "config.json");
  Checkpoint cp;
  cp.path = path;
  cp.config = hf_llama_config(config, config_path);
  for (const auto& [k, v] : config.items()) cp.metadata[k] = v;

  LoadState st;
  st.manifest.emplace_back("config.json", sha256_file_hex(config_path).substr(7));
  if (!s.index_path.empty()) st.manifest.emplace_back(fs::path(s.index_path).filename().string(), s.index_sha);
  for (const auto& sn : s.shard_names) load_shard(cp, s, sn, config_path, st);
  for (const auto& [tname, sn] : s.weight_map) {
    if (!st.seen_hf.count(tname)) {
      throw CheckpointError(s.index_path, "weight_map['" + tname + "']", "tensor is missing from shard '" + sn + "'");
    }
  }
  check_biases(config, cp, config_path);
  std::sort(st.manifest.begin(), st.manifest.end());
  std::string text;
  for (const auto& [name, sha] : st.manifest) text += sha + "  " + name + "\n";
  cp.content_hash = "sha256:" + sha256_hex(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  validate_checkpoint(cp);
  return cp;
}

// ------------------------------------------------------------------------------------ writing

std::vector<uint8_t> safetensors_bytes(const std::vector<std::pair<std::string, const TensorF32*>>& tensors) {
  std::vector<SafetensorsBlob> blobs;
  for (const auto& [name, t] : tensors)
    blobs.push_back({name, "F32", t->shape, t->data.data(), t->data.size() * sizeof(float)});
  return safetensors_bytes(std::move(blobs));
}

std::vector<uint8_t> safetensors_bytes(std::vector<SafetensorsBlob> tensors, const json& metadata) {
  json meta = {{"format", "pt"}};
  for (const auto& [k, v] : metadata.items()) {
    if (!v.is_string()) throw std::invalid_argument("safetensors __metadata__['" + k + "'] must be a string");
    meta[k] = v;
  }
  json h = json::object();
  h["__metadata__"] = meta;
  std::sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  uint64_t off = 0;
  for (const auto& t : tensors) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes}}};
    off += t.bytes;
  }
  std::string hs = h.dump();
  hs.resize((hs.size() + 7) / 8 * 8, ' ');  // pad with spaces so the data starts 8-byte aligned
  std::vector<uint8_t> out(8 + hs.size() + off);
  const uint64_t n = hs.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, hs.data(), hs.size());
  uint64_t pos = 8 + hs.size();
  for (const auto& t : tensors) {
    if (t.bytes) std::memcpy(out.data() + pos, t.data, t.bytes);
    pos += t.bytes;
  }
  return out;
}

namespace {

void write_file_atomic(const std::string& path, const void* data, size_t n) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(tmp + ": cannot open for writing: " + std::strerror(errno));
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
    out.flush();
    if (!out) throw std::runtime_error(tmp + ": write failed: " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error(path + ": cannot rename " + tmp + ": " + std::strerror(errno));
  }
}

}  // namespace

void save_safetensors_file(const std::string& path, std::vector<SafetensorsBlob> tensors, const json& metadata) {
  const std::vector<uint8_t> bytes = safetensors_bytes(std::move(tensors), metadata);
  write_file_atomic(path, bytes.data(), bytes.size());
}

void save_safetensors(const Checkpoint& cp, const std::string& dir) {
  validate_checkpoint(cp);
  const ModelConfig& c = cp.config;
  if (c.arch != "llama") {
    throw CheckpointError(dir, "config.arch", "'" + c.arch + "' has no LlamaForCausalLM equivalent; use save_gguf_f32");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(dir + ": cannot create directory: " + ec.message());

  std::map<std::string, TensorF32> permuted;  // q/k copies in HF row order
  std::vector<std::pair<std::string, const TensorF32*>> out;
  for (const auto& [name, t] : cp.tensors) {
    if (name == "output.weight" && c.tied_embeddings) continue;
    const std::string hf = canonical_to_hf(name, dir);
    const bool is_q = ends_with(name, ".attn_q.weight"), is_k = ends_with(name, ".attn_k.weight");
    if (is_q || is_k) {
      TensorF32 p = t;
      permute_rows_gguf_to_hf(p, is_q ? c.n_heads : c.n_kv_heads, dir, name);
      const TensorF32* ptr = &permuted.emplace(name, std::move(p)).first->second;
      out.emplace_back(hf, ptr);
    } else {
      out.emplace_back(hf, &t);
    }
  }
  json cfg = {{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"hidden_size", c.d_model},
              {"intermediate_size", c.d_ff},
              {"num_hidden_layers", c.n_layers},
              {"num_attention_heads", c.n_heads},
              {"num_key_value_heads", c.n_kv_heads},
              {"head_dim", c.head_dim()},
              {"vocab_size", c.vocab_size},
              {"max_position_embeddings", c.n_ctx_train},
              {"rope_theta", c.rope_theta},
              {"rms_norm_eps", c.rms_eps},
              {"tie_word_embeddings", c.tied_embeddings},
              {"hidden_act", "silu"},
              {"attention_bias", false},
              {"mlp_bias", false},
              {"rope_scaling", nullptr},
              {"torch_dtype", "float32"}};
  if (c.bos_id >= 0) cfg["bos_token_id"] = c.bos_id;
  if (c.eos_id >= 0) cfg["eos_token_id"] = c.eos_id;
  const std::vector<uint8_t> bytes = safetensors_bytes(out);
  write_file_atomic((fs::path(dir) / "model.safetensors").string(), bytes.data(), bytes.size());
  const std::string cj = cfg.dump(2) + "\n";
  write_file_atomic((fs::path(dir) / "config.json").string(), cj.data(), cj.size());
}

}  // namespace qeval::model
