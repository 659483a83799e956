// eval/tokenizer/tokenizer.hpp — text ↔ token ids for the models qeval evaluates: byte-level BPE (GPT-2,
// SmolLM2, Llama-3) and SentencePiece-style BPE (Llama-2 GGUF vocabularies), loaded from GGUF metadata, a
// Hugging Face tokenizer.json, or GPT-2's encoder.json + vocab.bpe.
//
// What encode() does, in order (the order of HF `tokenizers` and llama.cpp):
//   1. Special/added tokens are matched in the raw text, leftmost-longest (control tokens only when
//      EncodeOptions::parse_special; user-defined tokens always). They become their ids directly.
//   2. Each remaining fragment is cut at invalid UTF-8: every invalid byte becomes a piece of its own
//      (see "Invalid UTF-8" below); valid runs are normalized (tokenizer.json NFC only) and pre-tokenized.
//   3. Pre-tokenizer (byte-level BPE): a pipeline of regex splits, each keeping both the matches and the
//      text between them ("Isolated"), run with PCRE2 (UTF + UCP, JIT when available):
//        "gpt2"      : 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//        "smollm"    : \p{N} (each digit alone; HF Digits(individual_digits=True)), then "gpt2" on each piece
//        "llama-bpe" : (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*
//                      |\s*[\r\n]+|\s+(?!\S)|\s+
//      `\s` means Oniguruma's (HF's regex engine) set, spelled out for PCRE2: [\t\n\v\f\r\x{85}\p{Z}]. PCRE2's
//      own \s under UCP omits U+0085, so the patterns are rewritten before compiling (pretokenizer.cpp).
//      Unicode version: \p{L}/\p{N} follow the Unicode tables of the PCRE2 build (10.42: Unicode 14.0).
//      HF tokenizers 0.23.3 classifies characters new in Unicode 16.0 (e.g. U+1C89) as letters, so characters
//      first assigned in Unicode 15.0–16.0 (e.g. U+1C89, U+A7CB, Todhri U+105C0–105F3, CJK extension I) can
//      split differently: 9,392 code points for "gpt2"/"llama-bpe", 9,405 for "smollm". A probe of every code
//      point U+0000–U+10FFFF in 8 contexts found no difference on any character assigned in Unicode 14.0
//      (regex_engine() reports the version in use; the evaluation protocol should record it).
//   4. Byte-level BPE: each piece's bytes are mapped to GPT-2's printable byte alphabet, then merged by rank
//      (lowest first, ties to the leftmost pair), exactly as HF's BPE model does. SentencePiece-style:
//      spaces become U+2581 "▁" (plus one leading "▁" when add_space_prefix), characters are merged by
//      the score of the merged piece (highest first, ties leftmost), unknown characters fall back to
//      <0xNN> byte tokens. SentencePiece-style tokenizer.json (Llama-2, Mistral, Mixtral, Gemma): the file's
//      normalizer (Prepend, Replace, NFC, NFKC — per fragment between added tokens) and Metaspace, then HF's
//      BPE over characters: merges by rank, characters outside the vocabulary → <0xNN> (byte_fallback) or
//      unk (fuse_unk), as HF tokenizers does (eval/tokenizer/encode_hf_spm.cpp).
//   5. BOS/EOS are added when the options (default: the tokenizer's add_bos/add_eos flags) say so.
//
// Invalid UTF-8 in the text: byte-level BPE handles arbitrary bytes — an invalid byte is its own piece
// and becomes its byte token, so decode(encode(x)) == x for ANY byte string when the vocabulary holds all
// 256 byte symbols (GPT-2 does). Bytes whose symbol the vocabulary lacks (SmolLM2 lacks 21: 0x04, 0x06,
// 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, 0xF5–0xFF) are dropped, as HF (unk_token null) and
// llama.cpp both do, or become unk_id when the tokenizer has one for BPE (tokenizer.json unk_token);
// EncodeStats counts them and missing_bytes() lists them, so callers can refuse such input.
// SentencePiece: invalid bytes become <0xNN> tokens (or unk when absent).
//
// Errors: every malformed or unsupported tokenizer file throws std::invalid_argument (structure: missing
// key, wrong type, length mismatch, id out of range, merge naming a token not in the vocabulary) or
// std::runtime_error (unreadable file) whose what() names the source, the field and the fix. An
// unsupported tokenizer.json component names its type ("pre_tokenizer type 'Metaspace' is not supported").
//
// Thread safety: a Tokenizer is immutable after loading; encode/decode are const and may run concurrently.
// Copies share the loaded data (cheap).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qeval::tokenizer {

// Token kinds, numbered as GGUF's tokenizer.ggml.token_type (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // special: <|endoftext|>, <s>; matched in text only with parse_special
  kUserDefined = 4,  // added non-special tokens; always matched in text
  kUnused = 5,
  kByte = 6,  // SentencePiece byte fallback <0xNN>
};

enum class ModelKind {
  kByteLevelBpe,      // GGUF tokenizer.ggml.model "gpt2"; tokenizer.json BPE with a ByteLevel pre-tokenizer
  kSentencePieceBpe,  // GGUF tokenizer.ggml.model "llama" (Llama-2 style: scores, ▁ spaces, <0xNN> bytes)
};

