// tests/eval/model/weight_precision_test.cpp — weights kept in file precision (WeightPrecision::file, issue 15): an
// F16 and a BF16 GGUF give bit-identical logits, fp and quantized, whether the weights are fp32 from load or 16-bit
// converted at use; the store holds the file's bytes, once.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "eval/model/checkpoint.hpp"
#include "eval/model/llama.hpp"
#include "eval/model/quantize_model.hpp"
#include "schemes/scheme.hpp"
#include "tests/eval/model/random_gguf.hpp"
#include "tests/eval/model/test_util.hpp"

namespace qeval::model {
namespace {

const std::string kGpt2Dir = std::string(QEVAL_SOURCE_DIR) + "/data/gpt2-bpe";

qeval::test::RandomGgufSpec spec(const std::string& type, bool tied) {
  qeval::test::RandomGgufSpec s;  // d 64, 2 layers, ff 96, 4 heads, 2 kv heads, GPT-2 vocabulary + 3 pad tokens
  s.d_ff = 96;
  s.vocab = 50260;
  s.type = type;
  s.tied = tied;
  return s;
}

at::Tensor tokens() { return (at::arange(2 * 24, at::kLong) * 7919).remainder(50260).view({2, 24}); }

std::shared_ptr<const Checkpoint> load(const std::string& path, WeightPrecision p) {
  return std::make_shared<const Checkpoint>(load_checkpoint(path, p));
}

QuantPlan rtn_int8_rows() {
  QuantPlan plan;
  schemes::SchemeConfig c = schemes::default_config("rtn");
  c.params.bits = 8;
  c.params.group_size = 0;
  plan.weight = c;
  return plan;
}

class WeightPrecisionTest : public ::testing::TestWithParam<std::pair<const char*, bool>> {};

TEST_P(WeightPrecisionTest, LogitsAreBitIdenticalInBothModes) {
  const auto [type, tied] = GetParam();
  test::TempDir tmp;
  const std::string path = tmp.path("m.gguf");
  qeval::test::write_random_gguf(spec(type, tied), path, kGpt2Dir);
  LlamaModel m32(load(path, WeightPrecision::fp32)), m16(load(path, WeightPrecision::file));
  EXPECT_EQ(m16.linear_layer("blk.0.attn_q").weight.scalar_type(),
            std::string(type) == "BF16" ? at::kBFloat16 : at::kHalf);
  EXPECT_EQ(m32.content_hash(), m16.content_hash());
  const at::Tensor t = tokens();
  EXPECT_TRUE(at::equal(m32.forward(t), m16.forward(t))) << type << (tied ? " tied" : "");
  // Quantized: the same codes (weight SQNR bit for bit) and logits.
  const QuantPlan plan = rtn_int8_rows();
  const QuantizedModel q32 = quantize_model(m32, plan, nullptr, {});
  const QuantizedModel q16 = quantize_model(m16, plan, nullptr, {});
  EXPECT_EQ(q32.fingerprint_json(), q16.fingerprint_json());
  ASSERT_EQ(q32.layers.size(), q16.layers.size());
  for (size_t i = 0; i < q32.layers.size(); ++i) EXPECT_EQ(q32.layers[i].weight_sqnr_db, q16.layers[i].weight_sqnr_db);
  EXPECT_TRUE(at::equal(m32.forward(t), m16.forward(t))) << type << " quantized";
  // A fold's copy-on-write gives the model fp32 weights of its own, the same values.
  m16.own_weights();
  EXPECT_EQ(m16.linear_layer("blk.1.ffn_down").weight.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(m32.linear_layer("blk.1.ffn_down").weight, m16.linear_layer("blk.1.ffn_down").weight));
}

INSTANTIATE_TEST_SUITE_P(Types, WeightPrecisionTest,
                         ::testing::Values(std::make_pair("F16", false), std::make_pair("BF16", false),
                                           std::make_pair("F16", true)));

// Bytes the store holds, derived from the shapes: every 2-D tensor 2 bytes a value in file precision (4 in fp32), the
// 1-D norms fp32 in both. The model shares the store's codes: no second copy.
TEST(WeightPrecision, StoreHoldsTheFileBytesOnce) {
  test::TempDir tmp;
  const std::string path = tmp.path("m.gguf");
  const qeval::test::RandomGgufSpec s = spec("F16", false);
  qeval::test::write_random_gguf(s, path, kGpt2Dir);
  const int64_t D = s.d_model, F = s.d_ff, V = s.vocab, hd = D / s.n_heads, kv = s.n_kv_heads * hd;
  const int64_t matrices = 2 * V * D + s.n_layers * (D * D + 2 * kv * D + D * D + 3 * F * D);
  const int64_t norms = (2 * s.n_layers + 1) * D;
  const auto ck16 = load(path, WeightPrecision::file);
  const auto ck32 = load(path, WeightPrecision::fp32);
  EXPECT_EQ(ck16->resident_bytes(), 2 * matrices + 4 * norms);
  EXPECT_EQ(ck32->resident_bytes(), 4 * matrices + 4 * norms);
  LlamaModel m(ck16);
  const LinearLayer& l = m.linear_layer("blk.0.ffn_up");
  EXPECT_EQ(l.weight.data_ptr(), static_cast<const void*>(ck16->tensors.at("blk.0.ffn_up.weight").bits16.data()));
}

TEST(WeightPrecision, EnvironmentChoosesAndRejectsUnknownValues) {
  ::setenv("QEVAL_WEIGHTS", "fp32", 1);
  EXPECT_EQ(weight_precision_from_env(WeightPrecision::file), WeightPrecision::fp32);
  ::setenv("QEVAL_WEIGHTS", "fp16", 1);
  EXPECT_THROW(weight_precision_from_env(WeightPrecision::file), std::invalid_argument);
  ::unsetenv("QEVAL_WEIGHTS");
  EXPECT_EQ(weight_precision_from_env(WeightPrecision::file), WeightPrecision::file);
}

}  // namespace
}  // namespace qeval::model
