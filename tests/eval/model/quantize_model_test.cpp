// tests/eval/model/quantize_model_test.cpp — model-level integration of the calibration schemes (quantize_model):
// folding, sequential capture, KV hook, LLM.int8, static activations, AWQ/SmoothQuant migration, mixed precision.
// Fast: the tiny Llama fixture (2 layers, d 64, GQA 4:2, d_ff 160, vocab 101) and small random models.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <unistd.h>

#include "eval/model/checkpoint.hpp"
#include "eval/model/llama.hpp"
#include "eval/model/model_run.hpp"
#include "eval/model/ppl.hpp"
#include "eval/model/quantize_model.hpp"
#include "quant/rng.hpp"
#include "schemes/mixed/mixed.hpp"
#include "tests/eval/model/fixtures.hpp"

namespace qeval::model {
namespace {

// The forward test's bound for one fp32 forward (tests/eval/model/forward_test.cpp, STYLE.md 8):
// c·eps·max|logit|·√K with K the longest reduction and c = 64 covering ~2 layers × ~8 rounding stages.
double fp32_forward_bound(double max_logit, int64_t K) { return 64.0 * kEps * max_logit * std::sqrt(double(K)); }

// Log-uniform s in [1/4, 4] (or powers of two 2^k, k ∈ [−3, 3]).
std::vector<float> random_scales(int64_t n, Rng& rng, bool pow2) {
  std::vector<float> s(static_cast<size_t>(n));
  for (auto& v : s) {
    if (pow2) {
      v = std::ldexp(1.0f, static_cast<int>(rng.below(7)) - 3);
    } else {
      v = static_cast<float>(std::exp(rng.uniform(std::log(0.25), std::log(4.0))));
    }
  }
  return s;
}

void fold_everything(LlamaModel& m, uint64_t seed, bool pow2) {
  Rng rng(seed);
  for (int64_t l = 0; l < m.config().n_layers; ++l)
    for (InputGroup g : {InputGroup::attn_in, InputGroup::attn_out, InputGroup::ffn_in, InputGroup::ffn_out}) {
      if (!group_foldable(m, g)) continue;
      const int64_t in = m.linear_layer(group_members(l, g)[0]).in_features();
      fold_migration(m, l, g, random_scales(in, rng, pow2));
    }
}

// ---- shared weights (issue 15) ----------------------------------------------------------------------------------

const float* data_of(const at::Tensor& t) { return t.data_ptr<float>(); }

// LlamaModel(shared_ptr<const Checkpoint>) uses the checkpoint's fp32 data in place: the same forward as a copy,
// no second copy of the weights, and a migration fold (which modifies weights in place) copies first so the
// checkpoint — shared with other runs — is never changed. The tied output keeps aliasing token_embd.
TEST(SharedWeights, ShareTheCheckpointUntilAFoldCopiesIt) {
  for (const std::string file : {"/tests/data/gguf/tiny_llama.gguf", "/tests/data/gguf/tiny_llama_tied.gguf"}) {
    SCOPED_TRACE(file);
    auto ck = std::make_shared<const Checkpoint>(load_checkpoint(std::string(QEVAL_SOURCE_DIR) + file));
    const std::vector<float> q0 = ck->tensors.at("blk.0.attn_q.weight").data;
    LlamaModel copy(*ck), shared(ck);
    EXPECT_FALSE(copy.shares_weights());
    ASSERT_TRUE(shared.shares_weights());
    EXPECT_EQ(data_of(shared.linear_layer("blk.0.attn_q").weight), ck->tensors.at("blk.0.attn_q.weight").data.data());
    EXPECT_NE(data_of(copy.linear_layer("blk.0.attn_q").weight), ck->tensors.at("blk.0.attn_q.weight").data.data());
    const at::Tensor t = toks(2, 24, ck->config.vocab_size, 3);
    EXPECT_TRUE(at::equal(shared.forward(t), copy.forward(t)));  // same values, same order of operations
    fold_everything(shared, 7, /*pow2=*/false);
    fold_everything(copy, 7, /*pow2=*/false);
    EXPECT_FALSE(shared.shares_weights());
    EXPECT_EQ(ck->tensors.at("blk.0.attn_q.weight").data, q0);  // the checkpoint is untouched
    EXPECT_NE(data_of(shared.linear_layer("blk.0.attn_q").weight), ck->tensors.at("blk.0.attn_q.weight").data.data());
    EXPECT_TRUE(at::equal(shared.forward(t), copy.forward(t)));  // folded the same way
    const LinearLayer& out = shared.linear_layer("output");
    EXPECT_TRUE(out.effective.is_same(out.weight));
    if (ck->config.tied_embeddings) {
      for (auto& [name, p] : shared.named_parameters())
        if (name == "token_embd.weight") {
          EXPECT_EQ(data_of(p), data_of(out.weight));
        }
    }
  }
}

// ---- folding ----------------------------------------------------------------------------------------------------

// With s = powers of two every fold is an exact exponent shift: the norm weight w/s, the weight column w·s, the
// rows of v / up divided by s — and every product (x/s)·(w·s) equals x·w bit for bit, summed in the same order. So
// any plumbing error (a wrong column, a missed consumer, v rows vs o columns mismatched) shows up as a difference,
// and a correct fold gives exactly 0.
TEST(Fold, PowerOfTwoScalesAreBitExactInEveryGroup) {
  for (bool mha : {true, false}) {
    std::unique_ptr<LlamaModel> m, ref;
    if (mha) {
      m = std::make_unique<LlamaModel>(mha_config(), 31);
      ref = std::make_unique<LlamaModel>(mha_config(), 31);
    } else {
      const Checkpoint ck = load_checkpoint(kTiny);
      m = std::make_unique<LlamaModel>(ck);
      ref = std::make_unique<LlamaModel>(ck);
    }
    EXPECT_EQ(group_foldable(*m, InputGroup::attn_out), mha);
    fold_everything(*m, 7, /*pow2=*/true);
    const at::Tensor t = toks(2, 24, 101, 3);
    EXPECT_TRUE(at::equal(m->forward(t), ref->forward(t))) << (mha ? "MHA" : "tiny GQA") << " seed 7";
  }
}

// Arbitrary s: each product term (x_j/s_j)·(w_j·s_j) now carries two extra roundings (of w·s and of the norm
// weight / producer row divided by s) besides the product's own, so the per-term relative error bound triples and
// the forward bound of the numpy cross-check (1.6e−3 at max|logit| 16.3, K = 160) becomes 3× that against the fp64
// reference. A fold that misses a consumer changes logits by O(1), far above it (checked: folding the norm only).
TEST(Fold, ArbitraryScalesKeepLogitsWithinTheDerivedFp32Bound) {
  const Checkpoint ck = load_checkpoint(kTiny);
  LlamaModel m(ck);
  std::ifstream f(kTiny + "/reference.json");
  ASSERT_TRUE(f);
  nlohmann::json rj;
  f >> rj;
  const auto tv = rj["tokens"].get<std::vector<std::vector<int64_t>>>();
  const auto shape = rj["logits_shape"].get<std::vector<int64_t>>();
  std::vector<double> want(static_cast<size_t>(shape[0] * shape[1] * shape[2]));
  std::ifstream lf(kTiny + "/reference_logits.f64", std::ios::binary);
  lf.read(reinterpret_cast<char*>(want.data()), static_cast<std::streamsize>(want.size() * sizeof(double)));
  ASSERT_TRUE(lf);
  const at::Tensor expect = at::from_blob(want.data(), shape, at::kDouble).clone();
  at::Tensor t = at::empty({shape[0], shape[1]}, at::kLong);
  for (int64_t b = 0; b < shape[0]; ++b)
    for (int64_t i = 0; i < shape[1]; ++i) t[b][i] = tv[static_cast<size_t>(b)][static_cast<size_t>(i)];
  const double bound = 3.0 * fp32_forward_bound(expect.abs().max().item<double>(), 160);
  const uint64_t seed = seed_from_env(11);
  fold_everything(m, seed, /*pow2=*/false);
  const double d = max_abs_diff(m.forward(t), expect);
  std::printf("[ fold ] arbitrary s ∈ [1/4, 4]: max |logit − fp64 ref| = %.3e (bound %.3e)\n", d, bound);
  EXPECT_LE(d, bound) << "seed " << seed;

  // Sensitivity: fold 1/s into attn_norm of block 0 but forget the columns of q, k, v → the change is far above.
  LlamaModel broken(ck);
  Rng rng(seed);
  const std::vector<float> s = random_scales(64, rng, false);
  for (auto& [name, p] : broken.named_parameters())
    if (name == "blk.0.attn_norm.weight") p.div_(at::from_blob(const_cast<float*>(s.data()), {64}, at::kFloat));
  EXPECT_GT(max_abs_diff(broken.forward(t), expect), 100.0 * bound) << "seed " << seed;

  EXPECT_THROW(fold_migration(m, 0, InputGroup::attn_out, std::vector<float>(64, 1.0f)), std::invalid_argument);
  EXPECT_THROW(fold_migration(m, 0, InputGroup::attn_in, std::vector<float>(63, 1.0f)), std::invalid_argument);
  EXPECT_THROW(fold_migration(m, 0, InputGroup::ffn_in, std::vector<float>(64, 0.0f)), std::invalid_argument);
  EXPECT_THROW(fold_migration(m, 5, InputGroup::ffn_in, std::vector<float>(64, 1.0f)), std::invalid_argument);
}

// ---- GPTQ: sequential capture -----------------------------------------------------------------------------------

double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += a[i] * a[i];
  }
  return std::sqrt(num / den);
}

