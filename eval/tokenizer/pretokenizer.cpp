// eval/tokenizer/pretokenizer.cpp — regex split pipeline on PCRE2 (8-bit, UTF + UCP, JIT when available).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "eval/tokenizer/pretokenizer.hpp"

#include <pcre2.h>

#include <cstdint>
#include <stdexcept>

#include "eval/tokenizer/tokenizer.hpp"

namespace qeval::tokenizer::detail {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kDigitPattern = R"(\p{N})";

namespace {
// Oniguruma's \s for UTF-8 subjects (Oniguruma doc/RE): U+0009–U+000D, U+0085 and General_Category
// Zs | Zl | Zp. PCRE2 10.42's \s with PCRE2_UCP is \p{Z} plus U+0009–U+000D: it lacks U+0085 (NEL).
constexpr const char* kOnigSpaceItems = R"(\t\n\x0B\f\r\x{85}\p{Z})";
}  // namespace

std::string onig_to_pcre2(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char d = p[i + 1];
      ++i;
      if (d == 's') {
        out += in_class ? std::string(kOnigSpaceItems) : "[" + std::string(kOnigSpaceItems) + "]";
      } else if (d == 'S') {
        if (in_class) {
          throw std::invalid_argument("tokenizer regex: \\S inside a character class is not supported: " +
                                      std::string(p));
        }
        out += "[^" + std::string(kOnigSpaceItems) + "]";
      } else {
        out += c;
        out += d;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

class Regex {
 public:
  explicit Regex(const std::string& onig_pattern) {
    const std::string pattern = onig_to_pcre2(onig_pattern);
    int err = 0;
    PCRE2_SIZE err_off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err,
                          &err_off, nullptr);
    if (code_ == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw std::invalid_argument("tokenizer regex: PCRE2 cannot compile '" + onig_pattern + "' at offset " +
                                  std::to_string(err_off) + ": " + reinterpret_cast<const char*>(msg));
    }
    // JIT is an optimization only: if this PCRE2 build lacks it, pcre2_match interprets.
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  pcre2_code* code() const { return code_; }

  // Finds the next match in subject[start..]; false when none. `md` from pcre2_match_data_create_from_pattern.
  bool find(std::string_view subject, size_t start, pcre2_match_data* md, size_t& mb, size_t& me) const {
    const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
    // The subject was validated as UTF-8 by the caller (tokenizer.cpp cuts invalid bytes out first).
    int rc = pcre2_match(code_, s, subject.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // A very long run can exhaust the default 32 KiB JIT stack; the interpreter keeps its frames on the heap.
      rc = pcre2_match(code_, s, subject.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw std::runtime_error(std::string("tokenizer regex: PCRE2 match failed: ") +
                               reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    mb = ov[0];
    me = ov[1];
    return true;
  }

 private:
  pcre2_code* code_ = nullptr;
  bool jit_ = false;
};

namespace {
struct MatchData {
  explicit MatchData(const Regex& re) : md(pcre2_match_data_create_from_pattern(re.code(), nullptr)) {
    if (md == nullptr) throw std::bad_alloc();
  }
  ~MatchData() { pcre2_match_data_free(md); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
  pcre2_match_data* md;
};

// Appends the Isolated split of `s` by `re`: matches and the non-empty gaps between them, in order.
void split_isolated(const Regex& re, pcre2_match_data* md, std::string_view s, std::vector<std::string>& out) {
  size_t pos = 0;  // start of the text not yet emitted
  size_t search = 0;
  size_t mb = 0, me = 0;
  while (search <= s.size() && re.find(s, search, md, mb, me)) {
    if (me == mb) {
      // An empty match splits nothing; step over one character (these patterns never match empty, but a
      // tokenizer.json Split pattern might).
      if (mb >= s.size()) break;
      size_t step = 1;
      while (mb + step < s.size() && (static_cast<unsigned char>(s[mb + step]) & 0xC0) == 0x80) ++step;
      search = mb + step;
      continue;
    }
    if (mb > pos) out.emplace_back(s.substr(pos, mb - pos));
    out.emplace_back(s.substr(mb, me - mb));
    pos = search = me;
  }
  if (pos < s.size()) out.emplace_back(s.substr(pos));
}
}  // namespace

namespace {
struct PreAlias {
  const char* gguf;
  const char* pipeline;
};
// llama.cpp's names (src/llama-vocab.cpp) for the three regex sets qeval implements; see the header.
constexpr PreAlias kPreAliases[] = {
    {"gpt-2", "gpt2"},       {"phi-2", "gpt2"},        {"jina-es", "gpt2"},       {"jina-de", "gpt2"},
    {"gigachat", "gpt2"},    {"jina-v2-es", "gpt2"},   {"jina-v2-de", "gpt2"},    {"a.x-4.0", "gpt2"},
    {"mellum", "gpt2"},      {"modern-bert", "gpt2"},  {"exaone4", "gpt2"},       {"gpt2", "gpt2"},
    {"smollm", "smollm"},
    {"llama3", "llama-bpe"}, {"llama-v3", "llama-bpe"}, {"llama-bpe", "llama-bpe"}, {"falcon3", "llama-bpe"},
    {"falcon-h1", "llama-bpe"}, {"pixtral", "llama-bpe"}, {"midm-2.0", "llama-bpe"}, {"lfm2", "llama-bpe"},
    {"jina-v5-nano", "llama-bpe"},
};
}  // namespace

std::string pipeline_for_gguf_pre(std::string_view gguf_pre) {
  for (const PreAlias& a : kPreAliases)
    if (gguf_pre == a.gguf) return a.pipeline;
  return "";
}

std::string gguf_pre_for_pipeline(std::string_view pipeline) {
  if (pipeline == "gpt2") return "gpt-2";
  if (pipeline == "smollm" || pipeline == "llama-bpe") return std::string(pipeline);
  throw std::invalid_argument("tokenizer: no GGUF pre-tokenizer name for pipeline '" + std::string(pipeline) + "'");
}

std::string accepted_gguf_pre_names() {
  std::string out;
  for (const PreAlias& a : kPreAliases) out += (out.empty() ? "" : " ") + std::string(a.gguf);
  return out;
}

PreTokenizer PreTokenizer::named(std::string_view name) {
  PreTokenizer p;
  if (name == "gpt2") {
    p.add_split(kGpt2Pattern);
  } else if (name == "smollm") {
    p.add_split(kDigitPattern);
    p.add_split(kGpt2Pattern);
  } else if (name == "llama-bpe" || name == "llama3") {
    p.add_split(kLlama3Pattern);
  } else {
    throw std::invalid_argument("tokenizer: pre-tokenizer '" + std::string(name) +
                                "' is not supported (supported: gpt2, smollm, llama-bpe)");
  }
  return p;
}

void PreTokenizer::add_split(const std::string& onig_pattern) {
  Step s;
  s.pattern = onig_pattern;
  s.re = std::make_shared<const Regex>(onig_pattern);
  steps_.push_back(std::move(s));
}

void PreTokenizer::add_prefix_space() {
  Step s;
  s.prefix_space = true;
  steps_.push_back(std::move(s));
}

void PreTokenizer::split(std::string_view text, std::vector<std::string>& out) const {
  if (text.empty()) return;
  if (steps_.empty()) {
    out.emplace_back(text);
    return;
  }
  std::vector<std::string> cur, next;
  cur.emplace_back(text);
  for (const Step& step : steps_) {
    next.clear();
    if (step.prefix_space) {
      for (auto& piece : cur) {
        if (piece.empty() || piece[0] != ' ') piece.insert(piece.begin(), ' ');
        next.push_back(std::move(piece));
      }
    } else {
      MatchData md(*step.re);
      for (const auto& piece : cur) split_isolated(*step.re, md.md, piece, next);
    }
    cur.swap(next);
  }
  for (auto& piece : cur) out.push_back(std::move(piece));
}

std::string PreTokenizer::description() const {
  std::string d;
  for (const Step& s : steps_) {
    if (!d.empty()) d += '|';
    d += s.prefix_space ? std::string("prefix_space") : "split(" + s.pattern + ")";
  }
  return d;
}

std::string PreTokenizer::name() const {
  const std::string d = description();
  for (const char* known : {"gpt2", "smollm", "llama-bpe"}) {
    if (named(known).description() == d) return known;
  }
  return d;
}

}  // namespace qeval::tokenizer::detail

namespace qeval::tokenizer {

std::string regex_engine() {
  char version[64] = {0}, unicode[32] = {0};
  uint32_t jit = 0;
  pcre2_config(PCRE2_CONFIG_VERSION, version);
  pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, unicode);
  pcre2_config(PCRE2_CONFIG_JIT, &jit);
  return std::string("PCRE2 ") + version + " (Unicode " + unicode + (jit ? ", JIT)" : ", no JIT)");
}

}  // namespace qeval::tokenizer
