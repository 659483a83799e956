// tests/eval/model/weight_precision_test.cpp — weights kept in file precision (WeightPrecision::file, issue 15): an
// F16 and a BF16 GGUF give bit-identical logits, fp and quantized, whether the weights are fp32 from load or 16-bit
// converted at use; the store holds the file's bytes, once. Quantized layers held compact (codes + params,
// dequantized at use) against their fp32 copy: bit-identical logits, and the bytes held counted from the shapes.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "eval/model/checkpoint.hpp"
#include "eval/model/llama.hpp"
#include "eval/model/quantize_model.hpp"
#include "eval/model/quantize_stages.hpp"
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

// A plan of one weight scheme on every block linear (the sweep's default: `output` stays fp).
QuantPlan weight_plan(const std::string& scheme, int bits, int64_t group, quant::Mapping mapping) {
  QuantPlan plan;
  schemes::SchemeConfig c = schemes::default_config(scheme);
  c.params.bits = bits;
  c.params.group_size = group;
  c.params.mapping = mapping;
  plan.weight = c;
  LayerOverride head;
  head.pattern = "output";
  head.skip = true;
  plan.overrides.push_back(head);
  return plan;
}

// The model quantized with QEVAL_QUANT_WEIGHTS=`mode` (codes: held compact; fp32: a dequantized copy per layer).
QuantizedModel quantize_with(LlamaModel& m, const QuantPlan& plan, const char* mode) {
  ::setenv("QEVAL_QUANT_WEIGHTS", mode, 1);
  QuantizedModel q = quantize_model(m, plan, nullptr, {});
  ::unsetenv("QEVAL_QUANT_WEIGHTS");
  return q;
}

// Issue 15: a quantized layer held as its codes, dequantized by its scheme at use, gives the logits of the fp32
// copy bit for bit — integer (int8 per row, int4 asymmetric g32), code-book (NF4) and FP8 codes alike.
TEST(CompactWeights, LogitsAreBitIdenticalToTheFp32Copy) {
  test::TempDir tmp;
  const std::string path = tmp.path("m.gguf");
  qeval::test::write_random_gguf(spec("F16", false), path, kGpt2Dir);
  const auto ck = load(path, WeightPrecision::file);
  const at::Tensor t = tokens();
  for (const QuantPlan& plan : {weight_plan("rtn", 8, quant::kPerRow, quant::Mapping::symmetric),
                                weight_plan("rtn", 4, 32, quant::Mapping::asymmetric),
                                weight_plan("nf4", 4, 32, quant::Mapping::symmetric),
                                weight_plan("fp8", 8, 32, quant::Mapping::symmetric)}) {
    const std::string label = plan.weight->label();
    LlamaModel compact(ck), copy(ck);
    const QuantizedModel qc = quantize_with(compact, plan, "codes");
    const QuantizedModel qf = quantize_with(copy, plan, "fp32");
    EXPECT_EQ(qc.fingerprint_json(), qf.fingerprint_json()) << label;
    const LinearLayer& lc = compact.linear_layer("blk.1.ffn_down");
    const LinearLayer& lf = copy.linear_layer("blk.1.ffn_down");
    EXPECT_TRUE(lc.codes && !lc.effective.defined()) << label << ": held as codes";
    EXPECT_TRUE(!lf.codes && lf.effective.defined()) << label << ": held as an fp32 copy";
    EXPECT_TRUE(at::equal(lc.effective_weight(), lf.effective)) << label;
    EXPECT_TRUE(at::equal(compact.forward(t), copy.forward(t))) << label;
  }
}

// The bytes a compact layer holds, from its shape and bits: int8 per row symmetric: 1 byte a weight + one fp32 scale
// a row; int4 asymmetric g32: half a byte a weight + an fp32 scale and an int32 zero point per group of 32. The fp32
// copy: 4 bytes a weight. The fp `output` holds none.
TEST(CompactWeights, StoreHoldsCodesAndParams) {
  test::TempDir tmp;
  const std::string path = tmp.path("m.gguf");
  const qeval::test::RandomGgufSpec s = spec("F16", false);
  qeval::test::write_random_gguf(s, path, kGpt2Dir);
  const auto ck = load(path, WeightPrecision::file);
  const int64_t D = s.d_model, F = s.d_ff;  // ffn_down: [D, F]
  LlamaModel m8(ck), m4(ck), mf(ck);
  quantize_with(m8, weight_plan("rtn", 8, quant::kPerRow, quant::Mapping::symmetric), "codes");
  quantize_with(m4, weight_plan("rtn", 4, 32, quant::Mapping::asymmetric), "codes");
  quantize_with(mf, weight_plan("rtn", 8, quant::kPerRow, quant::Mapping::symmetric), "fp32");
  EXPECT_EQ(m8.linear_layer("blk.0.ffn_down").quantized_bytes(), D * F + 4 * D);
  EXPECT_EQ(m4.linear_layer("blk.0.ffn_down").quantized_bytes(), D * F / 2 + (4 + 4) * D * (F / 32));
  EXPECT_EQ(mf.linear_layer("blk.0.ffn_down").quantized_bytes(), 4 * D * F);
  EXPECT_EQ(m8.linear_layer("output").quantized_bytes(), 0);
}

TEST(CompactWeights, EnvironmentRejectsUnknownValues) {
  ::setenv("QEVAL_QUANT_WEIGHTS", "int8", 1);
  EXPECT_THROW(stages::compact_weights(), std::invalid_argument);
  ::unsetenv("QEVAL_QUANT_WEIGHTS");
  EXPECT_TRUE(stages::compact_weights());
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
