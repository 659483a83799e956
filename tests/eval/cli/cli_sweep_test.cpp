// tests/eval/cli/cli_sweep_test.cpp — end-to-end through the `qeval` binary: SIGKILL at a random point + --resume
// gives the uninterrupted report (nothing lost, nothing duplicated); SIGINT leaves a resumable journal; config
// errors name the JSON path before any work; the regression gate fails on injected rounding toward zero and
// passes on the real scheme; report/diff/merge/check reject malformed reports with the JSON path.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "eval/sweep/engine.hpp"
#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"
#include "quant/rng.hpp"
#include "schemes/scheme.hpp"
#include "tests/eval/sweep/test_util.hpp"

namespace qeval {
namespace {

using nlohmann::json;
using testing::CmdResult;
using testing::TempDir;

const std::string kQeval = QEVAL_CLI_PATH;

// Runs of ~0.1–0.3 s each (the MSE range search makes 8 passes over 512 × 1024 values): slow enough to
// be killed in the middle, fast enough for a `fast` test.
const char* kSlowConfig = R"({"name": "kill-test", "seed": 17, "sweeps": [{"schemes": ["rtn"], "bits": [2, 3, 4, 8],
  "mappings": ["sym", "asym"], "group_sizes": [32], "ranges": ["mse"],
  "inputs": [{"distribution": "gaussian", "rows": 512, "cols": 1024}]}]})";
constexpr size_t kSlowRuns = 8;

size_t journal_runs(const std::string& path) {
  // Complete lines after the header.
  const std::string t = testing::slurp(path);
  size_t n = 0;
  for (char c : t) n += c == '\n';
  return n > 0 ? n - 1 : 0;
}

