// eval/model/tokens.hpp — the adapter between eval/tokenizer and the protocol: text → token ids + tokenizer hash.
//
// The protocol code (protocol.hpp, ppl.hpp, lambada.hpp) works on token-id vectors and a tokenizer hash string
// only; this file is the one place that knows the tokenizer's API.
// Text is encoded the way llama.cpp's perplexity tool does (common_tokenize(..., add_special = true,
// parse_special = false)): special-token text written in the file is NOT turned into control tokens, and
// no BOS/EOS is added here — the protocol adds BOS itself (BosMode::replace_first).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "eval/model/checkpoint.hpp"
#include "eval/model/ppl.hpp"
#include "eval/model/protocol.hpp"

namespace qeval::tokenizer {
class Tokenizer;
}

namespace qeval::model {

struct TokenSource {
  std::string name;    // e.g. "gguf:<file>" or "tokenizer.json:<file>"
  std::string hash;    // tokenizer content hash ("xxh64:...")
  int64_t bos_id = -1;
  bool add_bos = false;  // the tokenizer's own flag (GGUF tokenizer.ggml.add_bos_token) — resolves bos = auto
  std::function<std::vector<int32_t>(const std::string&)> encode;  // no BOS/EOS, no special parsing
};

TokenSource token_source(const tokenizer::Tokenizer& tok, std::string name);
// The tokenizer that belongs to a checkpoint: GGUF metadata, or tokenizer.json beside a safetensors
// checkpoint (its directory). Throws std::invalid_argument naming the checkpoint when there is none.
TokenSource token_source_for(const Checkpoint& ck);

// Reads a whole file (binary) — the protocol's text.
std::string read_text_file(const std::string& path);

// Checks the protocol's text hash and tokenizer hash (filling it in when the protocol leaves it empty),
// tokenizes the text, builds the windows. `root` resolves relative paths (the project root).
Evaluator make_evaluator(Protocol p, const TokenSource& ts, const std::string& root);

}  // namespace qeval::model
