// tests/eval/model/backend/cpu_backend_test.cpp — the `cpu` model backend (eval/model/backend/cpu_backend.hpp): its int32
// block sums bit-exact against a scalar decode written here, its fp32 epilogue within the derived rounding bound, on
// reduction lengths {1, g−1, g, g+1, 2g+1} (partial last groups included) for every weight/activation pair it runs;
// plan-time refusals in one line; the embedded model on a few windows: cpu vs ref within the run's own agreement
// bound, same weights. ctest runs this binary twice, the second time with QEVAL_CPU=ref (the scalar reference GEMM):
// the int32 sums are exact on every path, so the same expectations hold there (and the logits are the same).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "eval/model/backend/cpu_backend.hpp"
#include "eval/model/model_run.hpp"
#include "quant/cpu/dispatch.hpp"
#include "quant/pack.hpp"
#include "quant/quantize.hpp"
#include "quant/rng.hpp"
#include "schemes/scheme.hpp"
#include "tests/eval/model/backend/backend_test_support.hpp"

namespace qeval::model {
namespace {

using namespace backend_test;

float scale_at(const quant::QuantizedMatrix& q, int64_t r, int64_t c) {
  return q.scales[static_cast<size_t>(q.group_index(r, c))];
}

// Block boundaries, derived independently: a block ends where either side's group index changes.
std::vector<int64_t> edges_of(const quant::QuantizedMatrix& a, const quant::QuantizedMatrix& w) {
  std::vector<int64_t> e = {0};
  for (int64_t c = 1; c < a.cols; ++c)
    if (a.group_index(0, c) != a.group_index(0, c - 1) || w.group_index(0, c) != w.group_index(0, c - 1)) e.push_back(c);
  e.push_back(a.cols);
  return e;
}

std::string describe_cpu(const Case& c, int64_t k, int64_t m) {
  return describe(c, k, m) + ", gemm " + cpu::active_gemm_isa();
}

quant::QuantParams params(int bits, quant::Mapping map, int64_t group) {
  quant::QuantParams p;
  p.bits = bits;
  p.mapping = map;
  p.group_size = group;
  p.partial_last_group = group > 0;
  return p;
}

// One case: exact block sums bit-exact, y within the epilogue bound.
void check_case(const Case& cs, int64_t k, int64_t m, uint64_t seed) {
  const int64_t n = 5;
  const quant::Matrix x = gaussian(m, k, seed), w = gaussian(n, k, seed + 1);
  const quant::QuantizedMatrix qa = quant::quantize_affine(x.view(), params(8, cs.amap, cs.agroup));
  const quant::QuantizedMatrix qw = quant::quantize_affine(w.view(), params(cs.wbits, cs.wmap, cs.wgroup));
  const IntOperand a = int_operand(qa), b = int_operand(qw);
  const std::vector<int64_t> got = exact_block_sums(a, b), e = edges_of(qa, qw);
  ASSERT_EQ(got.size(), (e.size() - 1) * static_cast<size_t>(m * n)) << describe_cpu(cs, k, m);
  quant::Matrix y(m, n, std::nanf(""));  // sentinel: every element must be written
  int_linear(a, b, y.mut());
  const int64_t blocks = static_cast<int64_t>(e.size()) - 1;
  for (int64_t r = 0; r < m; ++r)
    for (int64_t o = 0; o < n; ++o) {
      double want = 0.0, mag = 0.0;
      for (int64_t bi = 0; bi < blocks; ++bi) {
        int64_t s = 0;
        for (int64_t c = e[bi]; c < e[bi + 1]; ++c) s += centered(qa, r, c) * centered(qw, o, c);
        ASSERT_EQ(got[static_cast<size_t>((bi * m + r) * n + o)], s)
            << describe_cpu(cs, k, m) << " block " << bi << " row " << r << " out " << o << " seed " << seed;
        const double t = static_cast<double>(scale_at(qa, r, e[bi])) * scale_at(qw, o, e[bi]) * static_cast<double>(s);
        want += t;
        mag += std::fabs(t);
      }
      // Epilogue: per block fl(fl(s_a·s_w)·fl(S)) — 3 roundings (S itself exact while |S| < 2^24), then B − 1
      // fp32 additions: |y − Σ t| ≤ (B + 2)·u·Σ|t| (first order; ×1.01 covers the higher-order terms).
      const double bound = 1.01 * static_cast<double>(blocks + 2) * kU * mag;
      EXPECT_LE(std::fabs(y(r, o) - want), bound) << describe_cpu(cs, k, m) << " row " << r << " out " << o;
    }
}

TEST(CpuBackendLayer, BlockSumsExactAndEpilogueWithinBoundOnEveryShape) {
  using quant::Mapping;
  const std::vector<Case> cases = {
      {8, Mapping::symmetric, 0, Mapping::symmetric, 0},    {8, Mapping::asymmetric, 0, Mapping::asymmetric, 0},
      {8, Mapping::symmetric, 32, Mapping::symmetric, 0},   {4, Mapping::symmetric, 32, Mapping::symmetric, 0},
      {4, Mapping::asymmetric, 128, Mapping::symmetric, 0}, {8, Mapping::asymmetric, 256, Mapping::asymmetric, 0},
      {4, Mapping::symmetric, 128, Mapping::asymmetric, 0}, {3, Mapping::asymmetric, 32, Mapping::symmetric, 0},
      {4, Mapping::symmetric, 32, Mapping::symmetric, 48},  {8, Mapping::asymmetric, 128, Mapping::asymmetric, 32},
  };
  const uint64_t seed = seed_from_env(1201);
  for (const Case& cs : cases) {
    const int64_t g = cs.wgroup > 0 ? cs.wgroup : 128;
    for (int64_t k : {int64_t{1}, g - 1, g, g + 1, 2 * g + 1})
      for (int64_t m : {int64_t{3}, int64_t{70}}) check_case(cs, k, m, seed + static_cast<uint64_t>(k * 7 + m));
  }
}

TEST(CpuBackendLayer, BlockEdgesAreTheUnionOfBothGroupings) {
  EXPECT_EQ(block_edges(80, 32, 48), (std::vector<int64_t>{0, 32, 48, 64, 80}));
  EXPECT_EQ(block_edges(5, 5, 5), (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(block_edges(65, 32, 65), (std::vector<int64_t>{0, 32, 64, 65}));
}

TEST(CpuBackendLayer, FloatCodesAreRefusedInOneLine) {
  quant::QuantizedMatrix q;
  q.format = quant::Format::nf4;
  expect_one_line_error([&] { int_operand(q); }, {"nf4"}, "nf4 codes");
}

// ---- the backend's linear(): the activation scheme's own codes, its pass-through, LLM.int8 -----------------------

std::shared_ptr<const schemes::Scheme> scheme(const std::string& id, int bits, int64_t group,
                                              std::map<std::string, std::string> opts = {}) {
  schemes::SchemeConfig c = schemes::default_config(id);
  c.params.bits = bits;
  c.params.group_size = group;
  c.options = schemes::Options(std::move(opts));
  return schemes::make_scheme(c);
}

TEST(CpuBackendLinear, DynamicActivationsPassThroughAndLlmInt8) {
  const uint64_t seed = seed_from_env(1202);
  const int64_t k = 96, n = 7;
  const quant::Matrix w = gaussian(n, k, seed), x = gaussian(80, k, seed + 1);
  const auto rtn = scheme("rtn", 4, 32);
  const quant::QuantizedMatrix qw = rtn->quantize(w.view(), nullptr);
  quant::Matrix eff(n, k);
  rtn->dequantize(qw, eff.mut());
  QuantizedLinear L;
  L.layer = "t";
  L.weight_scheme = rtn;
  L.codes = &qw;
  L.weight = w.view();
  L.effective = eff.view();
  L.act_scheme = scheme("dynamic_per_token", 8, 0);  // threshold 64: 80 rows quantize, 3 rows pass through
  const auto be = make_cpu_backend();
  const auto prep = be->prepare(L);
  // 80 rows: exactly int_linear of the scheme's own codes.
  quant::Matrix y(80, n), want(80, n);
  be->linear(*prep, x.view(), y.mut(), {});
  int_linear(int_operand(L.act_scheme->quantize(x.view(), nullptr)), int_operand(qw), want.mut());
  EXPECT_EQ(y.data, want.data) << "seed " << seed;
  // 3 rows (≤ the threshold): fp32 x times the effective weight; an fp32 dot product of k terms is within
  // k·u·Σ|x·w| of the exact one (first order, ×1.01).
  const quant::MatrixView x3(x.data.data(), 3, k);
  quant::Matrix y3(3, n);
  be->linear(*prep, x3, y3.mut(), {});
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t o = 0; o < n; ++o) {
      double exact = 0, mag = 0;
      for (int64_t c = 0; c < k; ++c) exact += double(x3(r, c)) * eff(o, c), mag += std::fabs(double(x3(r, c)) * eff(o, c));
      EXPECT_LE(std::fabs(y3(r, o) - exact), 1.01 * k * kU * mag) << r << "," << o;
    }
  // LLM.int8 (threshold 2: some features of N(0,1) rows are outliers): the scheme's own linear() within the
  // epilogue's rounding — both take exact int32 sums of the same codes; ref rounds once from double, cpu three times
  // per term plus the fp32 add of the outlier part: ≤ 5·u·(|int8 part| + |outlier part|) per element.
  QuantizedLinear M;
  M.layer = "t";
  M.weight_scheme = scheme("llm_int8", 8, 0, {{"threshold", "2"}});
  M.weight = w.view();
  M.effective = w.view();
  ASSERT_TRUE(be->supports(std::make_unique<schemes::SchemeTraits>(M.weight_scheme->traits()).get(), nullptr).ok);
  const auto pm = be->prepare(M);
  quant::Matrix yc(80, n), yr(80, n);
  be->linear(*pm, x.view(), yc.mut(), {});
  ASSERT_TRUE(M.weight_scheme->linear(x.view(), w.view(), yr.mut(), nullptr));
  EXPECT_FALSE(M.weight_scheme->outlier_columns(x.view()).empty());
  for (int64_t r = 0; r < 80; ++r)
    for (int64_t o = 0; o < n; ++o) {
      double mag = 0;
      for (int64_t c = 0; c < k; ++c) mag += std::fabs(double(x(r, c)) * w(o, c));
      // mag bounds both parts' magnitudes up to the int8 rounding of each product (≤ 1/127 relative per factor)
      EXPECT_LE(std::fabs(yc(r, o) - yr(r, o)), 5.0 * kU * 1.02 * mag) << r << "," << o << " seed " << seed;
    }
}

// LLM.int8's run statistics on the cpu backend equal those its own linear() records on the ref path for the same
// inputs (calls, outlier and total columns per layer), under the layer's name.
TEST(CpuBackendLinear, LlmInt8RunStatsMatchTheReferencePath) {
  const uint64_t seed = seed_from_env(1204);
  const int64_t k = 96, n = 5;
  const quant::Matrix w = gaussian(n, k, seed);
  schemes::Calibration calib;
  calib.layer_name = "blk.0.ffn_up";
  QuantizedLinear M;
  M.layer = calib.layer_name;
  M.weight_scheme = scheme("llm_int8", 8, 0, {{"threshold", "2"}});
  M.weight = w.view();
  M.effective = w.view();
  M.linear_calib = std::make_shared<const schemes::Calibration>(calib);
  const auto ref_scheme = scheme("llm_int8", 8, 0, {{"threshold", "2"}});
  const auto be = make_cpu_backend();
  const auto pm = be->prepare(M);
  for (int64_t m : {int64_t{80}, int64_t{7}}) {
    const quant::Matrix x = gaussian(m, k, seed + static_cast<uint64_t>(m));
    quant::Matrix y(m, n);
    be->linear(*pm, x.view(), y.mut(), {});
    ASSERT_TRUE(ref_scheme->linear(x.view(), w.view(), y.mut(), &calib));
  }
  const auto got = M.weight_scheme->run_stats(), want = ref_scheme->run_stats();
  ASSERT_EQ(got.count("blk.0.ffn_up"), 1u);
  EXPECT_EQ(got, want);
  EXPECT_EQ(got.at("blk.0.ffn_up").at("calls"), 2.0);
  EXPECT_EQ(got.at("blk.0.ffn_up").at("columns"), 2.0 * k);
}

// An act-order weight (stored column j = input feature perm[j]) with activations grouped along the row: refused
// by prepare() — before any forward — in one line naming the layer and what runs it; per-token activations run.
TEST(CpuBackendLinear, ActOrderWithGroupedActivationsIsRefusedAtPrepare) {
  const int64_t k = 96, n = 4;
  const quant::Matrix w = gaussian(n, k, seed_from_env(1203));
  const auto rtn = scheme("rtn", 8, 0);
  quant::QuantizedMatrix qw = rtn->quantize(w.view(), nullptr);
  for (int64_t j = 0; j < k; ++j) qw.perm.push_back(static_cast<int32_t>((j * 37) % k));  // 37 coprime to 96
  QuantizedLinear L;
  L.layer = "blk.1.attn_q";
  L.weight_scheme = rtn;
  L.codes = &qw;
  L.weight = w.view();
  L.effective = w.view();
  L.act_scheme = scheme("dynamic_per_token", 8, 32);
  const auto be = make_cpu_backend();
  expect_one_line_error([&] { be->prepare(L); }, {"cpu backend", "blk.1.attn_q", "groups of 32", "act-order", "backend ref"},
                        "an act-order weight with g32 activations");
  L.act_scheme = scheme("dynamic_per_token", 8, 0);
  EXPECT_NO_THROW(be->prepare(L));
  L.act_scheme = scheme("dynamic_per_token", 8, 96);  // one group = the whole row: no scattering
  EXPECT_NO_THROW(be->prepare(L));
}

// ---- model level: the embedded model (models/qeval-sotu-4l256), 2 windows of 256 tokens (> 64 rows: dynamic activations quantize) -------------------------

// W8A8 per channel, W4A8 g32 with asymmetric weights and activations, W4A16 g128: the cpu run's agreement
// with ref stays within its derived bound (4× the ref path's split_k noise; docs/model-eval.md) with identical weights.
TEST(CpuBackendModel, AgreesWithRefWithinItsBoundOnTheEmbeddedModel) {
  const std::vector<nlohmann::json> plans = agreement_plans(false);
  for (const auto& plan : plans) {
    const nlohmann::json r = model::run_model(model_spec(plan, "cpu", 2), context());
    const nlohmann::json& a = r.at("agreement");
    SCOPED_TRACE(plan.dump() + " gemm " + cpu::active_gemm_isa() + "\nagreement " + a.dump());
    EXPECT_EQ(r.at("backend").at("gemm_isa"), cpu::active_gemm_isa());
    EXPECT_TRUE(a.at("fingerprint_equal").get<bool>());
    EXPECT_TRUE(a.at("within_bound").get<bool>());
    EXPECT_GT(r.at("throughput").at("quantized").at("tokens_per_s").get<double>(), 0.0);
    if (!plan.contains("activation")) {
      // fp activations: no code can flip, the paths differ by fp32 rounding only — far below a nat's thousandth.
      EXPECT_LT(a.at("max_abs_dlogit").get<double>(), 1e-3);
    }
  }
}

TEST(CpuBackendModel, AnUnsupportedPairIsOneLineNamingItAndWhoRunsIt) {
  const nlohmann::json plan = {{"weight", {{"scheme", "nf4"}, {"params", {{"bits", 4}, {"group_size", 64}}}}}};
  expect_one_line_refusal(plan, "cpu", 2, {"backend 'cpu'", "nf4", "no integer kernel", "backends that run it: ref"});
}

}  // namespace
}  // namespace qeval::model