// Starts `qeval args...` in `dir` (stdout/stderr to files); returns its pid.
pid_t spawn(const std::string& dir, const std::vector<std::string>& args) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::chdir(dir.c_str()) != 0) ::_exit(127);
    const int o = ::open("spawn.out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open("spawn.err", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(kQeval.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(kQeval.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

// Waits until the journal holds `k` finished runs (or the process ended); false on timeout (60 s).
bool wait_for_runs(const std::string& journal, size_t k, pid_t pid) {
  for (int i = 0; i < 6000; ++i) {
    if (testing::exists(journal) && journal_runs(journal) >= k) return true;
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

class CliSweep : public ::testing::Test {
 protected:
  // The uninterrupted reference report of kSlowConfig, made once.
  static void SetUpTestSuite() {
    ref_dir_ = new TempDir("qeval_cli_sweep_ref");
    testing::write_text(*ref_dir_ / "c.json", kSlowConfig);
    const CmdResult r = testing::run_in(ref_dir_->path(), "'" + kQeval + "' sweep --config c.json --out ref.json --jobs 2");
    ASSERT_EQ(r.status, 0) << r.err;
    ref_ = new json(report::load_report(*ref_dir_ / "ref.json"));
  }
  static void TearDownTestSuite() {
    delete ref_;
    delete ref_dir_;
  }
  static TempDir* ref_dir_;
  static json* ref_;
};
TempDir* CliSweep::ref_dir_ = nullptr;
json* CliSweep::ref_ = nullptr;

TEST_F(CliSweep, SigkillAtARandomPointThenResumeGivesTheSameReport) {
  const uint64_t seed = seed_from_env(20240229);
  Rng rng(seed);
  TempDir dir;
  testing::write_text(dir / "c.json", kSlowConfig);
  // Kill after k ∈ [1, N − 3] journaled runs plus a random part of the shortest run's duration (measured in the
  // reference sweep), i.e. in the middle of a run or of its journal write. At least three runs are unfinished
  // when the k-th is journaled; with two jobs they need at least two run durations, so the kill always lands
  // before the end.
  double min_run_ms = 1e9;
  for (const auto& run : (*ref_)["runs"]) {
    double t = 0;
    for (const auto& [key, v] : run["timing_ms"].items()) t += v.get<double>();
    min_run_ms = std::min(min_run_ms, t);
  }
  const size_t k = 1 + static_cast<size_t>(rng.next_u64() % (kSlowRuns - 3));
  const int extra_ms = static_cast<int>(rng.next_u64() % static_cast<uint64_t>(std::max(1.0, min_run_ms)));
  SCOPED_TRACE("seed " + std::to_string(seed) + ": kill after " + std::to_string(k) + " runs + " + std::to_string(extra_ms) + " ms");
  const pid_t pid = spawn(dir.path(), {"sweep", "--config", "c.json", "--out", "r.json", "--jobs", "2"});
  ASSERT_TRUE(wait_for_runs(dir / "r.json.jsonl", k, pid)) << testing::slurp(dir / "spawn.err");
  std::this_thread::sleep_for(std::chrono::milliseconds(extra_ms));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "the sweep ended before the kill";
  EXPECT_FALSE(testing::exists(dir / "r.json"));
  const size_t done_before = sweep::read_journal(dir / "r.json.jsonl").size();
  EXPECT_GE(done_before, k);
  EXPECT_LT(done_before, kSlowRuns);

  const CmdResult r = testing::run_in(dir.path(), "'" + kQeval + "' sweep --config c.json --out r.json --jobs 2 --resume");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(std::to_string(done_before) + " already finished (resume)"), std::string::npos) << r.out;
  EXPECT_FALSE(testing::exists(dir / "r.json.jsonl"));
  const json got = report::load_report(dir / "r.json");
  // Nothing lost, nothing duplicated, same numbers and order as the uninterrupted run.
  ASSERT_EQ(got["runs"].size(), kSlowRuns);
  std::set<std::string> ids;
  for (const auto& run : got["runs"]) ids.insert(run["id"].get<std::string>());
  EXPECT_EQ(ids.size(), kSlowRuns);
  EXPECT_EQ(report::strip_volatile(got), report::strip_volatile(*ref_));
}

TEST_F(CliSweep, SigintFinishesTheRunningRunAndLeavesAResumableJournal) {
  TempDir dir;
  testing::write_text(dir / "c.json", kSlowConfig);
  const pid_t pid = spawn(dir.path(), {"sweep", "--config", "c.json", "--out", "r.json"});
  ASSERT_TRUE(wait_for_runs(dir / "r.json.jsonl", 1, pid));
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << WTERMSIG(st);
  EXPECT_EQ(WEXITSTATUS(st), 130);
  const std::string err = testing::slurp(dir / "spawn.err");
  EXPECT_NE(err.find("interrupted"), std::string::npos) << err;
  EXPECT_NE(err.find("sweep --config c.json --out r.json --resume"), std::string::npos) << err;
  // The run in flight was finished and journaled: every line is complete.
  long long cut = 0;
  const size_t n = sweep::read_journal(dir / "r.json.jsonl", &cut).size();
  EXPECT_EQ(cut, -1);
  EXPECT_GE(n, 1u);
  EXPECT_LT(n, kSlowRuns);
  const CmdResult r = testing::run_in(dir.path(), "'" + kQeval + "' sweep --config c.json --out r.json --resume");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(report::strip_volatile(report::load_report(dir / "r.json")), report::strip_volatile(*ref_));
}

TEST_F(CliSweep, ConfigErrorsNameTheJsonPathBeforeAnyWork) {
  TempDir dir;
  testing::write_text(dir / "bad.json", R"({"sweeps": [{"schemes": ["rtn"]}, {"schemes": ["nf4"]},
      {"schemes": ["rtn"], "group_sizes": [64, 100], "inputs": [{"distribution": "gaussian", "rows": 8, "cols": 576}]}]})");
  const CmdResult r = testing::run_in(dir.path(), "'" + kQeval + "' sweep --config bad.json --out r.json");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err.rfind("qeval: error: sweep config 'bad.json': sweeps[2].group_sizes[1]: group size 100 does not divide "
                        "the row length 576",
                        0),
            0u)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_FALSE(testing::exists(dir / "r.json.jsonl"));
  // Axes and --config do not mix; the hidden fault injection takes only rounding names.
  EXPECT_EQ(testing::run_in(dir.path(), "'" + kQeval + "' sweep --config bad.json --bits 4").status, 2);
  EXPECT_EQ(testing::run_in(dir.path(), "'" + kQeval + "' sweep --inject-rounding sideways --rows 4").status, 2);
  // --dry-run plans and lists, executes nothing.
  testing::write_text(dir / "c.json", kSlowConfig);
  const CmdResult d = testing::run_in(dir.path(), "'" + kQeval + "' sweep --config c.json --dry-run --shard 1/3");
  ASSERT_EQ(d.status, 0) << d.err;
  EXPECT_NE(d.out.find("qeval sweep: 3 run(s) (shard 1/3 of 8)"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find(" rtn/2b/asym/g32/mse/cpu/gaussian-512x1024"), std::string::npos) << d.out;
}

