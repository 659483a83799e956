// tests/eval/train/bpe_train_test.cpp — the byte-level BPE trainer: hand-derived merges, tie rule, early stop,
// save → load round trip through tokenizer.json and GGUF metadata, trainer/encoder agreement, determinism.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "eval/tokenizer/bpe_train.hpp"
#include "eval/tokenizer/tokenizer.hpp"

namespace qeval::tokenizer {
namespace {

std::vector<std::string> merge_strings(const BpeModel& m) {
  std::vector<std::string> out;
  for (const auto& [l, r] : m.merges) out.push_back(m.token_bytes[size_t(l)] + "|" + m.token_bytes[size_t(r)]);
  return out;
}

BpeTrainOptions opts(int32_t vocab, const std::string& pre = "gpt2") {
  BpeTrainOptions o;
  o.vocab_size = vocab;
  o.pre_tokenizer = pre;
  return o;
}

TEST(BpeTrain, WikipediaExampleByHand) {
  // "aaabdaaabac" (the classic example of Gage's byte-pair encoding), one piece. By hand:
  //   pairs: aa 4 (overlapping: positions 0,1,5,6), ab 2, bd 1, da 1, ba 1, ac 1 → Z = aa
  //   "Z a b d Z a b a c": Za 2, ab 2, bd 1, dZ 1, ba 1, ac 1 — tie at 2: ("a","b") < ("aa","a") → Y = ab
  //   "Z Y d Z Y a c": ZY 2, others 1 → X = aaab
  //   "X d X a c": every pair once; min_pair_count 2 stops here even though the vocabulary could grow.
  BpeTrainer t(opts(256 + 1 + 10));
  t.add_piece("aaabdaaabac");
  const BpeModel m = t.train();
  EXPECT_EQ(merge_strings(m), (std::vector<std::string>{"a|a", "a|b", "aa|ab"}));
  EXPECT_EQ(m.merge_counts, (std::vector<int64_t>{4, 2, 2}));
  ASSERT_EQ(m.n_learned(), 259);
  EXPECT_EQ(m.token_bytes[256], "aa");
  EXPECT_EQ(m.token_bytes[257], "ab");
  EXPECT_EQ(m.token_bytes[258], "aaab");
  EXPECT_EQ(m.vocab_size(), 260);  // + <|endoftext|>
  EXPECT_EQ(m.n_train_tokens, 5);
  const Tokenizer tok = m.tokenizer();
  EncodeOptions eo;
  eo.add_bos = false;
  EXPECT_EQ(tok.encode("aaabdaaabac", eo), (std::vector<int32_t>{258, 'd', 258, 'a', 'c'}));
}

TEST(BpeTrain, HuggingFaceCourseExampleByHand) {
  // Words with frequencies (the Hugging Face NLP course's BPE example): hug 10, pug 5, pun 12, bun 4, hugs 5.
  //   1. pairs u-g 10+5+5 = 20 (max; h-u 15, p-u 17, u-n 16, b-u 4, g-s 5)          → ug
  //   2. h-ug 15, p-ug 5, p-u 12, u-n 16, b-u 4, ug-s 5                               → un
  //   3. h-ug 15, p-ug 5, p-un 12, b-un 4, ug-s 5                                     → hug
  //   4. p-ug 5, p-un 12, b-un 4, hug-s 5                                             → pun
  //   5. p-ug 5, b-un 4, hug-s 5: tie at 5, ("hug","s") < ("p","ug")                  → hugs
  //   6. p-ug 5, b-un 4                                                               → pug
  //   7. b-un 4                                                                       → bun
  //   then no pair is left: training stops with fewer tokens than asked.
  BpeTrainer t(opts(1000));
  t.add_piece("hug", 10);
  t.add_piece("pug", 5);
  t.add_piece("pun", 12);
  t.add_piece("bun", 4);
  t.add_piece("hugs", 5);
  const BpeModel m = t.train();
  EXPECT_EQ(merge_strings(m),
            (std::vector<std::string>{"u|g", "u|n", "h|ug", "p|un", "hug|s", "p|ug", "b|un"}));
  EXPECT_EQ(m.merge_counts, (std::vector<int64_t>{20, 16, 15, 12, 5, 5, 4}));
  EXPECT_EQ(m.n_learned(), 256 + 7);
  EXPECT_EQ(m.n_train_tokens, 10 + 5 + 12 + 4 + 5);  // every word became one token
}

TEST(BpeTrain, MinPairCountStopsEarly) {
  BpeTrainOptions o = opts(1000);
  o.min_pair_count = 13;  // of the HF course example only u-g (20), u-n (16), h-ug (15) reach 13
  BpeTrainer t(o);
  t.add_piece("hug", 10);
  t.add_piece("pug", 5);
  t.add_piece("pun", 12);
  t.add_piece("bun", 4);
  t.add_piece("hugs", 5);
  EXPECT_EQ(merge_strings(t.train()), (std::vector<std::string>{"u|g", "u|n", "h|ug"}));
}

TEST(BpeTrain, PreTokenizerPiecesBoundMerges) {
  // gpt2 pieces of "ab ab ab": "ab", " ab", " ab" — the pair (b, ' ') spans a piece boundary and is never
  // counted. By hand: a-b 3, ' '-a 2 → ab; then ' '-ab 2 → " ab"; then nothing.
  BpeTrainer t(opts(300));
  t.add_text("ab ab ab");
  const BpeModel m = t.train();
  EXPECT_EQ(merge_strings(m), (std::vector<std::string>{"a|b", " |ab"}));
  // smollm: every digit is a piece of its own (and so is the space between them), so "1111 1111" holds no
  // pair at all.
  BpeTrainer d(opts(300, "smollm"));
  d.add_text("1111 1111");
  EXPECT_TRUE(d.train().merges.empty());
}

std::string sample_text() {
  // A varied English text with digits, punctuation, newlines, non-ASCII letters and a special-token text.
  std::string s;
  const char* lines[] = {
      "Fellow-Citizens of the Senate and House of Representatives: In meeting you again I feel much "
      "satisfaction in being able to repeat my congratulations on the favorable prospects which continue.\n",
      "The abundant fruits of another year have blessed our country with plenty, and with the means of a "
      "flourishing commerce; in 1790 the revenue was $4,771,200.\n",
      "Résumé, naïve café — über-fast “quotes” and ‘apostrophes’; 東京 and Ελλάδα.\n",
      "<|endoftext|>It's the people's house; we'll see, they've said, I'd think you're right.\n",
  };
  for (int rep = 0; rep < 20; ++rep)
    for (const char* l : lines) s += l;
  return s;
}

TEST(BpeTrain, SaveLoadRoundTrip) {
  const std::string text = sample_text();
  BpeTrainer t(opts(512, "smollm"));
  t.add_text(text);
  const BpeModel m = t.train();
  ASSERT_EQ(m.vocab_size(), 512) << "the sample text has enough repeated pairs for 255 merges";
  const std::string path = ::testing::TempDir() + "/bpe_train_test_tokenizer.json";
  m.save_hf_json(path);
  const Tokenizer tok = Tokenizer::from_hf_json_file(path);
  std::remove(path.c_str());
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_EQ(tok.pre_tokenizer_name(), "smollm");
  const int32_t eot = m.special_id("<|endoftext|>");
  EXPECT_EQ(eot, 511);
  EXPECT_EQ(tok.bos_id(), eot);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_EQ(tok.token_type(eot), TokenType::kControl);

  // Trainer and encoder agree: the training text (special-token text removed, as the trainer did) encodes
  // to exactly the trainer's token count.
  EncodeOptions plain;
  plain.add_bos = false;
  plain.parse_special = true;
  const std::vector<int32_t> ids = tok.encode(text, plain);
  int64_t n_special = 0;
  for (int32_t id : ids) n_special += id == eot;
  EXPECT_EQ(n_special, 20);
  EXPECT_EQ(static_cast<int64_t>(ids.size()) - n_special, m.n_train_tokens);
  EXPECT_LT(m.n_train_tokens, m.n_train_bytes / 2) << "255 merges on a 20× repeated text compress > 2×";

  // Round trips: the text, arbitrary bytes (invalid UTF-8), and BOS.
  EXPECT_EQ(tok.decode(ids), text);
  static const char raw[] = "\xff\xfe\x80 abc\xc3\x28 \x00\x01 1790";
  const std::string bytes(raw, sizeof raw - 1);  // embedded NUL kept
  EXPECT_EQ(tok.decode(tok.encode(bytes, plain)), bytes);
  const std::vector<int32_t> with_bos = tok.encode("the Senate");
  ASSERT_FALSE(with_bos.empty());
  EXPECT_EQ(with_bos.front(), eot);

  // The GGUF form of the same tokenizer is the same tokenizer (content hash covers tokens and merges).
  const auto md = m.gguf_metadata();
  EXPECT_EQ(md.at("tokenizer.ggml.pre"), "smollm");  // a name llama.cpp's llama-vocab.cpp accepts
  const Tokenizer from_gguf = Tokenizer::from_gguf_metadata(md, "trained BPE (GGUF)");
  EXPECT_EQ(from_gguf.content_hash_hex(), tok.content_hash_hex());
  EXPECT_EQ(from_gguf.encode(text, plain), ids);
  EXPECT_EQ(from_gguf.bos_id(), eot);
  EXPECT_TRUE(from_gguf.add_bos());
}

// The GGUF pre-tokenizer name is one llama.cpp accepts (it refuses "gpt2"; src/llama-vocab.cpp maps "gpt-2"), and
// qeval reads it back as the same pipeline.
TEST(BpeTrain, GgufPreNameIsOneLlamaCppAccepts) {
  BpeTrainer t(opts(300, "gpt2"));
  t.add_text(sample_text().substr(0, 4000));
  const BpeModel m = t.train();
  const auto md = m.gguf_metadata();
  EXPECT_EQ(md.at("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(Tokenizer::from_gguf_metadata(md, "trained (GGUF)").pre_tokenizer_name(), "gpt2");
}

TEST(BpeTrain, DeterministicAndOrderIndependent) {
  // The result depends on the piece counts only: texts added in another order give identical merges.
  const std::string a = sample_text().substr(0, 2000), b = sample_text().substr(2000, 3000);
  BpeTrainer t1(opts(400)), t2(opts(400));
  t1.add_text(a);
  t1.add_text(b);
  t2.add_text(b);
  t2.add_text(a);
  const BpeModel m1 = t1.train(), m2 = t2.train();
  EXPECT_EQ(m1.merges, m2.merges);
  EXPECT_EQ(m1.token_bytes, m2.token_bytes);
  EXPECT_EQ(m1.to_hf_json(), m2.to_hf_json());
}

TEST(BpeTrain, BadOptionsThrow) {
  EXPECT_THROW(BpeTrainer(opts(200)), std::invalid_argument);            // below 256 + 1
  EXPECT_THROW(BpeTrainer(opts(400, "llama-bpe")), std::invalid_argument);  // not supported for training
  BpeTrainOptions o = opts(400);
  o.special_tokens = {"<s>", "<s>"};
  EXPECT_THROW((BpeTrainer{o}), std::invalid_argument);
  o = opts(400);
  o.bos_token = "<s>";  // not a special token
  EXPECT_THROW((BpeTrainer{o}), std::invalid_argument);
}

}  // namespace
}  // namespace qeval::tokenizer
