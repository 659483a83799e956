// tests/eval/sweep/trace_test.cpp — the trace of a sweep plan (eval/sweep/explain.hpp; `qeval sweep --explain`): each
// run's typed spec (SchemeConfig, QuantParams, input) agrees with its spec JSON and names the config paths its values
// came from; run ids are stable: the committed configs plan exactly the ids of their committed reports.
#include <gtest/gtest.h>

#include <iostream>
#include <set>

#include "eval/report/report.hpp"
#include "eval/sweep/explain.hpp"
#include "eval/sweep/sweep.hpp"
#include "tests/eval/sweep/test_util.hpp"

namespace qeval::sweep {
namespace {

using nlohmann::json;

const std::string kRoot = QEVAL_SOURCE_DIR;

std::vector<const Run*> all(const SweepPlan& p) { return shard_runs(p, 0, 1); }

// The plan of a small sweep, printed (run with --gtest_filter=SweepTrace.* to read how a parameter travels) and
// checked: group_sizes[1] = 128 travels to QuantParams.group_size of runs 2 and 4, and to their spec JSON.
TEST(SweepTrace, PrintsAndAssertsThePlanOfASmallSweep) {
  const json cfg = json::parse(R"({"seed": 3, "sweeps": [{"schemes": ["rtn"], "bits": [4], "group_sizes": [32, 128],
      "mappings": ["sym", "asym"], "inputs": [{"distribution": "gaussian", "rows": 4, "cols": 256}]}]})");
  const SweepPlan plan = plan_sweep(cfg, 1);
  const std::string text = explain_text(all(plan));
  std::cout << text;
  const json pj = plan_json(plan, all(plan));
  ASSERT_EQ(pj["runs"].size(), 4u);
  for (const json& r : pj["runs"]) {
    const json& t = r["typed"];
    EXPECT_EQ(t["type"], "sweep::TensorRunSpec");
    // The typed QuantParams are what the spec JSON (and so the id) records.
    EXPECT_EQ(t["scheme_config"]["params"]["value"], r["spec"]["config"]["params"]);
    EXPECT_EQ(r["id"], report::run_id(r["spec"]));
    EXPECT_EQ(t["input"]["from"], "sweeps[0].inputs[0]");
  }
  // Enumeration order: group sizes outside mappings.
  const json& g128_asym = pj["runs"][3];
  EXPECT_EQ(g128_asym["name"], "rtn/4b/asym/g128/cpu/gaussian-4x256");
  EXPECT_EQ(g128_asym["typed"]["scheme_config"]["params"]["value"]["group_size"], 128);
  EXPECT_EQ(g128_asym["typed"]["scheme_config"]["params"]["value"]["mapping"], "asymmetric");
  EXPECT_EQ(g128_asym["typed"]["from"], json({"sweeps[0].schemes[0]", "sweeps[0].bits[0]", "sweeps[0].group_sizes[1]",
                                             "sweeps[0].mappings[1]", "sweeps[0].inputs[0]"}));
  for (const char* w : {"[4/4] rtn/4b/asym/g128/cpu/gaussian-4x256", "sweeps[0].group_sizes[1]", "schemes::SchemeConfig",
                        "quant::QuantParams", "\"group_size\":128", "= xxh64(spec)"})
    EXPECT_NE(text.find(w), std::string::npos) << w;
}

// Options built by the command line trace to the option, not the JSON path, and scope per scheme.
TEST(SweepTrace, ScopedOptionsReachOnlyTheirScheme) {
  SweepOptions o;
  o.schemes = {"rtn", "fp4"};
  o.group_sizes = {64};
  o.options = {"fp4.codebook=e2m1", "fp4.codebook=bnb"};
  o.rows = 4;
  o.cols = 256;
  const SweepPlan p = plan_sweep(config_from_options(o), 1);
  ASSERT_EQ(p.runs.size(), 3u);
  EXPECT_TRUE(p.runs[0].spec["config"]["options"].empty());
  EXPECT_EQ(p.runs[1].spec["config"]["options"]["codebook"], "e2m1");
  EXPECT_EQ(p.runs[2].spec["config"]["options"]["codebook"], "bnb");
#if QEVAL_HAVE_MODEL_RUNS
  // Model runs take the same scoped options (they could not before): act_order reaches GPTQ only.
  o = SweepOptions();
  o.model = "default";
  o.schemes = {"rtn", "gptq"};
  o.bits = {3};
  o.options = {"gptq.act_order=true"};
  const SweepPlan m = plan_sweep(config_from_options(o), 1);
  ASSERT_EQ(m.runs.size(), 2u);
  EXPECT_TRUE(m.runs[0].spec["plan"]["weight"]["options"].empty());
  EXPECT_EQ(m.runs[1].spec["plan"]["weight"]["options"]["act_order"], "true");
  EXPECT_EQ(m.runs[1].spec["plan"]["weight"]["params"]["bits"], 3);
#endif
}

