// eval/model/tokens.cpp — tokenizer adapter: eval/tokenizer → token ids + hash for the protocol.
#include "eval/model/tokens.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>

#include "eval/tokenizer/tokenizer.hpp"

namespace qeval::model {

namespace {
// File name without directories: names in protocols/reports must not depend on where a model lives.
std::string base_name(const std::string& p) {
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}
}  // namespace

TokenSource token_source(const tokenizer::Tokenizer& tok, std::string name) {
  TokenSource ts;
  ts.name = std::move(name);
  ts.hash = tok.content_hash_hex();
  ts.bos_id = tok.bos_id();
  ts.add_bos = tok.add_bos();
  ts.encode = [tok](const std::string& text) {
    tokenizer::EncodeOptions o;
    o.add_bos = false;
    o.add_eos = false;
    o.parse_special = false;
    return tok.encode(text, o);
  };
  return ts;
}

TokenSource token_source_for(const Checkpoint& ck) {
  if (ck.config.source == "gguf") {
    auto t = tokenizer::Tokenizer::from_gguf_metadata(ck.metadata, ck.path);
    TokenSource ts = token_source(t, "gguf:" + base_name(ck.path));
    if (ts.bos_id < 0) ts.bos_id = ck.config.bos_id;
    return ts;
  }
  // safetensors: tokenizer.json in the checkpoint's directory.
  std::string dir = ck.path;
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    const size_t slash = dir.rfind('/');
    dir = slash == std::string::npos ? "." : dir.substr(0, slash);
  }
  const std::string tj = dir + "/tokenizer.json";
  if (::stat(tj.c_str(), &st) != 0)
    throw std::invalid_argument(ck.path + ": no tokenizer for this checkpoint (expected " + tj +
                                "); pass a TokenSource built from the right tokenizer");
  auto t = tokenizer::Tokenizer::from_hf_json_file(tj);
  TokenSource ts = token_source(t, "tokenizer.json:" + base_name(dir));
  if (ts.bos_id < 0) ts.bos_id = ck.config.bos_id;
  return ts;
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open");
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

Evaluator make_evaluator(Protocol p, const TokenSource& ts, const std::string& root) {
  if (!p.tokenizer_hash.empty() && p.tokenizer_hash != ts.hash)
    throw std::invalid_argument("protocol '" + p.name + "' pins tokenizer " + p.tokenizer_hash + ", the model's (" +
                                ts.name + ") is " + ts.hash + " — use the protocol's tokenizer or a protocol for this one");
  p.tokenizer_hash = ts.hash;
  if (p.bos == BosMode::auto_) p.bos = ts.add_bos ? BosMode::replace_first : BosMode::none;
  if (p.tokenizer.empty() || p.tokenizer == "model") p.tokenizer = ts.name;
  const std::vector<int32_t> ids = ts.encode(p.read_text(root));
  Windows w = make_windows(p, ids, ts.bos_id);
  return Evaluator(std::move(p), std::move(w));
}

}  // namespace qeval::model
