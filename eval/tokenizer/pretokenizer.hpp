// eval/tokenizer/pretokenizer.hpp — the byte-level pre-tokenizer: a pipeline of regex splits (PCRE2, UTF +
// UCP, JIT when available) and prefix-space steps, with the three named pipelines qeval supports
// ("gpt2", "smollm", "llama-bpe"). Internal to eval/tokenizer (and its tests).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qeval::tokenizer::detail {

// The regexes as written in the Hugging Face tokenizer.json files / GPT-2's encoder.py (Oniguruma syntax).
extern const char* const kGpt2Pattern;    // GPT-2 encoder.py = HF ByteLevel(use_regex=True)
extern const char* const kLlama3Pattern;  // Meta-Llama-3 tokenizer.json Split pattern
extern const char* const kDigitPattern;   // HF Digits(individual_digits=True): each \p{N} alone

// Rewrites an Oniguruma pattern for PCRE2: `\s` → Oniguruma's Unicode whitespace set spelt out
// ([\t\n\x0B\f\r\x{85}\p{Z}]; PCRE2's \s under UCP lacks U+0085), `\S` → its complement. Throws
// std::invalid_argument for `\S` inside a character class (not expressible as a class item).
std::string onig_to_pcre2(std::string_view pattern);

// GGUF tokenizer.ggml.pre names. llama.cpp (src/llama-vocab.cpp, llama_vocab::impl::load) maps many names onto
// one regex set; qeval accepts every name that llama.cpp maps to a pipeline qeval implements with no other
// encoding difference (names that also switch on add_sep / escape_whitespaces … are left out):
//   "gpt2"      ← gpt-2 phi-2 jina-es jina-de gigachat jina-v2-es jina-v2-de a.x-4.0 mellum modern-bert exaone4,
//                 and "gpt2" (what qeval's trainer wrote before; llama.cpp refuses it)
//   "smollm"    ← smollm
//   "llama-bpe" ← llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2 jina-v5-nano
// Returns the qeval pipeline name, or "" when the name is none of these.
std::string pipeline_for_gguf_pre(std::string_view gguf_pre);
// The name qeval writes for a pipeline, one llama.cpp accepts: "gpt-2", "smollm", "llama-bpe". Throws
// std::invalid_argument for an unknown pipeline.
std::string gguf_pre_for_pipeline(std::string_view pipeline);
// Every name pipeline_for_gguf_pre() accepts, space-separated (for error messages).
std::string accepted_gguf_pre_names();

class Regex;  // PCRE2 code, shared (immutable after compile)

class PreTokenizer {
 public:
  // "gpt2", "smollm", "llama-bpe" (alias "llama3"). Throws std::invalid_argument naming the supported ones.
  static PreTokenizer named(std::string_view name);

  // A split step: pieces are the matches of `onig_pattern` and the (non-empty) text between them, in order
  // (HF SplitDelimiterBehavior::Isolated). Throws std::invalid_argument if PCRE2 rejects the pattern.
  void add_split(const std::string& onig_pattern);
  // HF ByteLevel(add_prefix_space=True): a space is prepended to every piece not starting with one.
  void add_prefix_space();

  bool empty() const { return steps_.empty(); }
  // Appends the pieces of `text` (valid UTF-8) to `out`. Throws std::runtime_error on a PCRE2 match error.
  void split(std::string_view text, std::vector<std::string>& out) const;

  // Canonical description, e.g. "split(\p{N})|split('s|'t|...)", used for names and the content hash.
  std::string description() const;
  // The known name when the pipeline equals a named one, else description().
  std::string name() const;

 private:
  struct Step {
    bool prefix_space = false;
    std::string pattern;  // as given (Oniguruma syntax)
    std::shared_ptr<const Regex> re;
  };
  std::vector<Step> steps_;
};

}  // namespace qeval::tokenizer::detail
