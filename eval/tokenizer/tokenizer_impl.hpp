// eval/tokenizer/tokenizer_impl.hpp — the loaded tokenizer's data (Tokenizer::Impl), shared by the loaders
// (load_*.cpp) and the encoder/decoder (tokenizer.cpp). Internal.
#pragma once

#include <array>
#include <map>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "eval/tokenizer/pretokenizer.hpp"
#include "eval/tokenizer/tokenizer.hpp"

namespace qeval::tokenizer {

namespace detail {

// Merge table of a byte-level BPE: (left id, right id) → (rank, merged id).
struct MergeTable {
  struct Entry {
    int32_t rank;
    int32_t new_id;
  };
  std::unordered_map<uint64_t, Entry> map;
  std::vector<std::pair<int32_t, int32_t>> by_rank;  // for hashing and inspection

  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  const Entry* find(int32_t a, int32_t b) const {
    auto it = map.find(key(a, b));
    return it == map.end() ? nullptr : &it->second;
  }
};

// Applies BPE merges to `ids` in place, exactly as HF tokenizers' Word::merge_all: a min-heap of candidate
// pairs ordered by (rank, position of the left symbol); a popped candidate is applied only if its left
// symbol still exists, has a right neighbour, and that pair still merges to the candidate's id.
void bpe_merge(std::vector<int32_t>& ids, const MergeTable& merges);

// Special/added tokens matched in raw text before pre-tokenization (leftmost, then longest).
class SpecialMatcher {
 public:
  struct Entry {
    std::string text;
    int32_t id;
    bool needs_parse_special;  // control/unknown tokens: only with EncodeOptions::parse_special
    bool lstrip = false;       // tokenizer.json: the match takes the whitespace before it (HF AddedToken)
    bool rstrip = false;       // ... and the whitespace after it
  };
  void add(std::string text, int32_t id, bool needs_parse_special, bool lstrip = false, bool rstrip = false);
  struct Fragment {
    std::string_view text;  // a text fragment (id < 0) or the matched token text
    int32_t id;             // ≥ 0 for a matched token
  };
  std::vector<Fragment> split(std::string_view text, bool parse_special) const;
  bool empty() const { return entries_.empty(); }

 private:
  std::vector<Entry> entries_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // entry indices, longest text first
};

enum class Normalizer { kNone, kNfc };

// The pipeline of a SentencePiece-style tokenizer.json (BPE over characters without a ByteLevel step:
// Llama-2, Mistral, Mixtral, Gemma), with HF tokenizers' semantics (normalizers/prepend.rs, replace.rs,
// pre_tokenizers/metaspace.rs, models/bpe/model.rs merge_word).
struct TextStep {  // one normalizer step, applied to each text fragment between added tokens
  enum Kind { kPrepend, kReplace, kNfc, kNfkc } kind;
  std::string from;  // kReplace: the literal replaced (every occurrence, left to right)
  std::string to;    // kPrepend: the prefix (only for a non-empty fragment); kReplace: the replacement
};
// HF SplitDelimiterBehavior (pre_tokenizers/split.rs, normalizer.rs split).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
struct PreStep {  // one pre-tokenizer step, applied to every piece
  enum Kind { kSplit, kMetaspace } kind;
  // kSplit: the literal (String pattern) and behavior. kMetaspace (replacement "▁" only): spaces → "▁";
  // prepend "▁" unless the piece starts with one — always, only for the piece at the start of the text
  // (first), or never; split cuts before every "▁" (HF MergedWithNext).
  std::string pattern;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;
  bool split = true;
};
struct HfSpm {
  bool on = false;  // this tokenizer came from such a tokenizer.json
  std::vector<TextStep> normalizer;
  std::vector<PreStep> pre;
  bool byte_fallback = false;  // model.byte_fallback: characters not in the vocabulary → <0xNN> tokens
  bool decode_bytes = true;    // decoder has ByteFallback: <0xNN> decode to their byte (else to their text)
  std::string describe() const;  // canonical text for the content hash, e.g. "prepend(▁),replace( →▁)|..."
};

// Splits s at the non-overlapping occurrences of `pattern` (leftmost first), as HF's
// NormalizedString::split with a String pattern; appends the non-empty pieces. Returns whether the first
// piece appended starts at s[0].
bool split_literal(std::string_view s, std::string_view pattern, SplitBehavior behavior,
                   std::vector<std::string>& out);

// Encodes one fragment (text between added tokens) of a SentencePiece-style tokenizer.json tokenizer;
// `at_text_start` when the fragment starts the whole text (Metaspace prepend_scheme "first").
void encode_text_hf_spm(const Tokenizer::Impl& m, std::string_view text, bool at_text_start,
                        std::vector<int32_t>& out, EncodeStats& st);

}  // namespace detail

struct Tokenizer::Impl {
  std::string source;  // where it came from, for messages
  ModelKind kind = ModelKind::kByteLevelBpe;
  std::vector<std::string> tokens;
  std::vector<TokenType> types;
  std::vector<float> scores;                             // SentencePiece only
  std::unordered_map<std::string, int32_t> token_to_id;  // first id for a text that occurs twice

  // Byte-level BPE.
  std::array<int32_t, 256> byte_id{};  // byte → id of its byte symbol, −1 when absent
  detail::MergeTable merges;
  bool ignore_merges = false;    // HF BPE ignore_merges: a piece that is itself a token is emitted whole
  bool unk_for_missing = false;  // HF BPE unk_token set: absent byte symbols → unk_id (else dropped)
  bool fuse_unk = false;
  detail::PreTokenizer pre;
  detail::Normalizer normalizer = detail::Normalizer::kNone;

  // SentencePiece BPE. add_space_prefix: GGUF, encode and decode; tokenizer.json: decode only (its decoder
  // strips the first space, Strip or Metaspace) — encoding follows `hf`.
  bool add_space_prefix = true;
  detail::HfSpm hf;
  std::array<int32_t, 256> spm_byte_id{};  // byte → id of <0xNN>, −1 when absent

  int32_t bos = -1, eos = -1, unk = -1, pad = -1;
  bool add_bos = false, add_eos = false;
  detail::SpecialMatcher specials;
  // tokenizer.json added tokens with lstrip (bit 0) / rstrip (bit 1); finalize() hands them to `specials`.
  std::map<int32_t, uint8_t> added_strip;

  // Builds token_to_id, byte tables and the special-token matcher from tokens/types, and checks the ids.
  // Loaders fill tokens, types, scores, merges (byte-level, via add_merge after finalize), ids and flags.
  void finalize();
  // Adds merge (left, right) with the next rank; throws std::invalid_argument naming `where` if a part or
  // the merged text is not a token.
  void add_merge(const std::string& left, const std::string& right, const std::string& where);
  // Throws std::invalid_argument unless id is −1 or within the vocabulary.
  void check_id(int32_t id, const std::string& what) const;
};

Tokenizer make_tokenizer(std::shared_ptr<Tokenizer::Impl> impl);

}  // namespace qeval::tokenizer
