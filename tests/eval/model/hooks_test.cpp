// tests/eval/model/hooks_test.cpp — fake-quant hooks (QuantPlan), KV hook, calibration capture.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "eval/model/hooks.hpp"
#include "eval/model/llama.hpp"
#include "eval/model/ppl.hpp"

namespace qeval::model {
namespace {

ModelConfig cfg() {
  ModelConfig c;
  c.arch = "llama";
  c.n_layers = 2;
  c.d_model = 64;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 128;
  c.vocab_size = 101;
  c.rope_theta = 10000.0;
  c.rms_eps = 1e-5;
  c.bos_id = 1;
  return c;
}

schemes::SchemeConfig rtn(int bits, int64_t group) {
  schemes::SchemeConfig c = schemes::default_config("rtn");
  c.params.bits = bits;
  c.params.group_size = group;
  return c;
}

schemes::SchemeConfig dyn_int8() {
  schemes::SchemeConfig c = schemes::default_config("dynamic_per_token");
  c.options.set("threshold", "0");  // quantize every batch, however small
  return c;
}

at::Tensor toks(int64_t B, int64_t T, int64_t V, int64_t salt = 0) {
  return (at::arange(B * T, at::kLong) * 7 + salt).remainder(V).view({B, T});
}

double rel_rms(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor d = a.to(at::kDouble) - b.to(at::kDouble);
  return std::sqrt(d.pow(2).mean().item<double>() / a.to(at::kDouble).pow(2).mean().item<double>());
}

TEST(Glob, MatchesWholeNames) {
  EXPECT_TRUE(glob_match("blk.*.ffn_down", "blk.12.ffn_down"));
  EXPECT_TRUE(glob_match("*", "output"));
  EXPECT_TRUE(glob_match("output", "output"));
  EXPECT_FALSE(glob_match("output", "output_norm"));
  EXPECT_FALSE(glob_match("blk.*.ffn_down", "blk.1.ffn_up"));
  EXPECT_TRUE(glob_match("blk.?.attn_*", "blk.3.attn_output"));
  EXPECT_FALSE(glob_match("blk.?.attn_*", "blk.13.attn_q"));
  EXPECT_TRUE(glob_match("*attn*", "blk.0.attn_q"));
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("", "x"));
}

TEST(QuantPlan, ResolvesOverridesInOrderAndRoundTripsJson) {
  QuantPlan p;
  p.weight = rtn(4, 32);
  p.activation = dyn_int8();
  LayerOverride skip_out;
  skip_out.pattern = "output";
  skip_out.skip = true;
  LayerOverride down8;
  down8.pattern = "blk.*.ffn_down";
  down8.weight = rtn(8, 0);
  LayerOverride no_act0;
  no_act0.pattern = "blk.0.*";
  no_act0.skip_activation = true;
  p.overrides = {skip_out, down8, no_act0};
  EXPECT_FALSE(p.resolve("output").weight);
  EXPECT_FALSE(p.resolve("output").activation);
  EXPECT_EQ(p.resolve("blk.1.ffn_down").weight->params.bits, 8);
  EXPECT_EQ(p.resolve("blk.1.ffn_up").weight->params.bits, 4);
  EXPECT_FALSE(p.resolve("blk.0.ffn_down").activation);
  EXPECT_TRUE(p.resolve("blk.1.attn_q").activation);

  const QuantPlan back = QuantPlan::from_json(p.to_json());
  EXPECT_EQ(back.to_json(), p.to_json());
  for (const char* n : {"output", "blk.0.ffn_down", "blk.1.attn_q"}) {
    EXPECT_EQ(back.resolve(n).weight.has_value(), p.resolve(n).weight.has_value());
    if (p.resolve(n).weight) {
      EXPECT_TRUE(*back.resolve(n).weight == *p.resolve(n).weight);
    }
  }
  EXPECT_THROW(QuantPlan::from_json({{"wieght", nullptr}}), std::invalid_argument);
  EXPECT_THROW(QuantPlan::from_json({{"weight", {{"scheme", "no_such_scheme"}}}}), std::invalid_argument);
  EXPECT_THROW(QuantPlan::from_json({{"overrides", {{{"pattern", "x"}, {"skp", true}}}}}), std::invalid_argument);
}

TEST(QuantPlan, SkipPlanReproducesFpLogitsExactly) {
  LlamaModel m(cfg(), 21);
  const at::Tensor t = toks(2, 24, 101);
  const at::Tensor fp = m.forward(t);
  QuantPlan p;
  p.weight = rtn(4, 32);
  p.activation = dyn_int8();
  LayerOverride all;
  all.pattern = "*";
  all.skip = true;
  p.overrides = {all};
  m.apply_plan(p);
  EXPECT_TRUE(at::equal(m.forward(t), fp));
  m.apply_plan(QuantPlan{});
  EXPECT_TRUE(at::equal(m.forward(t), fp));
}

TEST(QuantPlan, Int8PerChannelChangesLogitsByTheDerivedAmount) {
  LlamaModel m(cfg(), 22);
  const at::Tensor t = toks(2, 32, 101);
  const at::Tensor fp = m.forward(t);
  QuantPlan p;
  p.weight = rtn(8, 0);  // int8 symmetric per output channel
  m.apply_plan(p);
  const at::Tensor q = m.forward(t);
  // Prediction: each layer's weight error is a relative noise power 10^(−SQNR_w/10) (measured by apply_plan;
  // ≈ 45 dB for absmax int8 on Gaussian rows of 64: s = 2.4σ/127, s²/12 = 3.0e−5·σ²). To first order the
  // output of a linear layer inherits that relative noise, and the independent errors of the L layers add
  // in power, so rel_rms(Δlogits) ≈ sqrt(Σ_l 10^(−SQNR_l/10)). The residual stream, norms and softmax
  // amplify or damp this by O(1); we allow 4× (and require a change: int8 is not the identity).
  double noise = 0.0;
  for (const auto& n : m.linear_names()) {
    const LinearLayer& l = m.linear_layer(n);
    ASSERT_TRUE(l.weight_scheme) << n;
    EXPECT_GT(l.weight_sqnr_db, 38.0) << n;  // int8 absmax on ≥ 64 Gaussian values: ~41–46 dB
    noise += std::pow(10.0, -l.weight_sqnr_db / 10.0);
  }
  const double predicted = std::sqrt(noise);
  const double got = rel_rms(fp, q);
  std::printf("[ int8 plan ] rel rms Δlogits = %.3e, predicted %.3e (bound 4×)\n", got, predicted);
  EXPECT_GT(got, 0.0);
  EXPECT_LE(got, 4.0 * predicted);
  EXPECT_GE(got, 0.1 * predicted);  // and not suspiciously small (e.g. the plan not applied)
  // 4-bit g32 must cost more than 8-bit.
  p.weight = rtn(4, 32);
  m.apply_plan(p);
  EXPECT_GT(rel_rms(fp, m.forward(t)), 4 * got);
  // clear_plan restores fp exactly.
  m.clear_plan();
  EXPECT_TRUE(at::equal(m.forward(t), fp));
}

TEST(QuantPlan, ActivationSchemeQuantizesEveryLinearInput) {
  LlamaModel m(cfg(), 23);
  const at::Tensor t = toks(1, 24, 101);
  const at::Tensor fp = m.forward(t);
  QuantPlan p;
  p.activation = dyn_int8();
  m.apply_plan(p);
  // The observer sees the input the layer multiplied; it must be on the per-token int8 grid:
  // each row's values are multiples of s = max|row|/127.
  int64_t seen = 0;
  m.set_observer([&](const LinearLayer& l, const at::Tensor& x, const at::Tensor&) {
    ++seen;
    const at::Tensor row = x[0].to(at::kDouble);
    const double s = row.abs().max().item<double>() / 127.0;
    const double off = (row / s - (row / s).round()).abs().max().item<double>();
    EXPECT_LT(off, 1e-3) << l.name;
  });
  const at::Tensor q = m.forward(t);
  m.set_observer(nullptr);
  EXPECT_EQ(seen, 2 * 7 + 1);
  const double d = rel_rms(fp, q);
  // Per-token int8 absmax on 64..128 features: ≈ 40 dB per layer input → similar total as the weight case.
  EXPECT_GT(d, 0.0);
  EXPECT_LT(d, 0.1);
}

TEST(QuantPlan, ClearErrors) {
  LlamaModel m(cfg(), 24);
  QuantPlan p;
  p.weight = dyn_int8();  // an activation scheme named as a weight scheme
  EXPECT_THROW(m.apply_plan(p), std::invalid_argument);
  QuantPlan q;
  q.weight = rtn(4, 32);
  LayerOverride typo;
  typo.pattern = "blk.*.ffn_dwn";
  typo.skip = true;
  q.overrides = {typo};
  EXPECT_THROW(m.apply_plan(q), std::invalid_argument);  // matches nothing
  QuantPlan g;
  g.weight = rtn(4, 48);  // 48 ∤ 64
  EXPECT_THROW(m.apply_plan(g), std::invalid_argument);
  m.apply_plan(QuantPlan{});
  QuantPlan w;
  w.weight = rtn(8, 0);
  m.apply_plan(w);
  EXPECT_THROW(m.set_training(true), std::invalid_argument);
}

TEST(KvHook, SeesPostRopeKeysAndCanQuantizeThem) {
  LlamaModel m(cfg(), 25);
  const int64_t B = 2, T = 16;
  const at::Tensor t = toks(B, T, 101);
  const at::Tensor fp = m.forward(t);
  int calls = 0;
  m.set_kv_hook([&](int layer, at::Tensor& k, at::Tensor& v) {
    EXPECT_EQ(layer, calls);
    ++calls;
    EXPECT_EQ(k.sizes().vec(), (std::vector<int64_t>{B * T, 2 * 16}));
    EXPECT_EQ(v.sizes().vec(), (std::vector<int64_t>{B * T, 2 * 16}));
    EXPECT_TRUE(k.is_contiguous());
  });
  EXPECT_TRUE(at::equal(m.forward(t), fp)) << "an identity hook must not change anything";
  EXPECT_EQ(calls, 2);
  // Keys after RoPE: at position 0 RoPE is the identity, so row 0 of the keys equals attn_k(n1) there.
  at::Tensor k0;
  m.set_kv_hook([&](int layer, at::Tensor& k, at::Tensor&) {
    if (layer == 0) k0 = k.clone();
  });
  at::Tensor n1;
  m.set_observer([&](const LinearLayer& l, const at::Tensor& x, const at::Tensor& y) {
    if (l.name == "blk.0.attn_k") n1 = y.clone();
  });
  m.forward(t);
  m.set_observer(nullptr);
  EXPECT_TRUE(at::equal(k0[0], n1[0]));
  EXPECT_FALSE(at::equal(k0[1], n1[1]));  // position 1 is rotated
  m.set_kv_hook([](int, at::Tensor&, at::Tensor& v) { v.zero_(); });
  EXPECT_FALSE(at::equal(m.forward(t), fp));
  m.set_kv_hook(nullptr);
  // The plan's kv_cache slot takes an activation-style scheme (per-token int8 over [tokens, heads·dim]).
  QuantPlan p;
  p.kv_cache = dyn_int8();
  m.apply_plan(p);
  const double d = rel_rms(fp, m.forward(t));
  EXPECT_GT(d, 0.0);
  EXPECT_LT(d, 0.05);
}

TEST(Calibration, CountsRowsAndHessianIsTwoXtXOverN) {
  LlamaModel m(cfg(), 26);
  CaptureOptions o;
  o.layers = {"blk.0.attn_q", "blk.1.ffn_down"};
  CalibrationCapture cap(o);
  m.set_capture(&cap);
  const int64_t B = 2, T = 12, N = 3;
  std::vector<at::Tensor> inputs0;
  for (int64_t w = 0; w < N; ++w) m.forward(toks(B, T, 101, w));
  m.set_capture(nullptr);
  EXPECT_EQ(cap.layers(), (std::vector<std::string>{"blk.0.attn_q", "blk.1.ffn_down"}));
  EXPECT_EQ(cap.rows_seen("blk.0.attn_q"), N * B * T);
  EXPECT_EQ(cap.rows_seen("blk.1.ffn_down"), N * B * T);
  EXPECT_EQ(cap.rows_seen("blk.0.attn_k"), 0);

  for (const char* name : {"blk.0.attn_q", "blk.1.ffn_down"}) {
    const schemes::Calibration c = cap.calibration(name);
    EXPECT_EQ(c.layer_name, name);
    EXPECT_EQ(c.n_samples, N * B * T);
    ASSERT_EQ(c.inputs.rows, N * B * T);
    const int64_t K = c.inputs.cols;
    EXPECT_EQ(K, m.linear_layer(name).in_features());
    // Direct H = 2·XᵀX/n, per element in double in row order.
    double max_err = 0.0, max_h = 0.0;
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < K; ++j) {
        double s = 0.0;
        for (int64_t r = 0; r < c.inputs.rows; ++r) s += double(c.inputs(r, i)) * double(c.inputs(r, j));
        const double h = 2.0 * s / double(c.inputs.rows);
        max_err = std::max(max_err, std::fabs(h - c.hessian[i * K + j]));
        max_h = std::max(max_h, std::fabs(h));
      }
    // Both are sums of the same exact double products (float·float is exact in double), in different
    // orders: |Δ| ≤ n·2^−53·Σ|x_i x_j| ≲ 72·1.1e−16·max → 1e−12 relative is ample.
    EXPECT_LE(max_err, 1e-12 * max_h) << name;
    for (int64_t j = 0; j < K; ++j) {
      double amax = 0.0, asum = 0.0;
      for (int64_t r = 0; r < c.inputs.rows; ++r) {
        amax = std::max(amax, std::fabs(double(c.inputs(r, j))));
        asum += std::fabs(double(c.inputs(r, j)));
      }
      EXPECT_EQ(c.act_absmax[j], static_cast<float>(amax));
      EXPECT_FLOAT_EQ(c.act_absmean[j], static_cast<float>(asum / double(c.inputs.rows)));
    }
  }
  // blk.0.attn_q's input is rmsnorm(embedding)·attn_norm of the tokens (first window's first row).
  const schemes::Calibration c = cap.calibration("blk.0.attn_q");
  at::Tensor emb;
  for (auto& [n, p] : m.named_parameters())
    if (n == "token_embd.weight") emb = p;
  const at::Tensor e = emb[toks(B, T, 101, 0)[0][0].item<int64_t>()].to(at::kDouble);
  const at::Tensor want = e / (e.pow(2).mean() + 1e-5).sqrt();  // attn_norm = 1 in a random model
  for (int64_t j = 0; j < 64; ++j) EXPECT_NEAR(c.inputs(0, j), want[j].item<double>(), 1e-5);

