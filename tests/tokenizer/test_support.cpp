// tests/tokenizer/test_support.cpp — data lookup, SHA-256 and a GGUF metadata reader for the tokenizer tests.
#include "tests/tokenizer/test_support.hpp"

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

// ---- SHA-256: FIPS 180-4, section 6.2 (constants: the first 32 bits of the fractional parts of the cube
// roots of the first 64 primes; initial hash: square roots of the first 8 primes).
namespace {
constexpr uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
void block(uint32_t h[8], const uint8_t* p) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; ++i) {
    const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kK[i] + w[i];
    const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
  h[5] += f;
  h[6] += g;
  h[7] += hh;
}
}  // namespace

std::string sha256_hex(const void* data, size_t n) {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  const auto* p = static_cast<const uint8_t*>(data);
  size_t i = 0;
  for (; i + 64 <= n; i += 64) block(h, p + i);
  uint8_t tail[128] = {0};
  const size_t rem = n - i;
  std::memcpy(tail, p + i, rem);
  tail[rem] = 0x80;
  const size_t tail_len = rem + 9 <= 64 ? 64 : 128;
  const uint64_t bits = uint64_t(n) * 8;
  for (int k = 0; k < 8; ++k) tail[tail_len - 1 - k] = uint8_t(bits >> (8 * k));
  for (size_t k = 0; k < tail_len; k += 64) block(h, tail + k);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (uint32_t v : h) {
    for (int k = 28; k >= 0; k -= 4) out += hex[(v >> k) & 15];
  }
  return out;
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
