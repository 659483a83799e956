// eval/model/gguf.cpp — GGUF reader (header, metadata, tensor directory, dequantization, ModelConfig) and F32 writer.
//
// Every read goes through ByteCursor, which checks the length against the remaining bytes first; counts are
// checked against the smallest possible size of what they count before anything is reserved (a kv needs at
// least 8 + 1 + 4 + 1 = 14 bytes: key length, a 1-byte key, the value type and a 1-byte value; a tensor
// info at least 8 + 1 + 4 + 8 + 4 + 8 = 33 bytes), so a corrupt count of 2^60 is rejected at once instead of
// looping or allocating.
#include "eval/model/gguf.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <numeric>
#include <set>
#include <unordered_map>

#include "eval/model/byte_cursor.hpp"
#include "eval/model/checkpoint_internal.hpp"
#include "eval/model/mapped_file.hpp"
#include "eval/model/ref/ggml_dequant_ref.hpp"
#include "eval/model/sha256.hpp"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF/safetensors readers assume a little-endian host (both formats are little-endian on disk)"
#endif

namespace qeval::model {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;
constexpr uint64_t kMaxAlignment = uint64_t{1} << 30;  // 1 GiB; anything larger is surely corrupt

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::FLOAT64); }

// Smallest encoded size of one value of type t (arrays: element type + count).
uint64_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
    case GgufValueType::STRING: return 8;
    case GgufValueType::ARRAY: return 12;
  }
  return 1;
}

// Reads one value of type t; for an array, *elem_out (if given) receives its element type. The field name is
// a std::function (not a template parameter) because arrays recurse with a new lambda per level.
using FieldFn = std::function<std::string()>;
json read_value(ByteCursor& c, GgufValueType t, int depth, const FieldFn& field, GgufValueType* elem_out = nullptr) {
  switch (t) {
    case GgufValueType::UINT8: return c.read<uint8_t>(field);
    case GgufValueType::INT8: return c.read<int8_t>(field);
    case GgufValueType::UINT16: return c.read<uint16_t>(field);
    case GgufValueType::INT16: return c.read<int16_t>(field);
    case GgufValueType::UINT32: return c.read<uint32_t>(field);
    case GgufValueType::INT32: return c.read<int32_t>(field);
    case GgufValueType::UINT64: return c.read<uint64_t>(field);
    case GgufValueType::INT64: return c.read<int64_t>(field);
    case GgufValueType::FLOAT32: return static_cast<double>(c.read<float>(field));
    case GgufValueType::FLOAT64: return c.read<double>(field);
    case GgufValueType::BOOL: {
      const uint8_t b = c.read<uint8_t>(field);
      if (b > 1) c.fail(field, "bool value is " + std::to_string(b) + ", must be 0 or 1");
      return b == 1;
    }
    case GgufValueType::STRING: return c.read_string(field);
    case GgufValueType::ARRAY: {
      if (depth >= kGgufMaxArrayDepth) {
        c.fail(field, "arrays nested deeper than " + std::to_string(kGgufMaxArrayDepth) + " levels");
      }
      const uint32_t et = c.read<uint32_t>([&] { return field() + ".element_type"; });
      if (!valid_value_type(et)) {
        c.fail([&] { return field() + ".element_type"; }, "unknown value type id " + std::to_string(et));
      }
      const auto etype = static_cast<GgufValueType>(et);
      if (elem_out) *elem_out = etype;
      const uint64_t n = c.read<uint64_t>([&] { return field() + ".count"; });
      const uint64_t min_bytes = min_value_bytes(etype);
      if (n > c.remaining() / min_bytes) {
        c.fail([&] { return field() + ".count"; },
               "array of " + std::to_string(n) + " " + gguf_value_type_name(et) + " values needs at least " +
                   (n > std::numeric_limits<uint64_t>::max() / min_bytes ? std::string("2^64")
                                                                         : std::to_string(n * min_bytes)) +
                   " bytes but only " + std::to_string(c.remaining()) +
                   " remain — file truncated or count corrupt");
      }
      json arr = json::array();
      arr.get_ref<json::array_t&>().reserve(static_cast<size_t>(n));
      for (uint64_t i = 0; i < n; ++i) {
        arr.push_back(read_value(c, etype, depth + 1, [&] { return field() + "[" + std::to_string(i) + "]"; }));
      }
      return arr;
    }
  }
  c.fail(field, "unknown value type");
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }  // a ≤ 2^30, x ≤ file size

std::string tensor_field(size_t i, const std::string& name, const char* what) {
  return "tensor_infos[" + std::to_string(i) + (name.empty() ? "" : " '" + name + "'") + "]." + what;
}

}  // namespace