TEST(Gptq, SequentialCaptureSeesTheQuantizedPrefix) {
  const Checkpoint ck = load_checkpoint(kTiny);
  const CalibrationWindows cw = calib_windows(8, 32, 101, 5);
  QuantPlan plan;
  plan.weight = cfg("gptq", 3, 32);
  plan.overrides = {skip("output")};
  std::map<std::string, std::vector<double>> seq_h, fp_h;
  QuantizeOptions o = quiet();
  o.on_capture = [&](const std::string& l, const schemes::Calibration& c) { seq_h[l] = c.hessian; };
  LlamaModel seq(ck);
  const QuantizedModel qs = quantize_model(seq, plan, &cw, o);
  o.sequential = false;
  o.on_capture = [&](const std::string& l, const schemes::Calibration& c) { fp_h[l] = c.hessian; };
  LlamaModel par(ck);
  quantize_model(par, plan, &cw, o);
  ASSERT_EQ(seq_h.size(), 8u);  // 4 input groups × 2 blocks
  ASSERT_EQ(fp_h.size(), 8u);

  // Reference captures with the library's plain capture over whole-model forwards (run_calibration), same windows.
  Windows w;
  w.n_ctx = cw.length;
  w.first = cw.length / 2;
  for (int64_t i = 0; i < cw.count; ++i) w.chunk_ids.push_back(i);
  w.tokens = cw.tokens;
  CaptureOptions co;
  co.layers = {"blk.*"};
  co.keep_inputs = false;
  auto capture_of = [&](LlamaModel& m) {
    auto cap = std::make_unique<CalibrationCapture>(co);
    run_calibration(m, *cap, w, -1, 8);
    return cap;
  };
  LlamaModel fp(ck);
  const auto fp_cap = capture_of(fp);
  const auto q_cap = capture_of(seq);  // the final sequential model

  // Block 0 sees the embeddings either way: identical captures. The float GEMMs run on identical inputs in the same
  // batches, so the statistics agree to the last bit; we allow 1e-12 relative for any reordering inside ATen.
  for (const char* l : {"blk.0.attn_q", "blk.0.attn_output", "blk.0.ffn_gate", "blk.0.ffn_down"})
    EXPECT_LE(rel_diff(seq_h[l], fp_h[l]), 1e-12) << l;
  // Non-sequential = the fp model's inputs (run_calibration on the fp model). Whole-model and block-wise forwards do
  // the same float operations; 1e-6 relative covers summation-order differences of the Hessian (n = 256 rows).
  for (const auto& [l, h] : fp_h) EXPECT_LE(rel_diff(h, fp_cap->calibration(l).hessian), 1e-6) << l;
  // Block 1 under sequential capture: its inputs come from the 3-bit block 0. The change is the propagated
  // quantization error, ~ the 3-bit weight noise (SQNR ≈ 15 dB → ~18 % relative per layer); require > 1 %,
  // four orders above float noise.
  for (const char* l : {"blk.1.attn_q", "blk.1.attn_output", "blk.1.ffn_gate", "blk.1.ffn_down"}) {
    const double d = rel_diff(seq_h[l], fp_h[l]);
    std::printf("[ gptq sequential ] %s: ‖H_seq − H_fp‖/‖H_fp‖ = %.3f\n", l, d);
    EXPECT_GT(d, 0.01) << l;
  }
  // …and it is exactly what the final quantized model feeds block 1's first layer (whose input depends only on
  // the quantized block 0).
  EXPECT_LE(rel_diff(seq_h["blk.1.attn_q"], q_cap->calibration("blk.1.attn_q").hessian), 1e-6);
  // Every quantized layer is GPTQ at 3 bits, g32: 3 + 16/32 = 3.5 bits/weight.
  EXPECT_EQ(qs.layers.size(), 14u);
  EXPECT_NEAR(qs.bits_per_weight(), 3.5, 1e-12);
  for (const auto& l : qs.layers) EXPECT_TRUE(l.migration.empty()) << l.layer;  // GPTQ never gets migration
  EXPECT_EQ(qs.calibration_tokens, 8 * 32);
}

