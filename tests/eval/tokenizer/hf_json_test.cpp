// tests/eval/tokenizer/hf_json_test.cpp — the tokenizer.json loader against HF tokenizers on small files
// (tests/data/tokenizer/toy_*.tokenizer.json and toy_refs.json, written by
// scripts/testdata/make_tokenizer_refs.py): SmolLM2's Digits+ByteLevel pipeline with [a, b] merges and a
// non-special added token; Llama-3's Split + ByteLevel(use_regex=false) with NFC and ignore_merges;
// ByteLevel(add_prefix_space=true) with "a b" merges. Plus the errors for unsupported components.
#include <gtest/gtest.h>

#include <cstdio>

#include "eval/tokenizer/tokenizer.hpp"
#include "eval/tokenizer/utf8.hpp"
#include "tests/eval/tokenizer/test_support.hpp"

namespace qeval::tokenizer {
namespace {

using nlohmann::json;

class HfToy : public ::testing::TestWithParam<const char*> {};

TEST_P(HfToy, IdsEqualHuggingFace) {
  const std::string name = GetParam();
  const auto tok = Tokenizer::from_hf_json_file(test::ref_path(name + ".tokenizer.json"));
  const json refs = test::load_json(test::ref_path("toy_refs.json"));
  const auto& cases = refs["cases"][name];
  ASSERT_GT(cases.size(), 50u);
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>();
    EncodeOptions o;
    o.add_bos = false;  // HF reference: add_special_tokens=False
    EXPECT_EQ(tok.encode(text, o), c["ids"].get<std::vector<int32_t>>()) << name << " on " << json(text).dump();
  }
}

// toy_prefix is left out: ByteLevel(add_prefix_space=true) inserts spaces, so it cannot round-trip.
class HfToyRoundTrip : public ::testing::TestWithParam<const char*> {};

TEST_P(HfToyRoundTrip, DecodeEncodeIsIdentity) {
  const std::string name = GetParam();
  const auto tok = Tokenizer::from_hf_json_file(test::ref_path(name + ".tokenizer.json"));
  const json refs_json =
      test::load_json(test::ref_path("toy_refs.json"));  // a named value: the loop ranges over a member
  for (const auto& c : refs_json["cases"][name]) {
    const std::string text = c["text"].get<std::string>();
    std::string want = text;
    if (name == std::string("toy_llama3")) {
      // NFC normalizes: the round trip gives the NFC form ("e" + U+0301 → "é").
      const std::string e_acute_decomposed = "e\xCC\x81";
      for (size_t p; (p = want.find(e_acute_decomposed)) != std::string::npos;) want.replace(p, 3, "\xC3\xA9");
    }
    EncodeOptions o;
    o.add_bos = false;
    EXPECT_EQ(tok.decode(tok.encode(text, o)), want) << json(text).dump();
  }
}

INSTANTIATE_TEST_SUITE_P(Toys, HfToy, ::testing::Values("toy_digits", "toy_llama3", "toy_prefix"));
INSTANTIATE_TEST_SUITE_P(Toys, HfToyRoundTrip, ::testing::Values("toy_digits", "toy_llama3"));

// The vocabulary and merges of a toy tokenizer.json in GGUF metadata form.
std::map<std::string, json> gguf_from_toy(const std::string& name, const std::string& pre) {
  const auto t = Tokenizer::from_hf_json_file(test::ref_path(name + ".tokenizer.json"));
  const json j = test::load_json(test::ref_path(name + ".tokenizer.json"));
  std::vector<std::string> toks(size_t(t.vocab_size()));
  std::vector<int> types(toks.size(), 1);
  for (int32_t i = 0; i < t.vocab_size(); ++i) {
    toks[size_t(i)] = t.token_text(i);
    types[size_t(i)] = int(t.token_type(i));
  }
  json merges = json::array();
  for (const auto& m : j["model"]["merges"]) merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  return {{"tokenizer.ggml.model", "gpt2"},
          {"tokenizer.ggml.pre", pre},
          {"tokenizer.ggml.tokens", toks},
          {"tokenizer.ggml.token_type", types},
          {"tokenizer.ggml.merges", merges}};
}

TEST(HfJson, ToyMetadataAndGgufEquivalent) {
  const auto d = Tokenizer::from_hf_json_file(test::ref_path("toy_digits.tokenizer.json"));
  EXPECT_EQ(d.pre_tokenizer_name(), "smollm");
  EXPECT_FALSE(d.add_bos());
  const auto l = Tokenizer::from_hf_json_file(test::ref_path("toy_llama3.tokenizer.json"));
  EXPECT_EQ(l.pre_tokenizer_name(), "llama-bpe");
  const json refs = test::load_json(test::ref_path("toy_refs.json"));
  // SmolLM2's pipeline: GGUF pre "smollm" is the same tokenizer (same hash, same ids).
  const auto g = Tokenizer::from_gguf_metadata(gguf_from_toy("toy_digits", "smollm"));
  EXPECT_EQ(g.content_hash(), d.content_hash());
  for (const auto& c : refs["cases"]["toy_digits"]) {
    EXPECT_EQ(g.encode(c["text"].get<std::string>()), c["ids"].get<std::vector<int32_t>>());
  }
  // Llama-3's pipeline: GGUF pre "llama-bpe" implies ignore_merges; GGUF has no normalizer, so only the
  // texts NFC leaves unchanged are compared.
  const auto g3 = Tokenizer::from_gguf_metadata(gguf_from_toy("toy_llama3", "llama-bpe"));
  size_t compared = 0;
  for (const auto& c : refs["cases"]["toy_llama3"]) {
    const std::string text = c["text"].get<std::string>();
    if (detail::nfc(text) != text) continue;
    EXPECT_EQ(g3.encode(text), c["ids"].get<std::vector<int32_t>>()) << json(text).dump();
    ++compared;
  }
  EXPECT_GT(compared, 50u);
}

void expect_hf_error(const json& j, const std::string& needle) {
  try {
    Tokenizer::from_hf_json(j, "bad.json");
    ADD_FAILURE() << "expected an error containing: " << needle;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
  }
}

TEST(HfJson, UnsupportedComponentsAreNamed) {
  const json base = test::load_json(test::ref_path("toy_digits.tokenizer.json"));
  json j = base;
  j["model"]["type"] = "Unigram";
  expect_hf_error(j, "model.type: 'Unigram' is not supported");
  j = base;
  j["model"]["byte_fallback"] = true;
  expect_hf_error(j, "byte_fallback=true with a ByteLevel pre-tokenizer is not supported");
  j = base;
  j["model"]["dropout"] = 0.1;
  expect_hf_error(j, "model.dropout");
  j = base;
  j["model"]["continuing_subword_prefix"] = "##";
  expect_hf_error(j, "model.continuing_subword_prefix");
  j = base;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}};
  expect_hf_error(j, "pre_tokenizer type 'Metaspace' is not supported");
  j = base;
  j["pre_tokenizer"]["pretokenizers"].push_back({{"type", "Digits"}, {"individual_digits", true}});
  expect_hf_error(j, "after ByteLevel is not supported");
  j = base;
  j["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", true}};
  expect_hf_error(j, "has no ByteLevel step");
  j = base;
  j["pre_tokenizer"] = nullptr;
  expect_hf_error(j, "pre_tokenizer: null");
  j = base;
  j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Split"}, {"pattern", {{"Regex", "x"}}}, {"behavior", "Removed"}};
  expect_hf_error(j, "Split behavior 'Removed' is not supported");
  j = base;
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_hf_error(j, "normalizer type 'Lowercase' is not supported");
  j = base;
  j["decoder"] = {{"type", "Metaspace"}};
  expect_hf_error(j, "decoder type 'Metaspace' is not supported");
  j = base;
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  expect_hf_error(j, "post_processor type 'RobertaProcessing' is not supported");
  j = base;
  j["added_tokens"][0]["single_word"] = true;
  expect_hf_error(j, "added_tokens[0].single_word: true is not supported");
}

