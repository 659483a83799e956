// eval/model/protocol.hpp — the pinned evaluation protocol (configs/protocol-*.json) and its windows.
//
// A protocol says exactly which tokens are scored and how, so two runs — or a run and llama.cpp's
// perplexity tool — measure the same thing:
//   text + SHA-256           the file is checked against the hash before use
//   text_begin_byte          optional (default 0): only the text from this byte on is tokenized and windowed — e.g.
//                            the held-out addresses at the end of the embedded model's training file. It must be a
//                            line start. A calibration text that is the same file is then allowed when it ends
//                            before this byte (make_calibration_windows checks it)
//   tokenizer + hash         ids come from a tokenizer (eval/tokenizer) through an adapter; the protocol
//                            records its hash ("" in a config = take the model's tokenizer and record its
//                            hash in the report; a non-empty value is checked)
//   n_ctx, chunks            non-overlapping windows of n_ctx tokens: window c = stream[c·n_ctx, (c+1)·n_ctx).
//                            n_chunks = −1: all floor(n_tokens / n_ctx); else `n_chunks` windows starting at
//                            first_chunk, every chunk_stride-th (stride > 1 spreads a subset over the text)
//   scoring                  llama.cpp's perplexity convention (examples/perplexity/perplexity.cpp):
//                            first = n_ctx/2; the logits at positions first .. n_ctx−2 predict tokens
//                            first+1 .. n_ctx−1, so each window scores n_ctx − 1 − n_ctx/2 tokens (255 at
//                            n_ctx 512, 1023 at 2048); the first half is context only
//   bos                      "replace_first" (llama.cpp when the model adds BOS): the stream is the text's
//                            ids with BOS prepended once, and each window's first token is replaced by BOS
//                            (the replaced token is never scored: scoring starts at n_ctx/2 + 1);
//                            "none": raw ids, nothing replaced (llama.cpp when add_bos is false);
//                            "auto": what llama.cpp does for the model — replace_first when the tokenizer's
//                            add_bos flag is set (GGUF tokenizer.ggml.add_bos_token), else none; resolved
//                            by make_evaluator() and recorded resolved in reports (SmolLM2: add_bos false → none)
//   dtype                    "fp32" (the reference forward's dtype; the only one implemented)
//   threads, batch           ATen threads and windows per forward. Results were measured identical for
//                            1 and 2 threads and for batch 1 vs 4 (tests/eval/model), but both are pinned
//                            in the protocol so a report says how it was made
//   seed                     recorded; used by subset sampling that is random (none of the default ones)
//   kl_cache                 how the fp reference distribution is stored (ppl.hpp): "u16" + range_nats
//   lambada                  optional LAMBADA section (lambada.hpp)
// Every report embeds to_json() of the protocol actually run (with the hashes filled in).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qeval::model {

enum class BosMode : uint8_t { replace_first, none, auto_ };
const char* to_string(BosMode b);
BosMode parse_bos_mode(const std::string& s);  // throws std::invalid_argument listing the names

struct LambadaProtocol {
  bool enabled = false;
  std::string path;            // "data/lambada/lambada_test.jsonl" (relative to the project root)
  std::string sha256;          // "sha256:<hex>"
  int64_t count = -1;          // −1: every passage; else this many
  int64_t offset = 0;          // first passage used
  int64_t stride = 1;          // every stride-th passage (a fixed, spread subset; e.g. count 500 stride 10)
  bool prepend_bos = false;    // lm-eval's HF models add no BOS for lambada_openai
  int64_t batch = 8;           // passages per forward (right-padded; padding never influences scored logits)
};

struct Protocol {
  static constexpr int kVersion = 1;

  std::string name;
  std::string text;            // path, relative to the project root unless absolute
  std::string text_sha256;     // "sha256:<hex>"
  int64_t text_begin_byte = 0; // the evaluated text starts here (a line start)
  std::string tokenizer;       // description ("model" = the model's own tokenizer)
  std::string tokenizer_hash;  // "" in a config: filled from the tokenizer at run time
  int64_t n_ctx = 512;
  int64_t n_chunks = -1;
  int64_t first_chunk = 0;
  int64_t chunk_stride = 1;
  BosMode bos = BosMode::replace_first;
  std::string dtype = "fp32";
  int threads = 2;
  int64_t batch = 1;
  uint64_t seed = 0;
  std::string kl_cache = "u16";  // the only format: see ppl.hpp
  double kl_range_nats = 40.0;
  LambadaProtocol lambada;
  int version = kVersion;

  nlohmann::json to_json() const;
  // Strict: unknown keys, wrong types and bad values throw std::invalid_argument naming the key.
  static Protocol from_json(const nlohmann::json& j);
  static Protocol load(const std::string& path);  // a JSON file; errors name the file
  // xxh64 (hex) of the canonical JSON dump — the protocol part of cache keys.
  std::string hash() const;
  // Tokens scored per window: n_ctx − 1 − n_ctx/2.
  int64_t scored_per_window() const { return n_ctx - 1 - n_ctx / 2; }
  int64_t first_scored_position() const { return n_ctx / 2; }  // logits position of the first scored token

  // Absolute path of `text` (relative to `root`) after checking its SHA-256; throws std::runtime_error naming
  // the file, the expected and the actual hash (and the fix) on a mismatch or a missing file.
  std::string checked_text_path(const std::string& root) const;
  // The evaluated text: the file from text_begin_byte on (checked as checked_text_path does). Throws
  // std::invalid_argument when text_begin_byte is past the end or not at a line start.
  std::string read_text(const std::string& root) const;
};

// The windows a protocol evaluates, built from the text's token ids.
struct Windows {
  int64_t n_ctx = 0;
  int64_t first = 0;                 // first scored logits position (n_ctx/2)
  std::vector<int64_t> chunk_ids;    // which chunks of the stream
  std::vector<int32_t> tokens;       // [chunk_ids.size(), n_ctx] row-major, BOS substitution applied
  std::vector<int32_t> targets;      // [chunk_ids.size(), n_ctx − 1 − first]: the scored tokens
  int64_t n_stream_tokens = 0;       // length of the full token stream (after the BOS prepend)
  std::string stream_hash;           // xxh64 of the stream ids (int32 little-endian) — catches tokenizer drift

  int64_t n_windows() const { return static_cast<int64_t>(chunk_ids.size()); }
  int64_t scored_per_window() const { return n_ctx - 1 - first; }
  int64_t n_scored() const { return n_windows() * scored_per_window(); }
};

// text_ids: the text's ids from the tokenizer, WITHOUT any BOS (the protocol adds it). bos_id is required
// (≥ 0) for BosMode::replace_first; BosMode::auto_ must be resolved first (make_evaluator does). Throws std::invalid_argument when the text is too short for one window,
// the chunk selection runs past the text, or ids are negative.
Windows make_windows(const Protocol& p, const std::vector<int32_t>& text_ids, int64_t bos_id);

}  // namespace qeval::model