std::string gguf_value_type_name(uint32_t t) {
  static const char* kNames[] = {"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
                                 "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};
  return valid_value_type(t) ? kNames[t] : "type#" + std::to_string(t);
}

std::vector<int64_t> GgufTensorInfo::shape() const {
  std::vector<int64_t> s(ne.rbegin(), ne.rend());
  return s;
}

const GgufKv* GgufFile::find_kv(const std::string& key) const {
  for (const auto& e : kv)
    if (e.key == key) return &e;
  return nullptr;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {

struct GgufCounts {
  uint64_t tensors = 0, kv = 0;
};

// Magic, version and the two counts, each count checked against the bytes left.
GgufCounts read_header(ByteCursor& c, GgufFile& f, size_t size, const std::string& file) {
  if (size == 0) throw CheckpointError(file, "header.magic", "file is empty (0 bytes) — not a GGUF file");
  const uint32_t magic = c.read<uint32_t>([] { return std::string("header.magic"); });
  if (magic != kGgufMagic) {
    char got[5] = {0};
    std::memcpy(got, &magic, 4);
    for (char& ch : got)
      if (ch && (ch < 32 || ch > 126)) ch = '?';
    throw CheckpointError(file, "header.magic",
                          std::string("bad magic '") + got + "', expected 'GGUF' — not a GGUF file");
  }
  f.version = c.read<uint32_t>([] { return std::string("header.version"); });
  if (f.version != 2 && f.version != 3) {
    std::string hint;
    if (f.version == 1) hint = " (GGUF v1 is obsolete; re-convert the model with a current llama.cpp)";
    else if (f.version == 0x02000000u || f.version == 0x03000000u) hint = " (a big-endian GGUF file; not supported)";
    throw CheckpointError(file, "header.version",
                          "unsupported GGUF version " + std::to_string(f.version) + ", expected 2 or 3" + hint);
  }
  const uint64_t n_tensors = c.read<uint64_t>([] { return std::string("header.tensor_count"); });
  const uint64_t n_kv = c.read<uint64_t>([] { return std::string("header.kv_count"); });
  if (n_kv > c.remaining() / kMinKvBytes) {
    throw CheckpointError(file, "header.kv_count",
                          "kv_count " + std::to_string(n_kv) + " cannot fit in the " + std::to_string(c.remaining()) +
                              " bytes after the header (each pair needs ≥ " + std::to_string(kMinKvBytes) +
                              ") — file truncated or count corrupt");
  }
  if (n_tensors > c.remaining() / kMinTensorInfoBytes) {
    throw CheckpointError(file, "header.tensor_count",
                          "tensor_count " + std::to_string(n_tensors) + " cannot fit in the " +
                              std::to_string(c.remaining()) + " bytes after the header (each tensor info needs ≥ " +
                              std::to_string(kMinTensorInfoBytes) + ") — file truncated or count corrupt");
  }
  return {n_tensors, n_kv};
}

// The key/value pairs (unique, non-empty keys of known types).
void read_metadata(ByteCursor& c, GgufFile& f, uint64_t n_kv) {
  std::set<std::string> keys;
  f.kv.reserve(static_cast<size_t>(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    const auto base = [i] { return "kv[" + std::to_string(i) + "]"; };
    GgufKv e;
    e.key = c.read_string([&] { return base() + ".key"; });
    const auto kf = [&] { return base() + " '" + e.key + "'"; };
    if (e.key.empty()) c.fail([&] { return base() + ".key"; }, "empty key");
    if (!keys.insert(e.key).second) c.fail(kf, "duplicate key");
    const uint32_t t = c.read<uint32_t>([&] { return kf() + ".type"; });
    if (!valid_value_type(t)) c.fail([&] { return kf() + ".type"; }, "unknown value type id " + std::to_string(t));
    e.type = static_cast<GgufValueType>(t);
    e.value = read_value(c, e.type, 0, [&] { return kf() + ".value"; }, &e.elem_type);
    f.kv.push_back(std::move(e));
  }
}

// general.alignment, when present: a UINT32 power of two in [1, 2^30].
void read_alignment(GgufFile& f, const std::string& file) {
  if (const GgufKv* a = f.find_kv("general.alignment")) {
    const auto af = [] { return std::string("kv 'general.alignment'"); };
    if (a->type != GgufValueType::UINT32) {
      throw CheckpointError(file, af(), "has type " + gguf_value_type_name(static_cast<uint32_t>(a->type)) +
                                            ", expected UINT32");
    }
    const uint64_t al = a->value.get<uint64_t>();
    if (al == 0 || (al & (al - 1)) != 0 || al > kMaxAlignment) {
      throw CheckpointError(file, af(), "alignment " + std::to_string(al) +
                                            " is not a power of two in [1, 2^30]");
    }
    f.alignment = al;
  }
}

// One tensor directory entry: name, dims (overflow-checked), ggml type and its byte size, offset.
GgufTensorInfo read_tensor_info(ByteCursor& c, size_t ii, std::set<std::string>& names) {
  GgufTensorInfo t;
  t.name = c.read_string([&] { return tensor_field(ii, "", "name"); });
  const auto tf = [&](const char* what) { return [&, what] { return tensor_field(ii, t.name, what); }; };
  if (t.name.empty()) c.fail(tf("name"), "empty tensor name");
  if (!names.insert(t.name).second) c.fail(tf("name"), "duplicate tensor name");
  const uint32_t n_dims = c.read<uint32_t>(tf("n_dims"));
  if (n_dims == 0 || n_dims > kGgufMaxDims) {
    c.fail(tf("n_dims"), "n_dims is " + std::to_string(n_dims) + ", must be 1.." + std::to_string(kGgufMaxDims));
  }
  t.ne.resize(n_dims);
  uint64_t n_el = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    t.ne[d] = c.read<uint64_t>(tf("ne"));
    if (t.ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      c.fail(tf("ne"), "ne[" + std::to_string(d) + "] = " + std::to_string(t.ne[d]) + " exceeds INT64_MAX");
    }
    if (t.ne[d] != 0 && n_el > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / t.ne[d]) {
      c.fail(tf("ne"), "element count overflows int64 (dims overflow)");
    }
    n_el *= t.ne[d];
  }
  t.n_elements = n_el;
  const uint32_t type_id = c.read<uint32_t>(tf("type"));
  const GgmlTypeTraits tr = ggml_type_traits(type_id);
  if (!tr.name) c.fail(tf("type"), "unknown ggml type id " + std::to_string(type_id));
  t.type = static_cast<GgmlType>(type_id);
  if (t.ne[0] % tr.block_elems != 0) {
    c.fail(tf("ne"), "ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " + tr.name +
                         " block size " + std::to_string(tr.block_elems) + " (shape/type mismatch)");
  }
  // n_el ≤ 2^63 and block_bytes / block_elems ≤ 8, so n_bytes ≤ 2^66 could overflow only for > 2^61 blocks
  const uint64_t n_blocks = n_el / tr.block_elems;
  if (n_blocks > std::numeric_limits<uint64_t>::max() / tr.block_bytes) {
    c.fail(tf("ne"), "byte size overflows uint64 (dims overflow)");
  }
  t.n_bytes = n_blocks * tr.block_bytes;
  t.offset = c.read<uint64_t>(tf("offset"));
  return t;
}

// Every tensor's data aligned, inside the file and overlapping no other tensor's.
void check_data_section(const GgufFile& f, size_t size, const std::string& file) {
  const uint64_t data_size = f.data_offset <= size ? size - f.data_offset : 0;
  for (size_t i = 0; i < f.tensors.size(); ++i) {
    const GgufTensorInfo& t = f.tensors[i];
    const std::string field = tensor_field(i, t.name, "offset");
    if (t.offset % f.alignment != 0) {
      throw CheckpointError(file, field, "offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                                             std::to_string(f.alignment) + " (misaligned)");
    }
    if (t.n_bytes == 0) continue;
    if (f.data_offset > size) {
      throw CheckpointError(file, field, "the data section would start at byte " + std::to_string(f.data_offset) +
                                             ", past the end of the file (" + std::to_string(size) +
                                             " bytes) — file truncated");
    }
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      throw CheckpointError(
          file, field,
          "data [" + std::to_string(t.offset) + ", " +
              (t.offset > std::numeric_limits<uint64_t>::max() - t.n_bytes ? std::string("overflow")
                                                                            : std::to_string(t.offset + t.n_bytes)) +
              ") of the data section (" + std::to_string(data_size) + " bytes, from byte " +
              std::to_string(f.data_offset) + ") ends past the end of the file (" + std::to_string(size) +
              " bytes) — file truncated or offset corrupt");
    }
  }
  std::vector<size_t> order(f.tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return f.tensors[a].offset < f.tensors[b].offset; });
  // In offset order, every non-empty tensor must start at or after the furthest end seen so far (comparing
  // neighbours only would miss an overlap hidden behind a zero-size tensor). Ends are ≤ the file size here.
  const GgufTensorInfo* furthest = nullptr;
  for (size_t k = 0; k < order.size(); ++k) {
    const GgufTensorInfo& q = f.tensors[order[k]];
    if (q.n_bytes == 0) continue;
    if (furthest && furthest->offset + furthest->n_bytes > q.offset) {
      throw CheckpointError(file, tensor_field(order[k], q.name, "offset"),
                            "data [" + std::to_string(q.offset) + ", " + std::to_string(q.offset + q.n_bytes) +
                                ") overlaps tensor '" + furthest->name + "' [" + std::to_string(furthest->offset) +
                                ", " + std::to_string(furthest->offset + furthest->n_bytes) + ")");
    }
    if (!furthest || q.offset + q.n_bytes > furthest->offset + furthest->n_bytes) furthest = &q;
  }
}

}  // namespace

GgufFile parse_gguf(const uint8_t* data, size_t size, const std::string& file) {
  GgufFile f;
  f.file = file;
  f.data = data;
  f.size = size;
  ByteCursor c(data, size, f.file);
  const GgufCounts n = read_header(c, f, size, file);
  read_metadata(c, f, n.kv);
  read_alignment(f, file);
  std::set<std::string> names;
  f.tensors.reserve(static_cast<size_t>(n.tensors));
  for (uint64_t i = 0; i < n.tensors; ++i) f.tensors.push_back(read_tensor_info(c, static_cast<size_t>(i), names));
  f.data_offset = align_up(c.pos(), f.alignment);
  check_data_section(f, size, file);
  return f;
}

namespace {

// A 2-D F16/BF16 tensor kept as its codes (WeightPrecision::file); throws for an Inf/NaN code as the fp32 path does.
TensorF32 read_gguf_tensor16(const GgufFile& f, const GgufTensorInfo& t, const char* type) {
  TensorF32 out;
  out.shape = t.shape();
  out.orig_type = type;
  const auto* codes = reinterpret_cast<const uint16_t*>(f.data + f.data_offset + t.offset);  // aligned (≥ 32 bytes)
  const auto n = static_cast<size_t>(t.n_elements);
  out.bits16 = f.owner ? Codes16(codes, n, f.owner) : Codes16::copy_of(codes, codes + n);
  const int64_t bad = first_nonfinite16(out.bits16.data(), n, out.orig_type == "BF16");
  if (bad >= 0)
    throw CheckpointError(f.file, "tensor '" + t.name + "'",
                          "element " + std::to_string(bad) + " is Inf/NaN (" + type +
                              ") — the weights contain NaN/Inf; the file is corrupt");
  return out;
}

}  // namespace

TensorF32 read_gguf_tensor(const GgufFile& f, const GgufTensorInfo& t, WeightPrecision precision) {
  const GgmlTypeTraits tr = ggml_type_traits(static_cast<uint32_t>(t.type));
  const std::string field = "tensor '" + t.name + "'";
  const ref::DequantizeRowFn dequantize = ref::dequantizer(static_cast<uint32_t>(t.type));
  if (!tr.dequantizable || !dequantize) {
    throw CheckpointError(f.file, field + ".type",
                          std::string("tensor type ") + (tr.name ? tr.name : "?") + " is not supported (supported: " +
                              ggml_supported_type_names() +
                              ") — re-quantize the model to one of these (llama-quantize) or convert it to F16");
  }
  const bool is16 = t.type == GgmlType::F16 || t.type == GgmlType::BF16;
  if (precision == WeightPrecision::file && is16 && t.shape().size() >= 2 && t.n_elements > 0)  // 3-D: stacked experts
    return read_gguf_tensor16(f, t, tr.name);
  TensorF32 out;
  out.shape = t.shape();
  out.orig_type = tr.name;
  out.data.resize(static_cast<size_t>(t.n_elements));
  if (t.n_elements == 0) return out;
  const uint8_t* src = f.data + f.data_offset + t.offset;  // in bounds: checked by parse_gguf
  const auto n = static_cast<int64_t>(t.n_elements);
  float* dst = out.data.data();
  dequantize(src, dst, n);
  for (size_t i = 0; i < out.data.size(); ++i) {
    if (!std::isfinite(out.data[i])) {
      throw CheckpointError(f.file, field,
                            "element " + std::to_string(i) + " is " + std::to_string(out.data[i]) +
                                " after dequantization (" + tr.name +
                                ") — the weights contain NaN/Inf; the file is corrupt");
    }
  }
  return out;
}

namespace {

bool is_integer_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::UINT16: case GgufValueType::INT16:
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::UINT64: case GgufValueType::INT64:
      return true;
    default: return false;
  }
}