TEST(Gptq, BeatsRtnOnTheCalibrationOutputError) {
  // Sanity of the plumbing: on its own calibration data GPTQ must lower every layer's output error ‖X(W − Ŵ)ᵀ‖²
  // versus RTN (the property it optimizes; schemes/ proves the margin on synthetic layers). Measured here as the
  // model's KL to fp on the calibration windows: GPTQ < RTN at 3 bits.
  const Checkpoint ck = load_checkpoint(kTiny);
  const CalibrationWindows cw = calib_windows(16, 32, 101, 6);
  Protocol p;
  p.n_ctx = cw.length;
  p.threads = 1;
  Windows w;
  w.n_ctx = cw.length;
  w.first = cw.length / 2;
  for (int64_t i = 0; i < cw.count; ++i) w.chunk_ids.push_back(i);
  w.tokens = cw.tokens;
  w.targets = cw.targets;
  const Evaluator ev(p, w);
  LlamaModel fp(ck);
  const auto ref = ev.compute_reference(fp);
  double kl[2];
  for (int k = 0; k < 2; ++k) {
    QuantPlan plan;
    plan.weight = cfg(k == 0 ? "rtn" : "gptq", 3, 32);
    plan.overrides = {skip("output")};
    LlamaModel m(ck);
    quantize_model(m, plan, &cw, quiet());
    kl[k] = ev.evaluate(m, ref.get()).kl_mean;
  }
  std::printf("[ gptq vs rtn ] tiny model, 3-bit g32, KL on calibration windows: rtn %.4g, gptq %.4g\n", kl[0], kl[1]);
  EXPECT_LT(kl[1], kl[0]);
}