  // max_rows keeps the first rows only, statistics still see every row.
  CaptureOptions o2 = o;
  o2.max_rows = 10;
  CalibrationCapture cap2(o2);
  m.set_capture(&cap2);
  m.forward(toks(B, T, 101));
  m.set_capture(nullptr);
  EXPECT_EQ(cap2.calibration("blk.0.attn_q").inputs.rows, 10);
  EXPECT_EQ(cap2.calibration("blk.0.attn_q").n_samples, B * T);
  EXPECT_THROW(cap2.calibration("blk.0.attn_v"), std::invalid_argument);

  // run_calibration over protocol windows: rows = windows · n_ctx, head input included when asked.
  Protocol p;
  p.n_ctx = 16;
  p.bos = BosMode::none;
  std::vector<int32_t> ids(100);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 13) % 101);
  const Windows w = make_windows(p, ids, -1);
  CaptureOptions o3;
  o3.layers = {"blk.*.ffn_down", "output"};
  CalibrationCapture cap3(o3);
  EXPECT_EQ(run_calibration(m, cap3, w, 4, 3), 4);
  EXPECT_EQ(cap3.rows_seen("blk.0.ffn_down"), 4 * 16);
  EXPECT_EQ(cap3.rows_seen("blk.1.ffn_down"), 4 * 16);
  EXPECT_EQ(cap3.rows_seen("output"), 4 * 16);
}

}  // namespace
}  // namespace qeval::model
