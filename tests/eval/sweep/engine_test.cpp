// tests/eval/sweep/engine_test.cpp — the engine: journal (incl. a line cut short by a crash), stop + resume equals an
// uninterrupted run, --jobs N equals --jobs 1, resume of a finished report, failure handling.
#include <gtest/gtest.h>

#include <atomic>
#include <sstream>

#include "eval/sweep/engine.hpp"
#include "eval/sweep/plan.hpp"
#include "eval/sweep/tensor_kind.hpp"
#include "eval/inputs/file.hpp"
#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"
#include "tests/eval/sweep/test_util.hpp"

namespace qeval::sweep {
namespace {

using nlohmann::json;

SweepPlan six_runs() {
  // 3 bit widths × 2 mappings on a 64 × 1024 Gaussian: six runs of ~5 ms.
  json cfg = json::parse(R"({"seed": 3, "sweeps": [{"schemes": ["rtn"], "bits": [2, 4, 8], "mappings": ["sym", "asym"],
      "group_sizes": [64], "inputs": [{"distribution": "gaussian", "rows": 64, "cols": 1024}]}]})");
  return plan_sweep(cfg, 1);
}

EngineOptions quiet(const std::string& out) {
  EngineOptions o;
  o.out = out;
  o.progress = ProgressMode::none;
  o.command_line = {"qeval", "sweep"};
  return o;
}

// Wraps the tensor executor and raises a stop flag after `after` executions (as one SIGINT would).
class StopAfter : public RunExecutor {
 public:
  StopAfter(int after, std::atomic<bool>* stop) : inner_(make_tensor_executor()), after_(after), stop_(stop) {}
  std::string kind() const override { return "tensor"; }
  std::string summary() const override { return inner_->summary(); }
  std::vector<std::string> known_keys() const override { return inner_->known_keys(); }
  std::vector<Run> expand(const json& e, const std::string& p, const PlanContext& c) const override { return inner_->expand(e, p, c); }
  json execute(const Run& r, ExecContext& ctx) const override {
    json j = inner_->execute(r, ctx);
    if (++count_ >= after_) stop_->store(true);
    return j;
  }
  std::string table_header() const override { return inner_->table_header(); }
  std::string table_row(const json& e) const override { return inner_->table_row(e); }

 private:
  std::shared_ptr<RunExecutor> inner_;
  int after_;
  std::atomic<bool>* stop_;
  mutable std::atomic<int> count_{0};
};

struct RestoreTensorKind {
  ~RestoreTensorKind() { register_executor(make_tensor_executor()); }
};

TEST(Engine, JournalDropsALineCutShortByACrash) {
  testing::TempDir dir;
  const std::string j = dir / "r.json.jsonl";
  const json spec = {{"kind", "tensor"}, {"x", 1}};
  const json e1 = {{"kind", "tensor"}, {"id", report::run_id(spec)}, {"name", "a"}, {"spec", spec}};
  const std::string header = json({{"qeval_journal", 1}}).dump() + "\n";
  const std::string line = json({{"run", e1}}).dump() + "\n";
  testing::write_text(j, header + line + line.substr(0, line.size() / 2));  // killed mid-write
  long long cut = -2;
  const auto entries = read_journal(j, &cut);
  EXPECT_EQ(entries.size(), 1u);
  EXPECT_EQ(cut, static_cast<long long>(header.size() + line.size()));
  // A last line without its newline is cut short even when it parses: the newline is the last byte of the
  // same write(2), so the write did not complete (and was never fsync'ed as done).
  testing::write_text(j, header + line.substr(0, line.size() - 1));
  EXPECT_EQ(read_journal(j, &cut).size(), 0u);
  EXPECT_EQ(cut, static_cast<long long>(header.size()));
  testing::write_text(j, header + line);
  EXPECT_EQ(read_journal(j, &cut).size(), 1u);
  EXPECT_EQ(cut, -1);
  // Corruption before the last line is an error naming the line.
  testing::write_text(j, header + "{garbage\n" + line);
  try {
    read_journal(j);
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2 is corrupt"), std::string::npos) << e.what();
  }
  // So are a number beyond double (nlohmann throws out_of_range there, not parse_error) and nesting deep enough to
  // overflow the stack in a copy.
  for (const std::string& bad_line : {std::string("{\"run\": 1e99999}"), std::string(200000, '[') + std::string(200000, ']')}) {
    testing::write_text(j, header + bad_line + "\n" + line);
    try {
      read_journal(j);
      ADD_FAILURE();
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("line 2 is corrupt"), std::string::npos) << e.what();
    }
  }
  // An entry whose id is not its spec's hash is refused.
  json bad = e1;
  bad["spec"]["x"] = 2;
  testing::write_text(j, header + json({{"run", bad}}).dump() + "\n");
  EXPECT_THROW(read_journal(j), std::runtime_error);
}