struct KvReader {
  const GgufFile& f;
  std::string field(const std::string& key) const { return "kv '" + key + "'"; }

  const GgufKv* find(const std::string& key, bool required) const {
    const GgufKv* e = f.find_kv(key);
    if (!e && required) {
      throw CheckpointError(f.file, field(key), "required metadata key is missing — not a complete model file");
    }
    return e;
  }
  // Non-negative integer that fits int64; -1 when optional and absent.
  int64_t integer(const std::string& key, bool required) const {
    const GgufKv* e = find(key, required);
    if (!e) return -1;
    if (!is_integer_type(e->type)) {
      throw CheckpointError(f.file, field(key), "has type " + gguf_value_type_name(static_cast<uint32_t>(e->type)) +
                                                    ", expected an integer");
    }
    if (e->value.is_number_unsigned()) {
      const auto v = e->value.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        throw CheckpointError(f.file, field(key), "value " + std::to_string(v) + " is out of range");
      }
      return static_cast<int64_t>(v);
    }
    const auto v = e->value.get<int64_t>();
    if (v < 0) throw CheckpointError(f.file, field(key), "value " + std::to_string(v) + " is negative");
    return v;
  }
  double real(const std::string& key, bool required, double fallback) const {
    const GgufKv* e = find(key, required);
    if (!e) return fallback;
    if (e->type != GgufValueType::FLOAT32 && e->type != GgufValueType::FLOAT64 && !is_integer_type(e->type)) {
      throw CheckpointError(f.file, field(key), "has type " + gguf_value_type_name(static_cast<uint32_t>(e->type)) +
                                                    ", expected a float");
    }
    const double v = e->value.get<double>();
    if (!std::isfinite(v)) throw CheckpointError(f.file, field(key), "value is not finite");
    return v;
  }
};

