// tests/eval/train/embedded_model_test.cpp — the committed embedded default model (configs/default-model.json):
// it loads with load_checkpoint(), runs in the Llama forward, its two tokenizer files agree, the corpus split
// is the one its training.json records, and its validation perplexity on the fixed slice is the figure
// its README prints.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "eval/model/checkpoint.hpp"
#include "eval/model/llama.hpp"
#include "eval/model/tokens.hpp"
#include "eval/tokenizer/tokenizer.hpp"
#include "eval/train/embedded.hpp"

namespace qeval::train {
namespace {

namespace fs = std::filesystem;
const std::string kRoot = QEVAL_SOURCE_DIR;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(EmbeddedModel, LoadsAndReproducesItsReadmeFigure) {
  const std::string path = default_model_path(kRoot);
  ASSERT_TRUE(fs::exists(path)) << path << " (named by " << kDefaultModelConfig << ") is missing";
  const fs::path dir = fs::path(path).parent_path();
  const nlohmann::json info = nlohmann::json::parse(slurp((dir / "training.json").string()));
  const std::string readme = slurp((dir / "README.md").string());

  // Small enough to keep in the repository (< 20 MB for the whole directory).
  uintmax_t bytes = 0;
  for (const auto& e : fs::directory_iterator(dir)) bytes += e.file_size();
  EXPECT_LT(bytes, 20u << 20) << dir;

  // Loads, fp32 throughout, the architecture the README states.
  const model::Checkpoint ck = model::load_checkpoint(path);
  const nlohmann::json& a = info["architecture"];
  EXPECT_EQ(ck.config.arch, "llama");
  EXPECT_EQ(ck.config.n_layers, a["n_layers"].get<int64_t>());
  EXPECT_EQ(ck.config.d_model, a["d_model"].get<int64_t>());
  EXPECT_EQ(ck.config.n_heads, a["n_heads"].get<int64_t>());
  EXPECT_EQ(ck.config.n_kv_heads, a["n_kv_heads"].get<int64_t>());
  EXPECT_EQ(ck.config.d_ff, a["d_ff"].get<int64_t>());
  EXPECT_EQ(ck.config.vocab_size, a["vocab_size"].get<int64_t>());
  EXPECT_EQ(ck.config.n_ctx_train, a["n_ctx_train"].get<int64_t>());
  EXPECT_TRUE(ck.config.tied_embeddings);
  int64_t params = 0;
  for (const auto& [name, t] : ck.tensors) {
    EXPECT_EQ(t.orig_type, "F32") << name;
    params += t.numel();
  }
  EXPECT_EQ(params, a["parameters"].get<int64_t>());

  // The GGUF's tokenizer and tokenizer.json are the same tokenizer, the one training.json records.
  const model::TokenSource ts = model::token_source_for(ck);
  const tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_hf_json_file((dir / "tokenizer.json").string());
  EXPECT_EQ(ts.hash, tok.content_hash_hex());
  EXPECT_EQ(ts.hash, info["tokenizer"]["hash"].get<std::string>());
  EXPECT_TRUE(ts.add_bos);
  EXPECT_EQ(ts.bos_id, info["tokenizer"]["bos_id"].get<int32_t>());

  // The corpus and its split are the recorded ones.
  const nlohmann::json& d = info["data"];
  const Corpus corpus = load_corpus(kRoot + "/" + d["corpus"].get<std::string>(), d["val_fraction"].get<double>(), tok);
  EXPECT_EQ(corpus.sha256, d["sha256"].get<std::string>());
  EXPECT_EQ(corpus.val_names.front(), d["val_first"].get<std::string>());
  EXPECT_EQ(static_cast<int64_t>(corpus.train_stream.size()), d["train_tokens"].get<int64_t>());
  EXPECT_EQ(static_cast<int64_t>(corpus.val_stream.size()), d["val_tokens"].get<int64_t>());

  // The fixed validation slice, recomputed from the committed file with the trainer's own function and
  // thread count. The README prints the perplexity to 4 decimals; the recomputed figure must print the same.
  // (On the machine that trained it the mean NLL is bit-identical; on a CPU whose BLAS kernels sum in
  // another order the logits move by ~1e-6 relative, which can flip the last printed digit only when the
  // figure sits on a rounding boundary — the failure message then shows both numbers.)
  model::configure_threads(info["training"]["threads"].get<int>());
  model::LlamaModel m(ck);
  const HeldoutNll h = heldout_nll(m, corpus.val_stream, a["n_ctx_train"].get<int64_t>(), ts.bos_id,
                                   kValSliceWindows, kValBatch);
  EXPECT_EQ(h.n_windows, kValSliceWindows);
  const std::string key = "val_slice_ppl: ";
  const size_t at = readme.find(key);
  ASSERT_NE(at, std::string::npos) << "README.md has no '" << key << "' line";
  const std::string printed = readme.substr(at + key.size(), readme.find('\n', at) - at - key.size());
  char mine[64];
  std::snprintf(mine, sizeof mine, "%.4f", h.ppl());
  EXPECT_EQ(std::string(mine), printed) << "mean NLL " << h.mean_nll << " vs training.json "
                                        << info["validation"]["slice"]["mean_nll"].get<double>();
  // training.json keeps the full double: 1e-4 nats is 20× the printed resolution of the perplexity's 4th
  // decimal at ppl ~50 (5e-3/50 = 1e-4 relative ≈ 1e-4 nats) — a bound, not the expected difference (0 here).
  EXPECT_NEAR(h.mean_nll, info["validation"]["slice"]["mean_nll"].get<double>(), 1e-4);

  // Every linear layer accepts the group sizes of the default sweep (rows divisible by 256).
  for (const auto& n : m.linear_names()) EXPECT_EQ(m.linear_layer(n).in_features() % 256, 0) << n;
}

TEST(EmbeddedModel, DefaultModelPointerErrorsNameTheFile) {
  try {
    default_model_path("/nonexistent-qeval-root");
    ADD_FAILURE() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("default-model.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qeval::train
