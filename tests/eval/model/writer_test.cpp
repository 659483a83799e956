// tests/eval/model/writer_test.cpp — save_gguf_f32 / save_safetensors round trips and writer errors.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/model/checkpoint.hpp"
#include "eval/model/gguf.hpp"
#include "eval/model/safetensors.hpp"
#include "tests/eval/model/test_util.hpp"

namespace qeval::model {
namespace {

void expect_same_model(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(a.config.arch, b.config.arch);
  EXPECT_EQ(a.config.n_layers, b.config.n_layers);
  EXPECT_EQ(a.config.d_model, b.config.d_model);
  EXPECT_EQ(a.config.n_heads, b.config.n_heads);
  EXPECT_EQ(a.config.n_kv_heads, b.config.n_kv_heads);
  EXPECT_EQ(a.config.d_ff, b.config.d_ff);
  EXPECT_EQ(a.config.vocab_size, b.config.vocab_size);
  EXPECT_EQ(a.config.n_ctx_train, b.config.n_ctx_train);
  EXPECT_EQ(a.config.rope_theta, b.config.rope_theta);
  EXPECT_EQ(a.config.rms_eps, b.config.rms_eps);
  EXPECT_EQ(a.config.tied_embeddings, b.config.tied_embeddings);
  EXPECT_EQ(a.config.bos_id, b.config.bos_id);
  EXPECT_EQ(a.config.eos_id, b.config.eos_id);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    ASSERT_TRUE(b.tensors.count(name)) << name;
    EXPECT_EQ(t.shape, b.tensors.at(name).shape) << name;
    EXPECT_EQ(t.data, b.tensors.at(name).data) << name;  // fp32 written as fp32: exact
  }
}

TEST(Writer, GgufF32RoundTrip) {
  for (const char* stem : {"tiny_llama", "tiny_llama_tied"}) {
    SCOPED_TRACE(stem);
    const Checkpoint a = load_checkpoint(test::gguf_fixture(std::string(stem) + ".gguf"));
    test::TempDir tmp;
    const std::string p = tmp.path("out.gguf");
    save_gguf_f32(a, p);
    const Checkpoint b = load_checkpoint(p);
    expect_same_model(a, b);
    for (const auto& [name, t] : b.tensors) EXPECT_EQ(t.orig_type, "F32") << name;
    EXPECT_EQ(b.metadata.at("tokenizer.ggml.tokens"), a.metadata.at("tokenizer.ggml.tokens"));
    EXPECT_EQ(b.metadata.at("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(b.metadata.at("general.file_type"), 0);
    // the file is a well-formed GGUF with aligned, in-order offsets
    const auto bytes = test::read_bytes(p);
    const GgufFile f = parse_gguf(bytes.data(), bytes.size(), p);
    EXPECT_EQ(f.tensors.front().name, "token_embd.weight");
    EXPECT_EQ(f.find_kv("llama.rope.freq_base")->type, GgufValueType::FLOAT32);
    EXPECT_EQ(f.find_kv("llama.block_count")->type, GgufValueType::UINT32);
    EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
  }
}

// IEEE binary16 by its definition (sign, 5-bit exponent with bias 15, 10-bit fraction; subnormals 2^-14 · f/1024),
// independent of the loader's F16 table.
double half_value(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1, e = (h >> 10) & 31, f = h & 1023;
  if (e == 0) return sign * std::ldexp(f / 1024.0, -14);
  return sign * std::ldexp(1.0 + f / 1024.0, e - 15);
}

// A model held in file precision (F16 codes, no fp32 copy) is written as the fp32 values of those codes.
TEST(Writer, GgufF32FromWeightsHeldInFilePrecision) {
  Checkpoint a = load_checkpoint(test::gguf_fixture("tiny_llama.gguf"));
  TensorF32& w = a.tensors.at("blk.0.attn_q.weight");
  // 1, −2, 1365/4096, the smallest subnormal 2^-24, the largest finite 65504, −0
  const uint16_t codes[] = {0x3C00, 0xC000, 0x3555, 0x0001, 0x7BFF, 0x8000};
  std::vector<uint16_t> bits(w.data.size());
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = codes[i % 6];
  w.bits16 = Codes16::copy_of(bits.data(), bits.data() + bits.size());
  w.data.clear();
  w.orig_type = "F16";
  test::TempDir tmp;
  save_gguf_f32(a, tmp.path("out.gguf"));
  const Checkpoint b = load_checkpoint(tmp.path("out.gguf"));
  const TensorF32& r = b.tensors.at("blk.0.attn_q.weight");
  ASSERT_EQ(r.data.size(), w.bits16.size());
  for (size_t i = 0; i < r.data.size(); ++i)
    ASSERT_EQ(static_cast<double>(r.data[i]), half_value(codes[i % 6])) << i;  // every binary16 is exact in fp32
  EXPECT_TRUE(std::signbit(r.data[5]));
  EXPECT_EQ(b.tensors.at("blk.0.attn_k.weight").data, a.tensors.at("blk.0.attn_k.weight").data);
}

TEST(Writer, SafetensorsRoundTripUndoesThePermutation) {
  const Checkpoint a = load_checkpoint(test::gguf_fixture("tiny_llama.gguf"));
  test::TempDir tmp;
  save_safetensors(a, tmp.path("hf"));
  const Checkpoint b = load_checkpoint(tmp.path("hf"));
  expect_same_model(a, b);
  // on disk the q rows are in HF order: row 1 of the HF file is canonical row 2 (head_dim 8: HF row i ↔ 2i)
  const auto bytes = test::read_bytes(tmp.path("hf/model.safetensors"));
  const SafetensorsFile f = parse_safetensors(bytes.data(), bytes.size(), "x");
  const TensorF32 q_hf = read_safetensors_tensor(f, *f.find("model.layers.0.self_attn.q_proj.weight"));
  const TensorF32& q = a.tensors.at("blk.0.attn_q.weight");
  const int64_t d = q.shape[1];
  for (int64_t c = 0; c < d; ++c) {
    EXPECT_EQ(q_hf.data[1 * d + c], q.data[2 * d + c]);  // HF row 1 = canonical row 2 (pair 1, first half)
    EXPECT_EQ(q_hf.data[4 * d + c], q.data[1 * d + c]);  // HF row hd/2 = 4 = canonical row 1
  }
  EXPECT_FALSE(f.find("lm_head.weight") == nullptr);
  const nlohmann::json cfg = test::read_json(tmp.path("hf/config.json"));
  EXPECT_EQ(cfg["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(cfg["num_key_value_heads"], 2);
}

TEST(Writer, SafetensorsTiedOmitsLmHead) {
  const Checkpoint a = load_checkpoint(test::st_fixture("tiny_llama_hf_sharded"));
  test::TempDir tmp;
  save_safetensors(a, tmp.path("hf"));
  const Checkpoint b = load_checkpoint(tmp.path("hf"));
  expect_same_model(a, b);
  const auto bytes = test::read_bytes(tmp.path("hf/model.safetensors"));
  EXPECT_EQ(parse_safetensors(bytes.data(), bytes.size(), "x").find("lm_head.weight"), nullptr);
}

TEST(Writer, RejectsInvalidCheckpoints) {
  Checkpoint a = load_checkpoint(test::gguf_fixture("tiny_llama.gguf"));
  test::TempDir tmp;
  Checkpoint bad = a;
  bad.tensors.erase("blk.1.ffn_up.weight");
  EXPECT_THROW(save_gguf_f32(bad, tmp.path("x.gguf")), CheckpointError);
  bad = a;
  bad.tensors.at("output_norm.weight").data.pop_back();
  EXPECT_THROW(save_gguf_f32(bad, tmp.path("x.gguf")), CheckpointError);
  bad = a;
  bad.metadata["general.object"] = nlohmann::json::object({{"a", 1}});
  EXPECT_THROW(save_gguf_f32(bad, tmp.path("x.gguf")), CheckpointError);
  bad = a;
  // head_dim / 2 divisors: the one extra tensor the GGUF path reads (Llama 3.1's rope_freqs).
  const std::vector<float> freqs(static_cast<size_t>(a.config.head_dim() / 2), 1.f);
  bad.tensors["rope_freqs.weight"] = TensorF32{{static_cast<int64_t>(freqs.size())}, freqs, "F32"};
  EXPECT_THROW(save_safetensors(bad, tmp.path("hf")), CheckpointError);  // no HF name
  EXPECT_NO_THROW(save_gguf_f32(bad, tmp.path("x.gguf")));               // GGUF keeps extra tensors
  EXPECT_EQ(load_checkpoint(tmp.path("x.gguf")).tensors.at("rope_freqs.weight").data, freqs);
}

TEST(Writer, FromScratchCheckpoint) {
  // What a trainer does: fill ModelConfig + tensors, save, reload.
  const auto g = test::tiny_model_builder().build();
  Checkpoint a = load_gguf_bytes(g.data(), g.size(), "mem");
  Checkpoint fresh;
  fresh.config = a.config;
  fresh.tensors = a.tensors;
  fresh.config.rms_eps = 1e-6;
  test::TempDir tmp;
  save_gguf_f32(fresh, tmp.path("m.gguf"));
  save_safetensors(fresh, tmp.path("m"));
  const Checkpoint g2 = load_checkpoint(tmp.path("m.gguf"));
  const Checkpoint s2 = load_checkpoint(tmp.path("m"));
  EXPECT_EQ(g2.config.rms_eps, static_cast<double>(1e-6f));  // GGUF stores float32
  EXPECT_EQ(s2.config.rms_eps, 1e-6);                        // config.json keeps the double
  EXPECT_EQ(g2.config.vocab_size, 6);                        // from llama.vocab_size (no tokenizer keys)
  EXPECT_EQ(g2.tensors.at("blk.0.attn_q.weight").data, s2.tensors.at("blk.0.attn_q.weight").data);
}

}  // namespace
}  // namespace qeval::model