int64_t positive(const GgufFile& f, const std::string& key, int64_t v) {
  if (v <= 0) throw CheckpointError(f.file, "kv '" + key + "'", "must be positive, got " + std::to_string(v));
  return v;
}

// The head size: key_length when it differs from embedding_length / head_count (Qwen3, Gemma); value_length and
// rope.dimension_count must equal it (a separate value size or partial rotary is not supported).
void read_head_dim(const KvReader& kv, ModelConfig& cfg) {
  const std::string p = cfg.arch + ".";
  const int64_t key_length = kv.integer(p + "attention.key_length", false);
  if (key_length > 0 && key_length * cfg.n_heads != cfg.d_model) cfg.head_dim_explicit = key_length;
  if (cfg.head_dim_explicit == 0 && cfg.d_model % cfg.n_heads != 0) return;  // validate_checkpoint names it
  const int64_t hd = cfg.head_dim();
  for (const char* k : {"attention.key_length", "attention.value_length", "rope.dimension_count"}) {
    const int64_t v = kv.integer(p + k, false);
    if (v >= 0 && v != hd)
      throw CheckpointError(kv.f.file, "kv '" + p + k + "'",
                            "is " + std::to_string(v) + " but the head size is " + std::to_string(hd) +
                                "; a separate value size / partial rotary dimension is not supported");
  }
}

// Sliding layers from {arch}.attention.sliding_window_pattern (llama.cpp's set_swa_pattern: with an integer n,
// layer i slides when i mod n < n − 1; an array lists each layer), `n_pattern` when the key is absent.
std::vector<bool> sliding_layers(const KvReader& kv, const ModelConfig& cfg, int64_t n_pattern) {
  const std::string key = cfg.arch + ".attention.sliding_window_pattern";
  std::vector<bool> sliding(static_cast<size_t>(cfg.n_layers), false);
  const GgufKv* e = kv.find(key, false);
  if (e && e->type == GgufValueType::ARRAY) {
    if (e->value.size() != sliding.size() || !std::all_of(e->value.begin(), e->value.end(), [](const json& v) {
          return v.is_boolean();
        }))
      throw CheckpointError(kv.f.file, "kv '" + key + "'", "must list one boolean per layer");
    for (size_t i = 0; i < sliding.size(); ++i) sliding[i] = e->value[i].get<bool>();
    return sliding;
  }
  if (e) n_pattern = kv.integer(key, true);
  for (int64_t i = 0; i < cfg.n_layers; ++i) sliding[static_cast<size_t>(i)] = n_pattern == 0 || i % n_pattern < n_pattern - 1;
  return sliding;
}

// Gemma 2 as llama.cpp reads it (src/models/gemma2.cpp): GeGLU-tanh, √d embedding scale, pre+post norms (the
// converter stores every norm as 1 + w already), soft-caps 50 / 30 unless given, window 4096 unless given on
// every other layer, query scale 1/√head_dim (1/√(d_model / heads) for the 46-layer 27B, whose
// query_pre_attn_scalar is that).
void read_gemma2(const KvReader& kv, ModelConfig& cfg) {
  const std::string p = cfg.arch + ".";
  cfg.ffn_act = "gelu_tanh";
  cfg.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(cfg.d_model)));
  cfg.post_norms = true;
  cfg.attn_softcap = kv.real(p + "attn_logit_softcapping", false, 50.0);
  cfg.final_softcap = kv.real(p + "final_logit_softcapping", false, 30.0);
  if (cfg.n_layers == 46) cfg.attn_scale = 1.0 / std::sqrt(static_cast<double>(cfg.d_model / cfg.n_heads));
  const int64_t window = kv.integer(p + "attention.sliding_window", false);
  cfg.sliding_window = window < 0 ? 4096 : window;
  cfg.layer_sliding = sliding_layers(kv, cfg, 2);
  if (cfg.sliding_window == 0) cfg.layer_sliding.clear();
}

void read_moe_gating(const KvReader& kv, ModelConfig& cfg);

