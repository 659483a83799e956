// eval/model/protocol.cpp — protocol JSON (strict), text hash check, window construction.
#include "eval/model/protocol.hpp"

#include <xxhash.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "eval/model/checkpoint.hpp"  // sha256_file_hex
#include "quant/json_text.hpp"

namespace qeval::model {

const char* to_string(BosMode b) {
  switch (b) {
    case BosMode::replace_first: return "replace_first";
    case BosMode::none: return "none";
    case BosMode::auto_: return "auto";
  }
  return "?";
}

BosMode parse_bos_mode(const std::string& s) {
  if (s == "replace_first") return BosMode::replace_first;
  if (s == "none") return BosMode::none;
  if (s == "auto") return BosMode::auto_;
  throw std::invalid_argument("protocol: bos '" + s + "' unknown (accepted: replace_first, none, auto)");
}

namespace {
std::string hex16(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

template <class T>
T get_as(const nlohmann::json& j, const std::string& key, const char* what) {
  try {
    return j.get<T>();
  } catch (const nlohmann::json::exception&) {
    throw std::invalid_argument("protocol: \"" + key + "\" must be " + what + ", got " + j.dump());
  }
}
int64_t get_int(const nlohmann::json& j, const std::string& key) {
  if (!j.is_number_integer()) throw std::invalid_argument("protocol: \"" + key + "\" must be an integer, got " + j.dump());
  return j.get<int64_t>();
}
}  // namespace

nlohmann::json Protocol::to_json() const {
  nlohmann::json j;
  j["version"] = version;
  j["name"] = name;
  j["text"] = text;
  j["text_sha256"] = text_sha256;
  if (text_begin_byte != 0) j["text_begin_byte"] = text_begin_byte;  // absent = 0: older protocols keep their hash
  j["tokenizer"] = tokenizer;
  j["tokenizer_hash"] = tokenizer_hash;
  j["n_ctx"] = n_ctx;
  j["n_chunks"] = n_chunks;
  j["first_chunk"] = first_chunk;
  j["chunk_stride"] = chunk_stride;
  j["bos"] = to_string(bos);
  j["dtype"] = dtype;
  j["threads"] = threads;
  j["batch"] = batch;
  j["seed"] = seed;
  j["kl_cache"] = {{"format", kl_cache}, {"range_nats", kl_range_nats}};
  if (lambada.enabled) {
    j["lambada"] = {{"path", lambada.path},         {"sha256", lambada.sha256},
                    {"count", lambada.count},       {"offset", lambada.offset},
                    {"stride", lambada.stride},     {"prepend_bos", lambada.prepend_bos},
                    {"batch", lambada.batch}};
  }
  return j;
}

namespace {

// "kl_cache": {"format": "u16", "range_nats": 40}.
void read_kl_cache(const nlohmann::json& v, Protocol& p) {
  if (!v.is_object()) throw std::invalid_argument("protocol: \"kl_cache\" must be {\"format\": \"u16\", \"range_nats\": 40}");
  for (auto c = v.begin(); c != v.end(); ++c) {
    if (c.key() == "format") p.kl_cache = get_as<std::string>(c.value(), "kl_cache.format", "a string");
    else if (c.key() == "range_nats") p.kl_range_nats = get_as<double>(c.value(), "kl_cache.range_nats", "a number");
    else throw std::invalid_argument("protocol: unknown key kl_cache." + c.key() + " (accepted: format, range_nats)");
  }
}

// "lambada": the LAMBADA subset and its batching.
void read_lambada(const nlohmann::json& v, Protocol& p) {
  if (!v.is_object()) throw std::invalid_argument("protocol: \"lambada\" must be an object");
  p.lambada.enabled = true;
  for (auto c = v.begin(); c != v.end(); ++c) {
    const std::string kk = "lambada." + c.key();
    if (c.key() == "path") p.lambada.path = get_as<std::string>(c.value(), kk, "a string");
    else if (c.key() == "sha256") p.lambada.sha256 = get_as<std::string>(c.value(), kk, "a string");
    else if (c.key() == "count") p.lambada.count = get_int(c.value(), kk);
    else if (c.key() == "offset") p.lambada.offset = get_int(c.value(), kk);
    else if (c.key() == "stride") p.lambada.stride = get_int(c.value(), kk);
    else if (c.key() == "prepend_bos") p.lambada.prepend_bos = get_as<bool>(c.value(), kk, "true/false");
    else if (c.key() == "batch") p.lambada.batch = get_int(c.value(), kk);
    else throw std::invalid_argument("protocol: unknown key " + kk +
                                     " (accepted: path, sha256, count, offset, stride, prepend_bos, batch)");
  }
  if (p.lambada.stride < 1 || p.lambada.offset < 0 || p.lambada.batch < 1 || p.lambada.count < -1)
    throw std::invalid_argument("protocol: lambada needs stride ≥ 1, offset ≥ 0, batch ≥ 1, count ≥ −1");
}

// Ranges every field must be in, checked after all keys are read.
void check_ranges(const Protocol& p) {
  if (p.n_ctx < 4) throw std::invalid_argument("protocol: n_ctx must be ≥ 4, got " + std::to_string(p.n_ctx));
  if (p.n_chunks < -1 || p.n_chunks == 0)
    throw std::invalid_argument("protocol: n_chunks must be −1 (all) or ≥ 1, got " + std::to_string(p.n_chunks));
  if (p.text_begin_byte < 0)
    throw std::invalid_argument("protocol: text_begin_byte must be ≥ 0 (a byte offset into the text), got " +
                                std::to_string(p.text_begin_byte));
  if (p.first_chunk < 0 || p.chunk_stride < 1)
    throw std::invalid_argument("protocol: first_chunk must be ≥ 0 and chunk_stride ≥ 1");
  if (p.dtype != "fp32")
    throw std::invalid_argument("protocol: dtype '" + p.dtype + "' unsupported (the reference forward is fp32)");
  if (p.threads < 1) throw std::invalid_argument("protocol: threads must be ≥ 1");
  if (p.batch < 1) throw std::invalid_argument("protocol: batch must be ≥ 1");
  if (p.kl_cache != "u16") throw std::invalid_argument("protocol: kl_cache.format '" + p.kl_cache + "' unknown (accepted: u16)");
  if (!(p.kl_range_nats >= 8.0 && p.kl_range_nats <= 80.0))
    throw std::invalid_argument("protocol: kl_cache.range_nats must be in [8, 80] (default 40)");
}

}  // namespace

Protocol Protocol::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("protocol: expected a JSON object");
  Protocol p;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const nlohmann::json& v = it.value();
    if (k == "version") {
      p.version = static_cast<int>(get_int(v, k));
      if (p.version != kVersion)
        throw std::invalid_argument("protocol: version " + std::to_string(p.version) + " unsupported (this build reads " +
                                    std::to_string(kVersion) + ")");
    } else if (k == "name") p.name = get_as<std::string>(v, k, "a string");
    else if (k == "text") p.text = get_as<std::string>(v, k, "a string");
    else if (k == "text_sha256") p.text_sha256 = get_as<std::string>(v, k, "a string");
    else if (k == "text_begin_byte") p.text_begin_byte = get_int(v, k);
    else if (k == "tokenizer") p.tokenizer = get_as<std::string>(v, k, "a string");
    else if (k == "tokenizer_hash") p.tokenizer_hash = get_as<std::string>(v, k, "a string");
    else if (k == "n_ctx") p.n_ctx = get_int(v, k);
    else if (k == "n_chunks") p.n_chunks = get_int(v, k);
    else if (k == "first_chunk") p.first_chunk = get_int(v, k);
    else if (k == "chunk_stride") p.chunk_stride = get_int(v, k);
    else if (k == "bos") p.bos = parse_bos_mode(get_as<std::string>(v, k, "a string"));
    else if (k == "dtype") p.dtype = get_as<std::string>(v, k, "a string");
    else if (k == "threads") p.threads = static_cast<int>(get_int(v, k));
    else if (k == "batch") p.batch = get_int(v, k);
    else if (k == "seed") p.seed = get_as<uint64_t>(v, k, "a non-negative integer");
    else if (k == "kl_cache") {
      read_kl_cache(v, p);
    } else if (k == "lambada") {
      read_lambada(v, p);
    } else {
      throw std::invalid_argument("protocol: unknown key '" + k +
                                  "' (accepted: version, name, text, text_sha256, text_begin_byte, tokenizer, tokenizer_hash, n_ctx, "
                                  "n_chunks, first_chunk, chunk_stride, bos, dtype, threads, batch, seed, kl_cache, "
                                  "lambada)");
    }
  }
  check_ranges(p);
  return p;
}

