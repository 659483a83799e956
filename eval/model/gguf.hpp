// eval/model/gguf.hpp — GGUF v2/v3 reader (on a memory-mapped byte span) and F32 writer.
//
// File layout (GGUF spec, ggml docs/gguf.md; all little-endian):
//   magic "GGUF" (bytes 47 47 55 46) | uint32 version (2 or 3; v1 used 32-bit counts and is rejected)
//   uint64 tensor_count | uint64 kv_count
//   kv_count × { string key | uint32 value_type | value }          string = uint64 length + bytes
//   tensor_count × { string name | uint32 n_dims (≤ 4) | uint64 ne[n_dims] | uint32 ggml_type | uint64 offset }
//   padding to general.alignment (uint32, default 32) | tensor data; offsets are relative to the data start
//   and multiples of the alignment.
// Value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte, 0 or 1), 8 string,
// 9 array (uint32 element type, uint64 count, elements), 10 u64, 11 i64, 12 f64.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "eval/model/checkpoint.hpp"
#include "eval/model/ggml_types.hpp"

namespace qeval::model {

enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
std::string gguf_value_type_name(uint32_t t);  // "UINT32", …, or "type#13" for an unknown id

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
inline constexpr uint64_t kGgufDefaultAlignment = 32;
inline constexpr uint32_t kGgufMaxDims = 4;           // GGML_MAX_DIMS
inline constexpr int kGgufMaxArrayDepth = 8;          // nested arrays deeper than this are rejected

struct GgufKv {
  std::string key;
  GgufValueType type;
  GgufValueType elem_type = GgufValueType::UINT8;  // arrays only (outermost element type)
  nlohmann::json value;                            // integers as JSON integers, f32/f64 as double
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // GGUF order: ne[0] innermost
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;       // relative to GgufFile::data_offset
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  std::vector<int64_t> shape() const;  // PyTorch order: ne reversed
};

// A parsed GGUF directory over bytes it does not own (keep the mapping alive while using it).
struct GgufFile {
  std::string file;
  uint32_t version = 0;
  uint64_t alignment = kGgufDefaultAlignment;
  uint64_t data_offset = 0;  // absolute byte offset of the tensor data section
  std::vector<GgufKv> kv;    // in file order
  std::vector<GgufTensorInfo> tensors;  // in file order
  const uint8_t* data = nullptr;
  size_t size = 0;
  // Owns `data` when set (load_gguf: the memory map): 16-bit tensors kept in file precision then view the file's
  // bytes instead of copying them. Unset (bytes the caller owns): they are copied.
  std::shared_ptr<const void> owner;

  const GgufKv* find_kv(const std::string& key) const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;
};

// Parses and validates header, metadata and tensor directory: every count, length, dimension, type id,
// offset and size is checked against the file; tensors must lie inside the file, aligned, non-overlapping.
GgufFile parse_gguf(const uint8_t* data, size_t size, const std::string& file);

// Dequantizes one tensor to fp32 (shape in PyTorch order), or with WeightPrecision::file keeps a 2-D F16/BF16 tensor's
// codes (TensorF32::bits16). Throws for types without a dequantizer and for non-finite values.
TensorF32 read_gguf_tensor(const GgufFile& f, const GgufTensorInfo& t, WeightPrecision precision = WeightPrecision::fp32);

// ModelConfig from general.architecture and the {arch}.* keys (see checkpoint.hpp for the key names).
ModelConfig gguf_model_config(const GgufFile& f);
// A family GGUF's tensors as qeval's canonical ones (eval/model/gguf_families.cpp): Phi-3's fused attn_qkv and
// gate+up split, the q/k rows (and biases, q/k norms) of the NEOX-RoPE architectures (qwen2, qwen3, phi3,
// gemma2) permuted into the adjacent-pair order. Shapes only when the tensors hold no data.
void gguf_family_tensors(Checkpoint& cp);

// Config + every tensor dequantized + metadata; validated. path/content_hash are left to the caller. A tensor no
// layer reads (gguf_unused_tensors) is kept but reported: one warning line per tensor on stderr.
Checkpoint gguf_to_checkpoint(const GgufFile& f, WeightPrecision precision = WeightPrecision::fp32);

// The tensors the forward reads for `cfg`: the set validate_checkpoint requires, output.weight when untied, and
// where present the family tensors (biases, q/k norms, post-norms, Phi-3's fused matrices, rope_freqs).
std::set<std::string> llama_forward_tensors(const ModelConfig& cfg);
// Tensors of `f` outside llama_forward_tensors(cfg), in file order (e.g. Qwen3's attn_q_norm in a "llama" GGUF).
std::vector<std::string> gguf_unused_tensors(const GgufFile& f, const ModelConfig& cfg);

}  // namespace qeval::model
