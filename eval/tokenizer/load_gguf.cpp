// eval/tokenizer/load_gguf.cpp — Tokenizer from GGUF metadata (the tokenizer.ggml.* keys), as the GGUF
// reader in eval/model hands it over: std::map<key, nlohmann::json>.
//
// Key meanings and defaults follow the GGUF specification (ggml docs/gguf.md) and llama.cpp's reading of
// them: tokenizer.ggml.model "gpt2" = byte-level BPE with tokenizer.ggml.merges ("a b", rank = index) and
// the pre-tokenizer named by tokenizer.ggml.pre; "llama" = SentencePiece BPE with tokenizer.ggml.scores,
// add_space_prefix (default true), add_bos_token (default true), BOS 1 / EOS 2 / UNK 0 by default.
// tokenizer.ggml.pre "llama-bpe" also implies HF's ignore_merges (as in Llama-3's tokenizer.json).
#include <stdexcept>

#include "eval/tokenizer/tokenizer.hpp"
#include "eval/tokenizer/tokenizer_impl.hpp"

namespace qeval::tokenizer {

namespace {

using Meta = std::map<std::string, nlohmann::json>;

struct Reader {
  const Meta& md;
  const std::string& src;

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw std::invalid_argument(src + ": " + key + ": " + problem);
  }
  const nlohmann::json* find(const std::string& key) const {
    auto it = md.find(key);
    return it == md.end() ? nullptr : &it->second;
  }
  const nlohmann::json& require(const std::string& key, const std::string& why) const {
    const auto* v = find(key);
    if (v == nullptr) fail(key, "missing (" + why + ")");
    return *v;
  }
  std::string string(const std::string& key, const std::string& why) const {
    const auto& v = require(key, why);
    if (!v.is_string()) fail(key, std::string("expected a string, got ") + v.type_name());
    return v.get<std::string>();
  }
  std::optional<int64_t> integer(const std::string& key) const {
    const auto* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (v->is_number_unsigned()) {
      const uint64_t u = v->get<uint64_t>();
      if (u > uint64_t(INT32_MAX)) fail(key, "value " + std::to_string(u) + " is not a valid token id");
      return int64_t(u);
    }
    if (v->is_number_integer()) return v->get<int64_t>();
    fail(key, std::string("expected an integer, got ") + v->type_name());
  }
  std::optional<bool> boolean(const std::string& key) const {
    const auto* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (v->is_boolean()) return v->get<bool>();
    if (v->is_number_integer() && (v->get<int64_t>() == 0 || v->get<int64_t>() == 1)) return v->get<int64_t>() == 1;
    fail(key, std::string("expected a boolean, got ") + v->dump());
  }
  const nlohmann::json& array(const std::string& key, const std::string& why) const {
    const auto& v = require(key, why);
    if (!v.is_array()) fail(key, std::string("expected an array, got ") + v.type_name());
    return v;
  }
  void same_length(const std::string& key, size_t n, size_t n_tokens) const {
    if (n != n_tokens) {
      fail(key, "has " + std::to_string(n) + " entries but tokenizer.ggml.tokens has " + std::to_string(n_tokens) +
                    " — the arrays must be parallel");
    }
  }
};

// The id stored under `key`, or `dflt` when the key is absent.
int32_t id_or(const Reader& r, const char* key, int64_t dflt) { return int32_t(r.integer(key).value_or(dflt)); }

// tokenizer.ggml.model → the tokenizer kind.
ModelKind read_kind(const Reader& r) {
  const std::string model = r.string("tokenizer.ggml.model", "which tokenizer the model uses");
  if (model == "gpt2") return ModelKind::kByteLevelBpe;
  if (model == "llama") return ModelKind::kSentencePieceBpe;
  r.fail("tokenizer.ggml.model",
         "'" + model + "' is not supported (supported: gpt2 = byte-level BPE, llama = SentencePiece BPE)");
  return ModelKind::kByteLevelBpe;  // not reached: fail() throws
}

// tokenizer.ggml.tokens and the parallel token_type array.
void read_vocab(const Reader& r, Tokenizer::Impl& impl) {
  const auto& tokens = r.array("tokenizer.ggml.tokens", "the vocabulary");
  impl.tokens.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!tokens[i].is_string()) {
      r.fail("tokenizer.ggml.tokens[" + std::to_string(i) + "]",
             std::string("expected a string, got ") + tokens[i].type_name());
    }
    impl.tokens.push_back(tokens[i].get<std::string>());
  }
  if (r.find("tokenizer.ggml.token_type") != nullptr) {
    const auto& types = r.array("tokenizer.ggml.token_type", "");
    r.same_length("tokenizer.ggml.token_type", types.size(), tokens.size());
    impl.types.reserve(types.size());
    for (size_t i = 0; i < types.size(); ++i) {
      const auto& t = types[i];
      if (!t.is_number_integer() || t.get<int64_t>() < 1 || t.get<int64_t>() > 6) {
        r.fail("tokenizer.ggml.token_type[" + std::to_string(i) + "]",
               "expected 1..6 (normal, unknown, control, user-defined, unused, byte), got " + t.dump());
      }
      impl.types.push_back(static_cast<TokenType>(t.get<int32_t>()));
    }
  }
}

