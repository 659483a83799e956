// tests/eval/tokenizer/unit_test.cpp — building blocks of the tokenizer: GPT-2's byte alphabet, UTF-8 validation,
// the regex translation and pre-tokenizer pieces (against HF tokenizers), the BPE merge order on a
// hand-built vocabulary, special tokens, invalid UTF-8, missing bytes, the content hash, bad input.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "eval/tokenizer/byte_alphabet.hpp"
#include "eval/tokenizer/pretokenizer.hpp"
#include "eval/tokenizer/tokenizer.hpp"
#include "eval/tokenizer/utf8.hpp"
#include "tests/eval/tokenizer/test_support.hpp"

namespace qeval::tokenizer {
namespace {

using nlohmann::json;

// ---- GPT-2 byte alphabet (facts of GPT-2's encoder.py bytes_to_unicode) ----
TEST(ByteAlphabet, PublishedTable) {
  const auto& a = detail::byte_alphabet();
  std::set<uint32_t> cps(a.code_point.begin(), a.code_point.end());
  EXPECT_EQ(cps.size(), 256u) << "the map must be a bijection";
  EXPECT_EQ(a.code_point['A'], uint32_t('A'));
  EXPECT_EQ(a.code_point['!'], uint32_t('!'));
  EXPECT_EQ(a.code_point[0xA1], 0xA1u);
  EXPECT_EQ(a.code_point[0xFF], 0xFFu);
  EXPECT_EQ(a.code_point[0x00], 0x100u);  // first of the 68 remapped bytes
  EXPECT_EQ(a.code_point[' '], 0x120u);   // 'Ġ' — 33rd remapped byte
  EXPECT_EQ(a.code_point['\n'], 0x10Au);  // 'Ċ'
  EXPECT_EQ(a.code_point[0x7F], 0x121u);
  EXPECT_EQ(a.code_point[0xAD], 0x143u);  // last remapped byte
  EXPECT_EQ(a.utf8[' '], "\xC4\xA0");     // UTF-8 of U+0120
  for (int b = 0; b < 256; ++b) EXPECT_EQ(a.byte_of_code_point(a.code_point[b]), b);
  EXPECT_EQ(a.byte_of_code_point(0x144), -1);
  EXPECT_EQ(a.byte_of_code_point(0x20), -1);  // a raw space is not in the alphabet
}

// ---- UTF-8 (Unicode Table 3-7) ----
TEST(Utf8, WellFormedSequences) {
  using detail::is_valid_utf8;
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("abc"));
  EXPECT_TRUE(is_valid_utf8("\xC3\xA9"));           // é
  EXPECT_TRUE(is_valid_utf8("\xE2\x82\xAC"));       // €
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x98\x80"));   // 😀
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));   // U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\x80"));              // lone continuation
  EXPECT_FALSE(is_valid_utf8("\xC0\x80"));          // overlong NUL
  EXPECT_FALSE(is_valid_utf8("\xC1\xBF"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\x80"));      // overlong 3-byte
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate U+D800
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xFF"));
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));  // truncated
  EXPECT_EQ(detail::utf8_decode("\xE2\x82\xAC", 0, 3), 0x20ACu);
  std::string s;
  detail::append_utf8(s, 0x1F600);
  EXPECT_EQ(s, "\xF0\x9F\x98\x80");
}

TEST(Utf8, NfcComposes) {
  EXPECT_EQ(detail::nfc("e\xCC\x81"), "\xC3\xA9");  // e + U+0301 → é (U+00E9)
  EXPECT_EQ(detail::nfc("abc"), "abc");
}