// ---- KV cache -------------------------------------------------------------------------------------------------

TEST(KvCache, HookQuantizesEachSequenceWithTheRightShapes) {
  const Checkpoint ck = load_checkpoint(kTiny);
  SpyLog log;
  QuantPlan plan;
  plan.kv_cache = cfg("kv_cache", 4, 0, {{"key_axis", "channel"}, {"value_axis", "token"}});
  QuantizeOptions o = quiet();
  o.make_scheme = spy_factory(&log, "kv_cache");
  LlamaModel m(ck);
  const QuantizedModel q = quantize_model(m, plan, nullptr, o);
  ASSERT_TRUE(q.kv_enabled);
  const int64_t B = 3, T = 16, cols = ck.config.n_kv_heads * ck.config.head_dim();  // 2 × 16 = 32
  const at::Tensor t = toks(B, T, 101, 9);
  const at::Tensor batched = m.forward(t);
  // Per layer and sequence: a key call then a value call, each one sequence [T, n_kv_heads·head_dim].
  ASSERT_EQ(log.kv.size(), static_cast<size_t>(ck.config.n_layers * 2 * B));
  for (size_t i = 0; i < log.kv.size(); ++i) {
    EXPECT_EQ(log.kv[i].rows, T) << i;
    EXPECT_EQ(log.kv[i].cols, cols) << i;
    EXPECT_EQ(log.kv[i].part, i % 2 == 0 ? schemes::KvPart::key : schemes::KvPart::value) << i;
  }
  // Per-channel key scales run over the tokens of ONE sequence: the batched forward equals the sequences run alone
  // (float tolerance of the forward bound: only the batched GEMM's blocking may differ), while 4-bit KV
  // quantization itself moves the logits far more.
  at::Tensor alone = at::empty_like(batched);
  for (int64_t b = 0; b < B; ++b) alone[b] = m.forward(t.slice(0, b, b + 1))[0];
  const double bound = fp32_forward_bound(batched.abs().max().item<double>(), 160);
  EXPECT_LE(max_abs_diff(batched, alone), bound);
  LlamaModel fp(ck);
  EXPECT_GT(max_abs_diff(batched, fp.forward(t)), 10.0 * bound);
  // The switch turns it off (blame uses it) — then the model is the fp model again.
  q.kv_enabled->store(false);
  EXPECT_TRUE(at::equal(m.forward(t), fp.forward(t)));
}

// The plan's kv_cache slot (apply_plan) and quantize_model's hook apply a KV scheme the same way — per sequence, keys
// and values each with their own axis — so the two give the same logits bit for bit (channel scales over one
// sequence's tokens would differ from scales over the whole batch).
TEST(KvCache, ApplyPlanAndQuantizeModelAgree) {
  const Checkpoint ck = load_checkpoint(kTiny);
  QuantPlan plan;
  plan.kv_cache = cfg("kv_cache", 4, 0, {{"key_axis", "channel"}, {"value_axis", "token"}});
  LlamaModel a(ck), b(ck);
  a.apply_plan(plan);
  quantize_model(b, plan, nullptr, quiet());
  const at::Tensor t = toks(3, 16, 101, 10);
  EXPECT_TRUE(at::equal(a.forward(t), b.forward(t)));
}

// ---- LLM.int8 ----------------------------------------------------------------------------------------------------

