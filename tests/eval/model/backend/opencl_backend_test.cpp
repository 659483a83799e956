// tests/eval/model/backend/opencl_backend_test.cpp — the `opencl` model backend (eval/model/backend/opencl_backend.hpp) on the
// default OpenCL device (PoCL in CI; skipped when there is none): its W·A8 layers against the exact integer products of
// the schemes' own codes (so the int32 parts are exact) within the device epilogue's rounding bound on reduction
// lengths {1, g−1, g, g+1, 2g+1}; W·A16 (int and code-book weights) and LLM.int8 against their derived bounds; the
// 2..7-bit widening; plan-time refusals in one line; the embedded model: opencl vs ref within the run's own agreement
// bound with the same weights, and the device recorded in metrics.backend.
//
// u = 2^-24 (fp32 unit roundoff). Bounds (first order, ×1.01 for the higher-order terms):
//  * W·A8: the device sums y = Σ_s fl(fl(s_a·s_w)·fl(C_s)) over its nseg K segments (segment = the shorter group), C_s
//    the exact int32 Σ(q_a − z_a)(q_w − z_w): ≤ 3 roundings per term and nseg − 1 additions →
//    |y − Σ_s t_s| ≤ (nseg + 3)·u·Σ_s|t_s|  (Higham 2nd ed. eq. 4.4; the same derivation as tests/gpu/matmul_cl_test).
//    A segment sum off by one integer moves y by that segment's s_a·s_w; the test asserts that this exceeds twice the
//    bound for every full segment, so passing it means their C_s were exact. (A partial last segment of one or two
//    elements can have a scale below the bound — asymmetric codes of a single value — and is covered by the bound only;
//    the int32 kernels themselves are checked bit-exact in tests/gpu.)
//  * W·A16: fp32 fma accumulation of K products of exactly dequantized weights: |y − y*| ≤ γ_K·Σ_k|x_k·ŵ_k|,
//    γ_K = K·u/(1 − K·u) (Higham eq. 3.5).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "eval/model/backend/opencl_backend.hpp"
#include "eval/model/model_run.hpp"
#include "gpu/device.hpp"
#include "quant/pack.hpp"
#include "quant/quantize.hpp"
#include "quant/rng.hpp"
#include "schemes/scheme.hpp"
#include "tests/eval/model/backend/backend_test_support.hpp"

