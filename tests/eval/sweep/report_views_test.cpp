// tests/eval/sweep/report_views_test.cpp — derived views (Pareto fronts, tensor types, blame), report validation with
// JSON paths, the v1 → v2 migration, diff, merge of shard reports, and the HTML page's structure.
#include <gtest/gtest.h>

#include <sstream>

#include "eval/sweep/engine.hpp"
#include "eval/sweep/plan.hpp"
#include "eval/report/diff.hpp"
#include "eval/report/html.hpp"
#include "eval/report/merge.hpp"
#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"
#include "eval/report/views.hpp"

namespace qeval::report {
namespace {

using nlohmann::json;

json small_report(int shard_index = 0, int shard_count = 1) {
  json cfg = json::parse(R"({"seed": 9, "sweeps": [{"schemes": ["rtn"], "bits": [2, 3, 4], "mappings": ["sym", "asym"],
      "group_sizes": [32, 128], "inputs": [{"distribution": "gaussian", "rows": 32, "cols": 512}]},
      {"schemes": ["nf4"], "group_sizes": [64], "inputs": [{"distribution": "gaussian", "rows": 32, "cols": 512}]}]})");
  const sweep::SweepPlan plan = sweep::plan_sweep(cfg, 1);
  sweep::EngineOptions o;
  o.progress = sweep::ProgressMode::none;
  o.shard_index = shard_index;
  o.shard_count = shard_count;
  std::ostringstream out, err;
  return sweep::run_engine(plan, o, out, err).report;
}

std::string validation_error(const json& j) {
  try {
    validate(migrate(j));
  } catch (const ReportError& e) {
    return e.what();
  }
  return "";
}

TEST(Views, ParetoFrontOnHandPoints) {
  // (bits/weight, SQNR): b is dominated by a (fewer bits, more dB); d ties c exactly and is kept; e is beaten.
  const std::vector<double> x = {4.125, 4.25, 4.5, 4.5, 4.5, 3.5, NAN};
  const std::vector<double> y = {18.6, 18.4, 20.3, 20.3, 19.0, 14.6, 30.0};
  EXPECT_EQ(pareto_front(x, y, true), (std::vector<size_t>{5, 0, 2, 3}));
  // MSE (lower is better) on the same x: the order of the y's reverses the roles.
  const std::vector<double> mse = {0.0138, 0.0145, 0.0094, 0.0094, 0.0120, 0.035, 0.0};
  EXPECT_EQ(pareto_front(x, mse, false), (std::vector<size_t>{5, 0, 2, 3}));
}

TEST(Views, TensorTypesAndBoundRows) {
  EXPECT_EQ(tensor_type(json{{"tensor", {{"name", "model.layers.12.mlp.up_proj.weight"}}}}), "model.layers.*.mlp.up_proj.weight");
  EXPECT_EQ(tensor_type(json{{"tensor", {{"name", "blk.3.attn_q.weight"}}}}), "blk.*.attn_q.weight");
  EXPECT_EQ(tensor_type(json{{"tensor", {{"name", "w2v1"}}}}), "w2v1");
  const json rep = small_report();
  const json v = compute_views(rep["runs"]);
  // 13 runs on one input: a SQNR front and an MSE front.
  ASSERT_EQ(v["pareto"].size(), 2u);
  EXPECT_EQ(v["pareto"][0]["metric"], "sqnr_db");
  EXPECT_EQ(v["pareto"][0]["points"].size(), 13u);
  // Along the front, more bits/weight buys strictly more SQNR.
  double px = -1, py = -1e9;
  std::map<std::string, double> bpw, sq;
  for (const auto& p : v["pareto"][0]["points"]) {
    bpw[p["id"]] = p["bits_per_weight"];
    sq[p["id"]] = p["value"];
  }
  for (const auto& id : v["pareto"][0]["front"]) {
    EXPECT_GT(bpw[id], px);
    EXPECT_GT(sq[id], py);
    px = bpw[id];
    py = sq[id];
  }
  // bound rows: one per config on the "gaussian" tensor type, with 6.02·b and 20·log10(2^b − 1).
  ASSERT_EQ(v["bound_by_tensor_type"].size(), 13u);
  for (const auto& b : v["bound_by_tensor_type"]) {
    EXPECT_EQ(b["tensor_type"], "gaussian");
    const int bits = b["bits"];
    EXPECT_NEAR(b["bound_db"].get<double>(), 20.0 * std::log10(std::pow(2.0, bits)), 1e-9);
    EXPECT_NEAR(b["grid_adjusted_db"].get<double>(), 20.0 * std::log10(std::pow(2.0, bits) - 1.0), 1e-9);
    EXPECT_LT(b["sqnr_db"].get<double>(), b["bound_db"].get<double>());
  }
  EXPECT_TRUE(v["blame"].empty());
}