TEST(LlmInt8, InfiniteThresholdEqualsVectorWiseInt8AtModelLevel) {
  const Checkpoint ck = load_checkpoint(kTiny);
  const at::Tensor t = toks(2, 24, 101, 13);
  QuantPlan a;
  // threshold = ∞ in effect: the option must be finite, and 1e30 exceeds any fp32 activation this model makes.
  a.weight = cfg("llm_int8", 8, 0, {{"threshold", "1e30"}});
  a.overrides = {skip("output")};
  LlamaModel ma(ck);
  const QuantizedModel qa = quantize_model(ma, a, nullptr, quiet());
  const at::Tensor ya = ma.forward(t);
  // Vector-wise int8 through the fake-quant path: per-output-channel weights, per-token activations (threshold 0 =
  // quantize every call).
  QuantPlan b;
  b.weight = cfg("rtn", 8, 0);
  b.activation = cfg("dynamic_per_token", 8, 0, {{"threshold", "0"}});
  b.overrides = {skip("output")};
  LlamaModel mb(ck);
  quantize_model(mb, b, nullptr, quiet());
  const at::Tensor yb = mb.forward(t);
  // Same codes and scales; LLM.int8 sums the integer products exactly and scales once, the fake-quant path sums
  // dequantized floats — a float-rounding difference per layer, within the forward bound.
  LlamaModel fp(ck);
  const double d = max_abs_diff(ya, yb), dq = max_abs_diff(yb, fp.forward(t));
  const double bound = fp32_forward_bound(ya.abs().max().item<double>(), 160);
  std::printf("[ llm.int8 inf ] max |Δlogit| vs vector-wise int8 = %.3e (bound %.3e); int8 vs fp %.3e\n", d, bound, dq);
  EXPECT_LE(d, bound);
  EXPECT_GT(dq, 10.0 * bound);  // int8 itself is visible
  // Every quantized layer routes through the linear scheme and reports its outlier fraction (0 with no threshold).
  const nlohmann::json st = qa.run_stats();
  ASSERT_EQ(st.size(), 1u);
  const auto& per_layer = st.begin().value();
  EXPECT_EQ(per_layer.size(), 14u);
  for (const auto& [layer, kv] : per_layer.items()) {
    EXPECT_EQ(kv["outlier_fraction"].get<double>(), 0.0) << layer;
    EXPECT_GE(kv["calls"].get<double>(), 1.0) << layer;
  }
  for (const auto& l : qa.layers) {
    EXPECT_EQ(l.role, "linear");
    EXPECT_NEAR(l.bits_per_weight, 8.0 + 16.0 / static_cast<double>(l.cols), 1e-12) << l.layer;
  }
}

TEST(LlmInt8, OutlierFractionsAreReportedPerLayer) {
  const Checkpoint ck = load_checkpoint(kTiny);
  QuantPlan a;
  a.weight = cfg("llm_int8", 8, 0, {{"threshold", "0.5"}});  // low: tiny activations must produce outliers
  a.overrides = {skip("output")};
  LlamaModel m(ck);
  const QuantizedModel q = quantize_model(m, a, nullptr, quiet());
  (void)m.forward(toks(1, 16, 101, 2));
  const nlohmann::json st = q.run_stats().begin().value();
  double mx = 0;
  for (const auto& [layer, kv] : st.items()) {
    const double f = kv["outlier_fraction"].get<double>();
    EXPECT_GE(f, 0.0);
    EXPECT_LE(f, 1.0);
    mx = std::max(mx, f);
  }
  EXPECT_GT(mx, 0.0);
}

// ---- static activations -------------------------------------------------------------------------------------------

TEST(StaticAct, CalibrateIsCalledOncePerLayerAndItsScalesAreUsedEveryForward) {
  const Checkpoint ck = load_checkpoint(kTiny);
  const CalibrationWindows cw = calib_windows(4, 32, 101, 8);
  SpyLog log;
  QuantPlan plan;
  plan.weight = cfg("rtn", 8, 0);
  plan.activation = cfg("static_act", 8, -1, {{"granularity", "tensor"}});
  plan.overrides = {skip("output")};
  QuantizeOptions o = quiet();
  o.make_scheme = spy_factory(&log, "static_act");
  LlamaModel m(ck);
  const QuantizedModel q = quantize_model(m, plan, &cw, o);
  ASSERT_EQ(log.calibrate_calls.size(), 14u);
  for (const auto& [layer, n] : log.calibrate_calls) EXPECT_EQ(n, 1) << layer;
  // The sequential propagation of block 0 already ran its 7 layers through fake_quantize with the kept scales.
  const int before = log.fake_quantize_calls;
  EXPECT_EQ(log.fake_quantize_with_frozen, before);
  (void)m.forward(toks(2, 16, 101, 4));
  EXPECT_EQ(log.fake_quantize_calls - before, 14);  // one call per quantized layer per forward
  EXPECT_EQ(log.fake_quantize_with_frozen, log.fake_quantize_calls);
  for (const auto& [layer, n] : log.calibrate_calls) EXPECT_EQ(n, 1) << layer;  // never again
  const nlohmann::json st = q.run_stats();
  ASSERT_EQ(st.size(), 1u);
  for (const auto& [layer, kv] : st.begin().value().items()) EXPECT_TRUE(kv.contains("clipped_fraction")) << layer;
}