namespace qeval::model {
namespace {

using namespace backend_test;

#define QEVAL_OPENCL_OR_SKIP()                                                                            \
  if (!gpu::default_device())                                                                             \
  GTEST_SKIP() << "no OpenCL device found (install pocl-opencl-icd, or a GPU driver, or set QEVAL_CL_DEVICE); " \
                  "opencl backend tests skipped"

std::shared_ptr<const schemes::Scheme> scheme(const std::string& id, int bits, int64_t group,
                                              quant::Mapping map = quant::Mapping::symmetric,
                                              std::map<std::string, std::string> opts = {}) {
  schemes::SchemeConfig c = schemes::default_config(id);
  c.params.bits = bits;
  c.params.group_size = group;
  c.params.mapping = map;
  c.params.partial_last_group = group > 0;
  c.options = schemes::Options(std::move(opts));
  return schemes::make_scheme(c);
}

// A weight-quantized layer: codes and effective weight kept alive by the struct.
struct Layer {
  quant::Matrix w, eff;
  quant::QuantizedMatrix codes;
  QuantizedLinear L;
  Layer(std::shared_ptr<const schemes::Scheme> ws, std::shared_ptr<const schemes::Scheme> as, quant::Matrix w_)
      : w(std::move(w_)), eff(w.rows, w.cols) {
    codes = ws->quantize(w.view(), nullptr);
    ws->dequantize(codes, eff.mut());
    L.layer = "t";
    L.weight_scheme = std::move(ws);
    L.codes = &codes;
    L.weight = w.view();
    L.effective = eff.view();
    L.act_scheme = std::move(as);
  }
};

void check_int_case(const LinearBackend& be, const Case& cs, int64_t k, int64_t m, uint64_t seed) {
  const int64_t n = 5;
  Layer l(scheme("rtn", cs.wbits, cs.wgroup, cs.wmap),
          scheme("dynamic_per_token", 8, cs.agroup, cs.amap, {{"threshold", "0"}}), gaussian(n, k, seed + 1));
  const quant::Matrix x = gaussian(m, k, seed);
  const quant::QuantizedMatrix qa = l.L.act_scheme->quantize(x.view(), nullptr);
  quant::Matrix y(m, n, std::nanf("")), seen(m, k, std::nanf(""));  // sentinels: every element must be written
  LinearCall call;
  call.input_seen = seen.mut();
  be.linear(*be.prepare(l.L), x.view(), y.mut(), call);
  quant::Matrix xhat(m, k);
  quant::dequantize(qa, xhat.mut());
  EXPECT_EQ(seen.data, xhat.data) << describe(cs, k, m);
  const int64_t ga = cs.agroup > 0 ? std::min(cs.agroup, k) : k, gw = cs.wgroup > 0 ? std::min(cs.wgroup, k) : k;
  const int64_t seg = std::min(ga, gw), nseg = (k + seg - 1) / seg;
  for (int64_t r = 0; r < m; ++r)
    for (int64_t o = 0; o < n; ++o) {
      double want = 0.0, mag = 0.0, unit = INFINITY;
      for (int64_t s = 0; s < nseg; ++s) {
        int64_t c = 0;
        for (int64_t j = s * seg; j < std::min(k, (s + 1) * seg); ++j) c += centered(qa, r, j) * centered(l.codes, o, j);
        const double sasw = static_cast<double>(qa.scales[static_cast<size_t>(qa.group_index(r, s * seg))]) *
                            l.codes.scales[static_cast<size_t>(l.codes.group_index(o, s * seg))];
        want += sasw * static_cast<double>(c);
        mag += std::fabs(sasw * static_cast<double>(c));
        if (std::min(k, (s + 1) * seg) - s * seg == seg) unit = std::min(unit, sasw);  // full segments
      }
      const double bound = 1.01 * static_cast<double>(nseg + 3) * kU * mag;
      ASSERT_LT(bound, 0.5 * unit) << "the bound no longer shows integer exactness: " << describe(cs, k, m);
      EXPECT_LE(std::fabs(y(r, o) - want), bound) << describe(cs, k, m) << " row " << r << " out " << o << " seed " << seed;
    }
}

TEST(OpenClBackendLayer, IntegerPartsExactAndEpilogueWithinBoundOnEveryShape) {
  QEVAL_OPENCL_OR_SKIP();
  using quant::Mapping;
  const std::vector<Case> cases = {
      {8, Mapping::symmetric, 0, Mapping::symmetric, 0},    {8, Mapping::asymmetric, 0, Mapping::asymmetric, 0},
      {8, Mapping::symmetric, 32, Mapping::symmetric, 0},   {4, Mapping::symmetric, 32, Mapping::symmetric, 0},
      {4, Mapping::asymmetric, 128, Mapping::symmetric, 0}, {8, Mapping::asymmetric, 256, Mapping::asymmetric, 0},
      {4, Mapping::symmetric, 128, Mapping::asymmetric, 0}, {3, Mapping::asymmetric, 32, Mapping::symmetric, 0},
      {8, Mapping::asymmetric, 128, Mapping::asymmetric, 32},
  };
  const auto be = make_opencl_backend();
  const uint64_t seed = seed_from_env(1301);
  for (const Case& cs : cases) {
    const int64_t g = cs.wgroup > 0 ? cs.wgroup : 128;
    for (int64_t k : {int64_t{1}, g - 1, g, g + 1, 2 * g + 1})
      for (int64_t m : {int64_t{3}, int64_t{70}}) check_int_case(*be, cs, k, m, seed + static_cast<uint64_t>(k * 7 + m));
  }
}

// GPTQ's act-order: stored column j of the weight holds input feature perm[j]. 80 rows (> the threshold 64): the
// activation's codes are permuted into stored order, the integer part stays exact (one segment: bound 4u·Σ|t|);
// 3 rows pass through in fp32 against the effective weight (perm undone), within γ_K·Σ|x·ŵ|.
TEST(OpenClBackendLayer, ActOrderWeightsAndPassThroughRows) {
  QEVAL_OPENCL_OR_SKIP();
  const uint64_t seed = seed_from_env(1305);
  const int64_t k = 96, n = 6;
  const auto rtn = scheme("rtn", 8, 0);
  Layer l(rtn, scheme("dynamic_per_token", 8, 0), gaussian(n, k, seed));
  for (int64_t j = 0; j < k; ++j) l.codes.perm.push_back(static_cast<int32_t>((j * 37) % k));  // 37 coprime to 96
  rtn->dequantize(l.codes, l.eff.mut());  // the effective weight in input order
  const auto be = make_opencl_backend();
  const auto prep = be->prepare(l.L);
  for (int64_t m : {int64_t{80}, int64_t{3}}) {
    const quant::Matrix x = gaussian(m, k, seed + static_cast<uint64_t>(m));
    quant::Matrix y(m, n, std::nanf(""));
    be->linear(*prep, x.view(), y.mut(), {});
    const quant::QuantizedMatrix qa = l.L.act_scheme->quantize(x.view(), nullptr);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t o = 0; o < n; ++o) {
        double want = 0, mag = 0;
        if (m > 64) {
          int64_t c = 0;
          for (int64_t j = 0; j < k; ++j) c += centered(qa, r, l.codes.perm[static_cast<size_t>(j)]) * centered(l.codes, o, j);
          want = static_cast<double>(qa.scales[static_cast<size_t>(r)]) * l.codes.scales[static_cast<size_t>(o)] * double(c);
          mag = 4.0 * kU * std::fabs(want);
        } else {
          for (int64_t c = 0; c < k; ++c) want += double(x(r, c)) * l.eff(o, c), mag += std::fabs(double(x(r, c)) * l.eff(o, c));
          mag *= k * kU / (1.0 - k * kU);
        }
        EXPECT_LE(std::fabs(y(r, o) - want), 1.01 * mag) << "m " << m << " at " << r << "," << o << " seed " << seed;
      }
  }
}

TEST(OpenClBackendLayer, WidenedCodesDequantizeToTheSameValues) {
  const quant::Matrix w = gaussian(6, 70, seed_from_env(1302));
  for (int bits = 2; bits <= 8; ++bits)
    for (quant::Mapping map : {quant::Mapping::symmetric, quant::Mapping::asymmetric}) {
      quant::QuantParams p;
      p.bits = bits;
      p.mapping = map;
      p.group_size = 32;
      p.partial_last_group = true;
      const quant::QuantizedMatrix q = quant::quantize_affine(w.view(), p), q8 = widen_to_int8(q);
      ASSERT_EQ(q8.params.bits, 8);
      quant::Matrix a(6, 70), b(6, 70);
      quant::dequantize(q, a.mut());
      quant::dequantize(q8, b.mut());
      EXPECT_EQ(a.data, b.data) << bits << "-bit " << quant::to_string(map);
    }
}

// W·A16: int4 g32 and nf4 (a code book: matmul_a16 dequantizes it in registers) within γ_K·Σ|x·ŵ|.
TEST(OpenClBackendLayer, WeightOnlyIntAndCodeBookWithinTheFmaBound) {
  QEVAL_OPENCL_OR_SKIP();
  const uint64_t seed = seed_from_env(1303);
  const auto be = make_opencl_backend();
  for (const char* id : {"rtn", "nf4"}) {
    const int64_t k = 160, n = 9, m = 4;
    Layer l(scheme(id, 4, 32), nullptr, gaussian(n, k, seed));
    const quant::Matrix x = gaussian(m, k, seed + 1);
    quant::Matrix y(m, n, std::nanf(""));
    be->linear(*be->prepare(l.L), x.view(), y.mut(), {});
    const double gamma = k * kU / (1.0 - k * kU);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t o = 0; o < n; ++o) {
        double want = 0, mag = 0;
        for (int64_t c = 0; c < k; ++c) want += double(x(r, c)) * l.eff(o, c), mag += std::fabs(double(x(r, c)) * l.eff(o, c));
        EXPECT_LE(std::fabs(y(r, o) - want), 1.01 * gamma * mag) << id << " " << r << "," << o << " seed " << seed;
      }
  }
}

