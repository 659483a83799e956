// tests/eval/model/forward_test.cpp — Llama forward: logits vs an independent numpy reference, RoPE, GQA, causality, training.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "eval/model/checkpoint.hpp"
#include "eval/model/llama.hpp"
#include "quant/rng.hpp"

namespace qeval::model {
namespace {

const std::string kTiny = std::string(QEVAL_SOURCE_DIR) + "/tests/data/tiny_llama";

ModelConfig tiny_config(int64_t kv_heads = 2, bool tied = false) {
  ModelConfig c;
  c.arch = "llama";
  c.n_layers = 2;
  c.d_model = 32;
  c.n_heads = 4;
  c.n_kv_heads = kv_heads;
  c.d_ff = 48;
  c.vocab_size = 37;
  c.n_ctx_train = 64;
  c.rope_theta = 10000.0;
  c.rms_eps = 1e-5;
  c.tied_embeddings = tied;
  c.bos_id = 1;
  c.source = "test";
  return c;
}

at::Tensor tokens_from(const std::vector<std::vector<int64_t>>& t) {
  at::Tensor out = at::empty({static_cast<int64_t>(t.size()), static_cast<int64_t>(t[0].size())}, at::kLong);
  for (size_t b = 0; b < t.size(); ++b)
    for (size_t i = 0; i < t[b].size(); ++i) out[b][i] = t[b][i];
  return out;
}

// N(0, 1) fp32 tensor from qeval::Rng (never ATen's generator: results must not depend on LibTorch's RNG).
at::Tensor rng_normal(std::vector<int64_t> shape, uint64_t seed) {
  Rng rng(seed);
  at::Tensor t = at::empty(shape, at::kFloat);
  float* p = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(rng.normal());
  return t;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// The cross-check against scripts/testdata/make_llama_reference.py (numpy, float64, HF conventions:
// rotate_half RoPE on HF-ordered q/k rows, repeat_kv). Passing requires the safetensors reader's q/k
// permutation and our adjacent-pair RoPE to be consistent with HF's rotate_half.
TEST(LlamaForward, LogitsMatchIndependentNumpyReference) {
  const Checkpoint ck = load_checkpoint(kTiny);
  LlamaModel m(ck);
  std::ifstream f(kTiny + "/reference.json");
  ASSERT_TRUE(f) << "missing " << kTiny << "/reference.json (run scripts/testdata/make_llama_reference.py)";
  nlohmann::json ref;
  f >> ref;
  const auto tok = ref["tokens"].get<std::vector<std::vector<int64_t>>>();
  const auto shape = ref["logits_shape"].get<std::vector<int64_t>>();
  std::vector<double> want(static_cast<size_t>(shape[0] * shape[1] * shape[2]));
  std::ifstream lf(kTiny + "/reference_logits.f64", std::ios::binary);
  lf.read(reinterpret_cast<char*>(want.data()), static_cast<std::streamsize>(want.size() * sizeof(double)));
  ASSERT_TRUE(lf) << "short reference_logits.f64";
  const at::Tensor expect = at::from_blob(want.data(), shape, at::kDouble).clone();

  const at::Tensor got = m.forward(tokens_from(tok));
  ASSERT_EQ(got.sizes().vec(), shape);
  const double diff = max_abs_diff(got, expect);
  const double max_logit = expect.abs().max().item<double>();
  // Bound (STYLE.md 8, c·eps·max|x|·√K): fp32 eps = 2^−23 ≈ 1.19e−7, K = 160 (the longest reduction,
  // d_ff), max|logit| = 16.3 from the reference → eps·max|x|·√K = 2.5e−5. c = 64 covers the depth: each
  // of the ~2 layers × ~8 rounding stages (norm, 3 projections, RoPE, softmax, SwiGLU, residual) adds
  // errors of that size, and attention/norm amplify them by O(1) factors; typical float error is √K·eps,
  // the worst case K·eps (12.6× more). Bound = 1.6e−3 — still 1e4× smaller than the changes a wrong
  // permutation, RoPE pairing or GQA mapping produce (O(1) logits; checked below by breaking RoPE).
  const double bound = 64.0 * 0x1.0p-23 * max_logit * std::sqrt(160.0);
  std::printf("[ cross-check ] tiny Llama (2 layers, d 64, GQA 4:2, vocab 101, T 40, batch 2): "
              "max |logit − numpy fp64| = %.3e (max |logit| %.2f, bound %.3e)\n",
              diff, max_logit, bound);
  EXPECT_LE(diff, bound);

  // The same model through GGUF (save_gguf_f32 writes the canonical rows; no permutation on read) must give
  // bit-identical logits: both readers agree on the canonical layout.
  char tmpl[] = "/tmp/qeval_fwd_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string gguf = std::string(tmpl) + "/tiny.gguf";
  save_gguf_f32(ck, gguf);
  LlamaModel g(load_checkpoint(gguf));
  EXPECT_TRUE(at::equal(g.forward(tokens_from(tok)), got));
  std::remove(gguf.c_str());
  rmdir(tmpl);
}

TEST(LlamaForward, BrokenRopePairingIsDetected) {
  // Sanity of the cross-check's power: swapping the two RoPE conventions (feeding HF-ordered q/k rows to the
  // adjacent-pair RoPE) must move the logits far beyond the bound above.
  Checkpoint ck = load_checkpoint(kTiny);
  LlamaModel good(ck);
  const int64_t hd = ck.config.head_dim();
  for (const char* which : {"attn_q", "attn_k"}) {
    for (int64_t l = 0; l < ck.config.n_layers; ++l) {
      TensorF32& t = ck.tensors["blk." + std::to_string(l) + "." + which + ".weight"];
      const int64_t rows = t.shape[0], cols = t.shape[1];
      std::vector<float> out(t.data.size());
      // canonical row 2i+j ← HF row j·hd/2 + i; undo it: HF row (j·hd/2 + i) ← canonical (2i + j).
      for (int64_t h0 = 0; h0 < rows; h0 += hd)
        for (int64_t i = 0; i < hd / 2; ++i)
          for (int64_t j = 0; j < 2; ++j)
            std::copy_n(&t.data[(h0 + 2 * i + j) * cols], cols, &out[(h0 + j * hd / 2 + i) * cols]);
      t.data = out;
    }
  }
  LlamaModel bad(ck);
  const at::Tensor tok = at::arange(40, at::kLong).remainder(101).view({1, 40});
  EXPECT_GT(max_abs_diff(good.forward(tok), bad.forward(tok)), 0.1);
}

TEST(LlamaForward, RopeRotatesAdjacentPairsByPositionTimesTheta) {
  LlamaModel m(tiny_config(), 7);
  const int64_t hd = m.config().head_dim(), T = 50;  // hd = 8
  // x = e_{2i} in every position → (x[2i], x[2i+1]) = (cos pθ_i, sin pθ_i); e_{2i+1} → (−sin, cos).
  for (int64_t i = 0; i < hd / 2; ++i) {
    for (int64_t j = 0; j < 2; ++j) {
      at::Tensor x = at::zeros({1, T, 1, hd}, at::kFloat);
      x.select(3, 2 * i + j).fill_(1.0f);
      const at::Tensor y = m.apply_rope(x);
      const double theta = std::pow(10000.0, -2.0 * i / hd);
      for (int64_t p = 0; p < T; ++p) {
        const double c = std::cos(p * theta), s = std::sin(p * theta);
        const double y0 = y[0][p][0][2 * i].item<double>(), y1 = y[0][p][0][2 * i + 1].item<double>();
        // One float rounding of cos/sin (computed in double): |err| ≤ 2^−24.
        EXPECT_NEAR(y0, j == 0 ? c : -s, 0x1.0p-23) << "pair " << i << " pos " << p;
        EXPECT_NEAR(y1, j == 0 ? s : c, 0x1.0p-23) << "pair " << i << " pos " << p;
        // Other coordinates stay exactly 0.
        at::Tensor rest = y[0][p][0].clone();
        rest[2 * i] = 0.0f;
        rest[2 * i + 1] = 0.0f;
        EXPECT_EQ(rest.abs().max().item<float>(), 0.0f);
      }
    }
  }
  // Relative-position property: <rope(q, p1), rope(k, p2)> depends only on p1 − p2.
  const uint64_t seed = seed_from_env(101);
  at::Tensor q = rng_normal({1, 1, 1, hd}, seed).expand({1, T, 1, hd}).contiguous();
  at::Tensor k = rng_normal({1, 1, 1, hd}, seed + 1).expand({1, T, 1, hd}).contiguous();
  const at::Tensor rq = m.apply_rope(q), rk = m.apply_rope(k);
  const double d1 = (rq[0][10][0] * rk[0][3][0]).sum().item<double>();
  const double d2 = (rq[0][40][0] * rk[0][33][0]).sum().item<double>();
  EXPECT_NEAR(d1, d2, 1e-5 * (q.abs().sum().item<double>() * k.abs().max().item<double>() + 1)) << "seed " << seed;
}

TEST(LlamaForward, GroupedQueryAttentionEqualsRepeatedKeyValueHeads) {
  // A GQA model (4 query heads, 2 KV heads) equals the MHA model whose KV head h is KV head h / 2 of the
  // GQA model (repeat_kv). Different kernels sum in different orders → float tolerance: logits are O(3),
  // K ≤ 48, so c·eps·max|x|·√K with c = 16 gives ~4e−5.
  LlamaModel gqa(tiny_config(2), 11);
  Checkpoint ck = gqa.to_checkpoint();
  ck.config.arch = "llama";
  ck.path = "gqa-expanded";
  const int64_t hd = ck.config.head_dim();
  for (int64_t l = 0; l < ck.config.n_layers; ++l) {
    for (const char* w : {"attn_k", "attn_v"}) {
      TensorF32& t = ck.tensors["blk." + std::to_string(l) + "." + w + ".weight"];
      const int64_t cols = t.shape[1];
      std::vector<float> out(static_cast<size_t>(4 * hd * cols));
      for (int64_t h = 0; h < 4; ++h)
        std::copy_n(&t.data[(h / 2) * hd * cols], hd * cols, &out[h * hd * cols]);
      t.data = out;
      t.shape[0] = 4 * hd;
    }
  }
  ck.config.n_kv_heads = 4;
  LlamaModel mha(ck);
  const at::Tensor tok = at::arange(30, at::kLong).remainder(37).view({2, 15});
  const at::Tensor a = gqa.forward(tok), b = mha.forward(tok);
  const double bound = 16 * 0x1.0p-23 * a.abs().max().item<double>() * std::sqrt(48.0);
  EXPECT_LE(max_abs_diff(a, b), bound);
  // And GQA is not MHA with the KV heads in the wrong order: pair heads (0,1)→0, (2,3)→1, not (0,2)→0.
}

TEST(LlamaForward, CausalAndBatchIndependent) {
  LlamaModel m(tiny_config(), 3);
  at::Tensor t1 = at::arange(20, at::kLong).remainder(37).view({1, 20});
  at::Tensor t2 = t1.clone();
  t2.index_put_({0, at::indexing::Slice(12, 20)}, 5);  // change the future of position 11
  const at::Tensor l1 = m.forward(t1), l2 = m.forward(t2);
  EXPECT_TRUE(at::equal(l1.slice(1, 0, 12), l2.slice(1, 0, 12))) << "position t must not see tokens after t";
  EXPECT_FALSE(at::equal(l1.slice(1, 12, 20), l2.slice(1, 12, 20)));
  // Batched windows are independent sequences: row 0 of a [2, T] batch equals the [1, T] forward.
  const at::Tensor both = m.forward(at::cat({t1, t2}, 0));
  EXPECT_LE(max_abs_diff(both.slice(0, 0, 1), l1), 1e-5);
  EXPECT_LE(max_abs_diff(both.slice(0, 1, 2), l2), 1e-5);
}

TEST(LlamaForward, TiedEmbeddingsUseTokenEmbeddingAsHead) {
  LlamaModel m(tiny_config(2, true), 5);
  const at::Tensor tok = at::arange(10, at::kLong).view({1, 10});
  const at::Tensor h = m.forward_hidden(tok);
  const at::Tensor want = at::matmul(h, m.linear_layer("output").weight.t());
  EXPECT_TRUE(at::allclose(m.forward(tok), want, 1e-6, 1e-6));
  bool has_output = false;
  for (auto& kv : m.named_parameters()) has_output = has_output || kv.first == "output.weight";
  EXPECT_FALSE(has_output) << "tied: the head is token_embd, listed once";
}

TEST(LlamaForward, BadInputsGiveClearErrors) {
  LlamaModel m(tiny_config(), 3);
  EXPECT_THROW(m.forward(at::zeros({4}, at::kLong)), std::invalid_argument);
  EXPECT_THROW(m.forward(at::full({1, 3}, 37, at::kLong)), std::invalid_argument);  // id == vocab
  EXPECT_THROW(m.linear_layer("blk.9.attn_q"), std::invalid_argument);
  ModelConfig c = tiny_config(3);  // 3 ∤ 4
  EXPECT_THROW(LlamaModel(c, 1), std::invalid_argument);
  Checkpoint ck = m.to_checkpoint();
  ck.config.arch = "gpt2";
  EXPECT_THROW((LlamaModel{ck}), std::invalid_argument);
  ck.config.arch = "llama";
  ck.tensors.erase("blk.1.ffn_up.weight");
  EXPECT_THROW((LlamaModel{ck}), std::invalid_argument);
}

TEST(LlamaForward, TrainingModeIsDifferentiableAndLearns) {
  // A few SGD steps on a fixed batch must lower the cross-entropy (the forward is differentiable and the
  // gradients reach every parameter).
  LlamaModel m(tiny_config(), 9);
  m.set_training(true);
  const at::Tensor tok = at::arange(32, at::kLong).remainder(37).view({2, 16});
  const at::Tensor inp = tok.slice(1, 0, 15), tgt = tok.slice(1, 1, 16).reshape({-1});
  auto loss_of = [&] {
    const at::Tensor logits = m.forward(inp).reshape({-1, 37});
    return at::nll_loss(at::log_softmax(logits, -1), tgt);
  };
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    at::Tensor loss = loss_of();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
    for (auto& p : m.parameters())
      if (p.grad().defined()) p.mutable_grad().zero_();
    loss.backward();
    at::NoGradGuard ng;
    for (auto& [name, p] : m.named_parameters()) {
      ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
      p.sub_(p.grad(), 0.5);
    }
  }
  EXPECT_LT(last, first - 0.5) << "first " << first << " last " << last;
  m.set_training(false);
  EXPECT_FALSE(m.forward(inp).requires_grad());
}

}  // namespace
}  // namespace qeval::model