TEST(StaticAct, SymmetricMinMaxUsesEveryTokenOtherRangesTheRowSample) {
  const Checkpoint ck = load_checkpoint(kTiny);
  const CalibrationWindows cw = calib_windows(4, 32, 101, 18);
  for (bool sym : {true, false}) {
    QuantPlan plan;
    plan.activation = cfg("static_act", 8, -1, {{"granularity", "tensor"}});
    if (!sym) {
      plan.activation->params.mapping = quant::Mapping::asymmetric;
      plan.activation->params.range = quant::RangeMethod::percentile;
    }
    plan.overrides = {skip("output")};
    std::map<std::string, double> absmax;  // by representative
    QuantizeOptions o = quiet();
    o.max_rows = 40;  // a row sample smaller than the 128 calibration tokens
    o.on_capture = [&](const std::string& l, const schemes::Calibration& c) {
      double a = 0;
      for (float v : c.act_absmax) a = std::max(a, static_cast<double>(v));
      absmax[l] = a;
      EXPECT_EQ(c.inputs.rows, sym ? 0 : 40) << l;  // rows are captured only when the range needs them
    };
    LlamaModel m(ck);
    quantize_model(m, plan, &cw, o);
    const std::string rep = "blk.1.attn_q";  // q, k, v share it
    for (const char* l : {"blk.1.attn_q", "blk.1.attn_v"}) {
      const auto& c = m.linear_layer(l).act_calib;
      ASSERT_TRUE(c) << l;
      ASSERT_EQ(c->frozen_scales.size(), 1u);
      EXPECT_EQ(c->inputs.data, nullptr);  // no view into the capture that is gone
      if (sym) {
        // Symmetric int8 min/max: scale = max|x| / 127 over all 128 tokens (float division: 1 ulp).
        EXPECT_NEAR(c->frozen_scales[0], absmax[rep] / 127.0, 1e-6 * absmax[rep] / 127.0) << l;
      }
    }
  }
}

// ---- AWQ / SmoothQuant migration ------------------------------------------------------------------------------------

TEST(Awq, FoldsWhereItCanAndKeepsTheFpFunction) {
  const Checkpoint ck = load_checkpoint(kTiny);
  const CalibrationWindows cw = calib_windows(8, 32, 101, 12);
  SpyLog log;
  QuantPlan plan = with_reference_overrides([] {
    QuantPlan p;
    p.weight = cfg("awq", 3, 32);
    p.overrides = {skip("output")};
    return p;
  }());
  ASSERT_EQ(plan.overrides.size(), 3u);
  EXPECT_EQ(plan.resolve("blk.0.attn_q").weight->options.items().at("clip"), "false");
  EXPECT_FALSE(plan.resolve("blk.0.attn_v").weight->options.has("clip"));
  EXPECT_FALSE(plan.resolve("output").weight);
  QuantizeOptions o = quiet();
  o.make_scheme = spy_factory(&log, "awq");
  LlamaModel m(ck);
  const at::Tensor t = toks(2, 24, 101, 14);
  LlamaModel fp(ck);
  const at::Tensor y_fp = fp.forward(t);
  const QuantizedModel q = quantize_model(m, plan, &cw, o);
  // One scale search per input group (q/k/v share one even though q, k have clip=false), 4 groups × 2 blocks.
  EXPECT_EQ(log.input_channel_scales_calls, 8);
  for (const auto& l : q.layers) {
    const std::string kind = l.layer.substr(l.layer.rfind('.') + 1), blk = l.layer.substr(0, l.layer.rfind('.'));
    ASSERT_FALSE(l.migration.empty()) << l.layer;
    if (kind == "attn_output") {
      EXPECT_EQ(l.migration, "unfolded");  // GQA 4:2
      EXPECT_NEAR(l.bits_per_weight, 3.5 + 16.0 / static_cast<double>(l.rows), 1e-12);  // + col_scale
    } else if (kind == "ffn_down") {
      EXPECT_EQ(l.migration, "folded into " + blk + ".ffn_up rows");
    } else {
      EXPECT_EQ(l.migration, "folded into " + blk + (kind.rfind("attn", 0) == 0 ? ".attn_norm" : ".ffn_norm"));
    }
  }
  // The folds leave the fp function unchanged: bypass (fp weights, folded) vs the untouched model, within the
  // arbitrary-s fold bound (3× the single-forward bound; AWQ's s straddle 1 like the test's).
  m.set_bypass_plan(true);
  const double bound = 3.0 * fp32_forward_bound(y_fp.abs().max().item<double>(), 160);
  EXPECT_LE(max_abs_diff(m.forward(t), y_fp), bound);
  m.set_bypass_plan(false);
  EXPECT_GT(max_abs_diff(m.forward(t), y_fp), bound);  // 3-bit weights are visible
}