TEST(Engine, StopThenResumeEqualsAnUninterruptedRun) {
  RestoreTensorKind restore;
  testing::TempDir dir;
  const SweepPlan plan = six_runs();
  std::ostringstream out, err;
  const EngineResult ref = run_engine(plan, quiet(dir / "ref.json"), out, err);
  ASSERT_EQ(ref.exit_code, 0);

  std::atomic<bool> stop{false};
  register_executor(std::make_shared<StopAfter>(2, &stop));
  EngineOptions o = quiet(dir / "r.json");
  o.stop = &stop;
  const EngineResult part = run_engine(plan, o, out, err);
  EXPECT_TRUE(part.interrupted);
  EXPECT_EQ(part.exit_code, 130);
  EXPECT_EQ(part.executed, 2u);
  EXPECT_FALSE(testing::exists(dir / "r.json"));  // no report from a partial sweep
  ASSERT_TRUE(testing::exists(dir / "r.json.jsonl"));
  EXPECT_EQ(read_journal(dir / "r.json.jsonl").size(), 2u);
  EXPECT_NE(err.str().find("--resume"), std::string::npos) << err.str();

  // Without --resume the journal protects the finished work.
  EXPECT_THROW(run_engine(plan, quiet(dir / "r.json"), out, err), std::runtime_error);

  register_executor(make_tensor_executor());
  EngineOptions r = quiet(dir / "r.json");
  r.resume = true;
  const EngineResult done = run_engine(plan, r, out, err);
  EXPECT_EQ(done.exit_code, 0);
  EXPECT_EQ(done.skipped, 2u);
  EXPECT_EQ(done.executed, 4u);
  EXPECT_FALSE(testing::exists(dir / "r.json.jsonl"));  // folded into the report
  const json a = report::load_report(dir / "ref.json"), b = report::load_report(dir / "r.json");
  EXPECT_EQ(report::strip_volatile(a), report::strip_volatile(b));
  ASSERT_EQ(b["runs"].size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(b["runs"][i]["id"], plan.runs[i].id);  // plan order

  // Resuming a finished sweep runs nothing and rewrites the same report.
  const EngineResult again = run_engine(plan, r, out, err);
  EXPECT_EQ(again.executed, 0u);
  EXPECT_EQ(again.skipped, 6u);
  EXPECT_EQ(report::strip_volatile(report::load_report(dir / "r.json")), report::strip_volatile(a));
}

TEST(Engine, JobsGiveTheSameReportAsOneJob) {
  const SweepPlan plan = six_runs();
  std::ostringstream out, err;
  EngineOptions o = quiet("");
  const json one = run_engine(plan, o, out, err).report;
  o.jobs = 4;
  const json four = run_engine(plan, o, out, err).report;
  EXPECT_EQ(report::strip_volatile(one), report::strip_volatile(four));
  // Timing differs, results do not: spot-check a metric bit for bit.
  EXPECT_EQ(one["runs"][5]["metrics"]["mse"], four["runs"][5]["metrics"]["mse"]);
}

TEST(Engine, ShardReportsCarryThePlan) {
  const SweepPlan plan = six_runs();
  std::ostringstream out, err;
  EngineOptions o = quiet("");
  o.shard_index = 1;
  o.shard_count = 4;
  const json r = run_engine(plan, o, out, err).report;
  EXPECT_NO_THROW(report::validate(r));
  ASSERT_EQ(r["runs"].size(), 2u);  // runs 1 and 5
  EXPECT_EQ(r["runs"][0]["id"], plan.runs[1].id);
  EXPECT_EQ(r["runs"][1]["id"], plan.runs[5].id);
  EXPECT_EQ(r["plan"]["ids"].size(), 6u);
  EXPECT_EQ(r["shard"]["index"], 1);
  EXPECT_EQ(r["shard"]["count"], 4);
}

// The backend axis: the same run on the OpenCL backend (quantize — for RTN — and dequantize on the device, bit-exact
// with the reference by gpu/'s contract) gives identical metrics, and says where it quantized.
TEST(Engine, OpenclBackendMatchesCpu) {
#if !QEVAL_HAVE_OPENCL
  GTEST_SKIP() << "built without the OpenCL backend (-DQEVAL_OPENCL=OFF): the opencl axis is a config error here";
#else
  const json cfg = json::parse(R"({"sweeps": [{"schemes": ["rtn"], "bits": [2, 4, 8], "mappings": ["sym", "asym"],
      "group_sizes": [64], "backends": ["cpu", "opencl"], "inputs": [{"distribution": "gaussian", "rows": 16, "cols": 512}]},
      {"schemes": ["nf4", "fp4"], "group_sizes": [64], "backends": ["cpu", "opencl"],
       "inputs": [{"distribution": "gaussian", "rows": 16, "cols": 512}]}]})");
  SweepPlan plan;
  try {
    plan = plan_sweep(cfg, 1);
  } catch (const ConfigError& e) {
    GTEST_SKIP() << "no usable OpenCL device: " << e.what();
  }
  std::ostringstream out, err;
  const json r = run_engine(plan, quiet(""), out, err).report;
  ASSERT_EQ(r["runs"].size(), 16u);
  for (size_t i = 0; i < 16; i += 2) {
    EXPECT_EQ(r["runs"][i]["backend"], "cpu");
    EXPECT_EQ(r["runs"][i + 1]["backend"], "opencl");
    EXPECT_EQ(r["runs"][i]["metrics"], r["runs"][i + 1]["metrics"]) << r["runs"][i]["name"];
    EXPECT_FALSE(r["runs"][i].contains("quantized_on")) << "a cpu run has no device to report";
    // RTN (plain affine codes, minmax, grouped) quantizes on the device; the code books on the host, saying why.
    const std::string on = r["runs"][i + 1].value("quantized_on", "");
    if (r["runs"][i]["config"]["scheme"] == "rtn")
      EXPECT_EQ(on, "opencl") << r["runs"][i]["name"];
    else
      EXPECT_EQ(on.rfind("host: the scheme quantizes with its own", 0), 0u) << on;
  }