// SentencePiece BPE: scores (the merge order) and the special ids with llama.cpp's defaults.
void read_spm(const Reader& r, Tokenizer::Impl& impl, size_t n_tokens) {
  const auto& scores = r.array("tokenizer.ggml.scores", "SentencePiece merges are ordered by piece score");
  r.same_length("tokenizer.ggml.scores", scores.size(), n_tokens);
  impl.scores.reserve(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!scores[i].is_number()) {
      r.fail("tokenizer.ggml.scores[" + std::to_string(i) + "]",
             std::string("expected a number, got ") + scores[i].type_name());
    }
    impl.scores.push_back(scores[i].get<float>());
  }
  impl.add_space_prefix = r.boolean("tokenizer.ggml.add_space_prefix").value_or(true);
  impl.add_bos = r.boolean("tokenizer.ggml.add_bos_token").value_or(true);
  impl.bos = id_or(r, "tokenizer.ggml.bos_token_id", 1);
  impl.eos = id_or(r, "tokenizer.ggml.eos_token_id", 2);
  impl.unk = id_or(r, "tokenizer.ggml.unknown_token_id", 0);
}

// Byte-level BPE: the pre-tokenizer named by tokenizer.ggml.pre and the special ids.
void read_byte_level(const Reader& r, Tokenizer::Impl& impl) {
  const std::string pre =
      r.string("tokenizer.ggml.pre", "names the pre-tokenizer regexes; supported: " + detail::accepted_gguf_pre_names());
  const std::string pipeline = detail::pipeline_for_gguf_pre(pre);  // llama.cpp's aliases (pretokenizer.hpp)
  if (pipeline.empty()) {
    r.fail("tokenizer.ggml.pre", "'" + pre + "' is not supported (supported: " + detail::accepted_gguf_pre_names() + ")");
  }
  impl.pre = detail::PreTokenizer::named(pipeline);
  // Llama-3's tokenizer.json sets BPE ignore_merges (a piece that is itself a token is emitted whole);
  // GGUF has no key for it, and llama.cpp likewise turns it on for this pre-tokenizer.
  impl.ignore_merges = impl.pre.name() == "llama-bpe";
  impl.add_bos = r.boolean("tokenizer.ggml.add_bos_token").value_or(false);
  impl.bos = id_or(r, "tokenizer.ggml.bos_token_id", -1);
  impl.eos = id_or(r, "tokenizer.ggml.eos_token_id", -1);
  impl.unk = id_or(r, "tokenizer.ggml.unknown_token_id", -1);
}

// tokenizer.ggml.merges: "left right", rank = index.
void read_gguf_merges(const Reader& r, Tokenizer::Impl& impl) {
  const auto& merges = r.array("tokenizer.ggml.merges", "byte-level BPE needs its merge list");
  impl.merges.by_rank.reserve(merges.size());
  impl.merges.map.reserve(merges.size() * 2);
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string where = "tokenizer.ggml.merges[" + std::to_string(i) + "]";
    if (!merges[i].is_string()) r.fail(where, std::string("expected a string, got ") + merges[i].type_name());
    const std::string s = merges[i].get<std::string>();
    // "left right"; byte-level token texts never contain a raw space (0x20 is spelt 'Ġ'), so the first
    // space after the first character separates the parts (llama.cpp splits the same way).
    const size_t sp = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
    if (sp == std::string::npos || sp + 1 >= s.size()) r.fail(where, "'" + s + "' is not of the form \"left right\"");
    impl.add_merge(s.substr(0, sp), s.substr(sp + 1), where);
  }
}

}  // namespace

Tokenizer Tokenizer::from_gguf_metadata(const std::map<std::string, nlohmann::json>& md, const std::string& source) {
  Reader r{md, source};
  auto impl = std::make_shared<Impl>();
  impl->source = source;
  impl->kind = read_kind(r);
  read_vocab(r, *impl);
  if (impl->kind == ModelKind::kSentencePieceBpe)
    read_spm(r, *impl, impl->tokens.size());
  else
    read_byte_level(r, *impl);
  impl->add_eos = r.boolean("tokenizer.ggml.add_eos_token").value_or(false);
  impl->pad = id_or(r, "tokenizer.ggml.padding_token_id", -1);
  impl->finalize();
  if (impl->kind == ModelKind::kByteLevelBpe) read_gguf_merges(r, *impl);
  return make_tokenizer(std::move(impl));
}

}  // namespace qeval::tokenizer