TEST(SmoothQuant, MigrationStoredOnceAndEveryProductRoutedThroughLinear) {
  const Checkpoint ck = load_checkpoint(kTiny);
  const CalibrationWindows cw = calib_windows(4, 32, 101, 15);
  SpyLog log;
  QuantPlan plan = QuantPlan::from_json(normalize_plan_json(
      {{"linear", {{"scheme", "smoothquant"}, {"params", {{"bits", 8}, {"group_size", 0}}}}},
       {"overrides", {{{"pattern", "output"}, {"skip", true}}}}}));
  QuantizeOptions o = quiet();
  o.make_scheme = spy_factory(&log, "smoothquant");
  LlamaModel m(ck);
  const QuantizedModel q = quantize_model(m, plan, &cw, o);
  EXPECT_EQ(log.input_channel_scales_calls, 8);
  const at::Tensor t = toks(2, 24, 101, 16);
  (void)m.forward(t);
  EXPECT_EQ(log.input_channel_scales_calls, 8);  // never recomputed by a forward
  for (const auto& n : m.linear_names()) {
    const LinearLayer& l = m.linear_layer(n);
    if (n == "output") continue;
    ASSERT_TRUE(l.linear_scheme) << n;
    ASSERT_TRUE(l.linear_calib) << n;
    EXPECT_EQ(l.linear_calib->migration_scales.size(), static_cast<size_t>(l.in_features())) << n;
    EXPECT_TRUE(l.linear_calib->hessian.empty()) << n;
    EXPECT_EQ(l.linear_calib->inputs.data, nullptr) << n;  // no view into a capture that is gone
  }
  // W8A8 moves the logits by about the int8 noise: each of the 14 layers adds weight and activation noise of
  // ≤ 10^(−38/10) relative power (int8 absmax on ≥ 64 values: 41–46 dB, tests/eval/model), 28 sources adding in
  // power → rel rms ≈ sqrt(28·10^−3.8) = 0.066; the residual stream, norms and softmax amplify by O(1): allow 4×.
  LlamaModel fp(ck);
  const at::Tensor yq = m.forward(t).to(at::kDouble), yf = fp.forward(t).to(at::kDouble);
  const double rel = std::sqrt((yq - yf).pow(2).mean().item<double>() / yf.pow(2).mean().item<double>());
  std::printf("[ smoothquant W8A8 ] rel rms Δlogits = %.3e (bound %.3e)\n", rel, 4.0 * std::sqrt(28.0 * std::pow(10.0, -3.8)));
  EXPECT_GT(rel, 0.0);
  EXPECT_LT(rel, 4.0 * std::sqrt(28.0 * std::pow(10.0, -3.8)));
  // Per-channel int8 weights: 8 bits + one fp16 scale per row of `cols` weights, + a fp16 col_scale per column
  // where the migration is not folded (attn_output under GQA 4:2).
  double bits = 0, n = 0;
  for (const auto& l : q.layers) {
    EXPECT_EQ(l.role, "linear") << l.layer;
    const bool unfolded = l.layer.find("attn_output") != std::string::npos;
    EXPECT_EQ(l.migration, unfolded ? "unfolded" : l.migration) << l.layer;
    bits += (8.0 + 16.0 / static_cast<double>(l.cols) + (unfolded ? 16.0 / static_cast<double>(l.rows) : 0.0)) *
            static_cast<double>(l.rows * l.cols);
    n += static_cast<double>(l.rows * l.cols);
  }
  EXPECT_NEAR(q.bits_per_weight(), bits / n, 1e-9);
}

// ---- mixed precision ----------------------------------------------------------------------------------------------