struct EncodeOptions {
  std::optional<bool> add_bos;  // default: Tokenizer::add_bos()
  std::optional<bool> add_eos;  // default: Tokenizer::add_eos()
  bool parse_special = true;    // match control tokens (e.g. "<|endoftext|>") written in the text
};

struct EncodeStats {
  size_t pieces = 0;         // pre-tokenizer pieces (byte-level) / text fragments (SentencePiece)
  size_t dropped_bytes = 0;  // input bytes whose byte symbol is not in the vocabulary (dropped, see above)
  size_t unknown = 0;        // unk_id emitted
};

struct DecodeOptions {
  bool skip_special = false;  // drop control tokens (BOS/EOS, <|im_start|>, ...) instead of writing their text
};

// "PCRE2 10.42 2022-12-11 (Unicode 14.0.0, JIT)": the regex engine behind the pre-tokenizer, for reports.
std::string regex_engine();

class Tokenizer {
 public:
  // GGUF metadata as produced by eval/model (strings as JSON strings, arrays as JSON arrays, integers as
  // numbers, booleans as booleans or 0/1). Reads tokenizer.ggml.{model, pre, tokens, token_type, scores,
  // merges, bos_token_id, eos_token_id, unknown_token_id, padding_token_id, add_bos_token, add_eos_token,
  // add_space_prefix}. `source` names the file in error messages.
  static Tokenizer from_gguf_metadata(const std::map<std::string, nlohmann::json>& metadata,
                                      const std::string& source = "GGUF metadata");
  // A Hugging Face tokenizer.json, model BPE. Byte-level (a ByteLevel pre-tokenizer step or decoder):
  // normalizer null | NFC; pre_tokenizer ByteLevel | Digits | Split (Regex or String pattern, behavior
  // Isolated) | Sequence of these, with a ByteLevel step; decoder null | ByteLevel. SentencePiece-style
  // (otherwise; model_kind() kSentencePieceBpe; model.byte_fallback, unk_token, fuse_unk honoured):
  // normalizer null | Prepend | Replace (String pattern) | NFC | NFKC | Sequence of these; pre_tokenizer
  // null | Metaspace ("▁", prepend_scheme always/first/never, split) | Split (String pattern, any behavior,
  // invert false) | Sequence of these; decoder Replace("▁", " ") |
  // ByteFallback | Fuse | Strip(" ", 0|1, 0) | Metaspace | Sequence of these; added tokens with
  // normalized=true refused when there is a normalizer. Both: post_processor null | ByteLevel |
  // TemplateProcessing (BOS/EOS only); merges as "a b" strings or [a, b] lists; added tokens with
  // lstrip/rstrip (the match takes the white space before/after it), single_word refused. Anything else is refused
  // with its JSON path and the supported list.
  static Tokenizer from_hf_json(const nlohmann::json& tokenizer_json, const std::string& source = "tokenizer.json");
  static Tokenizer from_hf_json_file(const std::string& path);
  // GPT-2's original files (encoder.json: token → id; vocab.bpe: "#version" line then one merge a line).
  static Tokenizer from_gpt2_files(const std::string& encoder_json_path, const std::string& vocab_bpe_path);

  std::vector<int32_t> encode(std::string_view text) const { return encode(text, EncodeOptions{}); }
  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options, EncodeStats* stats = nullptr) const;
  // Bytes of the concatenated tokens (may be invalid UTF-8 if the ids cut a character). Throws
  // std::invalid_argument for an id outside [0, vocab_size()).
  std::string decode(const std::vector<int32_t>& ids, const DecodeOptions& options = {}) const;
  // The bytes one token stands for (its text for control/user-defined tokens).
  std::string token_bytes(int32_t id) const;

  int32_t vocab_size() const;
  const std::string& token_text(int32_t id) const;  // as stored (byte-level tokens in the Ġ alphabet)
  TokenType token_type(int32_t id) const;
  std::optional<int32_t> token_id(std::string_view token_text) const;
  ModelKind model_kind() const;

  int32_t bos_id() const;  // -1 when the tokenizer has none
  int32_t eos_id() const;
  int32_t unk_id() const;
  int32_t pad_id() const;
  bool add_bos() const;
  bool add_eos() const;

  // "gpt2", "smollm", "llama-bpe" for the known pipelines (also when read from a tokenizer.json that
  // spells one of them), "spm" for SentencePiece, otherwise a canonical description of the pipeline.
  std::string pre_tokenizer_name() const;
  // Bytes 0..255 whose byte symbol the vocabulary lacks (byte-level BPE; empty for GPT-2).
  std::vector<uint8_t> missing_bytes() const;

  // xxHash64 (seed 0) over a canonical serialization: format tag, model kind, normalizer, pre-tokenizer
  // name, then every token (length-prefixed text, type, SentencePiece score) in id order, then every merge
  // (length-prefixed left and right) in rank order. Independent of the file format the tokenizer came from
  // (GPT-2 from encoder.json+vocab.bpe and from the equivalent tokenizer.json hash equal). BOS/EOS handling
  // is not part of it (the evaluation protocol records it separately).
  uint64_t content_hash() const;
  std::string content_hash_hex() const;  // "xxh64:" + 16 lowercase hex digits

  struct Impl;  // eval/tokenizer/tokenizer_impl.hpp

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
  friend Tokenizer make_tokenizer(std::shared_ptr<Impl> impl);
};

}  // namespace qeval::tokenizer