TEST(HfJson, MalformedStructureIsNamed) {
  const json base = test::load_json(test::ref_path("toy_digits.tokenizer.json"));
  json j = base;
  j.erase("model");
  expect_hf_error(j, "model: missing");
  j = base;
  j["model"]["merges"][5] = json::array({"a"});
  expect_hf_error(j, "model.merges[5]: expected");
  j = base;
  j["model"]["merges"][7] = json::array({"\xC4\xA0", "qqqq"});
  expect_hf_error(j, "model.merges[7]: right part 'qqqq' is not in the vocabulary");
  j = base;
  j["model"]["vocab"]["zzz"] = 5000;
  expect_hf_error(j, "token ids are not dense");
  j = base;
  j["model"]["vocab"]["zzz"] = -3;
  expect_hf_error(j, "expected a non-negative integer id");
  j = base;
  j["model"]["vocab"]["zzz"] = 3;
  expect_hf_error(j, "id 3 is used by two tokens");
  j = base;
  j["model"]["unk_token"] = "<nope>";
  expect_hf_error(j, "model.unk_token: '<nope>' is not in the vocabulary");
  EXPECT_THROW(Tokenizer::from_hf_json(json::array()), std::invalid_argument);
  EXPECT_THROW(Tokenizer::from_hf_json_file("/nonexistent/tokenizer.json"), std::runtime_error);
}

