// tests/schemes/traits_test.cpp — SchemeTraits: every scheme's traits agree with schemes.def and with what the
// scheme actually does (a scheme that says it needs no calibration quantizes without one; one that reads
// statistics refuses to run without them), and the traits that depend on the config follow it.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "quant/quantize.hpp"
#include "quant/rng.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {
namespace {

quant::Matrix gaussian(int64_t rows, int64_t cols, uint64_t seed) {
  Rng rng(seed);
  quant::Matrix m(rows, cols);
  for (auto& v : m.data) v = static_cast<float>(rng.normal());
  return m;
}

SchemeTraits traits(const std::string& id, std::map<std::string, std::string> opts = {},
                    quant::QuantParams* params = nullptr) {
  SchemeConfig c = default_config(id);
  c.options = Options(std::move(opts));
  if (params) c.params = *params;
  return make_scheme(c)->traits();
}

class EverySchemeTraits : public ::testing::TestWithParam<std::string> {};

TEST_P(EverySchemeTraits, TargetIsTheOneSchemesDefLists) {
  EXPECT_EQ(traits(GetParam()).target, find_scheme(GetParam())->target);
}

// The calibration traits are what eval/ captures; they must not under-promise (a scheme that says it needs
// nothing must quantize without a Calibration) nor over-promise (one that reads statistics must say which, and
// refuse to run without them rather than silently quantize differently).
TEST_P(EverySchemeTraits, CalibrationTraitsMatchWhatQuantizeNeeds) {
  auto s = make_scheme(default_config(GetParam()));
  const SchemeTraits t = s->traits();
  const quant::Matrix x = gaussian(128, 256, 7);
  quant::Matrix y(x.rows, x.cols);
  if (t.calibration.any()) {
    EXPECT_TRUE(s->needs_calibration());
    EXPECT_THROW(s->fake_quantize(x.view(), y.mut(), nullptr), std::invalid_argument) << GetParam();
  } else {
    EXPECT_FALSE(s->needs_calibration());
    EXPECT_NO_THROW(s->fake_quantize(x.view(), y.mut(), nullptr)) << GetParam();
  }
  // Traits that only one kind of scheme can have.
  if (t.migrates) {
    EXPECT_TRUE(t.calibration.any_statistics()) << GetParam() << ": migration is decided from data";
  }
  if (t.outlier_columns) {
    EXPECT_EQ(t.target, Target::linear) << GetParam();
  }
  if (t.calibrates_once) {
    EXPECT_EQ(t.activation, ActivationQuant::frozen) << GetParam();
  }
  if (t.target == Target::activation) {
    EXPECT_NE(t.activation, ActivationQuant::none) << GetParam();
  }
  if (t.target == Target::weight || t.target == Target::kv_cache) {
    EXPECT_EQ(t.activation, ActivationQuant::none) << GetParam();
  }
}

// A scheme without outlier columns keeps every feature in its integer part.
TEST_P(EverySchemeTraits, OnlyOutlierSchemesReportOutlierColumns) {
  auto s = make_scheme(default_config(GetParam()));
  quant::Matrix x = gaussian(16, 64, 9);
  x(3, 5) = 100.0f;  // far above LLM.int8's threshold of 6
  const std::vector<int64_t> cols = s->outlier_columns(x.view());
  if (s->traits().outlier_columns) {
    EXPECT_EQ(cols, std::vector<int64_t>{5}) << GetParam();
  } else {
    EXPECT_TRUE(cols.empty()) << GetParam();
  }
}

std::vector<std::string> ids() {
  std::vector<std::string> v;
  for (const auto& s : scheme_list()) v.push_back(s.id);
  return v;
}
INSTANTIATE_TEST_SUITE_P(Registry, EverySchemeTraits, ::testing::ValuesIn(ids()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// plain_affine promises that quantize() is quant::quantize_affine(w, params()) and nothing else (eval/ then runs the
// formula on a device kernel or swaps the rounding): checked code for code, scale for scale, for every scheme that
// claims it, on the default and on a non-default config (asymmetric 3-bit g32, rounding half away from zero).
TEST(SchemeTraits, PlainAffineMeansTheAffineFormulaExactly) {
  const quant::Matrix w = gaussian(24, 256, 11);  // 256: divisible by every default group size (≤ 128)
  int claimed = 0;
  for (const auto& row : scheme_list()) {
    SchemeConfig c = default_config(row.id);
    if (!make_scheme(c)->traits().plain_affine) continue;
    ++claimed;
    for (int variant = 0; variant < 2; ++variant) {
      if (variant == 1) {
        c.params.bits = 3;
        c.params.group_size = 32;
        c.params.mapping = quant::Mapping::asymmetric;
        c.params.rounding = quant::Rounding::nearest_away;
      }
      const quant::QuantizedMatrix got = make_scheme(c)->quantize(w.view(), nullptr);
      const quant::QuantizedMatrix want = quant::quantize_affine(w.view(), c.params);
      EXPECT_EQ(got.codes, want.codes) << row.id << " variant " << variant;
      EXPECT_EQ(got.scales, want.scales) << row.id << " variant " << variant;
      EXPECT_EQ(got.zero_points, want.zero_points) << row.id << " variant " << variant;
      EXPECT_TRUE(got.perm.empty() && got.col_scale.empty()) << row.id;
    }
  }
  EXPECT_GE(claimed, 1) << "rtn is plain_affine; fault injection and device quantization rely on it";
  EXPECT_TRUE(traits("rtn").plain_affine);
  EXPECT_FALSE(traits("gptq").plain_affine);  // rounds inside its own algorithm
}

TEST(SchemeTraits, CalibrationDataEachSchemeReads) {
  const SchemeTraits gptq = traits("gptq"), awq = traits("awq"), sq = traits("smoothquant");
  EXPECT_TRUE(gptq.calibration.hessian);
  EXPECT_FALSE(gptq.calibration.rows || gptq.migrates);
  EXPECT_TRUE(awq.calibration.hessian && awq.calibration.act_absmean && awq.migrates);
  EXPECT_FALSE(awq.calibration.rows) << "AWQ scores its searches on the Gram matrix over every token";
  EXPECT_TRUE(sq.calibration.act_absmax && sq.migrates);
  EXPECT_EQ(sq.activation, ActivationQuant::dynamic);
  EXPECT_FALSE(sq.calibration.rows) << "a fixed α needs only max|x|";
  EXPECT_TRUE(traits("smoothquant", {{"alpha_search", "true"}}).calibration.rows) << "the α search scores rows";
  for (const char* id : {"rtn", "fp4", "nf4", "fp8", "dynamic_per_token", "kv_cache", "llm_int8"})
    EXPECT_FALSE(traits(id).calibration.any()) << id;
}

// Static activations: symmetric min/max needs max|x| over every token; any other range reads a row sample.
TEST(SchemeTraits, StaticActivationsReadRowsOnlyWhenMaxAbsIsNotEnough) {
  const SchemeTraits sym = traits("static_act");
  EXPECT_TRUE(sym.calibrates_once && sym.calibration.act_absmax);
  EXPECT_FALSE(sym.calibration.rows);
  quant::QuantParams asym = default_config("static_act").params;
  asym.mapping = quant::Mapping::asymmetric;
  EXPECT_TRUE(traits("static_act", {}, &asym).calibration.rows);
  quant::QuantParams pct = default_config("static_act").params;
  pct.range = quant::RangeMethod::percentile;
  EXPECT_TRUE(traits("static_act", {}, &pct).calibration.rows);
}

TEST(SchemeTraits, CodeBookSchemesSayWhichCodesTheyStore) {
  EXPECT_EQ(traits("rtn").codes, quant::Format::int_affine);
  EXPECT_EQ(traits("nf4").codes, quant::Format::nf4);
  EXPECT_EQ(traits("fp4", {{"codebook", "bnb"}}).codes, quant::Format::fp4_bnb);
  EXPECT_EQ(traits("fp8", {{"format", "e5m2"}}).codes, quant::Format::fp8_e5m2);
}

TEST(SchemeTraits, AwqDeclaresItsReferenceOverrides) {
  const SchemeTraits t = traits("awq");
  ASSERT_EQ(t.reference_overrides.size(), 2u);
  EXPECT_EQ(t.reference_overrides[0].pattern, "blk.*.attn_q");
  EXPECT_EQ(t.reference_overrides[1].pattern, "blk.*.attn_k");
  for (const auto& o : t.reference_overrides) {
    EXPECT_EQ(o.options.items(), (std::map<std::string, std::string>{{"clip", "false"}}));
    EXPECT_FALSE(o.why.empty());
    // The override must build: a misspelt option would only fail at quantize time.
    SchemeConfig c = default_config("awq");
    for (const auto& [k, v] : o.options.items()) c.options.set(k, v);
    EXPECT_NO_THROW(make_scheme(c));
  }
  EXPECT_TRUE(traits("gptq").reference_overrides.empty());
}

// Mixed precision: the base scheme is parsed once (here), with its own options and the wrapper's params.
TEST(SchemeTraits, MixedNamesItsBaseAndItsSensitivityStandIn) {
  SchemeConfig c = default_config("mixed");
  c.params.bits = 3;
  c.options = Options({{"base", "awq"}, {"base.grid", "10"}});
  const SchemeTraits t = make_scheme(c)->traits();
  ASSERT_TRUE(t.wrapper.has_value());
  EXPECT_EQ(t.wrapper->base.scheme, "awq");
  EXPECT_EQ(t.wrapper->base.options.items(), (std::map<std::string, std::string>{{"grid", "10"}}));
  EXPECT_EQ(t.wrapper->base.params.bits, 3);
  EXPECT_FALSE(t.wrapper->allocated);
  EXPECT_TRUE(t.calibration.hessian && t.calibration.act_absmean) << "it reads what its base reads";
  EXPECT_FALSE(t.calibration.layer_name);
  // AWQ needs calibration, which per-layer sensitivity runs lack: the stand-in is calibration-free, same params.
  auto stand_in = make_scheme(t.wrapper->sensitivity);
  EXPECT_FALSE(stand_in->needs_calibration());
  EXPECT_EQ(t.wrapper->sensitivity.params, c.params);
  // A calibration-free base is its own stand-in.
  SchemeConfig r = default_config("mixed");
  EXPECT_EQ(make_scheme(r)->traits().wrapper->sensitivity, make_scheme(r)->traits().wrapper->base);
  EXPECT_FALSE(traits("rtn").wrapper.has_value());
}

TEST(SchemeTraits, MixedWithAnAllocationNeedsTheLayerName) {
  const std::string path = ::testing::TempDir() + "/traits-alloc.json";
  std::ofstream(path) << R"({"layers": {"blk.0.attn_q": {"bits": 4, "group_size": 128}}})";
  SchemeConfig c = default_config("mixed");
  const std::string key = make_scheme(c)->traits().wrapper->allocation_option;
  c.options.set(key, path);
  const SchemeTraits t = make_scheme(c)->traits();
  EXPECT_TRUE(t.wrapper->allocated);
  EXPECT_TRUE(t.calibration.layer_name);
  EXPECT_FALSE(t.calibration.any_statistics());
  EXPECT_TRUE(make_scheme(c)->needs_calibration());
}

}  // namespace
}  // namespace qeval::schemes