TEST(Schema, ErrorsNameTheJsonPath) {
  const json good = small_report();
  EXPECT_EQ(validation_error(good), "");
  json j = good;
  j["runs"][1]["metrics"]["sqnr_db"] = "18.6";
  EXPECT_EQ(validation_error(j).rfind("runs[1].metrics.sqnr_db: expected a number or null, got string", 0), 0u)
      << validation_error(j);
  j = good;
  j["runs"][2]["metrics"]["gap_db"].erase("grid");
  EXPECT_EQ(validation_error(j).rfind("runs[2].metrics.gap_db.grid: missing", 0), 0u) << validation_error(j);
  j = good;
  j["runs"][0]["spec"]["backend"] = "opencl";  // edited without re-hashing
  EXPECT_NE(validation_error(j).find("runs[0].id: "), std::string::npos) << validation_error(j);
  j = good;
  j["schema_version"] = 3;
  EXPECT_NE(validation_error(j).find("schema_version: 3 is newer than this qeval understands"), std::string::npos);
  j = good;
  j["schema_version"] = 0;
  EXPECT_NE(validation_error(j).find("schema_version: 0 is not a known version"), std::string::npos);
  j = good;
  j.erase("producer");
  EXPECT_EQ(validation_error(j).rfind("producer: missing", 0), 0u) << validation_error(j);
  j = good;
  j["runs"].push_back(j["runs"][0]);
  EXPECT_NE(validation_error(j).find("appears twice"), std::string::npos);
  j = good;
  j["plan"]["ids"].erase(j["plan"]["ids"].begin());
  EXPECT_NE(validation_error(j).find("plan.ids"), std::string::npos);
  // Unknown keys are ignored (forward compatibility); unknown run kinds keep only the common checks.
  j = good;
  j["future_section"] = {{"x", 1}};
  j["runs"][0]["future_field"] = 2;
  EXPECT_EQ(validation_error(j), "");
}

TEST(Schema, MigratesVersion1Reports) {
  // A v1 report as the first qeval wrote it (docs/report-schema.md, version 1).
  json v1 = json::parse(R"({"schema_version": 1, "tool": {"name": "qeval", "version": "0.1.0"},
    "created": "2024-02-29T12:00:00Z", "command_line": ["qeval", "sweep"], "environment": {"git": {"sha": null}},
    "seed": 20240229, "input": {"kind": "synthetic", "distribution": "gaussian", "rows": 4, "cols": 128,
    "seed": 20240229, "variance": 1.0}, "runs": []})");
  const json cur = small_report();
  json run = cur["runs"][0];
  for (const char* k : {"name", "spec", "backend", "input"}) run.erase(k);
  run["id"] = "rtn/2b/sym/g32/synthetic";
  v1["runs"].push_back(run);
  const json m = migrate(v1);
  EXPECT_NO_THROW(validate(m));
  EXPECT_EQ(m["schema_version"], 2);
  EXPECT_EQ(m["runs"][0]["name"], "rtn/2b/sym/g32/synthetic");
  EXPECT_EQ(m["runs"][0]["id"], run_id(m["runs"][0]["spec"]));
  EXPECT_EQ(m["runs"][0]["backend"], "cpu");
  EXPECT_EQ(m["plan"]["ids"].size(), 1u);
}

TEST(Schema, MigratingAV1RunWithoutBitsIsNotUndefinedBehaviour) {
  // migrate() computes the views before validate() can refuse the run: its missing metrics.bits (NaN) was converted
  // to int — undefined behaviour, found by tests/fuzz/fuzz_report under UBSan (corpus: crash-v1-run-without-bits).
  json v1 = json::parse(R"({"schema_version": 1, "tool": {"name": "qeval", "version": "0.1.0"},
    "created": "2024-02-29T12:00:00Z", "command_line": ["qeval", "sweep"], "environment": {"git": {"sha": null}},
    "seed": 1, "runs": []})");
  json run = small_report()["runs"][0];
  for (const char* k : {"name", "spec", "backend", "input"}) run.erase(k);
  run["metrics"].erase("bits");
  v1["runs"].push_back(run);
  const json m = migrate(v1);
  EXPECT_TRUE(m["views"]["bound_by_tensor_type"].empty()) << m["views"].dump();
  EXPECT_NE(validation_error(m).find("runs[0].metrics.bits: missing"), std::string::npos) << validation_error(m);
  // Only whole numbers in [0, 64] are bit widths.
  auto bits = [](json b) { return run_bits({{"metrics", {{"bits", std::move(b)}}}}); };
  EXPECT_EQ(bits(4), 4);
  EXPECT_EQ(bits(0), 0);
  EXPECT_EQ(bits(64), 64);
  for (const json& b : {json(4.5), json(1e300), json(-3), json(65), json("4"), json(nullptr)}) EXPECT_EQ(bits(b), -1) << b;
  EXPECT_EQ(run_bits(json::object()), -1);
}

