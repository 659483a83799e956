// tests/eval/model/random_gguf_test.cpp — the random Llama GGUF generator: loads with the asked shapes, reproduces, rejects bad sizes.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "eval/model/checkpoint.hpp"
#include "eval/tokenizer/tokenizer.hpp"
#include "tests/eval/model/random_gguf.hpp"
#include "tests/eval/model/test_util.hpp"

namespace qeval::test {
namespace {

using model::test::read_bytes;
using model::test::TempDir;

const std::string kGpt2Dir = std::string(QEVAL_SOURCE_DIR) + "/data/gpt2-bpe";

RandomGgufSpec small_spec(const std::string& type) {
  RandomGgufSpec s;  // d 64, 2 layers, ff 96, 4 heads, 2 kv heads (GQA), GPT-2 vocabulary + 3 pad tokens
  s.d_ff = 96;
  s.vocab = 50260;
  s.type = type;
  return s;
}

TEST(RandomGguf, LoadsWithTheAskedShapesAndTypes) {
  TempDir tmp;
  for (const char* type : {"F32", "F16", "BF16"}) {
    SCOPED_TRACE(type);
    const RandomGgufSpec s = small_spec(type);
    write_random_gguf(s, tmp.path("m.gguf"), kGpt2Dir);
    const model::Checkpoint cp = model::load_checkpoint(tmp.path("m.gguf"));
    EXPECT_EQ(cp.config.d_model, 64);
    EXPECT_EQ(cp.config.n_layers, 2);
    EXPECT_EQ(cp.config.d_ff, 96);
    EXPECT_EQ(cp.config.n_heads, 4);
    EXPECT_EQ(cp.config.n_kv_heads, 2);
    EXPECT_EQ(cp.config.vocab_size, 50260);
    EXPECT_FALSE(cp.config.tied_embeddings);
    // head_dim 16: k/v project to 2·16 rows (derived from the shapes in checkpoint.hpp)
    EXPECT_EQ(cp.tensors.at("blk.1.attn_k.weight").shape, (std::vector<int64_t>{32, 64}));
    EXPECT_EQ(cp.tensors.at("blk.0.ffn_down.weight").shape, (std::vector<int64_t>{64, 96}));
    EXPECT_EQ(cp.tensors.at("output.weight").orig_type, type);
    EXPECT_EQ(cp.tensors.at("blk.0.attn_norm.weight").orig_type, "F32");
    // parameters: 2·50260·64 (embeddings) + 5·64 (norms) + 2·(64·64·2 + 32·64·2 + 3·96·64) = 6 495 040
    EXPECT_EQ(random_gguf_parameters(s), 2 * 50260 * 64 + 5 * 64 + 2 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 96 * 64));
    const auto tok = tokenizer::Tokenizer::from_gguf_metadata(cp.metadata);
    EXPECT_EQ(tok.vocab_size(), 50260);
    // " Hello world" is GPT-2 tokens 18435, 995 (published GPT-2 ids: "ĠHello" 18435, "Ġworld" 995)
    tokenizer::EncodeOptions plain;
    plain.add_bos = false;
    plain.add_eos = false;
    EXPECT_EQ(tok.encode(" Hello world", plain), (std::vector<int32_t>{18435, 995}));
  }
}

TEST(RandomGguf, ValuesReproduceFromTheSeed) {
  TempDir tmp;
  RandomGgufSpec s = small_spec("BF16");
  write_random_gguf(s, tmp.path("a.gguf"), kGpt2Dir);
  write_random_gguf(s, tmp.path("b.gguf"), kGpt2Dir);
  EXPECT_EQ(read_bytes(tmp.path("a.gguf")), read_bytes(tmp.path("b.gguf")));
  const model::Checkpoint cp = model::load_checkpoint(tmp.path("a.gguf"));
  for (const char* name : {"token_embd.weight", "blk.1.ffn_up.weight", "output_norm.weight"}) {
    // every value is k·2^-s with 8 significant bits: exact in BF16, so equality is the right test
    EXPECT_EQ(cp.tensors.at(name).data, random_tensor_values(s, name)) << name;
  }
  const auto w = random_tensor_values(s, "blk.0.attn_q.weight");
  double sum2 = 0;
  for (const float x : w) sum2 += static_cast<double>(x) * x;
  // k uniform on [-127, 127] (−128 folded onto −127): E[k²] = 127·128/3 ≈ 5419; scale 2^-(7+3) for in = 64
  const double expected = 127.0 * 128.0 / 3.0 * std::ldexp(1.0, -20);
  EXPECT_NEAR(sum2 / static_cast<double>(w.size()), expected, 0.05 * expected);  // 4096 samples: ~2 % sd
  s.seed += 1;
  EXPECT_NE(random_tensor_values(s, "blk.0.attn_q.weight"), w);
}

TEST(RandomGguf, BadSizesAreRejectedWithOneLine) {
  auto message = [](RandomGgufSpec s) {
    try {
      validate_random_gguf_spec(s);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  RandomGgufSpec s = small_spec("F16");
  s.n_heads = 5;
  EXPECT_NE(message(s).find("not a multiple of heads 5"), std::string::npos) << message(s);
  s = small_spec("F16");
  s.n_kv_heads = 3;
  EXPECT_NE(message(s).find("kv heads 3"), std::string::npos) << message(s);
  s = small_spec("F16");
  s.vocab = 1000;
  EXPECT_NE(message(s).find("vocab 1000"), std::string::npos) << message(s);
  s = small_spec("Q4_0");
  EXPECT_NE(message(s).find("type 'Q4_0'"), std::string::npos) << message(s);
  s = small_spec("F16");
  s.d_ff = 0;
  EXPECT_NE(message(s).find("positive"), std::string::npos) << message(s);
  EXPECT_EQ(message(s).find('\n'), std::string::npos);
  EXPECT_THROW(random_gguf_preset("13b"), std::invalid_argument);
  // 2·50257·2048 + 8·(4·2048² + 3·2048·2432 + 2·2048) + 2048: the "460M params"
  EXPECT_EQ(random_gguf_parameters(random_gguf_preset("460m")), 459'642'880);
}

}  // namespace
}  // namespace qeval::test
