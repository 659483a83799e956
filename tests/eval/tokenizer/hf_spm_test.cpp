// tests/eval/tokenizer/hf_spm_test.cpp — SentencePiece-style tokenizer.json files (Llama-2 / Mistral / Gemma
// pipelines: Prepend/Replace normalizers, Metaspace, Split on a string with each behavior, BPE with
// byte_fallback and unk) against HF tokenizers'
// ids and decoded text (tests/data/tokenizer/spm_*.tokenizer.json and spm_refs.json, trained and recorded by
// scripts/testdata/make_spm_tokenizer_refs.py with tokenizers 0.23.3). What is refused: hf_json_test.cpp.
#include <gtest/gtest.h>

#include "eval/tokenizer/tokenizer.hpp"
#include "tests/eval/tokenizer/test_support.hpp"

namespace qeval::tokenizer {
namespace {

using nlohmann::json;

const json& refs() {
  static const json r = test::load_json(test::ref_path("spm_refs.json"));
  return r;
}

Tokenizer load(const std::string& name) { return Tokenizer::from_hf_json_file(test::ref_path(name + ".tokenizer.json")); }

class HfSpm : public ::testing::TestWithParam<const char*> {};

TEST_P(HfSpm, IdsEqualHuggingFace) {
  const std::string name = GetParam();
  const auto tok = load(name);
  EXPECT_EQ(tok.model_kind(), ModelKind::kSentencePieceBpe);
  const auto& cases = refs()["cases"][name];
  ASSERT_GT(cases.size(), 40u);
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>();
    EncodeOptions o;
    o.add_bos = false;  // HF: add_special_tokens=False
    EXPECT_EQ(tok.encode(text, o), c["ids"].get<std::vector<int32_t>>()) << name << " on " << json(text).dump();
    // Default options: BOS from the TemplateProcessing post-processor (spm_llama2), as HF's
    // add_special_tokens=True.
    EXPECT_EQ(tok.encode(text), c["ids_with_specials"].get<std::vector<int32_t>>()) << name << " " << json(text).dump();
  }
}

// decode(ids, skip_special) is HF's decode(ids, skip_special_tokens=True) on every reference text. (HF writes
// U+FFFD for <0xNN> runs that are not valid UTF-8, qeval the bytes; every reference decodes to valid UTF-8.)
TEST_P(HfSpm, DecodeEqualsHuggingFace) {
  const std::string name = GetParam();
  const auto tok = load(name);
  DecodeOptions skip;
  skip.skip_special = true;
  for (const auto& c : refs()["cases"][name]) {
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok.decode(ids, skip), c["decoded"].get<std::string>()) << name << " " << c["text"].dump();
  }
}

INSTANTIATE_TEST_SUITE_P(Pipelines, HfSpm,
                         ::testing::Values("spm_llama2", "spm_metaspace", "spm_gemma", "spm_unk", "spm_fuse",
                                           "spm_gemma3", "spm_split", "spm_strip"));

// All of wiki.test.raw (data/): spm_llama2 has no pre-tokenizer, so the whole 1.3 MB fragment is one BPE
// word; spm_fuse splits at every "▁" and writes fused <unk>s. Decode gives the text back where nothing is unk.
class HfSpmWholeFile : public ::testing::TestWithParam<const char*> {};

TEST_P(HfSpmWholeFile, WikiTestEqualsHuggingFace) {
  const std::string name = GetParam();
  const auto text_path = test::find_data_file("wikitext-2-raw/wiki.test.raw");
  if (!text_path) GTEST_SKIP() << "wikitext-2-raw/wiki.test.raw not found";
  const json& ref = refs()["whole_file"][name];
  const std::string text = test::read_file(*text_path);
  ASSERT_EQ(test::sha256_hex(text.data(), text.size()), ref["text_sha256"].get<std::string>())
      << "wiki.test.raw differs from the file the reference was made from";
  const auto tok = load(name);
  EncodeStats st;
  EncodeOptions o;
  o.add_bos = false;  // HF: add_special_tokens=False
  const auto ids = tok.encode(text, o, &st);
  EXPECT_EQ(test::compare_with_reference(ids, ref), "") << name;
  if (st.unknown == 0) EXPECT_EQ(tok.decode(ids, DecodeOptions{true}), text) << name;
}

