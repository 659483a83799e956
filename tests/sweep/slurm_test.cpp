// tests/sweep/slurm_test.cpp — a single-node Slurm (munged + slurmctld + slurmd from Debian's packages, started
// by scripts/slurm/local-cluster.sh under a temporary directory on non-default ports) runs a small sweep as an
// array job through scripts/slurm/submit.sh; the merged report equals a local run's, up to timing/environment.
// Skips with a message only where Slurm cannot start (packages missing, not root, daemons refusing to run).
#include <gtest/gtest.h>

#include <unistd.h>

#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"
#include "tests/sweep/test_util.hpp"

namespace qeval {
namespace {

using nlohmann::json;
using testing::CmdResult;
using testing::TempDir;

const std::string kQeval = QEVAL_CLI_PATH;
const std::string kScripts = std::string(QEVAL_SOURCE_DIR) + "/scripts/slurm";

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
  if (start.status == 3) GTEST_SKIP() << "Slurm cannot start here: " << start.err;
  cluster.started = true;
  if (start.status != 0)
    GTEST_SKIP() << "Slurm cannot start here (status " << start.status << "): " << start.err << "\n"
                 << testing::slurp(cluster.dir + "/log/slurmctld.log").substr(0, 2000)
                 << testing::slurp(cluster.dir + "/log/slurmd.log").substr(0, 2000);
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

}  // namespace
}  // namespace qeval
