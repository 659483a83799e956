// tests/eval/model/quantize_stages_test.cpp — each stage of quantize_model on its own (eval/model/quantize_stages.hpp):
// plan resolution, capture needs and the block-by-block Calibrator, migration decisions, installing a layer, the
// allocation pieces, and the pieces of run_model. Fast: the tiny Llama fixture and small random models.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>

#include "eval/model/model_run.hpp"
#include "eval/model/quantize_stages.hpp"
#include "quant/quantize.hpp"
#include "tests/eval/model/fixtures.hpp"

namespace qeval::model {
namespace {

using stages::CaptureNeeds;
using stages::LayerSlot;
using stages::Role;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

stages::ResolvedPlan resolve(const LlamaModel& m, const QuantPlan& p, bool calibrated = true) {
  stages::SchemeSet set(stages::default_factory());
  return stages::resolve_plan(m, p, set, calibrated);
}

// ---- 1. plan --------------------------------------------------------------------------------------------------

TEST(StagePlan, RolesAndNeedsComeFromTheSchemesTraits) {
  LlamaModel m(mha_config(), 41);
  QuantPlan p;
  p.weight = cfg("gptq", 4, 32);
  LayerOverride down;
  down.pattern = "blk.*.ffn_down";
  down.weight = cfg("smoothquant", 8, 0);
  LayerOverride q;
  q.pattern = "blk.0.attn_q";
  q.activation = cfg("static_act", 8, -1);
  p.overrides = {skip("output"), down, q};
  const stages::ResolvedPlan rp = resolve(m, p);
  ASSERT_EQ(rp.slots.size(), m.linear_names().size());
  const LayerSlot& aq = rp.at("blk.0.attn_q");
  EXPECT_EQ(aq.role, Role::weight);
  EXPECT_TRUE(aq.w_needs.hessian && !aq.w_migrates);
  EXPECT_TRUE(aq.a_needs.act_absmax && !aq.a_needs.rows);
  const LayerSlot& fd = rp.at("blk.1.ffn_down");
  EXPECT_EQ(fd.role, Role::linear);
  EXPECT_TRUE(fd.w_migrates && fd.w_needs.act_absmax);
  EXPECT_EQ(fd.block, 1);
  const LayerSlot& out = rp.at("output");
  EXPECT_EQ(out.role, Role::none);
  EXPECT_FALSE(out.ws || out.as || out.reads_statistics());
  EXPECT_EQ(out.block, -1);
  EXPECT_TRUE(rp.needs_capture());
  EXPECT_EQ(rp.label(), "quantize gptq smoothquant");
}

TEST(StagePlan, EveryPlanErrorBeforeAnythingIsQuantized) {
  LlamaModel m(mha_config(), 42);
  QuantPlan wrong_target;
  wrong_target.weight = cfg("dynamic_per_token", 8, 0);
  EXPECT_NE(error_of([&] { resolve(m, wrong_target); }).find("named as the weight"), std::string::npos);
  QuantPlan both;
  both.weight = cfg("llm_int8", 8, 0);
  both.activation = cfg("dynamic_per_token", 8, 0);
  EXPECT_NE(error_of([&] { resolve(m, both); }).find("quantizes its activations itself"), std::string::npos);
  QuantPlan calibrated;
  calibrated.weight = cfg("awq", 4, 32);
  const std::string e = error_of([&] { resolve(m, calibrated, /*calibrated=*/false); });
  EXPECT_NE(e.find("'awq'"), std::string::npos) << e;
  EXPECT_NE(e.find("needs calibration"), std::string::npos) << e;
  QuantPlan typo;
  typo.overrides = {skip("blk.*.ffn_dwn")};
  EXPECT_NE(error_of([&] { resolve(m, typo); }).find("matches no linear layer"), std::string::npos);
  // Nothing was touched by any of them.
  for (const auto& n : m.linear_names()) EXPECT_FALSE(m.linear_layer(n).prepared) << n;
}

TEST(StagePlan, RequireFreshRefusesAQuantizedModel) {
  LlamaModel m(mha_config(), 43);
  EXPECT_NO_THROW(stages::require_fresh(m));
  QuantPlan p;
  p.weight = cfg("rtn", 4, 32);
  m.apply_plan(p);
  EXPECT_NE(error_of([&] { stages::require_fresh(m); }).find("plan installed"), std::string::npos);
}

// ---- 2. capture -----------------------------------------------------------------------------------------------

TEST(StageCapture, NeedsAreTheUnionOfTheMembersTraits) {
  LayerSlot gptq, sq_search, static_sym, fp;
  gptq.w_needs.hessian = true;
  sq_search.w_needs.act_absmax = sq_search.w_needs.rows = true;
  static_sym.a_needs.act_absmax = true;
  fp.w_needs.layer_name = true;  // a name is not a statistic: nothing to capture
  const CaptureNeeds a = stages::capture_needs({&gptq, &static_sym});
  EXPECT_TRUE(a.any && a.hessian);
  EXPECT_FALSE(a.rows);
  const CaptureNeeds b = stages::capture_needs({&fp, &sq_search});
  EXPECT_TRUE(b.any && b.rows);
  EXPECT_FALSE(b.hessian);
  EXPECT_FALSE(stages::capture_needs({&fp}).any);
}

// attn_q's input in block 0 is rmsnorm(embed(x))·attn_norm: computed here with plain ATen ops, its per-feature
// max|x| must equal what the Calibrator recorded (same fp32 values; max is exact), over every token.
TEST(StageCapture, RecordsTheRepresentativeInputOverEveryToken) {
  const Checkpoint ck = load_checkpoint(kTiny);
  LlamaModel m(ck);
  const CalibrationWindows cw = calib_windows(6, 16, 101, 3);
  QuantizeOptions o = quiet();
  o.max_rows = 40;
  c10::InferenceMode im;
  stages::Calibrator cal(m, cw, o, nullptr);
  CaptureNeeds rows;
  rows.any = rows.rows = true;
  const auto got = cal.capture(0, {{"blk.0.attn_q", rows}, {"blk.0.ffn_down", CaptureNeeds{true, true, false}}});
  ASSERT_EQ(got.size(), 2u);
  const schemes::Calibration& q = got.at("blk.0.attn_q");
  EXPECT_EQ(q.n_samples, cw.count * cw.length);
  EXPECT_EQ(q.inputs.rows, 40) << "rows kept: max_rows";
  EXPECT_TRUE(q.hessian.empty()) << "no Hessian asked";
  EXPECT_EQ(got.at("blk.0.ffn_down").inputs.rows, 0) << "no rows asked";
  EXPECT_EQ(got.at("blk.0.ffn_down").hessian.size(), static_cast<size_t>(160 * 160));
  const at::Tensor tok = at::from_blob(const_cast<int32_t*>(cw.tokens.data()), {cw.count, cw.length}, at::kInt);
  const at::Tensor x = m.embed(tok.to(at::kLong));
  at::Tensor norm_w;
  for (auto& [n, t] : m.named_parameters())
    if (n == "blk.0.attn_norm.weight") norm_w = t;
  const at::Tensor n1 = x * at::rsqrt(x.pow(2).mean(-1, true) + m.config().rms_eps) * norm_w;
  const at::Tensor amax = n1.abs().reshape({-1, n1.size(-1)}).amax(0);
  for (int64_t j = 0; j < amax.size(0); ++j)
    EXPECT_NEAR(q.act_absmax[static_cast<size_t>(j)], amax[j].item<float>(), 1e-6 * amax[j].item<float>()) << j;
}

// Sequential calibration (the default) feeds block 1 the output of block 0 as installed; the other mode the fp
// output. With nothing installed the two agree; with block 0 quantized in between they must not.
TEST(StageCapture, SequentialPropagationSeesWhatBlockZeroBecame) {
  const Checkpoint ck = load_checkpoint(kTiny);
  const CalibrationWindows cw = calib_windows(4, 16, 101, 4);
  const CaptureNeeds stats{true, false, false};
  auto block1_absmax = [&](bool sequential, bool quantize_block0) {
    LlamaModel m(ck);
    QuantizeOptions o = quiet();
    o.sequential = sequential;
    c10::InferenceMode im;
    stages::Calibrator cal(m, cw, o, nullptr);
    cal.capture(0, {{"blk.0.attn_q", stats}});
    if (quantize_block0) {
      QuantPlan p;
      p.weight = cfg("rtn", 2, 32);
      p.overrides = {skip("blk.1.*"), skip("output")};
      const stages::ResolvedPlan rp = resolve(m, p, false);
      for (const auto& n : group_members(0, InputGroup::ffn_in))
        stages::install_layer(m, rp.at(n), stages::layer_calibration(n, nullptr, nullptr), nullptr, nullptr);
    }
    cal.propagate(0);
    return cal.capture(1, {{"blk.1.attn_q", stats}}).at("blk.1.attn_q").act_absmax;
  };
  EXPECT_EQ(block1_absmax(true, false), block1_absmax(false, false));
  EXPECT_EQ(block1_absmax(false, true), block1_absmax(false, false)) << "non-sequential: the fp prefix";
  EXPECT_NE(block1_absmax(true, true), block1_absmax(false, false)) << "sequential: the quantized prefix";
}

// ---- 3. migrate ------------------------------------------------------------------------------------------------

std::map<std::string, schemes::Calibration> capture_block0(LlamaModel& m, const stages::ResolvedPlan& rp,
                                                           stages::Calibrator& cal) {
  std::map<std::string, CaptureNeeds> reps;
  for (InputGroup g : kInputGroups) {
    std::vector<const LayerSlot*> s;
    for (const auto& n : group_members(0, g)) s.push_back(&rp.at(n));
    if (stages::capture_needs(s).any) reps[group_members(0, g)[0]] = stages::capture_needs(s);
  }
  return cal.capture(0, reps);
}

TEST(StageMigrate, SharedFactorsFoldWhereAProducerExists) {
  for (bool mha : {true, false}) {
    std::unique_ptr<LlamaModel> m = mha ? std::make_unique<LlamaModel>(mha_config(), 44)
                                        : std::make_unique<LlamaModel>(load_checkpoint(kTiny));
    const CalibrationWindows cw = calib_windows(4, 16, 101, 5);
    QuantPlan p;
    p.weight = cfg("awq", 4, 32);
    const stages::ResolvedPlan rp = resolve(*m, p);
    const QuantizeOptions o = quiet();
    c10::InferenceMode im;
    stages::Calibrator cal(*m, cw, o, nullptr);
    const stages::BlockMigrations mig = stages::decide_migrations(*m, 0, rp, capture_block0(*m, rp, cal));
    const auto& q = mig.by_layer.at("blk.0.attn_q");
    EXPECT_TRUE(q.folded);
    EXPECT_EQ(q.producer, "blk.0.attn_norm");
    EXPECT_EQ(mig.by_layer.at("blk.0.attn_v").s, q.s) << "one set of factors for the group";
    ASSERT_EQ(mig.runtime_inv.at(InputGroup::attn_in).size(), q.s.size());
    EXPECT_FLOAT_EQ(mig.runtime_inv.at(InputGroup::attn_in)[3], 1.0f / q.s[3]);
    EXPECT_EQ(mig.by_layer.at("blk.0.ffn_down").producer, "blk.0.ffn_up rows");
    // o ← v folds only when every query head has its own value head.
    EXPECT_EQ(mig.by_layer.at("blk.0.attn_output").folded, mha);
    EXPECT_EQ(mig.runtime_inv.count(InputGroup::attn_out), mha ? 1u : 0u);
  }
}

TEST(StageMigrate, MembersThatDifferGetTheirOwnUnfoldedFactors) {
  LlamaModel m(mha_config(), 45);
  const CalibrationWindows cw = calib_windows(4, 16, 101, 6);
  QuantPlan p;
  p.weight = cfg("gptq", 4, 32);
  LayerOverride gate;
  gate.pattern = "blk.*.ffn_gate";
  gate.weight = cfg("awq", 4, 32);
  p.overrides = {gate};
  const stages::ResolvedPlan rp = resolve(m, p);
  const QuantizeOptions o = quiet();
  c10::InferenceMode im;
  stages::Calibrator cal(m, cw, o, nullptr);
  const stages::BlockMigrations mig = stages::decide_migrations(m, 0, rp, capture_block0(m, rp, cal));
  ASSERT_EQ(mig.by_layer.size(), 1u) << "GPTQ decides no factors";
  EXPECT_FALSE(mig.by_layer.at("blk.0.ffn_gate").folded);
  EXPECT_TRUE(mig.runtime_inv.empty());
}

// ---- 4. apply --------------------------------------------------------------------------------------------------

TEST(StageApply, LayerCalibrationCarriesNameAndMigration) {
  schemes::Calibration captured;
  captured.act_absmax = {1.0f, 2.0f};
  captured.layer_name = "blk.0.attn_q";
  const stages::Migration mg{{2.0f, 0.5f}, true, "blk.0.attn_norm"};
  const schemes::Calibration c = stages::layer_calibration("blk.0.attn_k", &captured, &mg);
  EXPECT_EQ(c.layer_name, "blk.0.attn_k");
  EXPECT_EQ(c.act_absmax, captured.act_absmax);
  EXPECT_EQ(c.migration_scales, mg.s);
  EXPECT_TRUE(c.migration_folded);
  const schemes::Calibration bare = stages::layer_calibration("output", nullptr, nullptr);
  EXPECT_EQ(bare.layer_name, "output");
  EXPECT_TRUE(bare.act_absmax.empty() && bare.migration_scales.empty());
}

// RTN int4 sym g32: the installed effective weight is quant's fake quantization of the weight; bits/weight is
// 4 + 16/32 (an fp16 scale per group of 32); the layer is handed to the backend; an activation-only layer stores
// nothing and so has no fingerprint.
TEST(StageApply, InstallQuantizesOnceAndPreparesTheLayer) {
  LlamaModel m(mha_config(), 46);
  QuantPlan p;
  p.weight = cfg("rtn", 4, 32);
  LayerOverride act;
  act.pattern = "blk.0.ffn_up";
  act.skip_weight = true;
  act.activation = cfg("dynamic_per_token", 8, 0);
  p.overrides = {act};
  const stages::ResolvedPlan rp = resolve(m, p, false);
  c10::InferenceMode im;
  LinearLayer& q = m.linear_layer("blk.0.attn_q");
  const at::Tensor w = q.weight.clone();
  const LayerQuantInfo info =
      stages::install_layer(m, rp.at("blk.0.attn_q"), stages::layer_calibration("blk.0.attn_q", nullptr, nullptr),
                            nullptr, nullptr);
  at::Tensor want = at::empty_like(w);
  quant::fake_quantize_affine(quant::MatrixView(w.data_ptr<float>(), w.size(0), w.size(1)), cfg("rtn", 4, 32).params,
                              quant::MutableMatrixView(want.data_ptr<float>(), w.size(0), w.size(1)));
  EXPECT_TRUE(at::equal(q.effective_weight(), want));
  EXPECT_EQ(info.role, "weight");
  EXPECT_DOUBLE_EQ(info.bits_per_weight, 4.0 + 16.0 / 32.0);
  EXPECT_EQ(info.fingerprint.size(), 16u);
  EXPECT_TRUE(q.prepared && q.weight_scheme);
  const LayerQuantInfo a =
      stages::install_layer(m, rp.at("blk.0.ffn_up"), stages::layer_calibration("blk.0.ffn_up", nullptr, nullptr),
                            nullptr, nullptr);
  EXPECT_EQ(a.role, "act");
  EXPECT_TRUE(a.fingerprint.empty());
  EXPECT_TRUE(m.linear_layer("blk.0.ffn_up").prepared);
  EXPECT_TRUE(m.linear_layer("blk.0.ffn_up").effective.is_same(m.linear_layer("blk.0.ffn_up").weight));
}

// A calibrated activation scheme after a fold must freeze its ranges on X·diag(1/s), what the layer sees at run
// time: with s = 2 everywhere the frozen per-tensor scale halves.
TEST(StageApply, FrozenActivationRangesSeeTheFoldedInput) {
  LlamaModel m(mha_config(), 47);
  QuantPlan p;
  p.activation = cfg("static_act", 8, -1);
  const stages::ResolvedPlan rp = resolve(m, p);
  schemes::Calibration c;
  c.act_absmax = std::vector<float>(64, 0.0f);
  c.act_absmax[5] = 3.0f;
  c.n_samples = 10;
  c.layer_name = "blk.0.attn_q";
  const std::vector<float> inv(64, 0.5f);
  c10::InferenceMode im;
  stages::install_layer(m, rp.at("blk.0.attn_q"), c, nullptr, nullptr);
  const float plain = m.linear_layer("blk.0.attn_q").act_calib->frozen_scales.at(0);
  stages::install_layer(m, rp.at("blk.0.attn_k"), c, &inv, nullptr);
  EXPECT_FLOAT_EQ(m.linear_layer("blk.0.attn_k").act_calib->frozen_scales.at(0), plain / 2.0f);
  EXPECT_FLOAT_EQ(plain, 3.0f / 127.0f) << "symmetric int8: max|x| / 127";
}

// ---- 5. allocate -----------------------------------------------------------------------------------------------

TEST(StageAllocate, CandidatesDefaultToOneBitBelowAndTheBitsItself) {
  MixedSpec s;
  quant::QuantParams p = cfg("rtn", 4, 64).params;
  EXPECT_EQ(stages::mixed_candidates(s, p), (std::vector<std::pair<int, int64_t>>{{3, 64}, {4, 64}}));
  p.bits = 2;
  EXPECT_EQ(stages::mixed_candidates(s, p), (std::vector<std::pair<int, int64_t>>{{2, 64}}));
  s.candidates = {{8, 0}};
  EXPECT_EQ(stages::mixed_candidates(s, p), s.candidates);
}

// 2-bit weights in one layer cost more KL than 8-bit ones, and the measurement leaves the model fp bit for bit.
TEST(StageAllocate, SensitivityQuantizesOneLayerAloneAndRestoresIt) {
  LlamaModel m(load_checkpoint(kTiny));
  const CalibrationWindows cw = calib_windows(3, 16, 101, 7);
  const Evaluator ev = stages::sensitivity_evaluator(cw, 2);
  EXPECT_EQ(ev.windows().n_windows(), 2);
  const auto ref = ev.compute_reference(m);
  const at::Tensor t = toks(1, 16, 101, 8);
  const at::Tensor before = m.forward(t);
  auto rtn = [](int bits) { return std::shared_ptr<const schemes::Scheme>(schemes::make_scheme(cfg("rtn", bits, 32))); };
  const double s2 = stages::layer_sensitivity(m, "blk.0.ffn_down", rtn(2), ev, *ref, "kl");
  const double s8 = stages::layer_sensitivity(m, "blk.0.ffn_down", rtn(8), ev, *ref, "kl");
  EXPECT_GT(s2, 10.0 * s8);
  EXPECT_GT(s8, 0.0);
  EXPECT_TRUE(at::equal(m.forward(t), before));
  EXPECT_FALSE(m.linear_layer("blk.0.ffn_down").prepared);
}

TEST(StageAllocate, AllocationFilesAreContentAddressedAndAtomic) {
  const std::string dir = ::testing::TempDir() + "/stage-alloc";
  const nlohmann::json a = {{"layers", {{"blk.0.attn_q", {{"bits", 3}, {"group_size", 32}}}}}};
  const std::string p1 = stages::write_allocation(a, "", dir), p2 = stages::write_allocation(a, "", dir);
  EXPECT_EQ(p1, p2);
  EXPECT_EQ(p1.rfind(dir + "/mixed-", 0), 0u) << p1;
  nlohmann::json back;
  std::ifstream(p1) >> back;
  EXPECT_EQ(back, a);
  const std::string named = dir + "-named.json";
  EXPECT_EQ(stages::write_allocation(a, named, dir), named);
  EXPECT_FALSE(std::ifstream(named + ".tmp").good()) << "the temporary was renamed";
}

// ---- blame's measurement ------------------------------------------------------------------------------------------

// Only quantized layers are measured, each on the fp model's input; more bits → a higher output SQNR (8-bit per-row
// weights: ≈ 6 dB/bit more than 4-bit g32, so ≥ 15 dB apart); the model is left as it was.
TEST(BlameMeasurement, OutputErrorsOfTheQuantizedLayersOnly) {
  LlamaModel m(load_checkpoint(kTiny));
  QuantPlan p;  // no default scheme: only the two overridden layers are quantized
  LayerOverride a, b;
  a.pattern = "blk.0.ffn_up";
  a.weight = cfg("rtn", 8, 0);
  b.pattern = "blk.1.attn_v";
  b.weight = cfg("rtn", 4, 32);
  p.overrides = {a, b};
  quantize_model(m, p, nullptr, quiet());
  const at::Tensor t = toks(2, 16, 101, 12);
  const at::Tensor before = m.forward(t);
  const auto e = quantized_output_errors(m, [&] { (void)m.forward(t); });
  ASSERT_EQ(e.size(), 2u);
  EXPECT_GT(e.at("blk.0.ffn_up").sqnr_db(), e.at("blk.1.attn_v").sqnr_db() + 15.0);
  EXPECT_GT(e.at("blk.1.attn_v").sqnr_db(), 10.0);
  EXPECT_TRUE(at::equal(m.forward(t), before)) << "bypass and observer restored";
  const OutputError exact{1.0, 0.0};
  EXPECT_EQ(exact.sqnr_db(), std::numeric_limits<double>::infinity());
}

// ---- run_model's pieces ----------------------------------------------------------------------------------------

TEST(RunModelPieces, SchemeStatsSummaryAveragesOverLayers) {
  const nlohmann::json stats = {{"llm_int8 int8 sym per-row",
                                 {{"blk.0.ffn_down", {{"outlier_fraction", 0.25}, {"calls", 2.0}}},
                                  {"blk.1.ffn_down", {{"outlier_fraction", 0.75}, {"calls", 4.0}, {"note", "x"}}}}}};
  const nlohmann::json s = scheme_stats_summary(stats);
  const nlohmann::json& f = s["llm_int8 int8 sym per-row"]["outlier_fraction"];
  EXPECT_DOUBLE_EQ(f["mean"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(f["max"].get<double>(), 0.75);
  EXPECT_EQ(f["layers"].get<int64_t>(), 2);
  EXPECT_FALSE(s["llm_int8 int8 sym per-row"].contains("note"));
  EXPECT_TRUE(scheme_stats_summary(nlohmann::json::object()).empty());
}

// The test-only scale fault reaches weight schemes only, as codes × (1 + e)·scale.
TEST(RunModelPieces, QuantizeOptionsInjectTheScaleFaultIntoWeightSchemesOnly) {
  ModelRunSpec spec;
  spec.calibration.max_rows = 123;
  spec.calibration.sequential = false;
  ModelRunContext ctx(QEVAL_SOURCE_DIR, "");
  ctx.progress = false;
  EXPECT_FALSE(quantize_options(spec, ctx, 2).make_scheme) << "no fault: the default factory";
  ctx.fault_scale_error = 0.5;
  const QuantizeOptions o = quantize_options(spec, ctx, 2);
  EXPECT_EQ(o.threads, 2);
  EXPECT_EQ(o.max_rows, 123);
  EXPECT_FALSE(o.sequential);
  ASSERT_TRUE(o.make_scheme);
  const quant::Matrix w = [] {
    quant::Matrix x(4, 32);
    for (int64_t i = 0; i < 128; ++i) x.data[static_cast<size_t>(i)] = static_cast<float>(std::sin(0.37 * i));
    return x;
  }();
  const auto plain = schemes::make_scheme(cfg("rtn", 4, 32))->quantize(w.view(), nullptr);
  const auto faulty = o.make_scheme(cfg("rtn", 4, 32))->quantize(w.view(), nullptr);
  EXPECT_EQ(faulty.codes, plain.codes);
  EXPECT_FLOAT_EQ(faulty.scales[0], plain.scales[0] * 1.5f);
  EXPECT_EQ(o.make_scheme(cfg("dynamic_per_token", 8, 0))->quantize(w.view(), nullptr).scales,
            schemes::make_scheme(cfg("dynamic_per_token", 8, 0))->quantize(w.view(), nullptr).scales);
}

}  // namespace
}  // namespace qeval::model
