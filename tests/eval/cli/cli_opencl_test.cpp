// tests/eval/cli/cli_opencl_test.cpp — `qeval sweep --backend ref,opencl` end to end on the embedded model (the built
// binary, PoCL in CI; skipped without an OpenCL device): both runs in the report, the opencl run with its device in
// metrics.backend and its agreement with ref within the bound; an unsupported pair is one line naming it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "gpu/device.hpp"
#include "tests/cli_runner.hpp"

namespace {

using nlohmann::json;
class CliOpenCl : public qeval::test::CliTest {};

TEST_F(CliOpenCl, ModelSweepOnRefAndOpenClReportsAgreementAndTheDevice) {
  const auto dev = qeval::gpu::default_device();
  if (!dev) GTEST_SKIP() << "no OpenCL device found (install pocl-opencl-icd); the opencl CLI test is skipped";
  const qeval::test::CliResult r =
      run("sweep --activation dynamic_per_token --bits 8 --group-sizes row --backend ref,opencl --max-windows 1 "
          "--out r.json --progress none");
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(qeval::test::slurp(dir_ + "/r.json"));
  ASSERT_EQ(j.at("runs").size(), 2u) << j.dump(1);
  int opencl_runs = 0;
  for (const json& run : j.at("runs")) {
    const json& m = run.at("metrics");
    if (m.at("backend").at("name") != "opencl") {
      EXPECT_TRUE(m.at("agreement").is_null());
      continue;
    }
    ++opencl_runs;
    SCOPED_TRACE(m.at("backend").dump() + "\n" + m.at("agreement").dump());
    EXPECT_EQ(m.at("backend").at("device"), dev->info().name);
    EXPECT_EQ(m.at("backend").at("driver"), dev->info().driver_version);
    EXPECT_TRUE(m.at("agreement").at("within_bound").get<bool>());
    EXPECT_TRUE(m.at("agreement").at("fingerprint_equal").get<bool>());
  }
  EXPECT_EQ(opencl_runs, 1);
}

TEST_F(CliOpenCl, AnUnsupportedPairIsOneLine) {
  if (!qeval::gpu::default_device()) GTEST_SKIP() << "no OpenCL device found; the opencl CLI test is skipped";
  expect_one_line_error("sweep --scheme nf4 --bits 4 --group-sizes 64 --activation dynamic_per_token --backend opencl "
                        "--max-windows 1 --out r.json --progress none",
                        "backend 'opencl' cannot run layer");
}

}  // namespace