INSTANTIATE_TEST_SUITE_P(Pipelines, HfSpmWholeFile, ::testing::Values("spm_llama2", "spm_fuse"));

// The spm families' tokenizer.json files (tests/data/families/, written by transformers' LlamaTokenizerFast
// from a SentencePiece tokenizer.model: Metaspace prepend_scheme "first", ByteFallback decoder) against
// transformers' ids (hf_ids) and SentencePiece's own (ids). SentencePiece differs on a text starting with
// a space: its dummy prefix is added always, HF's Metaspace "first" adds none before a "▁" — qeval
// follows the tokenizer.json (HF).
TEST(HfSpmFamilies, IdsEqualTransformersAndSentencePiece) {
  const json refs_json = test::load_json(test::ref_path("../families/tokenizer_refs.json"));
  const json& spm = refs_json["spm"];
  ASSERT_FALSE(spm["families"].empty());
  for (const auto& family : spm["families"]) {
    const auto tok = Tokenizer::from_hf_json_file(test::ref_path("../families/" + family.get<std::string>() +
                                                                 "/tokenizer.json"));
    size_t same_as_spm = 0;
    for (const auto& c : spm["cases"]) {
      const std::string text = c["text"].get<std::string>();
      const auto ids = tok.encode(text);
      EXPECT_EQ(ids, c["hf_ids"].get<std::vector<int32_t>>()) << family << " " << json(text).dump();
      same_as_spm += ids == c["ids"].get<std::vector<int32_t>>();
      // HF's decoder strips one leading space (Strip " ", 1) that Metaspace "first" did not add before a
      // text starting with a space: HF's round trip loses it, and so does qeval's.
      const std::string back = !text.empty() && text[0] == ' ' ? text.substr(1) : text;
      EXPECT_EQ(tok.decode(ids), back) << family << " " << json(text).dump();
    }
    EXPECT_EQ(same_as_spm, spm["cases"].size() - 1) << family << ": only the leading-spaces text differs";
  }
}

// Invalid UTF-8 (HF cannot take it): each invalid byte reaches the byte fallback, so decode gives the bytes
// back. Gemma's pipeline adds no prefix, so the round trip is the identity.
TEST(HfSpmBytes, InvalidUtf8RoundTrips) {
  const auto tok = load("spm_gemma");
  const std::string text = "a\xFF" "b \xC3 \xE2\x82 end\x80";
  EncodeStats st;
  const auto ids = tok.encode(text, EncodeOptions{}, &st);
  EXPECT_EQ(st.unknown, 0u);
  EXPECT_EQ(st.dropped_bytes, 0u);
  EXPECT_EQ(tok.decode(ids), text);
  // 0xFF alone is the byte token <0xFF>.
  EXPECT_EQ(tok.encode("\xFF"), std::vector<int32_t>{*tok.token_id("<0xFF>")});
}

// The pipeline is part of the content hash: spm_llama2 and spm_metaspace have the same vocabulary and
// merges (same training run settings) but split text differently.
TEST(HfSpmBytes, PipelineIsHashed) {
  const json a = test::load_json(test::ref_path("spm_llama2.tokenizer.json"));
  const json b = test::load_json(test::ref_path("spm_metaspace.tokenizer.json"));
  ASSERT_EQ(a["model"], b["model"]);
  EXPECT_NE(load("spm_llama2").content_hash(), load("spm_metaspace").content_hash());
  EXPECT_EQ(load("spm_llama2").pre_tokenizer_name(), "spm");
}

}  // namespace
}  // namespace qeval::tokenizer
