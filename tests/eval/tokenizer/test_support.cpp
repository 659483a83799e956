// tests/eval/tokenizer/test_support.cpp — data lookup, SHA-256 and a GGUF metadata reader for the tokenizer tests.
#include "tests/eval/tokenizer/test_support.hpp"

#include "eval/model/sha256.hpp"
#include "tests/smollm2_model.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace qeval::tokenizer::test {

std::string ref_path(const std::string& name) {
  return std::string(QEVAL_SOURCE_DIR) + "/tests/data/tokenizer/" + name;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

nlohmann::json load_json(const std::string& path) { return nlohmann::json::parse(read_file(path)); }

static bool exists(const std::string& p) { return std::ifstream(p).good(); }

std::optional<std::string> find_data_file(const std::string& rel) {
  std::vector<std::string> dirs;
  if (const char* d = std::getenv("QEVAL_DATA_DIR")) {
    dirs.emplace_back(d);  // set: the only place looked at (QEVAL_DATA_DIR=/nonexistent exercises the skips)
  } else {
    dirs.push_back(std::string(QEVAL_SOURCE_DIR) + "/data");
    dirs.push_back(std::string(QEVAL_SOURCE_DIR) + "/../shared/data");
  }
  for (const auto& d : dirs) {
    if (exists(d + "/" + rel)) return d + "/" + rel;
  }
  return std::nullopt;
}

std::optional<std::string> find_smollm2_gguf() {
  const std::string p = qeval::test::smollm2_gguf_path();
  if (exists(p)) return p;
  return std::nullopt;
}

// SHA-256: the one implementation (eval/model/sha256.hpp; its own FIPS 180-4 vectors are in tests/eval/model).
std::string sha256_hex(const void* data, size_t n) {
  return qeval::model::sha256_hex(static_cast<const uint8_t*>(data), n);
}

std::string ids_sha256(const std::vector<int32_t>& ids, size_t begin, size_t end) {
  std::vector<uint8_t> le;
  le.reserve((end - begin) * 4);
  for (size_t i = begin; i < end; ++i) {
    const uint32_t v = uint32_t(ids[i]);
    for (int k = 0; k < 4; ++k) le.push_back(uint8_t(v >> (8 * k)));
  }
  return sha256_hex(le.data(), le.size());
}

std::string compare_with_reference(const std::vector<int32_t>& ids, const nlohmann::json& ref) {
  const size_t count = ref["count"].get<size_t>();
  const size_t chunk = ref["chunk"].get<size_t>();
  const auto& chunks = ref["chunk_sha256"];
  std::string msg;
  if (ids.size() != count)
    msg += "count " + std::to_string(ids.size()) + " != reference " + std::to_string(count) + "; ";
  for (size_t c = 0; c < chunks.size(); ++c) {
    const size_t b = c * chunk, e = std::min(ids.size(), b + chunk);
    if (b >= ids.size() || ids_sha256(ids, b, e) != chunks[c].get<std::string>()) {
      msg += "first differing chunk: " + std::to_string(c) + " (ids " + std::to_string(b) + ".." +
             std::to_string(b + chunk) + "); ";
      break;
    }
  }
  const auto head = ref["head"].get<std::vector<int32_t>>();
  for (size_t i = 0; i < head.size(); ++i) {
    if (i >= ids.size() || ids[i] != head[i]) {
      msg += "head differs at " + std::to_string(i) + "; ";
      break;
    }
  }
  if (msg.empty() && ids_sha256(ids, 0, ids.size()) != ref["ids_sha256"].get<std::string>()) msg = "ids_sha256 differs";
  return msg;
}

// ---- GGUF key/value section (ggml docs/gguf.md): magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, then
// n_kv × (string key, u32 type, value). Types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool,
// 8 string (u64 length + bytes), 9 array (u32 type, u64 count, values), 10 u64, 11 i64, 12 f64.
namespace {
struct Cursor {
  const std::string& b;
  size_t pos = 0;
  void need(size_t n) {
    if (n > b.size() - pos) throw std::runtime_error("GGUF metadata truncated at byte " + std::to_string(pos));
  }
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, b.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str() {
    const uint64_t n = get<uint64_t>();
    need(n);
    std::string s = b.substr(pos, n);
    pos += n;
    return s;
  }
  nlohmann::json value(uint32_t type) {
    switch (type) {
      case 0:
        return get<uint8_t>();
      case 1:
        return get<int8_t>();
      case 2:
        return get<uint16_t>();
      case 3:
        return get<int16_t>();
      case 4:
        return get<uint32_t>();
      case 5:
        return get<int32_t>();
      case 6:
        return get<float>();
      case 7:
        return get<uint8_t>() != 0;
      case 8:
        return str();
      case 9: {
        const uint32_t t = get<uint32_t>();
        const uint64_t n = get<uint64_t>();
        if (n > b.size()) throw std::runtime_error("GGUF array too long");
        nlohmann::json a = nlohmann::json::array();
        for (uint64_t i = 0; i < n; ++i) a.push_back(value(t));
        return a;
      }
      case 10:
        return get<uint64_t>();
      case 11:
        return get<int64_t>();
      case 12:
        return get<double>();
      default:
        throw std::runtime_error("GGUF: unknown value type " + std::to_string(type));
    }
  }
};
}  // namespace

std::map<std::string, nlohmann::json> read_gguf_metadata(const std::string& path) {
  // The tokenizer arrays sit at the start of the file; 64 MiB covers any key/value section we read.
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::string head(64u << 20, '\0');
  f.read(head.data(), std::streamsize(head.size()));
  head.resize(size_t(f.gcount()));
  Cursor c{head};
  if (c.get<uint32_t>() != 0x46554747u) throw std::runtime_error(path + ": not a GGUF file");  // "GGUF" LE
  const uint32_t version = c.get<uint32_t>();
  if (version < 2 || version > 3) throw std::runtime_error(path + ": GGUF version " + std::to_string(version));
  c.get<uint64_t>();  // n_tensors
  const uint64_t n_kv = c.get<uint64_t>();
  std::map<std::string, nlohmann::json> md;
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.str();
    const uint32_t type = c.get<uint32_t>();
    md[key] = c.value(type);
  }
  return md;
}

}  // namespace qeval::tokenizer::test
