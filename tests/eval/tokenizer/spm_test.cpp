// tests/eval/tokenizer/spm_test.cpp — SentencePiece-style BPE (GGUF tokenizer.ggml.model "llama", Llama-2) on a
// hand-built vocabulary with hand-derived expected ids (no Llama-2 model is available here).
#include <gtest/gtest.h>

#include <cstdio>

#include "eval/tokenizer/tokenizer.hpp"

namespace qeval::tokenizer {
namespace {

using nlohmann::json;

const std::string kSp = "\xE2\x96\x81";  // "▁"

// ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then pieces with scores (higher merges first).
struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int> types;
  int add(const std::string& t, float score, int type = 1) {
    tokens.push_back(t);
    scores.push_back(score);
    types.push_back(type);
    return int(tokens.size()) - 1;
  }
};

Vocab llama_like(bool with_bytes = true) {
  Vocab v;
  v.add("<unk>", 0, 2);
  v.add("<s>", 0, 3);
  v.add("</s>", 0, 3);
  for (int b = 0; b < 256 && with_bytes; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v.add(name, 0, 6);
  }
  // Single characters (low scores: they are never merge results of anything but themselves).
  for (const char* c : {"h", "e", "l", "o", "w", "r", "d", "a", "b"}) v.add(c, -100);
  v.add(kSp, -100);
  // Merge results, in the order they should apply.
  v.add("he", -1);
  v.add("ll", -2);
  v.add("hell", -3);
  v.add("hello", -4);
  v.add(kSp + "hello", -5);
  v.add("or", -6);
  v.add(kSp + "w", -7);
  v.add(kSp + "wor", -8);
  v.add("ld", -9);
  v.add(kSp + "world", -10);
  v.add("aa", -11);
  v.add("<tool>", 0, 4);  // user-defined: always matched in text
  return v;
}

std::map<std::string, json> metadata(const Vocab& v) {
  std::map<std::string, json> md;
  md["tokenizer.ggml.model"] = "llama";
  md["tokenizer.ggml.tokens"] = v.tokens;
  md["tokenizer.ggml.scores"] = v.scores;
  md["tokenizer.ggml.token_type"] = v.types;
  md["tokenizer.ggml.bos_token_id"] = 1;
  md["tokenizer.ggml.eos_token_id"] = 2;
  md["tokenizer.ggml.unknown_token_id"] = 0;
  return md;
}

class Spm : public ::testing::Test {
 protected:
  Spm() : tok(Tokenizer::from_gguf_metadata(metadata(llama_like()), "llama-toy.gguf")) {}
  int32_t id(const std::string& s) const { return tok.token_id(s).value_or(-1); }
  std::vector<int32_t> enc(const std::string& s) const {
    EncodeOptions o;
    o.add_bos = false;
    return tok.encode(s, o);
  }
  Tokenizer tok;
};

TEST_F(Spm, Defaults) {
  EXPECT_EQ(tok.model_kind(), ModelKind::kSentencePieceBpe);
  EXPECT_TRUE(tok.add_bos());  // GGUF default for "llama"
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.pre_tokenizer_name(), "spm");
  EXPECT_EQ(tok.encode("hello").front(), 1);
}

TEST_F(Spm, MergesByScore) {
  // "hello world" → "▁hello▁world". Pairs in score order: he(-1) → ll(-2) → hell(-3) → hello(-4) →
  // ▁hello(-5) → or(-6) → ▁w(-7) → ▁wor(-8) → ld(-9) → ▁world(-10). Result: [▁hello, ▁world].
  EXPECT_EQ(enc("hello world"), (std::vector<int32_t>{id(kSp + "hello"), id(kSp + "world")}));
  // Ties go to the leftmost pair: "aaa" → pairs (a,a)@0 and (a,a)@1 both score −11 → [aa][a];
  // "▁a" is not a piece, so the prefix stays alone: [▁, aa, a].
  EXPECT_EQ(enc("aaa"), (std::vector<int32_t>{id(kSp), id("aa"), id("a")}));
  // Spaces: "a  b" → "▁a▁▁b": no pair of these is a piece → [▁, a, ▁, ▁, b].
  EXPECT_EQ(enc("a  b"), (std::vector<int32_t>{id(kSp), id("a"), id(kSp), id(kSp), id("b")}));
}

TEST_F(Spm, ByteFallbackAndInvalidUtf8) {
  // "é" is not a piece: its UTF-8 bytes C3 A9 become <0xC3> <0xA9> (ids 3 + byte).
  EXPECT_EQ(enc("\xC3\xA9"), (std::vector<int32_t>{id(kSp), 3 + 0xC3, 3 + 0xA9}));
  // An invalid byte is a symbol of its own and falls back to its byte token.
  EXPECT_EQ(enc("a\xFF"), (std::vector<int32_t>{id(kSp), id("a"), 3 + 0xFF}));
  for (const std::string& s : {std::string("hello world"), std::string("x\xC3\xA9y  z\xFF\xFE"), std::string("aaa")}) {
    DecodeOptions d;
    d.skip_special = true;
    EXPECT_EQ(tok.decode(tok.encode(s), d), s);  // with BOS, skipped on decode
    EXPECT_EQ(tok.decode(enc(s)), s);
  }
}

TEST_F(Spm, SpecialTokens) {
  // The dummy "▁" prefix goes only at the very start of the text; after a control token there is none:
  // "<s>hello" → [<s>, hello] (he, ll, hell, hello).
  EXPECT_EQ(enc("<s>hello"), (std::vector<int32_t>{1, id("hello")}));
  EncodeOptions o;
  o.add_bos = false;
  o.parse_special = false;  // "<s>" is then text: ▁ < s > h... with byte fallback for '<', 's', '>'
  EXPECT_EQ(tok.encode("<s>", o), (std::vector<int32_t>{id(kSp), 3 + '<', 3 + 's', 3 + '>'}));
  // User-defined tokens are matched even without parse_special.
  EXPECT_EQ(tok.encode("<tool>", o), std::vector<int32_t>{id("<tool>")});
  EXPECT_EQ(tok.decode({1, id(kSp + "hello"), 2}), "<s>hello</s>");
}

TEST(SpmNoBytes, UnknownCharacterIsUnk) {
  const auto t = Tokenizer::from_gguf_metadata(metadata(llama_like(false)), "llama-toy.gguf");
  EncodeOptions o;
  o.add_bos = false;
  EncodeStats st;
  const auto ids = t.encode("\xC3\xA9", o, &st);  // ▁ é → [▁, <unk>]
  EXPECT_EQ(ids, (std::vector<int32_t>{*t.token_id(kSp), 0}));
  EXPECT_EQ(st.unknown, 1u);
}

TEST(SpmErrors, ScoresAreRequired) {
  auto md = metadata(llama_like());
  md.erase("tokenizer.ggml.scores");
  try {
    Tokenizer::from_gguf_metadata(md, "llama-toy.gguf");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.scores: missing"), std::string::npos) << e.what();
  }
  md = metadata(llama_like());
  md["tokenizer.ggml.scores"][7] = "x";
  EXPECT_THROW(Tokenizer::from_gguf_metadata(md, "llama-toy.gguf"), std::invalid_argument);
}

}  // namespace
}  // namespace qeval::tokenizer
