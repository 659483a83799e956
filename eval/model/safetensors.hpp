// eval/model/safetensors.hpp — safetensors reader/writer and the Hugging Face Llama ↔ canonical (GGUF) mapping.
//
// safetensors layout (huggingface/safetensors README): uint64 little-endian N | N bytes of UTF-8 JSON header |
// data. The header maps tensor name → {"dtype", "shape": [..], "data_offsets": [begin, end]} (offsets relative
// to the start of the data, end exclusive) plus an optional "__metadata__" string→string map. Validated here:
// N ≤ 100 MB (the reference library's limit) and inside the file, every dtype known, every shape × dtype size
// == end − begin, and the byte ranges cover the data exactly, in order, without overlap or holes (as the
// reference library requires).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/model/checkpoint.hpp"

namespace qeval::model {

inline constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;
inline constexpr int kSafetensorsMaxJsonDepth = 16;  // header JSON nesting limit (real headers use 3)

struct SafetensorsEntry {
  std::string name;
  std::string dtype;            // "F32", "F16", "BF16", … (as in the file)
  std::vector<int64_t> shape;   // PyTorch order
  uint64_t begin = 0, end = 0;  // byte range in the data section
};

// A parsed safetensors header over bytes it does not own.
struct SafetensorsFile {
  std::string file;
  uint64_t data_offset = 0;     // 8 + N
  std::vector<SafetensorsEntry> tensors;  // sorted by begin
  nlohmann::json metadata;      // "__metadata__" or null
  const uint8_t* data = nullptr;
  size_t size = 0;
  const SafetensorsEntry* find(const std::string& name) const;
};

SafetensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& file);
// F32 / F16 / BF16 → fp32; other dtypes throw. Non-finite values throw.
TensorF32 read_safetensors_tensor(const SafetensorsFile& f, const SafetensorsEntry& e);

// Hugging Face names (Llama, Mistral, Qwen2, Qwen3) → canonical names.
// q/k: the RoPE row permutation per query / KV head (weights and biases); head: within one head (q/k norm weights).
enum class RopePermute { none, q, k, head };
// Phi-3's fused matrices: qkv_proj = [q; k; v] rows, gate_up_proj = [gate; up] rows — split into canonical parts.
enum class HfFused { none, qkv, gate_up };
struct HfMapping {
  std::string canonical;  // for a fused tensor: blk.{i}.attn_qkv.weight / blk.{i}.ffn_gate_up.weight (llama.cpp's)
  RopePermute permute = RopePermute::none;
  int64_t layer = -1;  // block index, -1 for non-block tensors
  HfFused fused = HfFused::none;
  int64_t expert = -1;  // a routed expert's index (Mixtral, Qwen2-MoE), -1 otherwise
};
// One canonical tensor cut from an HF tensor: rows [row_begin, row_begin + rows).
struct HfPart {
  std::string canonical;
  int64_t row_begin = 0, rows = 0;
  RopePermute permute = RopePermute::none;
};
// The parts of an HF tensor of `rows` rows: itself, or a fused matrix's pieces by the config's sizes (a row count
// that disagrees names the config fields: CheckpointError(file, "tensor '<hf_name>'")).
std::vector<HfPart> hf_parts(const HfMapping& m, const ModelConfig& c, int64_t rows, const std::string& file,
                             const std::string& hf_name);
// nullopt for tensors that carry no weights (rotary_emb.inv_freq); throws CheckpointError(file, name) for
// names that are not part of a Llama checkpoint.
std::optional<HfMapping> hf_to_canonical(const std::string& hf_name, const std::string& file);
// Canonical → HF name; throws for names without an HF counterpart.
std::string canonical_to_hf(const std::string& canonical, const std::string& file);

// The RoPE row permutation of llama.cpp's convert_hf_to_gguf.py (see checkpoint.hpp): for a [n_head·hd, in]
// matrix, canonical row h·hd + 2i + j = HF row h·hd + j·hd/2 + i. `file`/`name` are for errors (rows must be
// a multiple of n_head and hd even). A 1-D tensor (a bias, a q/k norm) is permuted as one column.
void permute_rows_hf_to_gguf(TensorF32& t, int64_t n_head, const std::string& file, const std::string& name);
void permute_rows_gguf_to_hf(TensorF32& t, int64_t n_head, const std::string& file, const std::string& name);

// ModelConfig from a parsed config.json (LlamaForCausalLM); `file` names config.json in errors.
ModelConfig hf_llama_config(const nlohmann::json& config, const std::string& file);

// Bytes of a safetensors file holding `tensors` (names as given, F32), header padded to 8 bytes.
std::vector<uint8_t> safetensors_bytes(const std::vector<std::pair<std::string, const TensorF32*>>& tensors);

// One tensor of any dtype for the writer: `bytes` little-endian values, shape × dtype size long.
struct SafetensorsBlob {
  std::string name;
  std::string dtype;  // "F32", "I64", "I32", …
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t bytes = 0;
};
// The general writer behind safetensors_bytes(): tensors laid out in name order, "__metadata__" = `metadata`
// (a string → string object, per the format) merged over {"format": "pt"}, header padded with spaces to 8 bytes.
std::vector<uint8_t> safetensors_bytes(std::vector<SafetensorsBlob> tensors,
                                       const nlohmann::json& metadata = nlohmann::json::object());
// Writes those bytes to `path` (through `path + ".tmp"` and a rename).
void save_safetensors_file(const std::string& path, std::vector<SafetensorsBlob> tensors,
                           const nlohmann::json& metadata = nlohmann::json::object());

}  // namespace qeval::model