// Mixture of experts as llama.cpp reads it: {arch}.expert_count experts, top {arch}.expert_used_count, each
// expert's FFN {arch}.expert_feed_forward_length wide (Mixtral, written as "llama": feed_forward_length), Qwen2-MoE's
// shared expert {arch}.expert_shared_feed_forward_length. The top-k weights are renormalised as llama.cpp's graphs do
// (src/models/llama.cpp: build_moe_ffn(..., norm_w = true); qwen2moe.cpp: false — transformers' norm_topk_prob,
// which the converter does not write), unless {arch}.expert_weights_norm says otherwise. Softmax gating and unit
// expert weights only: another expert_gating_func / expert_weights_scale is refused by name.
void read_moe(const KvReader& kv, ModelConfig& cfg) {
  const std::string p = cfg.arch + ".";
  if (!kv.find(p + "expert_count", false) || kv.integer(p + "expert_count", true) == 0) return;
  if (cfg.arch != "llama" && cfg.arch != "qwen2moe")
    throw CheckpointError(kv.f.file, "kv '" + p + "expert_count'",
                          "mixture-of-experts GGUFs of architecture " + cfg.arch +
                              " are not supported (llama — Mixtral — and qwen2moe)");
  cfg.n_experts = positive(kv.f, p + "expert_count", kv.integer(p + "expert_count", true));
  cfg.n_experts_used = positive(kv.f, p + "expert_used_count", kv.integer(p + "expert_used_count", true));
  if (cfg.n_experts_used > cfg.n_experts)
    throw CheckpointError(kv.f.file, "kv '" + p + "expert_used_count'",
                          std::to_string(cfg.n_experts_used) + " exceeds " + p + "expert_count " +
                              std::to_string(cfg.n_experts));
  const int64_t ff = kv.integer(p + "expert_feed_forward_length", false);
  cfg.d_ff_expert = ff < 0 ? cfg.d_ff : positive(kv.f, p + "expert_feed_forward_length", ff);
  cfg.d_ff_shared = std::max<int64_t>(0, kv.integer(p + "expert_shared_feed_forward_length", false));
  read_moe_gating(kv, cfg);
}

// The routing keys beyond the counts: expert_weights_norm, expert_gating_func, expert_weights_scale.
void read_moe_gating(const KvReader& kv, ModelConfig& cfg) {
  const std::string p = cfg.arch + ".";
  cfg.expert_norm_topk = cfg.arch == "llama";
  if (const GgufKv* n = kv.find(p + "expert_weights_norm", false)) {
    if (n->type != GgufValueType::BOOL) throw CheckpointError(kv.f.file, "kv '" + p + "expert_weights_norm'", "must be a BOOL");
    cfg.expert_norm_topk = n->value.get<bool>();
  }
  if (kv.find(p + "expert_gating_func", false) && kv.integer(p + "expert_gating_func", true) != 1)
    throw CheckpointError(kv.f.file, "kv '" + p + "expert_gating_func'", "only softmax gating (1) is supported");
  if (kv.real(p + "expert_weights_scale", false, 1.0) != 1.0)
    throw CheckpointError(kv.f.file, "kv '" + p + "expert_weights_scale'", "only 1 (unscaled expert weights) is supported");
}

// Gemma 3 as llama.cpp reads it (src/models/gemma3.cpp): Gemma 2's GeGLU-tanh, √d embedding scale and pre+post
// norms (stored as 1 + w, q/k norms too), per-head q/k RMSNorm, no attention soft-cap, a final one only when given;
// query scale 1/√head_dim (1/√(d_model / heads) for the 62-layer 27B). With {arch}.attention.sliding_window > 0
// the sliding layers follow sliding_window_pattern (default 6: five local, one global) and rotate with base
// rope.freq_base_swa (default 10000), unscaled; rope.freq_base and a linear rope.scaling apply to the global ones.
void read_gemma3(const KvReader& kv, ModelConfig& cfg) {
  const std::string p = cfg.arch + ".";
  cfg.ffn_act = "gelu_tanh";
  cfg.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(cfg.d_model)));
  cfg.post_norms = true;
  cfg.attn_qk_norm = true;
  cfg.final_softcap = kv.real(p + "final_logit_softcapping", false, 0.0);
  if (cfg.n_layers == 62) cfg.attn_scale = 1.0 / std::sqrt(static_cast<double>(cfg.d_model / cfg.n_heads));
  const int64_t window = kv.integer(p + "attention.sliding_window", false);
  if (window <= 0) return;
  cfg.sliding_window = window;
  cfg.layer_sliding = sliding_layers(kv, cfg, 6);
  cfg.rope_theta_local = kv.real(p + "rope.freq_base_swa", false, 10000.0);
  if (!(cfg.rope_theta_local > 0))
    throw CheckpointError(kv.f.file, "kv '" + p + "rope.freq_base_swa'", "must be positive");
}

// Gemma 3's linear RoPE scaling of the global layers (rope.scaling.type "linear", rope.scaling.factor).
bool read_linear_rope(const KvReader& kv, ModelConfig& cfg, const json& type) {
  if (cfg.arch != "gemma3" || !(type.is_string() && type.get<std::string>() == "linear")) return false;
  const std::string key = cfg.arch + ".rope.scaling.factor";
  cfg.rope_scaling = "linear";
  cfg.rope_factor = kv.real(key, true, 0.0);
  if (!(cfg.rope_factor > 0)) throw CheckpointError(kv.f.file, "kv '" + key + "'", "must be positive");
  return true;
}

// What the families add to a Llama (the architectures llama.cpp's converter writes for them; Mistral and Llama 3
// are written as "llama"). The q/k row order and Phi-3's fused tensors are translated by gguf_family_tensors.
void read_family_features(const KvReader& kv, ModelConfig& cfg) {
  if (cfg.n_layers > (int64_t{1} << 20)) return;  // a corrupt block count: validate_checkpoint names it
  const std::string p = cfg.arch + ".";
  if (cfg.arch == "gemma3") read_gemma3(kv, cfg);
  if (cfg.arch == "qwen3") cfg.attn_qk_norm = true;
  if (cfg.arch == "gemma2") read_gemma2(kv, cfg);
  // Phi-3: a window applies to every layer, as in transformers (llama.cpp currently ignores it).
  if (cfg.arch == "phi3" || cfg.arch == "qwen2" || cfg.arch == "qwen3") {
    const int64_t window = kv.integer(p + "attention.sliding_window", false);
    if (window > 0) {
      cfg.sliding_window = window;
      cfg.layer_sliding.assign(static_cast<size_t>(cfg.n_layers), true);
    }
  }
  // Llama 3.1's RoPE scaling: llama.cpp's converter stores the per-frequency divisors as rope_freqs.weight.
  if (const GgufTensorInfo* t = kv.f.find_tensor("rope_freqs.weight")) {
    const TensorF32 factors = read_gguf_tensor(kv.f, *t);
    if (factors.data.size() != static_cast<size_t>(cfg.head_dim() / 2))
      throw CheckpointError(kv.f.file, "tensor 'rope_freqs.weight'",
                            "has " + std::to_string(factors.data.size()) + " values, expected head_dim / 2 = " +
                                std::to_string(cfg.head_dim() / 2));
    for (float v : factors.data)
      if (!(v > 0) || !std::isfinite(v))
        throw CheckpointError(kv.f.file, "tensor 'rope_freqs.weight'", "holds a value that is not positive and finite");
    cfg.rope_scaling = "freq_factors";
    cfg.rope_freq_factors.assign(factors.data.begin(), factors.data.end());
  }
}

}  // namespace

