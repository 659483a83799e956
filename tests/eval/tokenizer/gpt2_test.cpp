// tests/eval/tokenizer/gpt2_test.cpp — GPT-2's tokenizer (../shared/data/gpt2-bpe) against HF tokenizers on the
// whole of wiki.test.raw and on the tricky strings (references: tests/data/tokenizer/gpt2_refs.json), the
// round trip on the whole file, arbitrary bytes, and the equivalence of the encoder.json+vocab.bpe and
// tokenizer.json loaders. Skips with a message when the shared data is absent.
#include <gtest/gtest.h>

#include <chrono>

#include "eval/tokenizer/tokenizer.hpp"
#include "tests/eval/tokenizer/test_support.hpp"

namespace qeval::tokenizer {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Gpt2Files {
  std::string encoder, vocab;
};

std::optional<Gpt2Files> gpt2_files() {
  auto e = test::find_data_file("gpt2-bpe/encoder.json");
  auto v = test::find_data_file("gpt2-bpe/vocab.bpe");
  if (!e || !v) return std::nullopt;
  return Gpt2Files{*e, *v};
}

#define REQUIRE_GPT2(files)                                                                           \
  const auto files = gpt2_files();                                                                    \
  if (!files)                                                                                         \
  GTEST_SKIP() << "GPT-2 BPE files (gpt2-bpe/encoder.json, vocab.bpe) not found in $QEVAL_DATA_DIR, " \
                  "<repo>/data or <repo>/../shared/data"

TEST(Gpt2, DataMatchesTheReferenceFiles) {
  REQUIRE_GPT2(files);
  const json ref = test::load_json(test::ref_path("gpt2_refs.json"));
  const std::string enc = test::read_file(files->encoder), bpe = test::read_file(files->vocab);
  EXPECT_EQ(test::sha256_hex(enc.data(), enc.size()), ref["sources"]["encoder.json"].get<std::string>());
  EXPECT_EQ(test::sha256_hex(bpe.data(), bpe.size()), ref["sources"]["vocab.bpe"].get<std::string>());
  // SHA-256 known answer (FIPS 180-2 appendix B.1) for the test's own hash.
  EXPECT_EQ(test::sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Gpt2, WholeWikiTestEqualsHuggingFace) {
  REQUIRE_GPT2(files);
  const auto text_path = test::find_data_file("wikitext-2-raw/wiki.test.raw");
  if (!text_path) GTEST_SKIP() << "wikitext-2-raw/wiki.test.raw not found";
  const json ref = test::load_json(test::ref_path("gpt2_refs.json"))["whole_file"];
  const std::string text = test::read_file(*text_path);
  ASSERT_EQ(test::sha256_hex(text.data(), text.size()), ref["text_sha256"].get<std::string>())
      << "wiki.test.raw differs from the file the reference was made from";

  auto t0 = Clock::now();
  const auto tok = Tokenizer::from_gpt2_files(files->encoder, files->vocab);
  const double t_load = seconds_since(t0);
  t0 = Clock::now();
  EncodeStats st;
  const auto ids = tok.encode(text, {}, &st);
  const double t_encode = seconds_since(t0);
  t0 = Clock::now();
  const std::string back = tok.decode(ids);
  const double t_decode = seconds_since(t0);

  std::printf(
      "GPT-2 on wiki.test.raw: %zu bytes -> %zu tokens (%zu pieces); load %.3f s, encode %.3f s "
      "(%.1f MB/s), decode %.3f s; hash %s\n",
      text.size(), ids.size(), st.pieces, t_load, t_encode, text.size() / 1e6 / t_encode, t_decode,
      tok.content_hash_hex().c_str());
  RecordProperty("encode_seconds", std::to_string(t_encode));
  EXPECT_EQ(test::compare_with_reference(ids, ref), "");
  EXPECT_EQ(ids.size(), ref["count"].get<size_t>());
  EXPECT_EQ(st.dropped_bytes, 0u);
  EXPECT_TRUE(back == text) << "decode(encode(wiki.test.raw)) differs";
  // "A few seconds" for 1.3 MB: a quadratic merge loop or a per-piece regex recompile would take minutes.
  EXPECT_LT(t_encode, 30.0);
}

TEST(Gpt2, TrickyStringsEqualHuggingFace) {
  REQUIRE_GPT2(files);
  const auto tok = Tokenizer::from_gpt2_files(files->encoder, files->vocab);
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.bos_id(), 50256);
  EXPECT_EQ(tok.eos_id(), 50256);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_EQ(tok.pre_tokenizer_name(), "gpt2");
  EXPECT_TRUE(tok.missing_bytes().empty());
  const json ref = test::load_json(test::ref_path("gpt2_refs.json"));
  for (const auto& c : ref["tricky"]) {
    const std::string text = c["text"].get<std::string>();
    const auto ids = tok.encode(text);
    EXPECT_EQ(ids, c["ids"].get<std::vector<int32_t>>()) << json(text).dump();
    EXPECT_EQ(tok.decode(ids), text) << json(text).dump();
  }
}

TEST(Gpt2, ArbitraryBytesRoundTrip) {
  REQUIRE_GPT2(files);
  const auto tok = Tokenizer::from_gpt2_files(files->encoder, files->vocab);
  // Invalid UTF-8 spliced into ordinary text at fixed places: every byte string must round-trip.
  std::string s = "The quick brown fox. \xC3\xA9t\xC3\xA9 \xE2\x82\xAC 12345 ";
  std::string bad = s;
  for (const char* junk : {"\xFF", "\xC0\xAF", "\xED\xA0\x80", "\xE2\x82", "\x80\x80\x80", "\xF8\x88\x80\x80\x80"}) {
    bad += junk;
    bad += s;
  }
  EncodeStats st;
  const auto ids = tok.encode(bad, {}, &st);
  EXPECT_EQ(tok.decode(ids), bad);
  EXPECT_EQ(st.dropped_bytes, 0u);
  // Valid text around an invalid byte is tokenized as if the byte were a boundary: "ab\xFF" + "cd".
  const auto a = tok.encode("hello\xFFworld");
  auto want = tok.encode("hello");
  want.push_back(*tok.token_id("\xC3\xBF"));  // 0xFF is printable in the alphabet: U+00FF 'ÿ'
  const auto w = tok.encode("world");
  want.insert(want.end(), w.begin(), w.end());
  EXPECT_EQ(a, want);
}

TEST(Gpt2, TokenizerJsonFormIsTheSameTokenizer) {
  REQUIRE_GPT2(files);
  const auto a = Tokenizer::from_gpt2_files(files->encoder, files->vocab);
  // The same data as HF's gpt2 tokenizer.json, merges once as "a b" strings and once as [a, b] lists.
  json j;
  j["model"] = {{"type", "BPE"},           {"vocab", test::load_json(files->encoder)},
                {"merges", json::array()}, {"dropout", nullptr},
                {"unk_token", nullptr},    {"fuse_unk", false},
                {"byte_fallback", false}};
  j["added_tokens"] = json::array({{{"id", 50256},
                                    {"content", "<|endoftext|>"},
                                    {"special", true},
                                    {"single_word", false},
                                    {"lstrip", false},
                                    {"rstrip", false},
                                    {"normalized", false}}});
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["post_processor"] = {
      {"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  json lists = j;
  const std::string bpe = test::read_file(files->vocab);
  size_t pos = bpe.find('\n') + 1;  // skip "#version: 0.2"
  while (pos < bpe.size()) {
    size_t end = bpe.find('\n', pos);
    if (end == std::string::npos) end = bpe.size();
    const std::string line = bpe.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    j["model"]["merges"].push_back(line);
    lists["model"]["merges"].push_back({line.substr(0, sp), line.substr(sp + 1)});
  }
  const auto b = Tokenizer::from_hf_json(j);
  const auto c = Tokenizer::from_hf_json(lists);
  EXPECT_EQ(a.content_hash(), b.content_hash());
  EXPECT_EQ(a.content_hash(), c.content_hash());
  const std::string sample = "Hello world, it's 2024! \xE4\xBD\xA0\xE5\xA5\xBD <|endoftext|> ok";
  EXPECT_EQ(a.encode(sample), b.encode(sample));
  EXPECT_EQ(a.encode(sample), c.encode(sample));
}

}  // namespace
}  // namespace qeval::tokenizer