TEST(Schema, MigratingAV1ReportWithMistypedFieldsNamesTheField) {
  // A v1 field of the wrong type (tool.version a number) escaped migrate() as nlohmann's type_error instead of a
  // ReportError naming it — found by a 10^6-run fuzz_report campaign (corpus: crash-v1-tool-version-number).
  auto error_of = [](json v1) -> std::string {
    try {
      (void)migrate(std::move(v1));
    } catch (const ReportError& e) {
      return e.what();
    }
    return "";
  };
  const json ok = json::parse(R"({"schema_version": 1, "tool": {"name": "qeval", "version": "0.1.0"},
    "created": "2024-02-29T12:00:00Z", "command_line": ["qeval", "sweep"], "environment": {"git": {"sha": null}},
    "seed": 1, "runs": [{"id": "r", "kind": "tensor", "tensor": {"name": "t"}}]})");
  EXPECT_EQ(error_of(ok), "");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/tool/version", "tool.version"},        {"/created", "created"},
      {"/command_line/1", "command_line[1]"},   {"/runs/0/kind", "runs[0].kind"},
      {"/runs/0/tensor/name", "runs[0].tensor.name"}};
  for (const auto& [pointer, path] : cases) {
    json bad = ok;
    bad[json::json_pointer(pointer)] = 4;
    EXPECT_NE(error_of(bad).find(path + ": expected a string, got integer 4"), std::string::npos)
        << pointer << ": " << error_of(bad);
  }
  json odd = ok;  // environment.git not an object: no sha, not a crash
  odd["environment"]["git"] = "abc";
  EXPECT_EQ(error_of(odd), "");
}

TEST(Diff, RunsAddedRemovedChanged) {
  const json a = small_report();
  json b = a;
  b["runs"].erase(b["runs"].begin());                         // removed
  b["runs"][0]["metrics"]["sqnr_db"] = b["runs"][0]["metrics"]["sqnr_db"].get<double>() - 0.5;  // changed
  b["config"]["sweeps"][0]["bits"] = {2, 3, 4, 5};
  const json d = diff_reports(a, b, "a.json", "b.json");
  EXPECT_EQ(d["removed"].size(), 1u);
  EXPECT_EQ(d["added"].size(), 0u);
  ASSERT_EQ(d["changed"].size(), 1u);
  EXPECT_EQ(d["changed"][0]["metrics"][0]["metric"], "sqnr_db");
  EXPECT_NEAR(d["changed"][0]["metrics"][0]["delta"].get<double>(), -0.5, 1e-12);
  EXPECT_EQ(d["unchanged"], a["runs"].size() - 2);
  ASSERT_EQ(d["config"].size(), 1u);
  EXPECT_EQ(d["config"][0]["path"], "config.sweeps[0].bits");
  const std::string text = format_diff(d);
  EXPECT_NE(text.find("1 removed, 1 changed"), std::string::npos) << text;
  EXPECT_NE(text.find("sqnr_db"), std::string::npos) << text;
  EXPECT_NE(text.find("config.sweeps[0].bits: [2,3,4] -> [2,3,4,5]"), std::string::npos) << text;
}

TEST(Merge, ShardsMergeIntoTheSingleProcessReport) {
  const json whole = small_report();
  std::vector<json> parts;
  std::vector<std::string> names;
  for (int i = 2; i >= 0; --i) {  // any order
    parts.push_back(small_report(i, 3));
    names.push_back("part-" + std::to_string(i) + ".json");
  }
  const json merged = merge_reports(parts, names, {"qeval", "merge"});
  EXPECT_NO_THROW(validate(merged));
  EXPECT_EQ(strip_volatile(merged), strip_volatile(whole));
  EXPECT_EQ(merged["merged_from"].size(), 3u);
  // A missing shard is named; a part of another sweep is refused.
  try {
    merge_reports({parts[0], parts[1]}, {names[0], names[1]}, {"qeval"});
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("shards present: 2/3, 1/3"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(merge_reports({parts[0], parts[1]}, {names[0], names[1]}, {"qeval"}, true));
  json other = parts[1];
  other["config"]["name"] = "x";
  EXPECT_THROW(merge_reports({parts[0], other}, {names[0], "other.json"}, {"qeval"}), std::invalid_argument);
  EXPECT_THROW(merge_reports({parts[0], parts[0]}, {names[0], names[0]}, {"qeval"}), std::invalid_argument);
}

TEST(Html, PageStructure) {
  json rep = small_report();
  rep["config"]["name"] = "<script>alert(1)</script>";  // escaped in HTML, "<\/" inside scripts
  const std::string html = render_html(rep, "r.json", "/* chart.js stand-in */ window.Chart = function(){};");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  for (const char* w : {"charts-sqnr", "charts-pareto", "charts-blame", "qeval-js-errors", "data-qeval-rendered",
                        "id=\"qeval-data\"", "chart.js stand-in", "SQNR vs the bound per tensor type", "6.02·b"})
    EXPECT_NE(html.find(w), std::string::npos) << w;
  EXPECT_EQ(html.find("<script>alert(1)"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  // The only "</script" are the closing tags of the page's own scripts (error capture, data, Chart.js, renderer).
  size_t n = 0;
  for (size_t p = html.find("</script"); p != std::string::npos; p = html.find("</script", p + 1)) ++n;
  EXPECT_EQ(n, 4u);
  EXPECT_NO_THROW(chartjs_source());  // embedded at build time (or found on this machine)
}

}  // namespace
}  // namespace qeval::report
