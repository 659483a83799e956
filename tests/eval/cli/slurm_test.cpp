// tests/eval/cli/slurm_test.cpp — a single-node Slurm (munged + slurmctld + slurmd from Debian's packages, started
// by scripts/slurm/local-cluster.sh under a temporary directory on non-default ports) runs a small sweep as an
// array job through scripts/slurm/submit.sh; the merged report equals a local run's, up to timing/environment.
// Skips only where Slurm is not installed. Under CI (CI=true) a cluster that does not come up (a broken
// slurm.conf, a daemon that exits, not root) FAILS, naming the daemon and its log; elsewhere it skips with that line.
// A second test proves it: a deliberately broken slurm.conf fails this test under CI=true and skips without it.
#include <gtest/gtest.h>

#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"
#include "tests/eval/sweep/test_util.hpp"

namespace qeval {
namespace {

using nlohmann::json;
using testing::CmdResult;
using testing::TempDir;

const std::string kQeval = QEVAL_CLI_PATH;
const std::string kScripts = std::string(QEVAL_SOURCE_DIR) + "/scripts/slurm";

// The skip message when Slurm's packages are absent (the only skip under CI).
const char* const kNotInstalled = "Slurm is not installed here: ";

bool in_ci() {
  const char* v = std::getenv("CI");
  return v != nullptr && std::string(v) == "true";
}

// Stops the cluster whatever happens to the test.
struct Cluster {
  std::string dir;
  bool started = false;
  ~Cluster() {
    if (started) testing::run_in("/", "'" + kScripts + "/local-cluster.sh' stop '" + dir + "'");
  }
};

TEST(Slurm, ArrayJobThenMergeEqualsALocalRun) {
  TempDir dir("qeval_slurm_test");
  Cluster cluster;
  cluster.dir = dir / "cluster";
  // Ports from the pid, away from Slurm's defaults, so parallel runs on one machine do not collide.
  const int port = 20000 + 2 * static_cast<int>(::getpid() % 5000);
  const CmdResult start =
      testing::run_in(dir.path(), "timeout 60 '" + kScripts + "/local-cluster.sh' start '" + cluster.dir + "' " + std::to_string(port));
  if (start.status == 3) GTEST_SKIP() << kNotInstalled << start.err;
  cluster.started = true;
  if (start.status != 0) {
    // start.err: one line naming the daemon and its log ("slurmd did not come up (log: …)"), then the log's tail.
    const std::string why = "Slurm cluster did not come up (local-cluster.sh status " + std::to_string(start.status) +
                            "): " + start.err;
    if (!in_ci()) GTEST_SKIP() << why << "(skipped outside CI; with CI=true this fails)";
    dir.keep();  // the log named above stays where it says
    FAIL() << why << "(CI=true: a failure, not a skip)";
  }
  const std::string env = "SLURM_CONF='" + cluster.dir + "/slurm.conf' ";

  testing::write_text(dir / "c.json", R"({"name": "slurm-test", "seed": 4, "sweeps": [
      {"schemes": ["rtn"], "bits": [2, 4, 8], "mappings": ["sym", "asym"], "group_sizes": [32],
       "inputs": [{"distribution": "gaussian", "rows": 32, "cols": 512}]},
      {"schemes": ["nf4"], "group_sizes": [64], "inputs": [{"distribution": "laplace", "rows": 32, "cols": 512}]}]})");
  // 7 runs in 3 array tasks (3 + 2 + 2 runs), then the dependent merge job; --wait blocks until it is done.
  const CmdResult sub = testing::run_in(dir.path(), env + "timeout 180 '" + kScripts + "/submit.sh' --config c.json --shards 3 "
                                                          "--out merged.json --qeval '" + kQeval + "' --wait");
  ASSERT_EQ(sub.status, 0) << sub.out << sub.err << testing::slurp(dir / "merged.json.parts/merge.log")
                           << testing::slurp(dir / "merged.json.parts/task-0.log");
  EXPECT_NE(sub.out.find("(3 task(s))"), std::string::npos) << sub.out;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(testing::exists(dir / ("merged.json.parts/part-" + std::to_string(i) + ".json")));

  const CmdResult local = testing::run_in(dir.path(), "'" + kQeval + "' sweep --config c.json --out local.json");
  ASSERT_EQ(local.status, 0) << local.err;
  const json merged = report::load_report(dir / "merged.json");
  const json mine = report::load_report(dir / "local.json");
  EXPECT_EQ(merged["merged_from"].size(), 3u);
  EXPECT_EQ(merged["runs"].size(), 7u);
  EXPECT_EQ(report::strip_volatile(merged), report::strip_volatile(mine));
}

// This test program itself, run as a child with a deliberately broken slurm.conf (an unknown key: slurmctld refuses
// to start) and only the cluster test selected.
CmdResult run_broken_cluster_test(const std::string& ci_env) {
  char self[PATH_MAX] = {};
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return {};
  return testing::run_in("/", ci_env + " QEVAL_SLURM_EXTRA_CONF='NoSuchKey=1' '" + std::string(self, n) +
                                  "' --gtest_filter=Slurm.ArrayJobThenMergeEqualsALocalRun");
}

// Removes the cluster directory that a failing child kept: the one before "/cluster/log/" in "(log: …)".
void remove_kept_dir(const std::string& out) {
  const size_t at = out.find("(log: /tmp/qeval_slurm_test_");
  if (at == std::string::npos) return;
  const size_t end = out.find("/cluster/log/", at);
  if (end != std::string::npos) std::system(("rm -rf '" + out.substr(at + 6, end - at - 6) + "'").c_str());
}

TEST(Slurm, ABrokenConfigFailsUnderCiAndSkipsElsewhere) {
  const CmdResult ci = run_broken_cluster_test("CI=true");
  remove_kept_dir(ci.out);
  if (ci.out.find(kNotInstalled) != std::string::npos) GTEST_SKIP() << ci.out;
  EXPECT_NE(ci.status, 0) << ci.out;
  EXPECT_NE(ci.out.find("[  FAILED  ] Slurm.ArrayJobThenMergeEqualsALocalRun"), std::string::npos) << ci.out;
  // One line names the daemon and where its log is; the log's tail follows and says why.
  EXPECT_NE(ci.out.find("local-cluster.sh: slurmctld did not come up (log: /tmp/qeval_slurm_test_"), std::string::npos)
      << ci.out;
  EXPECT_NE(ci.out.find("/cluster/log/slurmctld.log)"), std::string::npos) << ci.out;
  EXPECT_NE(ci.out.find("unrecognized key: NoSuchKey"), std::string::npos) << ci.out;

  const CmdResult local = run_broken_cluster_test("env -u CI");
  EXPECT_EQ(local.status, 0) << local.out;
  EXPECT_NE(local.out.find("[  SKIPPED ] Slurm.ArrayJobThenMergeEqualsALocalRun"), std::string::npos) << local.out;
  EXPECT_NE(local.out.find("slurmctld did not come up"), std::string::npos) << local.out;
}

}  // namespace
}  // namespace qeval