#endif
}

TEST(Engine, AFailedRunStopsTheSweepAndKeepsFinishedWork) {
  testing::TempDir dir;
  // The second input holds a NaN: its run fails after the first input's run finished.
  quant::Matrix m(2, 64, 0.25f);
  m(1, 3) = std::numeric_limits<float>::quiet_NaN();
  inputs::write_npy(dir / "nan.npy", m.view());
  json cfg = {{"sweeps",
               {{{"schemes", {"rtn"}}, {"group_sizes", {32}}, {"inputs", {{{"distribution", "gaussian"}, {"rows", 2}, {"cols", 64}}, dir / "nan.npy"}}}}}};
  const SweepPlan plan = plan_sweep(cfg, 1);
  ASSERT_EQ(plan.runs.size(), 2u);
  std::ostringstream out, err;
  try {
    run_engine(plan, quiet(dir / "r.json"), out, err);
    ADD_FAILURE();
  } catch (const std::exception& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("holds NaN at row 1, col 3"), std::string::npos) << w;
    EXPECT_NE(w.find("--resume"), std::string::npos) << w;
  }
  EXPECT_EQ(read_journal(dir / "r.json.jsonl").size(), 1u);
}

}  // namespace
}  // namespace qeval::sweep

namespace qeval {
namespace {

// A finished model run as the summary reads it (eval/sweep/model_kind.cpp: table_summary).
nlohmann::json ranked_entry(int group, double kl, double dppl, double dppl_se) {
  const nlohmann::json plan = {{"weight", {{"scheme", "rtn"}, {"params", {{"bits", 4}, {"group_size", group}}}}}};
  return {{"kind", "model"},
          {"spec", {{"model", "m.gguf"}, {"protocol", {{"name", "p"}}}, {"plan", plan}}},
          {"metrics",
           {{"kl", {{"mean", kl}, {"se", 0.0001}}},
            {"ppl", {{"ppl", 40.0}}},
            {"delta_ppl", dppl},
            {"delta_mean_nll_se", dppl_se / 40.0},
            {"top1", 0.9},
            {"n_windows", 32}}}};
}

// The model table's summary ranks runs by KL and says whether Δppl agrees — and, where it does not, whether the
// disagreement is inside 2·√(se_a² + se_b²).
TEST(ModelSummary, RanksByKlAndJudgesDpplAgainstItsNoise) {
#ifndef QEVAL_HAVE_MODEL_RUNS
  GTEST_SKIP() << "the model run kind is not built (no LibTorch, e.g. the ASan build of scripts/asan.sh)";
#endif
  const sweep::RunExecutor* ex = sweep::find_executor("model");
  ASSERT_NE(ex, nullptr);
  // Given out of order; KL ranks g32 < g128 < g256. Δppl agrees, g32 vs g128 by 0.05 < 2·√2·0.05 = 0.141.
  std::string s = ex->table_summary({ranked_entry(256, 0.015, 0.72, 0.05), ranked_entry(32, 0.009, 0.40, 0.05),
                                     ranked_entry(128, 0.013, 0.45, 0.05)});
  const size_t a = s.find("g32"), b = s.find("g128"), c = s.find("g256");
  ASSERT_NE(a, std::string::npos) << s;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_NE(s.find("ranks them the same way; within 2 standard errors of dppl: rtn 4b g32 sym vs rtn 4b g128 sym"),
            std::string::npos) << s;
  // Inverted by 0.03 (inside the noise) and by 0.5 (beyond it).
  s = ex->table_summary({ranked_entry(32, 0.009, 0.45, 0.05), ranked_entry(128, 0.013, 0.42, 0.05)});
  EXPECT_NE(s.find("the other way (by 0.030; within 2 standard errors"), std::string::npos) << s;
  s = ex->table_summary({ranked_entry(32, 0.009, 0.95, 0.05), ranked_entry(128, 0.013, 0.45, 0.05)});
  EXPECT_NE(s.find("beyond 2 standard errors"), std::string::npos) << s;
  // One run: nothing to rank.
  EXPECT_EQ(ex->table_summary({ranked_entry(32, 0.009, 0.45, 0.05)}), "");
}

}  // namespace
}  // namespace qeval