// LLM.int8 against the scheme's own linear(): both take exact int32 sums of the same codes (the device's masked
// quantize gives the codes of the regular sub-matrix). The scheme rounds once from double (u·|y|); the device's int8
// part ≤ 4u·|t| (one segment), its fp32 fma outlier sum ≤ γ_nout·Σ|x_o·w_o|, the final add u·(|int8| + |outliers|):
// ≤ (6 + n_out)·u·mag with mag = Σ_c|x_c·w_c| (×1.02: the int8 rounding of each factor, ≤ 1/127 relative, as in the
// cpu backend's test). Two calls with different outlier sets: the weight's codes follow the set.
TEST(OpenClBackendLayer, LlmInt8MatchesTheSchemeAcrossChangingOutlierSets) {
  QEVAL_OPENCL_OR_SKIP();
  const uint64_t seed = seed_from_env(1304);
  const int64_t k = 96, n = 7;
  QuantizedLinear M;
  const quant::Matrix w = gaussian(n, k, seed);
  M.layer = "t";
  M.weight_scheme = scheme("llm_int8", 8, 0, quant::Mapping::symmetric, {{"threshold", "2"}});
  M.weight = w.view();
  M.effective = w.view();
  const auto be = make_opencl_backend();
  const auto pm = be->prepare(M);
  for (int call = 0; call < 3; ++call) {
    const quant::Matrix x = gaussian(call == 1 ? 5 : 80, k, seed + 1 + static_cast<uint64_t>(call % 2));
    const std::vector<int64_t> outl = M.weight_scheme->outlier_columns(x.view());
    quant::Matrix yc(x.rows, n), yr(x.rows, n);
    be->linear(*pm, x.view(), yc.mut(), {});
    ASSERT_TRUE(M.weight_scheme->linear(x.view(), w.view(), yr.mut(), nullptr));
    for (int64_t r = 0; r < x.rows; ++r)
      for (int64_t o = 0; o < n; ++o) {
        double mag = 0;
        for (int64_t c = 0; c < k; ++c) mag += std::fabs(double(x(r, c)) * w(o, c));
        const double bound = (6.0 + static_cast<double>(outl.size())) * kU * 1.02 * mag;
        EXPECT_LE(std::fabs(yc(r, o) - yr(r, o)), bound)
            << "call " << call << " (" << outl.size() << " outliers) " << r << "," << o << " seed " << seed;
      }
  }
}

