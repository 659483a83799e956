// tests/eval/model/gguf_model_test.cpp — a tiny Llama GGUF (mixed tensor types, written by gguf-py) loaded as a Checkpoint.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/model/checkpoint.hpp"
#include "eval/model/gguf.hpp"
#include "tests/eval/model/test_util.hpp"

namespace qeval::model {
namespace {

using test::gguf_fixture;

// Sums over ≤ 2048 values of magnitude < 1 in double, in a different order from numpy's pairwise sum:
// |difference| ≤ n·2^-53·Σ|x| < 2048 · 1.1e-16 · 2048 ≈ 5e-10; 1e-9 absolute leaves margin.
constexpr double kSumTol = 1e-9;

void check_against_summary(const std::string& stem) {
  const nlohmann::json doc = test::read_json(gguf_fixture(stem + "_expected.json"));
  const Checkpoint cp = load_checkpoint(gguf_fixture(stem + ".gguf"));
  const nlohmann::json& c = doc["config"];
  const ModelConfig& m = cp.config;
  EXPECT_EQ(m.arch, c["arch"]);
  EXPECT_EQ(m.n_layers, c["n_layers"]);
  EXPECT_EQ(m.d_model, c["d_model"]);
  EXPECT_EQ(m.n_heads, c["n_heads"]);
  EXPECT_EQ(m.n_kv_heads, c["n_kv_heads"]);
  EXPECT_EQ(m.d_ff, c["d_ff"]);
  EXPECT_EQ(m.vocab_size, c["vocab_size"]);
  EXPECT_EQ(m.n_ctx_train, c["n_ctx_train"]);
  EXPECT_EQ(m.rope_theta, c["rope_theta"].get<double>());
  EXPECT_EQ(m.rms_eps, c["rms_eps"].get<double>());  // float32(1e-5) widened: 9.99999974737875e-06
  EXPECT_EQ(m.tied_embeddings, c["tied_embeddings"].get<bool>());
  EXPECT_EQ(m.bos_id, c["bos_id"]);
  EXPECT_EQ(m.eos_id, c["eos_id"]);
  EXPECT_EQ(m.source, "gguf");
  EXPECT_EQ(m.head_dim(), 8);
  EXPECT_EQ(cp.content_hash, "sha256:" + doc["sha256"].get<std::string>());
  EXPECT_EQ(cp.path, gguf_fixture(stem + ".gguf"));
  ASSERT_EQ(cp.tensors.size(), doc["tensors"].size());
  for (const auto& [name, e] : doc["tensors"].items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(cp.tensors.count(name));
    const TensorF32& t = cp.tensors.at(name);
    EXPECT_EQ(t.shape, e["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(t.orig_type, e["type"]);
    EXPECT_EQ(static_cast<int64_t>(t.data.size()), t.numel());
    double sum = 0, sumsq = 0;
    for (float x : t.data) sum += x, sumsq += double(x) * x;
    EXPECT_NEAR(sum, e["sum"].get<double>(), kSumTol);
    EXPECT_NEAR(sumsq, e["sumsq"].get<double>(), kSumTol);
    const auto first = e["first"].get<std::vector<double>>();
    for (size_t i = 0; i < first.size(); ++i) EXPECT_EQ(t.data[i], static_cast<float>(first[i])) << i;
    EXPECT_EQ(t.data.back(), static_cast<float>(e["last"].get<double>()));
  }
  // metadata for the tokenizer
  ASSERT_TRUE(cp.metadata.count("tokenizer.ggml.tokens"));
  EXPECT_EQ(cp.metadata.at("tokenizer.ggml.tokens").size(), 40u);
  EXPECT_EQ(cp.metadata.at("tokenizer.ggml.tokens")[3], "tok3");
  EXPECT_EQ(cp.metadata.at("tokenizer.ggml.model"), "gpt2");
}

TEST(GgufModel, TinyLlamaUntied) { check_against_summary("tiny_llama"); }

TEST(GgufModel, TinyLlamaTiedUsesDefaultRopeTheta) {
  check_against_summary("tiny_llama_tied");
  const Checkpoint cp = load_gguf(gguf_fixture("tiny_llama_tied.gguf"));
  EXPECT_TRUE(cp.config.tied_embeddings);
  EXPECT_FALSE(cp.tensors.count("output.weight"));
  EXPECT_EQ(cp.config.rope_theta, 10000.0);  // rope.freq_base absent → llama.cpp's default
}

TEST(GgufModel, Version2IsAccepted) {
  auto bytes = test::read_bytes(gguf_fixture("tiny_llama.gguf"));
  test::patch<uint32_t>(bytes, 4, 2);  // v2 and v3 share the little-endian layout
  const Checkpoint cp = load_gguf_bytes(bytes.data(), bytes.size(), "v2.gguf");
  const Checkpoint ref = load_gguf(gguf_fixture("tiny_llama.gguf"));
  EXPECT_EQ(cp.tensors.at("blk.1.attn_k.weight").data, ref.tensors.at("blk.1.attn_k.weight").data);
}

TEST(GgufModel, LoadCheckpointDispatchesOnMagicWithoutExtension) {
  test::TempDir tmp;
  const std::string p = tmp.path("model.bin");
  test::write_bytes(p, test::read_bytes(gguf_fixture("tiny_llama.gguf")));
  const Checkpoint cp = load_checkpoint(p);
  EXPECT_EQ(cp.config.n_layers, 2);
  test::write_bytes(tmp.path("junk.bin"), {'n', 'o', 'p', 'e', 0, 0, 0, 0});
  EXPECT_THROW(load_checkpoint(tmp.path("junk.bin")), CheckpointError);
  EXPECT_THROW(load_checkpoint(tmp.path("missing.gguf")), CheckpointError);
  try {
    load_checkpoint(tmp.path("missing.gguf"));
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.gguf"), std::string::npos);
  }
}

TEST(GgufModel, BuilderModelLoadsAndKeepsExtraTensors) {
  auto g = test::tiny_model_builder();
  g.tensor_f32("rope_freqs.weight", {2}, {1.0f, 0.5f});
  const auto b = g.build();
  const Checkpoint cp = load_gguf_bytes(b.data(), b.size(), "builder.gguf");
  EXPECT_EQ(cp.config.n_kv_heads, 1);
  EXPECT_EQ(cp.config.vocab_size, 6);
  EXPECT_EQ(cp.config.bos_id, 1);
  EXPECT_EQ(cp.config.eos_id, -1);
  EXPECT_EQ(cp.tensors.at("rope_freqs.weight").data, (std::vector<float>{1.0f, 0.5f}));
  EXPECT_EQ(cp.tensors.at("token_embd.weight").data[0], -6.0f / 16.0f);
}

TEST(GgufModel, VocabFallsBackToEmbeddingRowsWithoutTokenizer) {
  auto g = test::tiny_model_builder();
  g.remove_kv("tokenizer.ggml.tokens");
  const auto b = g.build();
  EXPECT_EQ(load_gguf_bytes(b.data(), b.size(), "notok.gguf").config.vocab_size, 6);
}

}  // namespace
}  // namespace qeval::model