Protocol Protocol::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open the protocol file");
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j;
  try {
    j = parse_json_text(ss.str());
  } catch (const std::invalid_argument& e) {  // a syntax error, a number beyond double, nesting too deep
    throw std::invalid_argument(path + ": not valid JSON: " + e.what());
  }
  try {
    return from_json(j);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
}

std::string Protocol::hash() const {
  const std::string s = to_json().dump();  // nlohmann::json objects are key-sorted: canonical
  return hex16(XXH64(s.data(), s.size(), 0));
}

std::string Protocol::checked_text_path(const std::string& root) const {
  if (text.empty()) throw std::invalid_argument("protocol '" + name + "': no text file named");
  const std::string path = (!text.empty() && text[0] == '/') ? text : root + "/" + text;
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("protocol '" + name + "': text file " + path + " not found (the protocol names " + text + ")");
  f.close();
  const std::string got = sha256_file_hex(path);
  if (!text_sha256.empty() && got != text_sha256)
    throw std::runtime_error("protocol '" + name + "': " + path + " has " + got + ", the protocol pins " + text_sha256 +
                             " — a different file; restore it or write a new protocol");
  return path;
}

std::string Protocol::read_text(const std::string& root) const {
  const std::string path = checked_text_path(root);
  std::ifstream f(path, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  std::string t = os.str();
  if (text_begin_byte == 0) return t;
  if (text_begin_byte >= static_cast<int64_t>(t.size()))
    throw std::invalid_argument("protocol '" + name + "': text_begin_byte " + std::to_string(text_begin_byte) +
                                " is past the end of " + path + " (" + std::to_string(t.size()) + " bytes)");
  if (t[static_cast<size_t>(text_begin_byte) - 1] != '\n')
    throw std::invalid_argument("protocol '" + name + "': text_begin_byte " + std::to_string(text_begin_byte) +
                                " is not at a line start of " + path + " (the byte before it is not a newline)");
  return t.substr(static_cast<size_t>(text_begin_byte));
}

Windows make_windows(const Protocol& p, const std::vector<int32_t>& text_ids, int64_t bos_id) {
  if (p.bos == BosMode::auto_)
    throw std::invalid_argument("protocol '" + p.name + "': bos = auto must be resolved from the tokenizer's add_bos flag "
                                "before building windows (make_evaluator does this)");
  std::vector<int32_t> stream;
  stream.reserve(text_ids.size() + 1);
  if (p.bos == BosMode::replace_first) {
    if (bos_id < 0)
      throw std::invalid_argument("protocol '" + p.name + "': bos = replace_first needs the model's BOS id (none known); "
                                  "use bos = none for models without BOS");
    stream.push_back(static_cast<int32_t>(bos_id));
  }
  for (int32_t t : text_ids) {
    if (t < 0) throw std::invalid_argument("protocol: negative token id in the text");
    stream.push_back(t);
  }
  Windows w;
  w.n_ctx = p.n_ctx;
  w.first = p.first_scored_position();
  w.n_stream_tokens = static_cast<int64_t>(stream.size());
  w.stream_hash = hex16(XXH64(stream.data(), stream.size() * sizeof(int32_t), 0));
  const int64_t max_chunks = w.n_stream_tokens / p.n_ctx;
  if (max_chunks < 1)
    throw std::invalid_argument("protocol '" + p.name + "': the text has " + std::to_string(w.n_stream_tokens) +
                                " tokens, fewer than one window of n_ctx = " + std::to_string(p.n_ctx));
  if (p.n_chunks == -1) {
    for (int64_t c = p.first_chunk; c < max_chunks; c += p.chunk_stride) w.chunk_ids.push_back(c);
  } else {
    for (int64_t i = 0; i < p.n_chunks; ++i) {
      const int64_t c = p.first_chunk + i * p.chunk_stride;
      if (c >= max_chunks)
        throw std::invalid_argument("protocol '" + p.name + "': chunk " + std::to_string(c) + " requested but the text has only " +
                                    std::to_string(max_chunks) + " chunks of " + std::to_string(p.n_ctx) + " tokens");
      w.chunk_ids.push_back(c);
    }
  }
  if (w.chunk_ids.empty())
    throw std::invalid_argument("protocol '" + p.name + "': first_chunk " + std::to_string(p.first_chunk) +
                                " is past the last chunk (" + std::to_string(max_chunks - 1) + ")");
  const int64_t S = w.scored_per_window();
  for (int64_t c : w.chunk_ids) {
    const int32_t* src = stream.data() + c * p.n_ctx;
    const size_t at = w.tokens.size();
    w.tokens.insert(w.tokens.end(), src, src + p.n_ctx);
    if (p.bos == BosMode::replace_first) w.tokens[at] = static_cast<int32_t>(bos_id);
    w.targets.insert(w.targets.end(), src + w.first + 1, src + w.first + 1 + S);
  }
  return w;
}

}  // namespace qeval::model