// `qeval sweep --help` lists every registered scheme id (schemes.def); --explain and --plan-json trace each run's
// values from the command line to its typed spec and id, executing nothing.
TEST(CliTrace, HelpListsSchemesAndExplainShowsTheTypedSpec) {
  TempDir dir;
  const CmdResult h = testing::run_in(dir.path(), "'" + kQeval + "' sweep --help");
  ASSERT_EQ(h.status, 0) << h.err;
  for (const auto& s : schemes::scheme_list()) EXPECT_NE(h.out.find(s.id), std::string::npos) << s.id;
  for (const char* w : {"--explain", "--plan-json"}) EXPECT_NE(h.out.find(w), std::string::npos) << w;
  const std::string sweep = "'" + kQeval + "' sweep --input gaussian --rows 4 --cols 64 --bits 3 --group-sizes 16,32 ";
  const CmdResult e = testing::run_in(dir.path(), sweep + "--explain");
  ASSERT_EQ(e.status, 0) << e.err;
  for (const char* w : {"qeval sweep: 2 run(s) (dry run: nothing executed)", "[2/2] rtn/3b/sym/g32/cpu/gaussian-4x64",
                        "sweeps[0].group_sizes[1]", "(schemes::SchemeConfig)", "(quant::QuantParams)", "\"group_size\":32",
                        "= xxh64(spec)"})
    EXPECT_NE(e.out.find(w), std::string::npos) << w << "\n" << e.out;
  const CmdResult j = testing::run_in(dir.path(), sweep + "--plan-json");
  ASSERT_EQ(j.status, 0) << j.err;
  const json plan = json::parse(j.out);
  ASSERT_EQ(plan["runs"].size(), 2u);
  EXPECT_EQ(plan["runs"][1]["id"], report::run_id(plan["runs"][1]["spec"]));
  EXPECT_EQ(plan["runs"][1]["typed"]["scheme_config"]["params"]["value"]["bits"], 3);
  EXPECT_FALSE(testing::exists(dir / "qeval-report.json"));  // a dry run writes nothing
}