// ---- regex translation ----
TEST(PreTokenizer, OnigSpaceIsSpeltOut) {
  EXPECT_EQ(detail::onig_to_pcre2(R"(\s+)"), R"([\t\n\x0B\f\r\x{85}\p{Z}]+)");
  EXPECT_EQ(detail::onig_to_pcre2(R"([^\s\p{L}])"), R"([^\t\n\x0B\f\r\x{85}\p{Z}\p{L}])");
  EXPECT_EQ(detail::onig_to_pcre2(R"(\s+(?!\S))"), R"([\t\n\x0B\f\r\x{85}\p{Z}]+(?![^\t\n\x0B\f\r\x{85}\p{Z}]))");
  EXPECT_EQ(detail::onig_to_pcre2(R"(\\s)"), R"(\\s)");  // an escaped backslash followed by 's'
  EXPECT_EQ(detail::onig_to_pcre2(R"([]s])"), R"([]s])");
  EXPECT_THROW(detail::onig_to_pcre2(R"([\S])"), std::invalid_argument);
}

TEST(PreTokenizer, RegexEngineIsReported) {
  const std::string e = regex_engine();
  std::printf("regex engine: %s\n", e.c_str());
  EXPECT_EQ(e.rfind("PCRE2 10.", 0), 0u) << e;
  EXPECT_NE(e.find("Unicode "), std::string::npos) << e;
}

TEST(PreTokenizer, UnknownNameAndBadRegex) {
  try {
    detail::PreTokenizer::named("qwen2");
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'qwen2' is not supported"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("smollm"), std::string::npos) << e.what();
  }
  detail::PreTokenizer p;
  EXPECT_THROW(p.add_split("(unclosed"), std::invalid_argument);
}

// The three named pipelines against HF tokenizers' pre_tokenize_str on the tricky strings
// (tests/data/tokenizer/pretokenizer_pieces.json, written by scripts/testdata/make_tokenizer_refs.py).
TEST(PreTokenizer, PiecesEqualHuggingFace) {
  const json ref = test::load_json(test::ref_path("pretokenizer_pieces.json"));
  ASSERT_GT(ref["cases"].size(), 50u);
  size_t checked = 0;
  for (const char* name : {"gpt2", "smollm", "llama-bpe"}) {
    const auto pre = detail::PreTokenizer::named(name);
    EXPECT_EQ(pre.name(), name);
    for (const auto& c : ref["cases"]) {
      const std::string text = c["text"].get<std::string>();
      std::vector<std::string> got;
      pre.split(text, got);
      const auto want = c["pieces"][name].get<std::vector<std::string>>();
      EXPECT_EQ(got, want) << name << " on " << json(text).dump();
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * ref["cases"].size());
}

// ---- hand-built byte-level BPE ----
// Vocabulary: the 256 byte symbols (id = byte value) plus merge results; tokenizer.json form.
json toy_bytelevel_json(const std::vector<std::pair<std::string, std::string>>& merges, bool with_special = true,
                        int missing_byte = -1) {
  const auto& a = detail::byte_alphabet();
  json vocab = json::object();
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    if (b == missing_byte) continue;
    vocab[a.utf8[b]] = next++;
  }
  json m = json::array();
  for (const auto& [l, r] : merges) {
    if (!vocab.contains(l + r)) vocab[l + r] = next++;
    m.push_back(l + " " + r);
  }
  json j;
  j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}};
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  j["decoder"] = {{"type", "ByteLevel"}};
  j["added_tokens"] = json::array();
  if (with_special) {
    j["added_tokens"].push_back({{"id", next++}, {"content", "<|eot|>"}, {"special", true}});
    j["added_tokens"].push_back({{"id", next++}, {"content", "<|eot|>x"}, {"special", false}});
  }
  return j;
}

std::vector<int32_t> ids_of(const Tokenizer& t, const std::vector<std::string>& toks) {
  std::vector<int32_t> out;
  for (const auto& s : toks) {
    auto id = t.token_id(s);
    EXPECT_TRUE(id.has_value()) << s;
    out.push_back(id.value_or(-1));
  }
  return out;
}

