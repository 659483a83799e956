// tests/eval/model/test_util.hpp — shared helpers of the checkpoint tests: fixture paths, expected values, a raw GGUF builder.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/model/checkpoint.hpp"
#include "eval/model/gguf.hpp"

namespace qeval::model::test {

inline std::string data_dir() { return std::string(QEVAL_SOURCE_DIR) + "/tests/data"; }
inline std::string gguf_fixture(const std::string& name) { return data_dir() + "/gguf/" + name; }
inline std::string st_fixture(const std::string& name) { return data_dir() + "/safetensors/" + name; }

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("test fixture missing: " + path + " (run scripts/testdata/make_gguf_fixtures.py)");
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("test fixture missing: " + path);
  return nlohmann::json::parse(in);
}

// A fresh directory under the system temp dir, removed at scope exit.
class TempDir {
 public:
  TempDir() {
    const auto base = std::filesystem::temp_directory_path();
    for (int i = 0;; ++i) {
      path_ = base / ("qeval_model_test_" + std::to_string(::getpid()) + "_" + std::to_string(i));
      if (std::filesystem::create_directory(path_)) break;
    }
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path(const std::string& name = "") const { return name.empty() ? path_.string() : (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Expected tensors written by make_gguf_fixtures.py: a JSON index + one raw float32 blob.
struct ExpectedTensor {
  std::string name, type;
  std::vector<int64_t> shape;
  std::vector<float> values;
};
inline std::map<std::string, ExpectedTensor> load_expected(const std::string& json_path, nlohmann::json* doc_out = nullptr) {
  const nlohmann::json doc = read_json(json_path);
  const std::string dir = std::filesystem::path(json_path).parent_path().string();
  const std::vector<uint8_t> raw = read_bytes(dir + "/" + doc["values_file"].get<std::string>());
  std::map<std::string, ExpectedTensor> out;
  for (const auto& t : doc["tensors"]) {
    ExpectedTensor e;
    e.name = t["name"];
    e.type = t["type"];
    e.shape = t["shape"].get<std::vector<int64_t>>();
    const size_t off = t["offset"], n = t["count"];
    e.values.resize(n);
    std::memcpy(e.values.data(), raw.data() + off * 4, n * 4);
    out[e.name] = e;
  }
  if (doc_out) *doc_out = doc;
  return out;
}

// Bitwise float equality that treats +0/−0 as different (the dequantizers must reproduce the sign of zero too).
// Shape of a little-endian float32 C-order .npy file (format 1.0/2.0); empty when it is not one.
inline std::vector<int64_t> npy_f32_shape(const std::vector<uint8_t>& b, size_t* data_offset) {
  if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0) return {};
  const bool v1 = b[6] == 1;
  const size_t len = v1 ? (b[8] | b[9] << 8) : (b[8] | b[9] << 8 | b[10] << 16 | static_cast<size_t>(b[11]) << 24);
  const size_t start = v1 ? 10 : 12;
  if (start + len > b.size()) return {};
  const std::string h(reinterpret_cast<const char*>(b.data()) + start, len);
  if (h.find("'descr': '<f4'") == std::string::npos || h.find("'fortran_order': False") == std::string::npos) return {};
  const size_t open = h.find("'shape': (");
  const size_t close = open == std::string::npos ? open : h.find(')', open);
  if (close == std::string::npos) return {};
  std::vector<int64_t> shape;
  int64_t v = -1;
  for (size_t i = open + 10; i <= close; ++i) {  // "2, 24, 512" → {2, 24, 512}
    if (h[i] >= '0' && h[i] <= '9') {
      v = (v < 0 ? 0 : v * 10) + (h[i] - '0');
    } else if (v >= 0) {
      shape.push_back(v);
      v = -1;
    }
  }
  *data_offset = start + len;
  return shape;
}

inline bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// ---------------------------------------------------------------------------------------------------------
// GgufBuilder: writes GGUF bytes field by field, so tests can produce valid files and precisely corrupted ones.
// Every field's byte position is recorded in `pos` ("header.version", "kv.<key>.type", "ti.<name>.offset", …).
class GgufBuilder {
 public:
  uint32_t magic = kGgufMagic;
  uint32_t version = 3;
  uint64_t alignment = 32;  // layout alignment (write general.alignment yourself to change what readers use)

  void kv_raw(const std::string& key, uint32_t type, const std::vector<uint8_t>& value) { kvs_.push_back({key, type, value}); }
  void kv_u32(const std::string& key, uint32_t v) { kv_raw(key, 4, le(v)); }
  void kv_i32(const std::string& key, int32_t v) { kv_raw(key, 5, le(v)); }
  void kv_f32(const std::string& key, float v) { kv_raw(key, 6, le(v)); }
  void kv_bool(const std::string& key, uint8_t v) { kv_raw(key, 7, {v}); }
  void kv_str(const std::string& key, const std::string& v) { kv_raw(key, 8, str(v)); }
  void kv_str_array(const std::string& key, const std::vector<std::string>& v) {
    std::vector<uint8_t> b = le(uint32_t{8});
    append(b, le(uint64_t{v.size()}));
    for (const auto& s : v) append(b, str(s));
    kv_raw(key, 9, b);
  }

  // A tensor with explicit GGUF ne[] (innermost first), ggml type id and raw data; offset auto-assigned
  // (aligned) unless given.
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::vector<uint8_t> data,
              std::optional<uint64_t> offset = std::nullopt) {
    tensors_.push_back({name, std::move(ne), type, std::move(data), offset});
  }
  void tensor_f32(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& v) {
    std::vector<uint64_t> ne(shape.rbegin(), shape.rend());
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    tensor(name, ne, 0, b);
  }
  bool remove_tensor(const std::string& name) {
    for (auto it = tensors_.begin(); it != tensors_.end(); ++it)
      if (it->name == name) return tensors_.erase(it), true;
    return false;
  }
  bool remove_kv(const std::string& key) {
    for (auto it = kvs_.begin(); it != kvs_.end(); ++it)
      if (it->key == key) return kvs_.erase(it), true;
    return false;
  }

  std::vector<uint8_t> build() {
    pos.clear();
    std::vector<uint8_t> b;
    mark(b, "header.magic"), append(b, le(magic));
    mark(b, "header.version"), append(b, le(version));
    mark(b, "header.tensor_count"), append(b, le(uint64_t{tensors_.size()}));
    mark(b, "header.kv_count"), append(b, le(uint64_t{kvs_.size()}));
    for (const auto& k : kvs_) {
      mark(b, "kv." + k.key + ".key"), append(b, str(k.key));
      mark(b, "kv." + k.key + ".type"), append(b, le(k.type));
      mark(b, "kv." + k.key + ".value"), append(b, k.value);
    }
    uint64_t off = 0;
    std::vector<uint64_t> offsets;
    for (const auto& t : tensors_) {
      const uint64_t o = t.offset ? *t.offset : off;
      offsets.push_back(o);
      off = std::max(off, (o + t.data.size() + alignment - 1) / alignment * alignment);
      mark(b, "ti." + t.name + ".name"), append(b, str(t.name));
      mark(b, "ti." + t.name + ".n_dims"), append(b, le(static_cast<uint32_t>(t.ne.size())));
      mark(b, "ti." + t.name + ".ne");
      for (uint64_t x : t.ne) append(b, le(x));
      mark(b, "ti." + t.name + ".type"), append(b, le(t.type));
      mark(b, "ti." + t.name + ".offset"), append(b, le(o));
    }
    mark(b, "header.end");
    b.resize((b.size() + alignment - 1) / alignment * alignment, 0);
    data_offset = b.size();
    pos["data"] = data_offset;
    data_end = data_offset;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      if (tensors_[i].offset) continue;  // explicit offsets: caller decides; data not written
      const uint64_t o = data_offset + offsets[i];
      if (b.size() < o) b.resize(o, 0);
      b.insert(b.end(), tensors_[i].data.begin(), tensors_[i].data.end());
      data_end = std::max<uint64_t>(data_end, b.size());
      pos["data." + tensors_[i].name] = o;
    }
    b.resize((b.size() + alignment - 1) / alignment * alignment, 0);  // trailing padding, like gguf-py
    return b;
  }

  std::map<std::string, size_t> pos;  // filled by build()
  size_t data_offset = 0;
  size_t data_end = 0;  // end of the last tensor's bytes (before trailing padding)

  template <class T>
  static std::vector<uint8_t> le(T v) {
    std::vector<uint8_t> b(sizeof(T));
    std::memcpy(b.data(), &v, sizeof(T));
    return b;
  }
  static std::vector<uint8_t> str(const std::string& s) {
    // resize + memcpy rather than insert: g++ 12 -O2 reports a false -Warray-bounds on the insert form
    std::vector<uint8_t> b(8 + s.size());
    const uint64_t n = s.size();
    std::memcpy(b.data(), &n, 8);
    if (!s.empty()) std::memcpy(b.data() + 8, s.data(), s.size());
    return b;
  }
  static void append(std::vector<uint8_t>& b, const std::vector<uint8_t>& x) { b.insert(b.end(), x.begin(), x.end()); }

 private:
  struct Kv {
    std::string key;
    uint32_t type;
    std::vector<uint8_t> value;
  };
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::vector<uint8_t> data;
    std::optional<uint64_t> offset;
  };
  void mark(const std::vector<uint8_t>& b, const std::string& field) { pos[field] = b.size(); }
  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
};