ModelConfig gguf_model_config(const GgufFile& f) {
  KvReader kv{f};
  ModelConfig cfg;
  cfg.source = "gguf";
  const GgufKv* a = kv.find("general.architecture", true);
  if (a->type != GgufValueType::STRING) {
    throw CheckpointError(f.file, "kv 'general.architecture'", "has type " +
                                                                    gguf_value_type_name(static_cast<uint32_t>(a->type)) +
                                                                    ", expected STRING");
  }
  cfg.arch = a->value.get<std::string>();
  if (cfg.arch.empty()) throw CheckpointError(f.file, "kv 'general.architecture'", "is empty");
  const std::string p = cfg.arch + ".";
  cfg.n_layers = positive(f, p + "block_count", kv.integer(p + "block_count", true));
  cfg.d_model = positive(f, p + "embedding_length", kv.integer(p + "embedding_length", true));
  cfg.n_heads = positive(f, p + "attention.head_count", kv.integer(p + "attention.head_count", true));
  const int64_t kvh = kv.integer(p + "attention.head_count_kv", false);
  cfg.n_kv_heads = kvh < 0 ? cfg.n_heads : positive(f, p + "attention.head_count_kv", kvh);  // llama.cpp's default
  cfg.d_ff = positive(f, p + "feed_forward_length", kv.integer(p + "feed_forward_length", true));
  cfg.n_ctx_train = positive(f, p + "context_length", kv.integer(p + "context_length", true));
  cfg.rope_theta = kv.real(p + "rope.freq_base", false, 10000.0);
  cfg.rms_eps = kv.real(p + "attention.layer_norm_rms_epsilon", true, 0.0);
  cfg.bos_id = kv.integer("tokenizer.ggml.bos_token_id", false);
  cfg.eos_id = kv.integer("tokenizer.ggml.eos_token_id", false);

  // vocab: tokenizer.ggml.tokens, else {arch}.vocab_size, else token_embd rows (validated against it later)
  if (const GgufKv* tok = kv.find("tokenizer.ggml.tokens", false)) {
    if (tok->type != GgufValueType::ARRAY || tok->elem_type != GgufValueType::STRING) {
      throw CheckpointError(f.file, "kv 'tokenizer.ggml.tokens'", "must be an ARRAY of STRING");
    }
    cfg.vocab_size = static_cast<int64_t>(tok->value.size());
  } else if (kv.find(p + "vocab_size", false)) {
    cfg.vocab_size = kv.integer(p + "vocab_size", true);
  } else if (const GgufTensorInfo* te = f.find_tensor("token_embd.weight")) {
    cfg.vocab_size = te->ne.size() == 2 ? static_cast<int64_t>(te->ne[1]) : 0;
  }
  cfg.tied_embeddings = f.find_tensor("output.weight") == nullptr;

  // Features ModelConfig cannot express are rejected rather than silently ignored.
  read_head_dim(kv, cfg);
  read_family_features(kv, cfg);
  if (const GgufKv* s = kv.find(p + "rope.scaling.type", false)) {
    if (!(s->value.is_string() && s->value.get<std::string>() == "none") && !read_linear_rope(kv, cfg, s->value)) {
      throw CheckpointError(f.file, "kv '" + p + "rope.scaling.type'",
                            "RoPE scaling " + json_for_message(s->value) + " is not supported (none; linear on gemma3)");
    }
  }
  read_moe(kv, cfg);
  return cfg;
}

std::set<std::string> llama_forward_tensors(const ModelConfig& cfg) {
  std::set<std::string> used = {"token_embd.weight", "output_norm.weight"};
  if (!cfg.tied_embeddings) used.insert("output.weight");
  if (cfg.rope_scaling == "freq_factors") used.insert("rope_freqs.weight");
  for (int64_t i = 0; i < cfg.n_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    for (const char* s : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                          "ffn_down"})
      used.insert(b + s + ".weight");
    // The family tensors the forward reads where present (load_family_tensors), and Phi-3's fused matrices.
    for (const char* s : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"})
      used.insert(b + s + ".bias");
    if (cfg.attn_qk_norm) used.insert({b + "attn_q_norm.weight", b + "attn_k_norm.weight"});
    if (cfg.post_norms) used.insert({b + "post_attention_norm.weight", b + "post_ffw_norm.weight"});
    if (cfg.arch == "phi3") used.insert(b + "attn_qkv.weight");
    if (cfg.is_moe())  // the router, the stacked experts (split by gguf_family_tensors), the shared expert
      for (const char* s : {"ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps", "ffn_gate_inp_shexp",
                            "ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp"})
        used.insert(b + s + ".weight");
  }
  return used;
}

std::vector<std::string> gguf_unused_tensors(const GgufFile& f, const ModelConfig& cfg) {
  const std::set<std::string> used = llama_forward_tensors(cfg);
  std::vector<std::string> unused;
  for (const auto& t : f.tensors)
    if (!used.count(t.name)) unused.push_back(t.name);
  return unused;
}

Checkpoint gguf_to_checkpoint(const GgufFile& f, WeightPrecision precision) {
  Checkpoint cp;
  cp.path = f.file;
  cp.config = gguf_model_config(f);
  for (const auto& e : f.kv) cp.metadata[e.key] = e.value;
  // Required tensors and their shapes are checked on the directory first, so a missing tensor is reported
  // before the (possibly long) dequantization.
  {
    Checkpoint shapes_only;
    shapes_only.path = f.file;
    shapes_only.config = cp.config;
    for (const auto& t : f.tensors) {
      TensorF32 s;
      s.shape = t.shape();
      shapes_only.tensors.emplace(t.name, std::move(s));
    }
    gguf_family_tensors(shapes_only);
    validate_checkpoint_impl(shapes_only, false);
  }
  for (const auto& t : f.tensors) cp.tensors.emplace(t.name, read_gguf_tensor(f, t, precision));
  gguf_family_tensors(cp);
  for (const std::string& name : gguf_unused_tensors(f, cp.config))
    std::fprintf(stderr,
                 "qeval: warning: %s: tensor '%s' is not read by any layer of qeval's forward (architecture %s) — "
                 "ignored\n",
                 f.file.c_str(), name.c_str(), cp.config.arch.c_str());
  return cp;
}