TEST(ByteLevelBpe, MergesByRankLeftmostFirst) {
  // Ranks: 0 "a a", 1 "b c", 2 "aa b", 3 "a b". Hand derivation:
  //   "aaa"  : pairs (a,a)@0 r0, (a,a)@1 r0 → leftmost first → [aa][a]; then (aa,a) has no merge → aa a.
  //   "abc"  : (a,b) r3, (b,c) r1 → bc first → a [bc]; (a,bc) no merge → a bc.
  //   "aabc" : (a,a) r0 → aa b c; then (aa,b) r2 vs (b,c) r1 → bc first → aa bc.
  //   "aab"  : aa b → (aa,b) r2 → aab.
  const auto t = Tokenizer::from_hf_json(toy_bytelevel_json({{"a", "a"}, {"b", "c"}, {"aa", "b"}, {"a", "b"}}));
  EXPECT_EQ(t.encode("aaa"), ids_of(t, {"aa", "a"}));
  EXPECT_EQ(t.encode("abc"), ids_of(t, {"a", "bc"}));
  EXPECT_EQ(t.encode("aabc"), ids_of(t, {"aa", "bc"}));
  EXPECT_EQ(t.encode("aab"), ids_of(t, {"aab"}));
  EXPECT_EQ(t.encode("ab"), ids_of(t, {"ab"}));
  // The pre-tokenizer keeps " a" and "a" apart: " aa" → [Ġ, aa]? No: "Ġ a" is not a merge, so Ġ a a → Ġ aa.
  EXPECT_EQ(t.encode(" aa"), ids_of(t, {"\xC4\xA0", "aa"}));
  EXPECT_EQ(t.pre_tokenizer_name(), "gpt2");
  EXPECT_TRUE(t.missing_bytes().empty());
}

TEST(ByteLevelBpe, IgnoreMerges) {
  // Ranks: 0 "b c", 1 "a b", 2 "ab c" (so "abc" is a token). By merges, "abc" → (b,c) first → a bc, and
  // (a, bc) is no merge → [a, bc]. With ignore_merges (Llama-3), the whole piece is a token → [abc].
  json j = toy_bytelevel_json({{"b", "c"}, {"a", "b"}, {"ab", "c"}});
  const auto plain = Tokenizer::from_hf_json(j);
  EXPECT_EQ(plain.encode("abc"), ids_of(plain, {"a", "bc"}));
  j["model"]["ignore_merges"] = true;
  const auto ignore = Tokenizer::from_hf_json(j);
  EXPECT_EQ(ignore.encode("abc"), ids_of(ignore, {"abc"}));
  EXPECT_EQ(ignore.encode("abcabc"), ids_of(ignore, {"a", "bc", "a", "bc"}));  // one piece, not a token
  EXPECT_NE(plain.content_hash(), ignore.content_hash());
}

TEST(ByteLevelBpe, SpecialTokensLeftmostLongest) {
  const auto t = Tokenizer::from_hf_json(toy_bytelevel_json({{"a", "a"}}));
  const int32_t eot = *t.token_id("<|eot|>");
  const int32_t eotx = *t.token_id("<|eot|>x");
  EXPECT_EQ(t.token_type(eot), TokenType::kControl);
  EXPECT_EQ(t.token_type(eotx), TokenType::kUserDefined);
  // "<|eot|>x" is longer than "<|eot|>" at the same position and wins.
  EXPECT_EQ(t.encode("aa<|eot|>xaa<|eot|>"), (std::vector<int32_t>{*t.token_id("aa"), eotx, *t.token_id("aa"), eot}));
  // parse_special=false: the control token is ordinary text, the user-defined one is still matched.
  EncodeOptions o;
  o.parse_special = false;
  const auto plain = t.encode("<|eot|>", o);
  EXPECT_EQ(plain.size(), 7u);  // < | eot | > — seven single bytes, no merges among them
  EXPECT_EQ(t.encode("<|eot|>x", o), std::vector<int32_t>{eotx});
  EXPECT_EQ(t.decode(t.encode("a<|eot|>b")), "a<|eot|>b");
  DecodeOptions skip;
  skip.skip_special = true;
  EXPECT_EQ(t.decode(t.encode("a<|eot|>b"), skip), "ab");
}