TEST(HfJson, FileThatIsNotJsonIsNamed) {
  // nlohmann throws out_of_range (not parse_error) for 1e99999, and nesting 200,000 deep overflowed the stack in a
  // copy (fuzzing); both must be the loader's documented error.
  const std::string path = ::testing::TempDir() + "/qeval_hf_json_bad.tokenizer.json";
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  for (const std::string& text :
       {std::string(R"({"model": {"type": "BPE", "vocab": {"a": 1e99999}, "merges": []}})"), deep}) {
    {
      std::FILE* f = std::fopen(path.c_str(), "wb");
      ASSERT_NE(f, nullptr);
      std::fputs(text.c_str(), f);
      std::fclose(f);
    }
    try {
      (void)Tokenizer::from_hf_json_file(path);
      ADD_FAILURE() << "expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  std::remove(path.c_str());
}

// SentencePiece-style files (tests/eval/tokenizer/hf_spm_test.cpp): what is still refused names its JSON path
// and the supported list.
TEST(HfJson, SpmStyleUnsupportedStepsNameTheirPath) {
  const json base = test::load_json(test::ref_path("spm_llama2.tokenizer.json"));
  json j = base;
  j["normalizer"]["normalizers"].push_back({{"type", "Lowercase"}});
  expect_hf_error(j, "normalizer.normalizers[2]: normalizer type 'Lowercase' is not supported (supported: Prepend");
  j = base;
  j["normalizer"]["normalizers"][1]["pattern"] = {{"Regex", " +"}};
  expect_hf_error(j, "normalizer.normalizers[1].pattern: only {\"String\": ...} patterns are supported");
  j = base;
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_hf_error(j, "pre_tokenizer: pre_tokenizer type 'Whitespace' is not supported without a ByteLevel step");
  j = base;
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "Isolated"}};
  expect_hf_error(j, "pre_tokenizer.pattern: only {\"String\": ...} patterns are supported without a ByteLevel");
  j = base;
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Merged"}};
  expect_hf_error(j, "pre_tokenizer.behavior: \"Merged\" is not supported (supported: Removed, Isolated");
  j = base;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}, {"prepend_scheme", "first"}};
  expect_hf_error(j, "pre_tokenizer.replacement: only \"\xE2\x96\x81\" is supported");
  j = base;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "sometimes"}};
  expect_hf_error(j, "pre_tokenizer.prepend_scheme: \"sometimes\" is not one of");
  j = base;
  j["decoder"] = nullptr;
  expect_hf_error(j, "decoder: decoder null is not supported for a SentencePiece-style file");
  j = base;
  j["decoder"]["decoders"][3]["start"] = 2;
  expect_hf_error(j, "decoder.decoders[3]: decoder type 'Strip' is not supported");
  j = base;
  j["decoder"]["decoders"].erase(0);
  expect_hf_error(j, "decoder: has no Replace");
  j = base;
  j["added_tokens"][1]["normalized"] = true;
  expect_hf_error(j, "added_tokens[1].normalized: true with a normalizer is not supported");
  j = base;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}};
  expect_hf_error(j, "model.byte_fallback: byte_fallback=true with a ByteLevel pre-tokenizer is not supported");
}

}  // namespace
}  // namespace qeval::tokenizer
