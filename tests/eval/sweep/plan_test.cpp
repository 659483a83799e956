// tests/eval/sweep/plan_test.cpp — sweep configs: every error names its JSON path before any work; stable run ids;
// options and config files plan the same runs; shards partition the plan.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <set>

#include "eval/sweep/plan.hpp"
#include "eval/sweep/sweep.hpp"
#include "eval/report/report.hpp"
#include "tests/eval/sweep/test_util.hpp"

namespace qeval::sweep {
namespace {

using nlohmann::json;

json small_entry() {
  return {{"schemes", {"rtn"}}, {"bits", {4}}, {"group_sizes", {32}}, {"inputs", {{{"distribution", "gaussian"}, {"rows", 4}, {"cols", 256}}}}};
}

// The ConfigError text of planning `cfg` ("" when it plans fine).
std::string error_of(const json& cfg) {
  try {
    plan_sweep(cfg, 1);
  } catch (const ConfigError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a ConfigError: ") + e.what();
  }
  return "";
}

void expect_error(const json& cfg, const std::string& path, const std::string& words) {
  const std::string m = error_of(cfg);
  SCOPED_TRACE(cfg.dump());
  EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << "message does not start with the path '" << path << "': " << m;
  EXPECT_NE(m.find(words), std::string::npos) << "message lacks '" << words << "': " << m;
}

TEST(SweepConfig, ErrorsNameTheJsonPath) {
  // The issue's example: the third entry's second group size does not divide the row length 576.
  json cfg = {{"sweeps", {small_entry(), small_entry(), small_entry()}}};
  cfg["sweeps"][2]["inputs"] = {{{"distribution", "gaussian"}, {"rows", 8}, {"cols", 576}}};
  cfg["sweeps"][2]["group_sizes"] = {64, 100};
  expect_error(cfg, "sweeps[2].group_sizes[1]", "group size 100 does not divide the row length 576");

  auto with = [](const char* key, json v) {
    json c = {{"sweeps", {small_entry()}}};
    c["sweeps"][0][key] = std::move(v);
    return c;
  };
  expect_error(with("group_size", {32}), "sweeps[0].group_size", "did you mean \"group_sizes\"");
  expect_error(with("schemes", {"rtn", "nosuch"}), "sweeps[0].schemes[1]", "unknown scheme 'nosuch'");
  expect_error(with("bits", {4, "8"}), "sweeps[0].bits[1]", "is not an integer");
  expect_error(with("bits", {4, 9}), "sweeps[0].bits[1]", "bits");
  expect_error(with("mappings", {"sym", "both"}), "sweeps[0].mappings[1]", "'both' is not sym or asym");
  expect_error(with("group_sizes", {"rows"}), "sweeps[0].group_sizes[0]", "not a group size");
  expect_error(with("bits", json::array()), "sweeps[0].bits", "empty list");
  expect_error(with("backends", {"cpu", "cuda"}), "sweeps[0].backends[1]", "'cuda' is not a backend");
#if !QEVAL_HAVE_OPENCL
  expect_error(with("backends", {"opencl"}), "sweeps[0].backends[0]", "-DQEVAL_OPENCL=ON");
#endif
  expect_error(with("inputs", {"gaussian", "/nonexistent/w.npy"}), "sweeps[0].inputs[1]", "cannot open file");
  expect_error(with("inputs", {{{"distribution", "gaussian"}, {"rows", 0}}}), "sweeps[0].inputs[0]", "rows and cols must be >= 1");
  expect_error(with("inputs", {{{"distribution", "gaussian"}, {"colz", 4}}}), "sweeps[0].inputs[0].colz", "unknown key");
  expect_error(with("ranges", {"minmax", "median"}), "sweeps[0].ranges[1]", "median");
  expect_error(with("options", {{"nf4.x", "1"}}), "sweeps[0].options.nf4.x", "not in sweeps[0].schemes");
  expect_error(with("options", {{"foo", "1"}}), "sweeps[0]", "no option 'foo'");
#if QEVAL_HAVE_MODEL_RUNS
  // A tensor entry relabelled "model": the model kind names the first key it does not take.
  expect_error(with("kind", "model"), "sweeps[0].inputs", "unknown key for a 'model' sweep");
#else
  expect_error(with("kind", "model"), "sweeps[0].kind", "'model' is not a run kind this qeval can execute");
#endif
  expect_error(with("kind", "modle"), "sweeps[0].kind", "'modle' is not a run kind this qeval can execute");
  expect_error(with("protocol", {{"sampling", "bootstrap"}}), "sweeps[0].protocol.sampling", "\"rows\" or \"none\"");
  // fp4 accepts only 4 bits: the combination is named.
  json fp = with("schemes", {"fp4"});
  fp["sweeps"][0]["bits"] = {3};
  fp["sweeps"][0]["group_sizes"] = {64};
  expect_error(fp, "sweeps[0]", "config 'fp4 int3 sym g64' (sweeps[0].schemes[0], sweeps[0].bits[0], sweeps[0].group_sizes[0]");
  // Top level.
  expect_error({{"sweeps", {small_entry()}}, {"sweep", 1}}, "sweep", "unknown key");
  expect_error({{"sweeps", json::array()}}, "sweeps", "non-empty list");
  expect_error(json::object(), "sweeps", "missing");
  expect_error({{"sweeps", {small_entry()}}, {"seed", -1}}, "seed", "non-negative");
  expect_error({{"sweeps", {small_entry()}}, {"protocol", {{"modle", {}}}}}, "protocol.modle", "not a run kind");
}

TEST(SweepConfig, AConfigFileThatIsNotJsonIsNamed) {
  // Both kinds of JSON error nlohmann throws: parse_error, and out_of_range for a number beyond double; and nesting
  // deep enough to overflow the stack in a copy (SIGSEGV before the limit). Both found with the fuzz drivers (tests/fuzz).
  testing::TempDir dir;
  const std::string deep = "{\"sweeps\": " + std::string(200000, '[') + std::string(200000, ']') + "}";
  for (const std::string& text : {std::string(R"({"sweeps": [)"), std::string(R"({"seed": 1e99999, "sweeps": []})"), deep}) {
    testing::write_text(dir / "c.json", text);
    try {
      (void)load_config_file(dir / "c.json");
      ADD_FAILURE() << text.substr(0, 60);
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("sweep config '" + (dir / "c.json") + "' is not valid JSON"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(SweepConfig, NothingRunsOrIsWrittenBeforeValidation) {
  testing::TempDir dir;
  json cfg = {{"sweeps", {small_entry(), small_entry()}}};
  cfg["sweeps"][1]["group_sizes"] = {100};
  testing::write_text(dir / "c.json", cfg.dump());
  SweepOptions o;
  o.config_path = dir / "c.json";
  o.out = dir / "r.json";
  o.progress = ProgressMode::none;
  std::ostringstream out, err;
  try {
    run_sweep(o, {"qeval"}, out, err);
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("sweep config '" + o.config_path + "': sweeps[1].group_sizes[0]: group size 100"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(out.str().empty()) << out.str();  // not even the header: no run started
  EXPECT_FALSE(testing::exists(dir / "r.json"));
  EXPECT_FALSE(testing::exists(dir / "r.json.jsonl"));
}

TEST(SweepConfig, RunIdsAreStableHashesOfTheSpec) {
  json cfg = {{"seed", 7}, {"sweeps", {small_entry()}}};
  cfg["sweeps"][0]["bits"] = {2, 4};
  cfg["sweeps"][0]["mappings"] = {"sym", "asym"};
  const SweepPlan a = plan_sweep(cfg, 1);
  ASSERT_EQ(a.runs.size(), 4u);
  std::set<std::string> ids;
  for (const auto& r : a.runs) {
    // id = xxh64 of the canonical dump, computed here directly with libxxhash.
    const std::string dump = r.spec.dump();
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH64(dump.data(), dump.size(), 0)));
    EXPECT_EQ(r.id, hex);
    ids.insert(r.id);
    EXPECT_EQ(r.spec["input"]["seed"], 7u);
    EXPECT_EQ(r.spec["backend"], "cpu");
    EXPECT_EQ(r.spec["protocol"]["sampling"], "rows");
  }
  EXPECT_EQ(ids.size(), 4u);
  // Planning again, or with the keys written in another order, gives the same ids.
  json reordered = json::parse(R"({"sweeps": [{"inputs": [{"cols": 256, "rows": 4, "distribution": "gaussian"}],
      "mappings": ["sym", "asym"], "group_sizes": [32], "bits": [2, 4], "schemes": ["rtn"]}], "seed": 7})");
  const SweepPlan b = plan_sweep(reordered, 1);
  ASSERT_EQ(b.runs.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(a.runs[i].id, b.runs[i].id);
  // Anything that changes the result changes the id: the seed, a parameter.
  cfg["seed"] = 8;
  EXPECT_NE(plan_sweep(cfg, 1).runs[0].id, a.runs[0].id);
  // The names are readable.
  EXPECT_EQ(a.runs[0].name, "rtn/2b/sym/g32/cpu/gaussian-4x256");
}

TEST(SweepConfig, OptionsAndConfigFilePlanTheSameRuns) {
  SweepOptions o;
  o.schemes = {"rtn", "fp4"};
  o.bits = {4};
  o.group_sizes = {32, 64};
  o.mappings = {quant::Mapping::symmetric};
  o.options = {"fp4.codebook=e2m1", "fp4.codebook=bnb"};  // a repeated key is an axis
  o.rows = 4;
  o.cols = 256;
  o.seed = 11;
  const SweepPlan a = plan_sweep(config_from_options(o), o.seed);
  // 2 rtn + 2 groups × 2 code books of fp4.
  ASSERT_EQ(a.runs.size(), 6u);
  json cfg = json::parse(R"({"seed": 11, "sweeps": [
      {"schemes": ["rtn", "fp4"], "bits": [4], "group_sizes": [32, 64], "options": {"fp4.codebook": ["e2m1", "bnb"]},
       "inputs": [{"distribution": "gaussian", "rows": 4, "cols": 256}]}]})");
  const SweepPlan b = plan_sweep(cfg, 99);
  ASSERT_EQ(b.runs.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(a.runs[i].id, b.runs[i].id) << a.runs[i].name << " vs " << b.runs[i].name;
}

TEST(SweepConfig, PartialGroupsAxis) {
  // 576 = 4·128 + 64: refused without partial groups (naming the axis value), accepted with them.
  json cfg = {{"sweeps", {{{"schemes", {"rtn"}}, {"group_sizes", {128}},
                          {"inputs", {{{"distribution", "gaussian"}, {"rows", 4}, {"cols", 576}}}}}}}};
  expect_error(cfg, "sweeps[0].group_sizes[0]", "partial_last_group");
  cfg["sweeps"][0]["partial_groups"] = {false, true};
  cfg["sweeps"][0]["inputs"][0]["cols"] = 512;  // divisible: both values plan
  SweepPlan p = plan_sweep(cfg, 1);
  ASSERT_EQ(p.runs.size(), 2u);
  EXPECT_EQ(p.runs[1].spec["config"]["params"]["partial_last_group"], true);
  EXPECT_EQ(p.runs[1].name, "rtn/4b/sym/g128+tail/cpu/gaussian-4x512");
  cfg["sweeps"][0]["partial_groups"] = {"yes"};
  expect_error(cfg, "sweeps[0].partial_groups[0]", "not true or false");
}

TEST(SweepConfig, DuplicatesCollapseAcrossEntries) {
  json cfg = {{"sweeps", {small_entry(), small_entry()}}};
  cfg["sweeps"][1]["bits"] = {4, 8};
  const SweepPlan p = plan_sweep(cfg, 1);
  EXPECT_EQ(p.runs.size(), 2u);
  EXPECT_EQ(p.duplicates, 1u);
}

TEST(SweepConfig, ShardsPartitionThePlan) {
  json cfg = {{"sweeps", {small_entry()}}};
  cfg["sweeps"][0]["bits"] = {2, 3, 4, 5, 6, 7, 8};
  const SweepPlan p = plan_sweep(cfg, 1);
  ASSERT_EQ(p.runs.size(), 7u);
  for (int n : {1, 2, 3, 7, 9}) {
    std::multiset<std::string> all;
    for (int i = 0; i < n; ++i)
      for (const sweep::Run* r : shard_runs(p, i, n)) all.insert(r->id);
    EXPECT_EQ(all.size(), 7u) << n;
    for (const auto& r : p.runs) EXPECT_EQ(all.count(r.id), 1u) << n;
  }
  int i = 0, n = 0;
  parse_shard("2/5", &i, &n);
  EXPECT_EQ(i, 2);
  EXPECT_EQ(n, 5);
  EXPECT_THROW(parse_shard("5/5", &i, &n), std::invalid_argument);
  EXPECT_THROW(parse_shard("1", &i, &n), std::invalid_argument);
  EXPECT_THROW(parse_shard("-1/2", &i, &n), std::invalid_argument);
}

}  // namespace
}  // namespace qeval::sweep