TEST_F(CliSweep, GateFailsOnInjectedRoundingAndPassesOnTheRealScheme) {
  TempDir dir;
  const std::string q = "'" + kQeval + "' ";
  const std::string sweep = q + "sweep --bits 2,4,8 --mapping sym,asym --group-sizes 32,128 --rows 128 --cols 1024 --jobs 2 ";
  ASSERT_EQ(testing::run_in(dir.path(), sweep + "--out base.json").status, 0);
  ASSERT_EQ(testing::run_in(dir.path(), sweep + "--out real.json").status, 0);
  const CmdResult bad_sweep = testing::run_in(dir.path(), sweep + "--out worse.json --inject-rounding toward_zero");
  ASSERT_EQ(bad_sweep.status, 0) << bad_sweep.err;
  EXPECT_NE(bad_sweep.out.find("FAULT INJECTION"), std::string::npos);

  const CmdResult pass = testing::run_in(dir.path(), q + "check --baseline base.json real.json");
  EXPECT_EQ(pass.status, 0) << pass.out << pass.err;
  EXPECT_NE(pass.out.find("PASS: no regression (24 comparisons)"), std::string::npos) << pass.out;

  const CmdResult fail = testing::run_in(dir.path(), q + "check --baseline base.json worse.json");
  EXPECT_EQ(fail.status, 1) << fail.out << fail.err;
  for (const char* w : {"REGRESSED  rtn/2b/sym/g32/cpu/gaussian-128x1024  sqnr_db",
                        "REGRESSED  rtn/8b/asym/g128/cpu/gaussian-128x1024  mse", "FAIL: 24 regression(s)",
                        "FAULT INJECTION"})
    EXPECT_NE(fail.out.find(w), std::string::npos) << w << "\n" << fail.out;
  const CmdResult js = testing::run_in(dir.path(), q + "check --json --baseline base.json worse.json");
  EXPECT_EQ(js.status, 1);
  EXPECT_EQ(json::parse(js.out)["regressions"], 24);

  // Refreshing the baseline is one command; the new baseline says who/what/when.
  const CmdResult up = testing::run_in(dir.path(), q + "check --update-baseline --baseline new-base.json real.json");
  ASSERT_EQ(up.status, 0) << up.err;
  const json nb = report::load_report(dir / "new-base.json");
  for (const char* k : {"refreshed", "by", "from", "command", "git_sha"}) EXPECT_TRUE(nb["baseline"].contains(k)) << k;
  EXPECT_NE(nb["producer"]["command"].get<std::string>().find("sweep --bits 2,4,8"), std::string::npos);
  EXPECT_EQ(testing::run_in(dir.path(), q + "check --baseline new-base.json real.json").status, 0);

  // diff names what changed.
  const CmdResult d = testing::run_in(dir.path(), q + "diff base.json worse.json");
  ASSERT_EQ(d.status, 0) << d.err;
  EXPECT_NE(d.out.find("0 added, 0 removed, 12 changed, 0 unchanged"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("fault_injection: 1 difference(s)"), std::string::npos) << d.out;
  EXPECT_EQ(json::parse(testing::run_in(dir.path(), q + "diff --json base.json real.json").out)["unchanged"], 12);
}

TEST_F(CliSweep, ShardsThenMergeEqualOneProcess) {
  TempDir dir;
  const std::string q = "'" + kQeval + "' ";
  const std::string sweep = q + "sweep --bits 2,3,4 --mapping sym,asym --rows 16 --cols 256 --group-sizes 32 ";
  ASSERT_EQ(testing::run_in(dir.path(), sweep + "--out whole.json").status, 0);
  for (int i = 0; i < 4; ++i)
    ASSERT_EQ(testing::run_in(dir.path(), sweep + "--shard " + std::to_string(i) + "/4 --out p" + std::to_string(i) + ".json").status, 0);
  const CmdResult m = testing::run_in(dir.path(), q + "merge p3.json p1.json p0.json p2.json -o merged.json");
  ASSERT_EQ(m.status, 0) << m.err;
  EXPECT_EQ(report::strip_volatile(report::load_report(dir / "merged.json")),
            report::strip_volatile(report::load_report(dir / "whole.json")));
  const CmdResult missing = testing::run_in(dir.path(), q + "merge p0.json p1.json -o partial.json");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("planned run(s) are in none of the parts"), std::string::npos) << missing.err;
}