TEST(ByteLevelBpe, InvalidUtf8IsByteTokensAndRoundTrips) {
  const auto t = Tokenizer::from_hf_json(toy_bytelevel_json({{"a", "a"}}));
  const auto& alpha = detail::byte_alphabet();
  // "aa\x80aa": the invalid byte 0x80 is its own piece → its byte symbol U+0122 'Ģ' (0x80 is the 36th
  // remapped byte: 33 for 0x00–0x20, one for 0x7F, then 0x80 → U+0100 + 34).
  EXPECT_EQ(alpha.code_point[0x80], 0x122u);
  EncodeStats st;
  const auto ids = t.encode(
      "aa\x80"
      "aa",
      {}, &st);
  EXPECT_EQ(ids, (std::vector<int32_t>{*t.token_id("aa"), *t.token_id(alpha.utf8[0x80]), *t.token_id("aa")}));
  EXPECT_EQ(st.dropped_bytes, 0u);
  // Every byte string round-trips: all 256 single bytes, truncated and overlong sequences, surrogates.
  std::string all;
  for (int b = 0; b < 256; ++b) all += char(b);
  for (const std::string& s : {all, std::string("\xE2\x82"), std::string("x\xC0\x80y"), std::string("\xED\xA0\x80"),
                               std::string("\xF4\x90\x80\x80 z"), std::string("\xFF\xFE"), std::string("a \x80 b")}) {
    EXPECT_EQ(t.decode(t.encode(s)), s) << json::binary(std::vector<uint8_t>(s.begin(), s.end())).dump();
  }
}

TEST(ByteLevelBpe, MissingByteSymbolsAreDroppedAndCounted) {
  // Vocabulary without the symbol of byte 0x04 (SmolLM2 lacks it too): HF (unk_token null) drops it.
  const auto t = Tokenizer::from_hf_json(toy_bytelevel_json({{"a", "a"}}, false, 0x04));
  EXPECT_EQ(t.missing_bytes(), std::vector<uint8_t>{0x04});
  EncodeStats st;
  // "a\x04a" is one piece (0x04 is neither \s, \p{L} nor \p{N}... it joins " ?[^\s\p{L}\p{N}]+" → pieces
  // "a", "\x04", "a"); the dropped byte leaves [a, a] (separate pieces, so no merge).
  const auto ids = t.encode(
      "a\x04"
      "a",
      {}, &st);
  EXPECT_EQ(ids, ids_of(t, {"a", "a"}));
  EXPECT_EQ(st.dropped_bytes, 1u);
  // With an unk_token, the byte becomes unk instead.
  json j = toy_bytelevel_json({{"a", "a"}}, false, 0x04);
  j["model"]["vocab"]["<unk>"] = 255 + 1;  // ids 0..254 bytes, 255 "aa", 256 <unk>
  j["model"]["unk_token"] = "<unk>";
  const auto u = Tokenizer::from_hf_json(j);
  EXPECT_EQ(u.encode("a\x04"
                     "a",
                     {}, &st),
            (std::vector<int32_t>{*u.token_id("a"), 256, *u.token_id("a")}));
  EXPECT_EQ(st.unknown, 1u);
}

TEST(ByteLevelBpe, BosEosOptions) {
  json j = toy_bytelevel_json({{"a", "a"}});
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", json::array({{{"SpecialToken", {{"id", "<|eot|>"}, {"type_id", 0}}}},
                                                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                         {"special_tokens", {{"<|eot|>", {{"id", "<|eot|>"}, {"ids", {256 + 1}}}}}}};
  const auto t = Tokenizer::from_hf_json(j);
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.bos_id(), 257);
  EXPECT_EQ(t.encode("aa"), (std::vector<int32_t>{257, 256}));
  EncodeOptions o;
  o.add_bos = false;
  EXPECT_EQ(t.encode("aa", o), std::vector<int32_t>{256});
  o.add_eos = true;  // no EOS in this tokenizer
  EXPECT_THROW(t.encode("aa", o), std::invalid_argument);
}