namespace {
Checkpoint unhashed_checkpoint(const uint8_t* data, size_t size, const std::string& name, WeightPrecision precision,
                               std::shared_ptr<const void> owner = nullptr) {
  GgufFile f = parse_gguf(data, size, name);
  f.owner = std::move(owner);
  Checkpoint cp = gguf_to_checkpoint(f, precision);
  cp.path = name;
  return cp;
}
}  // namespace

Checkpoint load_gguf_bytes(const uint8_t* data, size_t size, const std::string& name, WeightPrecision precision) {
  Checkpoint cp = unhashed_checkpoint(data, size, name, precision);
  cp.content_hash = "sha256:" + sha256_hex(data, size);
  return cp;
}

Checkpoint load_gguf(const std::string& path, WeightPrecision precision) {
  const auto m = std::make_shared<const MappedFile>(path);  // kept mapped while tensors view it (file precision)
  Checkpoint cp = unhashed_checkpoint(m->data(), m->size(), path, precision, m);
  cp.content_hash = sha256_file_hex(path);  // the file's bytes; hashed once per process (cached)
  return cp;
}

// ---------------------------------------------------------------------------------------------- writer

namespace {

class Out {
 public:
  void u8(uint8_t v) { b_.push_back(v); }
  void u32(uint32_t v) { raw(&v, 4); }
  void i32(int32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void i64(int64_t v) { raw(&v, 8); }
  void f32(float v) { raw(&v, 4); }
  void str(const std::string& s) {
    u64(s.size());
    raw(s.data(), s.size());
  }
  void raw(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b_.insert(b_.end(), c, c + n);
  }
  std::vector<uint8_t>& bytes() { return b_; }
  const std::vector<uint8_t>& bytes() const { return b_; }

 private:
  std::vector<uint8_t> b_;
};

// How a JSON metadata value is stored (policy documented in checkpoint.hpp / save_gguf_f32): integer scalars
// as UINT32 when they fit (llama.cpp reads ids and counts with gguf_get_val_u32), integer arrays as INT32
// when they fit (tokenizer.ggml.token_type is INT32), floats as FLOAT32.
GgufValueType scalar_type(const json& v, bool in_array) {
  if (v.is_boolean()) return GgufValueType::BOOL;
  if (v.is_string()) return GgufValueType::STRING;
  if (v.is_number_float()) return GgufValueType::FLOAT32;
  if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) {
    const uint64_t u = v.get<uint64_t>();
    if (in_array) return u <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max()) ? GgufValueType::INT32
                                                                                          : GgufValueType::UINT64;
    return u <= std::numeric_limits<uint32_t>::max() ? GgufValueType::UINT32 : GgufValueType::UINT64;
  }
  if (v.is_number_integer()) {
    const int64_t s = v.get<int64_t>();
    return s >= std::numeric_limits<int32_t>::min() ? GgufValueType::INT32 : GgufValueType::INT64;
  }
  if (v.is_array()) return GgufValueType::ARRAY;
  throw std::invalid_argument("not representable");
}

// Widest element type of an array (all elements must be of one kind).
GgufValueType array_elem_type(const json& arr) {
  if (arr.empty()) return GgufValueType::INT32;
  GgufValueType t = scalar_type(arr[0], true);
  for (const auto& v : arr) {
    const GgufValueType u = scalar_type(v, true);
    if (u == t) continue;
    const bool tn = t == GgufValueType::INT32 || t == GgufValueType::INT64 || t == GgufValueType::UINT64 ||
                    t == GgufValueType::FLOAT32;
    const bool un = u == GgufValueType::INT32 || u == GgufValueType::INT64 || u == GgufValueType::UINT64 ||
                    u == GgufValueType::FLOAT32;
    if (!tn || !un) throw std::invalid_argument("array mixes value kinds");
    if (t == GgufValueType::FLOAT32 || u == GgufValueType::FLOAT32) t = GgufValueType::FLOAT32;
    else if (t == GgufValueType::UINT64 || u == GgufValueType::UINT64) {
      if (t == GgufValueType::INT64 || u == GgufValueType::INT64) throw std::invalid_argument("int range");
      t = GgufValueType::UINT64;
    } else t = GgufValueType::INT64;
  }
  return t;
}

void write_value(Out& o, const json& v, GgufValueType t) {
  switch (t) {
    case GgufValueType::BOOL: o.u8(v.get<bool>() ? 1 : 0); break;
    case GgufValueType::STRING: o.str(v.get<std::string>()); break;
    case GgufValueType::FLOAT32: o.f32(static_cast<float>(v.get<double>())); break;
    case GgufValueType::UINT32: o.u32(static_cast<uint32_t>(v.get<uint64_t>())); break;
    case GgufValueType::INT32: o.i32(static_cast<int32_t>(v.get<int64_t>())); break;
    case GgufValueType::UINT64: o.u64(v.get<uint64_t>()); break;
    case GgufValueType::INT64: o.i64(v.get<int64_t>()); break;
    case GgufValueType::ARRAY: {
      const GgufValueType et = array_elem_type(v);
      o.u32(static_cast<uint32_t>(et));
      o.u64(v.size());
      for (const auto& e : v) write_value(o, e, et);
      break;
    }
    default: throw std::invalid_argument("unsupported value type");
  }
}

void write_kv(Out& o, const std::string& key, const json& v, GgufValueType t) {
  o.str(key);
  o.u32(static_cast<uint32_t>(t));
  write_value(o, v, t);
}

// Canonical tensor order: token_embd, blocks in layer order, output_norm, output, then any others by name.
std::vector<std::string> tensor_order(const Checkpoint& cp) {
  std::vector<std::string> order;
  std::set<std::string> used;
  auto add = [&](const std::string& n) {
    if (cp.tensors.count(n) && used.insert(n).second) order.push_back(n);
  };
  add("token_embd.weight");
  for (int64_t i = 0; i < cp.config.n_layers; ++i) {
    for (const char* s : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                          "ffn_down"}) {
      add("blk." + std::to_string(i) + "." + s + ".weight");
    }
  }
  add("output_norm.weight");
  add("output.weight");
  for (const auto& kvp : cp.tensors) add(kvp.first);
  return order;
}

}  // namespace