TEST(OpenClBackendLayer, UnsupportedPairsAreOneLineNamingWhoRunsThem) {
  QEVAL_OPENCL_OR_SKIP();
  const auto be = make_opencl_backend();
  const auto nf4 = scheme("nf4", 4, 64), act = scheme("dynamic_per_token", 8, 0);
  expect_one_line_error([&] { require_supported(*be, "blk.0.ffn_up", nf4.get(), act.get()); },
                        {"backend 'opencl'", "blk.0.ffn_up", "nf4", "no integer kernel", "backends that run it: ref"},
                        "nf4 × int8 activations");
  require_supported(*be, "blk.0.ffn_up", nf4.get(), nullptr);  // weight-only nf4: matmul_a16 runs it
}

// Pairs the device's epilogue cannot segment, and act-order with grouped activations: refused by prepare() —
// before any forward — in one line naming the layer and the backends that run the pair. K = 96: activation g48 ×
// weight g32 (neither divides the other, neither is the row), g16 × g16 (segment 16: not a multiple of the kernels'
// K step 32); g32 × per channel and g96 (= the row) × g32 run.
TEST(OpenClBackendLayer, PairsWithoutAKernelSegmentAreRefusedAtPrepare) {
  QEVAL_OPENCL_OR_SKIP();
  const auto be = make_opencl_backend();
  const quant::Matrix w = gaussian(4, 96, seed_from_env(1306));
  const auto refused = [&](Layer& l, std::initializer_list<const char*> parts) {
    l.L.layer = "blk.2.ffn_down";
    expect_one_line_error([&] { be->prepare(l.L); }, parts, "the pair");
  };
  Layer a(scheme("rtn", 8, 32), scheme("dynamic_per_token", 8, 48), w);
  refused(a, {"opencl backend", "blk.2.ffn_down", "activation group 48 and weight group 32", "backend cpu or ref"});
  Layer b(scheme("rtn", 8, 16), scheme("dynamic_per_token", 8, 16), w);
  refused(b, {"opencl backend", "blk.2.ffn_down", "multiple of 32", "backend cpu or ref"});
  Layer c(scheme("rtn", 8, 0), scheme("dynamic_per_token", 8, 32), w);
  for (int64_t j = 0; j < 96; ++j) c.codes.perm.push_back(static_cast<int32_t>((j * 37) % 96));
  refused(c, {"opencl backend", "blk.2.ffn_down", "groups of 32", "act-order", "backend ref"});
  Layer d(scheme("rtn", 8, 0), scheme("dynamic_per_token", 8, 32), w);
  EXPECT_NO_THROW(be->prepare(d.L));
  Layer e(scheme("rtn", 8, 32), scheme("dynamic_per_token", 8, 96), w);
  EXPECT_NO_THROW(be->prepare(e.L));
}