TEST(Mixed, AllocatesUnderTheTargetAndTheMixedSchemeFollowsIt) {
  const Checkpoint ck = load_checkpoint(kTiny);
  const CalibrationWindows cw = calib_windows(4, 32, 101, 17);
  char tmpl[] = "/tmp/qeval_mixed_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  QuantPlan plan;
  plan.weight = cfg("mixed", 4, 32);
  plan.overrides = {skip("output")};
  MixedSpec spec;
  spec.target_bits = 3.5;  // between the all-3-bit (3.5 with g32 scales) … candidates below
  spec.candidates = {{2, 32}, {4, 32}};  // 2.5 and 4.5 bits/weight with fp16 scales per 32
  spec.windows = 2;
  LlamaModel m(ck);
  const MixedReport rep = allocate_mixed(m, plan, spec, cw, tmpl, 0, false);
  ASSERT_EQ(access(rep.path.c_str(), R_OK), 0) << rep.path;
  EXPECT_EQ(rep.plan.weight->options.items().at("allocation"), rep.path);
  EXPECT_LE(rep.allocation["bits_per_weight"].get<double>(), 3.5 + 1e-12);
  EXPECT_EQ(rep.sensitivity.size(), 14u);
  // The model is left fp.
  for (const auto& n : m.linear_names()) EXPECT_TRUE(m.linear_layer(n).effective.is_same(m.linear_layer(n).weight));
  // Layers measured more sensitive at 2 bits get 4 bits: the allocation is a knapsack optimum, so at least one layer
  // is at each width (2.5 < 3.5 < 4.5) and the average meets the target.
  const auto alloc = schemes::read_allocation(rep.path);
  int n2 = 0, n4 = 0;
  for (const auto& [layer, lb] : alloc) (lb.bits == 2 ? n2 : n4)++;
  EXPECT_GT(n2, 0);
  EXPECT_GT(n4, 0);
  const QuantizedModel q = quantize_model(m, rep.plan, &cw, quiet());
  EXPECT_NEAR(q.bits_per_weight(), rep.allocation["bits_per_weight"].get<double>(), 1e-9);
  for (const auto& l : q.layers)
    EXPECT_NEAR(l.bits_per_weight, alloc.at(l.layer).bits + 0.5, 1e-12) << l.layer;
  std::remove(rep.path.c_str());
  rmdir(tmpl);
}

// ---- errors and specs -------------------------------------------------------------------------------------------

TEST(QuantizeModel, ClearErrors) {
  const Checkpoint ck = load_checkpoint(kTiny);
  QuantPlan g;
  g.weight = cfg("gptq", 4, 32);
  LlamaModel m(ck);
  EXPECT_THROW(quantize_model(m, g, nullptr, quiet()), std::invalid_argument);  // no calibration
  QuantPlan r;
  r.weight = cfg("rtn", 4, 32);
  LlamaModel m2(ck);
  quantize_model(m2, r, nullptr, quiet());
  EXPECT_THROW(quantize_model(m2, r, nullptr, quiet()), std::invalid_argument);  // twice
  QuantPlan bad;
  bad.weight = cfg("dynamic_per_token", 8, 0);
  LlamaModel m3(ck);
  EXPECT_THROW(quantize_model(m3, bad, nullptr, quiet()), std::invalid_argument);  // activation scheme as weight
  QuantPlan both;
  both.weight = cfg("llm_int8", 8, 0);
  both.activation = cfg("dynamic_per_token", 8, 0);
  LlamaModel m4(ck);
  EXPECT_THROW(quantize_model(m4, both, nullptr, quiet()), std::invalid_argument);  // linear + activation
  QuantPlan typo;
  typo.weight = cfg("rtn", 4, 32);
  typo.overrides = {skip("outptu")};
  LlamaModel m5(ck);
  EXPECT_THROW(quantize_model(m5, typo, nullptr, quiet()), std::invalid_argument);
  // Too few windows in the text.
  CalibrationSpec s;
  s.count = 10;
  EXPECT_THROW(calibration_windows_from_ids(std::vector<int32_t>(100, 5), s, 32, BosMode::none, -1),
               std::invalid_argument);
  // Fixed seed → the same windows; another seed → others.
  const auto a = calib_windows(4, 16, 101, 1), b = calib_windows(4, 16, 101, 1);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.record["tokens_xxh64"], b.record["tokens_xxh64"]);
}

TEST(ModelRunSpec, StrictJsonAndLinearAlias) {
  const nlohmann::json j = {{"model", "m.gguf"},
                            {"protocol", "configs/protocol-wikitext2-512-quick.json"},
                            {"plan", {{"linear", {{"scheme", "llm_int8"}}}}},
                            {"calibration", {{"count", 16}}},
                            {"lambada", false}};
  const ModelRunSpec s = ModelRunSpec::from_json(j);
  ASSERT_TRUE(s.plan.weight);
  EXPECT_EQ(s.plan.weight->scheme, "llm_int8");
  EXPECT_EQ(s.calibration.count, 16);
  EXPECT_EQ(s.lambada, 0);
  EXPECT_EQ(ModelRunSpec::from_json(s.to_json()).to_json(), s.to_json());
  nlohmann::json bad = j;
  bad["calibraton"] = nlohmann::json::object();
  EXPECT_THROW(ModelRunSpec::from_json(bad), std::invalid_argument);
  bad = j;
  bad["calibration"] = {{"count", 0}};
  EXPECT_THROW(ModelRunSpec::from_json(bad), std::invalid_argument);
  bad = j;
  bad["plan"] = {{"linear", {{"scheme", "llm_int8"}}}, {"weight", {{"scheme", "rtn"}}}};
  EXPECT_THROW(ModelRunSpec::from_json(bad), std::invalid_argument);
  EXPECT_THROW(ModelRunSpec::from_json({{"model", "m.gguf"}}), std::invalid_argument);  // no protocol
}

}  // namespace
}  // namespace qeval::model