TEST(ByteLevelBpe, DecodeRejectsBadIds) {
  const auto t = Tokenizer::from_hf_json(toy_bytelevel_json({{"a", "a"}}));
  try {
    t.decode({1, 2, 100000});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("100000 at position 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(t.decode({-1}), std::invalid_argument);
  EXPECT_THROW(t.token_text(-5), std::invalid_argument);
}

TEST(ContentHash, StableAndSensitive) {
  const auto a = Tokenizer::from_hf_json(toy_bytelevel_json({{"a", "a"}, {"b", "c"}}));
  const auto b = Tokenizer::from_hf_json(toy_bytelevel_json({{"a", "a"}, {"b", "c"}}));
  const auto c = Tokenizer::from_hf_json(toy_bytelevel_json({{"b", "c"}, {"a", "a"}}));  // same set, other ranks
  EXPECT_EQ(a.content_hash(), b.content_hash());
  EXPECT_NE(a.content_hash(), c.content_hash());
  json d = toy_bytelevel_json({{"a", "a"}, {"b", "c"}});
  d["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}},
                                                       {{"type", "ByteLevel"}, {"add_prefix_space", false}}})}};
  const auto e = Tokenizer::from_hf_json(d);
  EXPECT_EQ(e.pre_tokenizer_name(), "smollm");
  EXPECT_NE(a.content_hash(), e.content_hash());
  const std::string hex = a.content_hash_hex();
  ASSERT_EQ(hex.size(), 6u + 16u);
  EXPECT_EQ(hex.substr(0, 6), "xxh64:");
}

// ---- GGUF metadata: errors name the key ----
std::map<std::string, json> gguf_toy() {
  const auto& a = detail::byte_alphabet();
  std::map<std::string, json> md;
  json toks = json::array();
  for (int b = 0; b < 256; ++b) toks.push_back(a.utf8[b]);
  toks.push_back("aa");
  md["tokenizer.ggml.model"] = "gpt2";
  md["tokenizer.ggml.pre"] = "gpt2";
  md["tokenizer.ggml.tokens"] = toks;
  md["tokenizer.ggml.token_type"] = json(std::vector<int>(257, 1));
  md["tokenizer.ggml.merges"] = json::array({"a a"});
  return md;
}

void expect_error(const std::map<std::string, json>& md, const std::string& needle) {
  try {
    Tokenizer::from_gguf_metadata(md, "toy.gguf");
    ADD_FAILURE() << "expected an error containing: " << needle;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("toy.gguf"), std::string::npos) << e.what();
  }
}

// Every name llama.cpp maps to a regex qeval implements loads as that pipeline (src/llama-vocab.cpp); names it
// maps elsewhere, and names it does not know, are refused with the accepted list.
TEST(GgufMetadata, PreTokenizerNamesLlamaCppAccepts) {
  const std::map<std::string, std::string> accepted = {
      {"gpt-2", "gpt2"},     {"phi-2", "gpt2"},     {"gigachat", "gpt2"},       {"modern-bert", "gpt2"},
      {"exaone4", "gpt2"},   {"gpt2", "gpt2"},      {"smollm", "smollm"},       {"llama3", "llama-bpe"},
      {"llama-v3", "llama-bpe"}, {"llama-bpe", "llama-bpe"}, {"falcon3", "llama-bpe"}, {"pixtral", "llama-bpe"}};
  for (const auto& [name, pipeline] : accepted) {
    auto md = gguf_toy();
    md["tokenizer.ggml.pre"] = name;
    const auto t = Tokenizer::from_gguf_metadata(md, "toy.gguf");
    EXPECT_EQ(t.pre_tokenizer_name(), pipeline) << name;
    EXPECT_EQ(detail::pipeline_for_gguf_pre(name), pipeline) << name;
  }
  for (const char* refused : {"qwen2", "default", "starcoder", "roberta-bpe", "jina-v1-en", "GPT-2", ""}) {
    auto md = gguf_toy();
    md["tokenizer.ggml.pre"] = refused;
    expect_error(md, "'" + std::string(refused) + "' is not supported (supported: gpt-2 phi-2");
  }
  // what qeval writes is a name llama.cpp accepts
  EXPECT_EQ(detail::gguf_pre_for_pipeline("gpt2"), "gpt-2");
  EXPECT_EQ(detail::gguf_pre_for_pipeline("smollm"), "smollm");
  EXPECT_EQ(detail::gguf_pre_for_pipeline("llama-bpe"), "llama-bpe");
  EXPECT_THROW(detail::gguf_pre_for_pipeline("qwen2"), std::invalid_argument);
}