// ---- model level: the embedded model, 1 window of 256 tokens (> 64 rows: dynamic activations quantize) --------

// W8A8 per channel, W4A8 g32 asymmetric, W4A16 g128, LLM.int8: within the run's own agreement bound (4× the ref
// path's split_k noise; docs/model-eval.md), same weights, the device in metrics.backend.
TEST(OpenClBackendModel, AgreesWithRefWithinItsBoundOnTheEmbeddedModel) {
  QEVAL_OPENCL_OR_SKIP();
  const std::vector<nlohmann::json> plans = agreement_plans(true);
  const std::string device = gpu::default_device()->info().name;
  for (const auto& plan : plans) {
    const nlohmann::json r = model::run_model(model_spec(plan, "opencl", 1), context());
    const nlohmann::json& a = r.at("agreement");
    SCOPED_TRACE(plan.dump() + "\nbackend " + r.at("backend").dump() + "\nagreement " + a.dump());
    std::printf("[opencl model] %s: KL(ref||opencl) mean %.3g (bound %s), max |dlogit| %.3g, seconds %s\n",
                plan.dump().c_str(), a.at("kl").at("mean").get<double>(), a.at("bound").dump().c_str(),
                a.at("max_abs_dlogit").get<double>(), r.at("timings").dump().c_str());
    EXPECT_EQ(r.at("backend").at("name"), "opencl");
    EXPECT_EQ(r.at("backend").at("device"), device);
    EXPECT_FALSE(r.at("backend").at("tier").get<std::string>().empty());
    EXPECT_TRUE(a.at("fingerprint_equal").get<bool>());
    EXPECT_TRUE(a.at("within_bound").get<bool>());
    if (!plan.contains("activation") && !plan.contains("linear")) {
      // fp activations: no code can flip, the paths differ by fp32 rounding only — far below a nat's thousandth.
      EXPECT_LT(a.at("max_abs_dlogit").get<double>(), 1e-3);
    }
  }
}

TEST(OpenClBackendModel, AnUnsupportedPairFailsTheRunInOneLine) {
  QEVAL_OPENCL_OR_SKIP();
  const nlohmann::json plan = {{"weight", {{"scheme", "fp4"}, {"params", {{"bits", 4}, {"group_size", 64}}}}},
                               {"activation", {{"scheme", "dynamic_per_token"}}}};
  expect_one_line_refusal(plan, "opencl", 1, {"backend 'opencl'", "fp4", "no integer kernel", "backends that run it: ref"});
}

}  // namespace
}  // namespace qeval::model