template <class T>
inline void patch(std::vector<uint8_t>& b, size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof(T));
}

// A minimal valid Llama GGUF built field by field: 1 layer, d_model 8, 2 heads (head_dim 4), 1 kv head,
// d_ff 16, vocab 6, F32 weights with values (k % 13 − 6) / 16 (exact in float32), untied unless `tied`; its keys
// under `arch` (another architecture's own tensors, e.g. Gemma's norms, are the caller's to add).
inline GgufBuilder tiny_model_builder(bool tied = false, const std::string& arch = "llama") {
  GgufBuilder g;
  const std::string p = arch + ".";
  g.kv_str("general.architecture", arch);
  g.kv_u32(p + "block_count", 1);
  g.kv_u32(p + "context_length", 64);
  g.kv_u32(p + "embedding_length", 8);
  g.kv_u32(p + "feed_forward_length", 16);
  g.kv_u32(p + "attention.head_count", 2);
  g.kv_u32(p + "attention.head_count_kv", 1);
  g.kv_f32(p + "rope.freq_base", 10000.0f);
  g.kv_f32(p + "attention.layer_norm_rms_epsilon", 1e-5f);
  g.kv_str_array("tokenizer.ggml.tokens", {"a", "b", "c", "d", "e", "f"});
  g.kv_u32("tokenizer.ggml.bos_token_id", 1);
  int k = 0;
  auto vals = [&](int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = static_cast<float>((k++ % 13) - 6) / 16.0f;
    return v;
  };
  g.tensor_f32("token_embd.weight", {6, 8}, vals(48));
  g.tensor_f32("blk.0.attn_norm.weight", {8}, vals(8));
  g.tensor_f32("blk.0.attn_q.weight", {8, 8}, vals(64));
  g.tensor_f32("blk.0.attn_k.weight", {4, 8}, vals(32));
  g.tensor_f32("blk.0.attn_v.weight", {4, 8}, vals(32));
  g.tensor_f32("blk.0.attn_output.weight", {8, 8}, vals(64));
  g.tensor_f32("blk.0.ffn_norm.weight", {8}, vals(8));
  g.tensor_f32("blk.0.ffn_gate.weight", {16, 8}, vals(128));
  g.tensor_f32("blk.0.ffn_up.weight", {16, 8}, vals(128));
  g.tensor_f32("blk.0.ffn_down.weight", {8, 16}, vals(128));
  g.tensor_f32("output_norm.weight", {8}, vals(8));
  if (!tied) g.tensor_f32("output.weight", {6, 8}, vals(48));
  return g;
}

}  // namespace qeval::model::test