// Range checks say what they check, once for both kinds, and name the option or the JSON path.
TEST(SweepTrace, BitsRangeIsCheckedOnceForBothKinds) {
  auto error_of = [](const json& cfg) -> std::string {
    try {
      plan_sweep(cfg, 1);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  const std::string t = error_of({{"sweeps", {{{"bits", {4, 1}}, {"inputs", {{{"distribution", "gaussian"}, {"rows", 2}, {"cols", 64}}}}}}}});
  EXPECT_EQ(t, "sweeps[0].bits[1]: bits = 1 is out of range (2..8 for integer formats; fp4 and nf4 take 4, fp8 8)");
#if QEVAL_HAVE_MODEL_RUNS
  const std::string m = error_of({{"sweeps", {{{"kind", "model"}, {"bits", {9}}}}}});
  EXPECT_EQ(m, "sweeps[0].bits[0]: bits = 9 is out of range (2..8 for integer formats; fp4 and nf4 take 4, fp8 8)");
#endif
}

// Plans `config` (a committed file) and compares its ids, in order, with the committed report's plan ids.
void expect_same_ids(const std::string& config, const std::string& report) {
  SCOPED_TRACE(config);
  const SweepPlan p = plan_sweep(load_config_file(kRoot + "/" + config), 1);
  const json r = json::parse(testing::slurp(kRoot + "/" + report));
  std::vector<std::string> ids;
  for (const auto& run : p.runs) ids.push_back(run.id);
  EXPECT_EQ(json(ids), r["plan"]["ids"]);
}

TEST(SweepTrace, CommittedConfigsPlanTheIdsOfTheirReports) {
  if (const char* root = std::getenv("QEVAL_ROOT"); root && std::string(root) != kRoot)
    GTEST_SKIP() << "QEVAL_ROOT points elsewhere";
#if QEVAL_HAVE_MODEL_RUNS
  expect_same_ids("configs/sweep-ci.json", "reports/baseline/ci.json");
  for (const char* n : {"embedded-calib", "embedded-rtn", "embedded-rtn-sotu"})
    expect_same_ids(std::string("reports/models/") + n + ".sweep.json", std::string("reports/models/") + n + ".report.json");
  if (!testing::exists(kRoot + "/models/external/SmolLM2-135M-Instruct.Q4_1.gguf"))
    GTEST_SKIP() << "SmolLM2-135M is not in models/external (scripts/setup.sh): its reports were not compared";
  for (const char* n : {"smollm2-calib", "smollm2-calib-groups", "smollm2-calib-more", "smollm2-rtn"})
    expect_same_ids(std::string("reports/models/") + n + ".sweep.json", std::string("reports/models/") + n + ".report.json");
#else
  // Without the model evaluator only the tensor runs of the CI sweep can be planned: they keep their ids.
  json cfg = load_config_file(kRoot + "/configs/sweep-ci.json");
  json tensor = json::array();
  for (const auto& e : cfg["sweeps"])
    if (e.value("kind", std::string("tensor")) == "tensor") tensor.push_back(e);
  cfg["sweeps"] = tensor;
  const SweepPlan p = plan_sweep(cfg, 1);
  const json r = json::parse(testing::slurp(kRoot + "/reports/baseline/ci.json"));
  std::set<std::string> base;
  for (const auto& id : r["plan"]["ids"]) base.insert(id.get<std::string>());
  for (const auto& run : p.runs) EXPECT_TRUE(base.count(run.id)) << run.name;
#endif
}

}  // namespace
}  // namespace qeval::sweep