// The committed CI baseline is a valid report of exactly the runs configs/sweep-ci.json plans (a config edited
// without refreshing the baseline would make the gate report missing/added runs; scripts/refresh-baseline.sh).
TEST_F(CliSweep, CommittedBaselineMatchesTheCiConfig) {
  const std::string src = QEVAL_SOURCE_DIR;
  const json base = report::load_report(src + "/reports/baseline/ci.json");
  const CmdResult d = testing::run_in(src, "'" + kQeval + "' sweep --config configs/sweep-ci.json --dry-run");
  ASSERT_EQ(d.status, 0) << d.err;
  std::vector<std::string> planned;
  std::istringstream lines(d.out);
  std::string line;
  std::getline(lines, line);  // "qeval sweep: N run(s) ..."
  while (std::getline(lines, line)) planned.push_back(line.substr(0, 16));
  std::vector<std::string> in_base;
  for (const auto& id : base["plan"]["ids"]) in_base.push_back(id.get<std::string>());
  EXPECT_EQ(planned, in_base);
  EXPECT_EQ(base["runs"].size(), in_base.size());
  for (const char* k : {"refreshed", "by", "command", "git_sha"}) EXPECT_TRUE(base["baseline"].contains(k)) << k;
}

// The baseline holds what users run: the README's main command (and its --mapping sym,asym example) plans runs whose
// ids are all in the committed baseline, so the CI gate checks exactly those runs.
TEST_F(CliSweep, ReadmeMainCommandIsInTheCiBaseline) {
  const std::string src = QEVAL_SOURCE_DIR;
  const json base = report::load_report(src + "/reports/baseline/ci.json");
  std::set<std::string> in_base;
  for (const auto& id : base["plan"]["ids"]) in_base.insert(id.get<std::string>());
  for (const std::string args : {"--group-sizes 32,128,256", "--group-sizes 32,128,256 --mapping sym,asym"}) {
    const CmdResult d = testing::run_in(src, "'" + kQeval + "' sweep " + args + " --dry-run");
    ASSERT_EQ(d.status, 0) << d.err;
    std::istringstream lines(d.out);
    std::string line;
    std::getline(lines, line);  // "qeval sweep: N run(s) ..."
    size_t n = 0;
    while (std::getline(lines, line)) {
      ++n;
      EXPECT_TRUE(in_base.count(line.substr(0, 16))) << "qeval sweep " << args << ": " << line << " is not in the baseline";
    }
    EXPECT_EQ(n, args.find("asym") == std::string::npos ? 3u : 6u) << d.out;
  }
}

TEST_F(CliSweep, CommandsThatReadReportsRejectMalformedOnes) {
  TempDir dir;
  json bad = *ref_;
  bad["runs"][3]["metrics"]["sqnr_db"] = "high";
  testing::write_text(dir / "bad.json", bad.dump());
  json future = *ref_;
  future["schema_version"] = 99;
  testing::write_text(dir / "future.json", future.dump());
  testing::write_text(dir / "ref.json", ref_->dump());
  testing::write_text(dir / "trunc.json", ref_->dump().substr(0, 100));
  const std::string q = "'" + kQeval + "' ";
  for (const std::string cmd : {"report bad.json -o x.html", "diff ref.json bad.json", "check --baseline ref.json bad.json",
                                "merge bad.json -o m.json"}) {
    const CmdResult r = testing::run_in(dir.path(), q + cmd);
    EXPECT_EQ(r.status, 1) << cmd;
    EXPECT_NE(r.err.find("report 'bad.json': runs[3].metrics.sqnr_db: expected a number or null, got string \"high\""),
              std::string::npos)
        << cmd << ": " << r.err;
  }
  CmdResult r = testing::run_in(dir.path(), q + "report future.json");
  EXPECT_NE(r.err.find("schema_version: 99 is newer than this qeval understands"), std::string::npos) << r.err;
  r = testing::run_in(dir.path(), q + "diff ref.json trunc.json");
  EXPECT_NE(r.err.find("'trunc.json' is not valid JSON"), std::string::npos) << r.err;
  // Nesting 200,000 deep: one line and status 1 (it was SIGSEGV, a stack overflow in a copy; found with the fuzz drivers).
  testing::write_text(dir / "deep.json", std::string(200000, '[') + std::string(200000, ']'));
  r = testing::run_in(dir.path(), q + "check --baseline ref.json deep.json");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("'deep.json' is not valid JSON: JSON nested deeper than 128 levels"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace qeval