namespace {

// The hyper-parameters under llama.cpp's keys, then every other dotted metadata key; returns the number written.
uint64_t write_metadata(Out& o, const Checkpoint& cp, const std::string& path) {
  const ModelConfig& c = cp.config;
  const std::string p = c.arch + ".";
  uint64_t n_kv = 0;
  std::set<std::string> written;
  auto put = [&](const std::string& key, const json& v, GgufValueType t) {
    write_kv(o, key, v, t);
    written.insert(key);
    ++n_kv;
  };
  put("general.architecture", c.arch, GgufValueType::STRING);
  put("general.file_type", 0, GgufValueType::UINT32);  // LLAMA_FTYPE_ALL_F32
  put(p + "block_count", c.n_layers, GgufValueType::UINT32);
  put(p + "context_length", c.n_ctx_train, GgufValueType::UINT32);
  put(p + "embedding_length", c.d_model, GgufValueType::UINT32);
  put(p + "feed_forward_length", c.d_ff, GgufValueType::UINT32);
  put(p + "attention.head_count", c.n_heads, GgufValueType::UINT32);
  put(p + "attention.head_count_kv", c.n_kv_heads, GgufValueType::UINT32);
  put(p + "rope.freq_base", c.rope_theta, GgufValueType::FLOAT32);
  put(p + "attention.layer_norm_rms_epsilon", c.rms_eps, GgufValueType::FLOAT32);
  put(p + "rope.dimension_count", c.head_dim(), GgufValueType::UINT32);
  put(p + "vocab_size", c.vocab_size, GgufValueType::UINT32);
  if (c.bos_id >= 0) put("tokenizer.ggml.bos_token_id", c.bos_id, GgufValueType::UINT32);
  if (c.eos_id >= 0) put("tokenizer.ggml.eos_token_id", c.eos_id, GgufValueType::UINT32);
  for (const auto& [key, v] : cp.metadata) {
    if (written.count(key) || key.find('.') == std::string::npos || key == "general.alignment") continue;
    GgufValueType t;
    try {
      t = scalar_type(v, false);
      if (t == GgufValueType::ARRAY) (void)array_elem_type(v);
    } catch (const std::invalid_argument& e) {
      throw CheckpointError(path, "metadata '" + key + "'",
                            std::string("value ") + json_for_message(v) + " cannot be stored in GGUF (" + e.what() +
                                ") — drop it from Checkpoint::metadata before saving");
    }
    if (key == "tokenizer.ggml.scores" && t == GgufValueType::ARRAY) {
      // always FLOAT32, even when every score happens to be integral
      o.str(key);
      o.u32(static_cast<uint32_t>(GgufValueType::ARRAY));
      o.u32(static_cast<uint32_t>(GgufValueType::FLOAT32));
      o.u64(v.size());
      for (const auto& e : v) o.f32(static_cast<float>(e.get<double>()));
      written.insert(key);
      ++n_kv;
      continue;
    }
    put(key, v, t);
  }
  return n_kv;
}

// Tensor infos (F32, GGUF's reversed dimension order), offsets aligned to 32 (the default alignment;
// general.alignment is not written); returns each tensor's data offset.
std::vector<uint64_t> write_tensor_infos(Out& o, const Checkpoint& cp, const std::vector<std::string>& order) {
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const auto& name : order) {
    const TensorF32& t = cp.tensors.at(name);
    o.str(name);
    o.u32(static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) o.u64(static_cast<uint64_t>(*it));
    o.u32(static_cast<uint32_t>(GgmlType::F32));
    offsets.push_back(offset);
    o.u64(offset);
    offset = align_up(offset + static_cast<uint64_t>(t.numel()) * sizeof(float), kGgufDefaultAlignment);
  }
  o.bytes().resize(align_up(o.bytes().size(), kGgufDefaultAlignment), 0);
  return offsets;
}

// Header, then each tensor's fp32 values at its offset (a tensor kept in file precision is converted), written to
// <path>.tmp and renamed over <path>: a crash never leaves a half-written model under the real name.
void write_gguf_file(const std::string& path, const Out& header, const Checkpoint& cp,
                     const std::vector<std::string>& order, const std::vector<uint64_t>& offsets) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(tmp + ": cannot open for writing: " + std::strerror(errno));
    out.write(reinterpret_cast<const char*>(header.bytes().data()), static_cast<std::streamsize>(header.bytes().size()));
    uint64_t pos = 0;
    static const char kZeros[kGgufDefaultAlignment] = {};
    for (size_t i = 0; i < order.size(); ++i) {
      const TensorF32& t = cp.tensors.at(order[i]);
      std::vector<float> converted;
      if (t.in_file_precision()) converted = t.fp32();
      const std::vector<float>& v = t.in_file_precision() ? converted : t.data;
      out.write(kZeros, static_cast<std::streamsize>(offsets[i] - pos));
      out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
      pos = offsets[i] + v.size() * 4;
    }
    out.write(kZeros, static_cast<std::streamsize>(align_up(pos, kGgufDefaultAlignment) - pos));
    out.flush();
    if (!out) throw std::runtime_error(tmp + ": write failed: " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error(path + ": cannot rename " + tmp + ": " + std::strerror(errno));
  }
}

}  // namespace

void save_gguf_f32(const Checkpoint& cp, const std::string& path) {
  validate_checkpoint(cp);
  Out o;
  o.u32(kGgufMagic);
  o.u32(3);
  const std::vector<std::string> order = tensor_order(cp);
  o.u64(order.size());
  const size_t kv_count_pos = o.bytes().size();
  o.u64(0);  // patched below
  const uint64_t n_kv = write_metadata(o, cp, path);
  std::memcpy(o.bytes().data() + kv_count_pos, &n_kv, 8);
  const std::vector<uint64_t> offsets = write_tensor_infos(o, cp, order);
  write_gguf_file(path, o, cp, order, offsets);
}

}  // namespace qeval::model
