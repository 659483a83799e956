// eval/tokenizer/bpe_train.hpp — learns a byte-level BPE vocabulary (GPT-2 style) from text and writes it as a
// Hugging Face tokenizer.json that Tokenizer::from_hf_json loads back (and GGUF tokenizer.ggml.* metadata).
//
// Algorithm (Sennrich et al. 2016, byte-level as GPT-2; a fact of the method, no code taken over):
//   1. The text is cut exactly as encode() cuts it: special-token texts are removed, invalid UTF-8 bytes
//      become pieces of their own, valid runs go through the named pre-tokenizer (pretokenizer.hpp). Each
//      distinct piece is a "word" with a frequency; merges never cross a piece boundary.
//   2. The initial vocabulary is the 256 byte symbols: id b is byte b (spelt in GPT-2's byte alphabet,
//      byte_alphabet.hpp), so every byte string is encodable and decode(encode(x)) == x.
//   3. Repeat until the vocabulary holds vocab_size − (number of special tokens) tokens: count every
//      adjacent symbol pair over all words, weighted by word frequency (overlapping occurrences count:
//      "aaa" holds the pair (a, a) twice, as HF's trainer counts); take the pair with the highest count;
//      merge it in every word, left to right, non-overlapping ("aaa" → [aa, a]). The merged token gets the
//      next id, unless its byte string is already a token (two different pairs can spell the same string),
//      in which case the merge is recorded with the existing id and the vocabulary does not grow.
//      Ties (equal counts) go to the pair whose (left bytes, right bytes) is lexicographically smallest,
//      comparing the left parts first as unsigned byte strings, then the right parts. Worked example, the
//      text "aaabdaaabac": (a,a) 4 → Z=aa; then (Z,a) and (a,b) both count 2 and ("a","b") < ("aa","a")
//      because "a" is a prefix of "aa", so Y=ab; then (Z,Y) 2 → X=aaab: "aaab|d|aaab|a|c".
//      Stops early (fewer tokens than asked) when the best pair occurs fewer than min_pair_count times.
//   4. Special tokens (e.g. "<|endoftext|>") get the ids after the learned tokens, in the order given.
// Encoding with the learned merges (lowest rank first, ties leftmost — tokenizer.cpp) reproduces the
// training segmentation of every piece (the greedy left-to-right merge of the trainer is what the
// leftmost-first tie rule does): n_train_tokens counts the tokens of the training text under the final
// merges, and tests compare it with Tokenizer::encode of the same text.
//
// Determinism: the result depends only on the text and the options (words are processed in byte order of
// their text; no hash-map iteration order reaches the output).
// Cost: O(total merges · words containing the merged pair) with incremental pair counts; choosing the best
// pair scans the pair table (~10⁵ pairs) once per merge. The 10.2 MB training text → 2048 tokens in ~1 s,
// 4096 in ~4 s here (pre-tokenization included).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "eval/tokenizer/tokenizer.hpp"

namespace qeval::tokenizer {

struct BpeTrainOptions {
  int32_t vocab_size = 4096;                          // total ids, special tokens included; ≥ 256 + specials
  std::string pre_tokenizer = "smollm";               // a PreTokenizer::named() pipeline: gpt2 or smollm
  std::vector<std::string> special_tokens{"<|endoftext|>"};  // control tokens, ids after the learned ones
  std::string bos_token = "<|endoftext|>";            // one of special_tokens, or "" for none
  std::string eos_token = "<|endoftext|>";            // one of special_tokens, or "" for none
  bool add_bos = true;                                // written as a TemplateProcessing post-processor
  int64_t min_pair_count = 2;                         // a pair seen fewer times is never merged
};

// The learned tokenizer, as data.
struct BpeModel {
  BpeTrainOptions options;
  std::vector<std::string> token_bytes;                // id → the bytes it stands for (learned tokens only)
  std::vector<std::pair<int32_t, int32_t>> merges;     // rank → (left id, right id)
  std::vector<int32_t> merge_result;                   // rank → merged id
  std::vector<int64_t> merge_counts;                   // rank → the pair's count when it was chosen
  int64_t n_train_pieces = 0;                          // pre-tokenizer pieces of the training text
  int64_t n_train_bytes = 0;                           // bytes of the training text (specials removed)
  int64_t n_train_tokens = 0;                          // tokens of the training text under the final merges

  int32_t n_learned() const { return static_cast<int32_t>(token_bytes.size()); }
  int32_t vocab_size() const { return n_learned() + static_cast<int32_t>(options.special_tokens.size()); }
  int32_t special_id(const std::string& text) const;  // −1 when not a special token
  // Token text in GPT-2's byte alphabet (what tokenizer.json / GGUF store).
  std::string token_text(int32_t id) const;

  // Hugging Face tokenizer.json: model BPE (vocab, merges as [left, right] lists), added_tokens (specials),
  // normalizer null, pre_tokenizer = the named pipeline spelt as HF steps (ByteLevel add_prefix_space false),
  // decoder ByteLevel, post_processor TemplateProcessing with the BOS token when add_bos, else ByteLevel.
  nlohmann::json to_hf_json() const;
  void save_hf_json(const std::string& path) const;  // written to path.tmp, then renamed
  // GGUF metadata keys tokenizer.ggml.{model "gpt2", pre, tokens, token_type, merges "left right",
  // bos_token_id, eos_token_id, add_bos_token, add_eos_token} — for save_gguf_f32 via Checkpoint::metadata.
  std::map<std::string, nlohmann::json> gguf_metadata() const;
  // The Tokenizer this model describes (through to_hf_json(), the same path a saved file takes).
  Tokenizer tokenizer() const;
};

class BpeTrainer {
 public:
  // Throws std::invalid_argument for an unknown pre-tokenizer, vocab_size < 256 + specials, empty or
  // duplicate special tokens, or a BOS/EOS that is not one of the special tokens.
  explicit BpeTrainer(BpeTrainOptions options);

  // Adds text to the training corpus (may be called repeatedly; pieces never span two calls).
  void add_text(std::string_view text);
  // Adds one pre-cut piece `count` times (tests, hand examples). The piece is used as given (no
  // pre-tokenization).
  void add_piece(std::string_view piece, int64_t count = 1);

  // Learns the merges. `progress`: print a line every 512 merges to stderr.
  BpeModel train(bool progress = false) const;

  int64_t distinct_pieces() const { return static_cast<int64_t>(counts_.size()); }

 private:
  BpeTrainOptions opt_;
  std::unordered_map<std::string, int64_t> counts_;
  int64_t n_pieces_ = 0, n_bytes_ = 0;
};

}  // namespace qeval::tokenizer