TEST(GgufMetadata, ToyLoadsAndBadInputNamesTheKey) {
  const auto t = Tokenizer::from_gguf_metadata(gguf_toy(), "toy.gguf");
  EXPECT_EQ(t.encode("aaa"), (std::vector<int32_t>{256, 'a'}));  // tokens[b] is byte b's symbol
  auto md = gguf_toy();
  md.erase("tokenizer.ggml.model");
  expect_error(md, "tokenizer.ggml.model: missing");
  md = gguf_toy();
  md["tokenizer.ggml.model"] = "bert";
  expect_error(md, "'bert' is not supported");
  md = gguf_toy();
  md["tokenizer.ggml.pre"] = "qwen2";
  expect_error(md, "'qwen2' is not supported");
  md = gguf_toy();
  md.erase("tokenizer.ggml.pre");
  expect_error(md, "tokenizer.ggml.pre: missing");
  md = gguf_toy();
  md["tokenizer.ggml.tokens"][3] = 7;
  expect_error(md, "tokenizer.ggml.tokens[3]: expected a string");
  md = gguf_toy();
  md["tokenizer.ggml.tokens"] = "abc";
  expect_error(md, "tokenizer.ggml.tokens: expected an array");
  md = gguf_toy();
  md["tokenizer.ggml.token_type"] = json(std::vector<int>(10, 1));
  expect_error(md, "has 10 entries but tokenizer.ggml.tokens has 257");
  md = gguf_toy();
  md["tokenizer.ggml.token_type"][5] = 9;
  expect_error(md, "tokenizer.ggml.token_type[5]");
  md = gguf_toy();
  md["tokenizer.ggml.merges"] = json::array({"a a", "a zz"});
  expect_error(md, "tokenizer.ggml.merges[1]: right part 'zz' is not in the vocabulary");
  md = gguf_toy();
  md["tokenizer.ggml.merges"] = json::array({"aa"});
  expect_error(md, "tokenizer.ggml.merges[0]: 'aa' is not of the form");
  md = gguf_toy();
  md.erase("tokenizer.ggml.merges");
  expect_error(md, "tokenizer.ggml.merges: missing");
  md = gguf_toy();
  md["tokenizer.ggml.bos_token_id"] = 1000;
  expect_error(md, "BOS id = 1000 is outside the vocabulary");
  md = gguf_toy();
  md["tokenizer.ggml.bos_token_id"] = "1";
  expect_error(md, "tokenizer.ggml.bos_token_id: expected an integer");
  md = gguf_toy();
  md["tokenizer.ggml.add_bos_token"] = true;
  expect_error(md, "add_bos_token is set but there is no BOS id");
  md = gguf_toy();
  md["tokenizer.ggml.tokens"] = json::array();
  md["tokenizer.ggml.token_type"] = json::array();
  expect_error(md, "the vocabulary is empty");
}

}  // namespace
}  // namespace qeval::tokenizer
