// tests/eval/sweep/sweep_test.cpp — sweep planning (enumerate + validate before running), one run, report assembly.
#include <gtest/gtest.h>

#include <sstream>

#include "eval/sweep/sweep.hpp"
#include "eval/report/schema.hpp"

namespace qeval::sweep {
namespace {

SweepOptions small() {
  SweepOptions o;
  o.rows = 8;
  o.cols = 256;
  o.seed = 5;
  return o;
}

SweepPlan plan_of(const SweepOptions& o) { return plan_sweep(config_from_options(o), o.seed); }

const nlohmann::json& params_of(const Run& r) { return r.spec.at("config").at("params"); }

TEST(Sweep, EnumeratesCrossProductWithSchemeDefaults) {
  SweepOptions o = small();
  o.schemes = {"rtn", "nf4"};
  o.group_sizes = {32, 128};
  SweepPlan p = plan_of(o);
  ASSERT_EQ(p.runs.size(), 4u);
  EXPECT_EQ(params_of(p.runs[0])["bits"], 4);  // rtn's default
  EXPECT_EQ(params_of(p.runs[0])["group_size"], 32);
  EXPECT_EQ(p.runs[2].spec["config"]["scheme"], "nf4");
  o.bits = {2, 4, 4};  // duplicates collapse
  o.schemes = {"rtn"};
  o.mappings = {quant::Mapping::symmetric, quant::Mapping::asymmetric};
  EXPECT_EQ(plan_of(o).runs.size(), 2u * 2u * 2u);
}

TEST(Sweep, OptionsPerSchemeAndErrors) {
  SweepOptions o = small();
  o.schemes = {"rtn", "fp4"};
  o.group_sizes = {64};
  o.options = {"fp4.codebook=bnb"};
  const SweepPlan p = plan_of(o);
  ASSERT_EQ(p.runs.size(), 2u);
  EXPECT_TRUE(p.runs[0].spec["config"]["options"].empty());
  EXPECT_EQ(p.runs[1].spec["config"]["options"]["codebook"], "bnb");

  auto msg = [](const SweepOptions& so) -> std::string {
    try {
      plan_of(so);
    } catch (const std::exception& e) {
      return options_error_text(e.what());
    }
    return "";
  };
  SweepOptions b = small();
  b.schemes = {"nosuch"};
  EXPECT_NE(msg(b).find("unknown scheme 'nosuch'"), std::string::npos) << msg(b);
  b = small();
  b.bits = {9};
  EXPECT_NE(msg(b).find("bits"), std::string::npos) << msg(b);
  b = small();
  b.group_sizes = {100};
  EXPECT_NE(msg(b).find("group size 100 does not divide the row length 256"), std::string::npos) << msg(b);
  EXPECT_EQ(msg(b).rfind("--group-sizes: ", 0), 0u) << msg(b);  // the option, not the JSON path
  b = small();
  b.options = {"foo=1"};
  EXPECT_NE(msg(b).find("no option 'foo'"), std::string::npos) << msg(b);
  b = small();
  b.options = {"foo"};
  EXPECT_NE(msg(b).find("key=value"), std::string::npos) << msg(b);
  b = small();
  b.options = {"nf4.x=1"};
  EXPECT_NE(msg(b).find("not in --scheme"), std::string::npos) << msg(b);
  b = small();
  b.input = "gausian";
  EXPECT_NE(msg(b).find("neither a distribution"), std::string::npos) << msg(b);
  b = small();
  b.input = "/nonexistent/w.npy";
  EXPECT_NE(msg(b).find("cannot open file"), std::string::npos) << msg(b);
  EXPECT_THROW(parse_bits_list({"four"}), std::invalid_argument);
  EXPECT_EQ(parse_group_list({"row", "tensor", "32"}), (std::vector<int64_t>{0, -1, 32}));
  EXPECT_THROW(parse_group_list({"-2"}), std::invalid_argument);
  EXPECT_THROW(parse_mapping_list({"both"}), std::invalid_argument);
}

TEST(Sweep, ExecuteAndReport) {
  SweepOptions o = small();
  o.group_sizes = {32, 0};
  const SweepPlan plan = plan_of(o);
  ASSERT_EQ(plan.runs.size(), 2u);
  EXPECT_EQ(plan.runs[0].kind, "tensor");
  EXPECT_NE(plan.runs[0].id, plan.runs[1].id);
  EngineOptions eo;  // no report file
  eo.progress = ProgressMode::none;
  std::ostringstream out, err;
  const EngineResult res = run_engine(plan, eo, out, err);
  ASSERT_EQ(res.exit_code, 0);
  const nlohmann::json& j = res.report;
  EXPECT_NO_THROW(report::validate(j));
  EXPECT_EQ(j["seed"], 5u);
  EXPECT_EQ(j["input"]["distribution"], "gaussian");
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][0]["target"], "weight");
  EXPECT_GT(j["runs"][0]["metrics"]["sqnr_db"].get<double>(), j["runs"][1]["metrics"]["sqnr_db"].get<double>());  // g32 beats per-row
  EXPECT_EQ(j["runs"][1]["config"]["params"]["group_size"], 0);
  EXPECT_TRUE(j["runs"][0]["timing_ms"].contains("quantize"));
}

TEST(Sweep, NonFiniteInputNamesThePosition) {
  quant::Matrix m(2, 4);
  m(1, 2) = std::numeric_limits<float>::quiet_NaN();
  const inputs::Tensor t = inputs::make_owned_tensor({"t", 2, 4, "f32"}, m);
  try {
    check_input_finite(t, "w.npy", quant::NonFinitePolicy::error);
    ADD_FAILURE();
  } catch (const quant::NonFiniteError& e) {
    EXPECT_STREQ(e.what(), "input 'w.npy' holds NaN at row 1, col 2; clean the input or pass --non-finite propagate");
  }
  EXPECT_NO_THROW(check_input_finite(t, "w.npy", quant::NonFinitePolicy::propagate));
}

}  // namespace
}  // namespace qeval::sweep
