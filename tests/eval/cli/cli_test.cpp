// tests/eval/cli/cli_test.cpp — end-to-end: runs the built `qeval` binary. Every bad input ends with one line
// "qeval: error: ..." naming the problem and a non-zero status; the default sweep writes a valid report.
#include <gtest/gtest.h>

#include "tests/cli_runner.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "eval/inputs/file.hpp"

namespace {

using Result = qeval::test::CliResult;
using qeval::test::slurp;
class Cli : public qeval::test::CliTest {};

TEST_F(Cli, VersionAndHelp) {
  Result r = run("--version");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("qeval 0.1.0 (git "), std::string::npos) << r.out;
  r = run("--help");
  EXPECT_EQ(r.status, 0);
  for (const char* w : {"sweep", "list-schemes", "--version", "Examples"})
    EXPECT_NE(r.out.find(w), std::string::npos) << w << "\n" << r.out;
  r = run("sweep --help");
  EXPECT_EQ(r.status, 0);
  for (const char* w : {"--scheme", "--bits", "--group-sizes", "--sym", "--asym", "--mapping", "--input", "--rows",
                        "--cols", "--shape", "--seed", "--out", "--option", "--non-finite", "--range", "--clip-ratio",
                        "default", "gaussian", "student-t", "outliers", ".npy", "Examples", "per row", "per tensor"})
    EXPECT_NE(r.out.find(w), std::string::npos) << w << "\n" << r.out;
}

TEST_F(Cli, ListSchemes) {
  Result r = run("list-schemes");
  EXPECT_EQ(r.status, 0);
  for (const char* w : {"rtn", "dynamic_per_token", "fp4", "nf4", "fp8", "target:", "default bits:", "codebook=e2m1"})
    EXPECT_NE(r.out.find(w), std::string::npos) << w << "\n" << r.out;
  r = run("list-schemes --json");
  EXPECT_EQ(r.status, 0);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j[0]["id"], "rtn");
}

TEST_F(Cli, BadInputsEndWithOneClearLine) {
  expect_one_line_error("sweep --scheme nosuch", "unknown scheme 'nosuch'");
  expect_one_line_error("sweep --bits 9", "bits = 9");
  expect_one_line_error("sweep --bits nine", "'nine' is not an integer");
  expect_one_line_error("sweep --group-sizes 100 --cols 4096 --rows 4", "group size 100 does not divide the row length 4096");
#if QEVAL_HAVE_MODEL_RUNS
  // No tensor option: the embedded default model (d_model 256), checked against its GGUF header before any run.
  expect_one_line_error("sweep --group-sizes 100", "100 does not divide the hidden size 256");
#endif
  expect_one_line_error("sweep --input /nonexistent/dir/w.npy", "cannot open file");
  expect_one_line_error("sweep --input gausian", "neither a distribution");
  expect_one_line_error("sweep --option foo=bar --rows 4", "no option 'foo'");
  expect_one_line_error("sweep --option foo --rows 4", "key=value");
  expect_one_line_error("sweep --mapping both", "'both' is not sym or asym");
  expect_one_line_error("sweep --non-finite ignore", "non-finite policy 'ignore'");
  expect_one_line_error("sweep --bogus", "--bogus");
  expect_one_line_error("sweep --rows 0", "rows and cols must be >= 1");
  expect_one_line_error("", "subcommand");
  expect_one_line_error("sweep --rows 4 --out /nonexistent/dir/r.json", "cannot write report '/nonexistent/dir/r.json'");
}

TEST_F(Cli, NaNInputFile) {
  qeval::quant::Matrix m(4, 64, 0.5f);
  m(2, 7) = std::numeric_limits<float>::quiet_NaN();
  qeval::inputs::write_npy(dir_ + "/nan.npy", m.view());
  expect_one_line_error("sweep --input nan.npy --group-sizes 32", "input 'nan.npy' holds NaN at row 2, col 7");
  // Under propagate the run goes through and the report counts the skipped element.
  const Result r = run("sweep --input nan.npy --group-sizes 32 --non-finite propagate --out p.json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(slurp(dir_ + "/p.json"));
  EXPECT_EQ(j["runs"][0]["metrics"]["non_finite_inputs"], 1);
  EXPECT_EQ(j["input"]["kind"], "npy");
  // A file's shape comes from the file.
  expect_one_line_error("sweep --input nan.npy --rows 3", "--rows/--cols set the shape of synthetic inputs");
}

TEST_F(Cli, RawF32NeedsShape) {
  std::ofstream(dir_ + "/w.f32", std::ios::binary).write(std::string(4 * 4 * 32, '\0').data(), 4 * 4 * 32);
  expect_one_line_error("sweep --input w.f32", "need an explicit shape");
  expect_one_line_error("sweep --input w.f32 --shape 4x64", "size mismatch");
  const Result r = run("sweep --input w.f32 --shape 4x32 --group-sizes 32 --no-report");
  EXPECT_EQ(r.status, 0) << r.err;
}

// The acceptance command: no other option, default input, prints a table and writes a report.
TEST_F(Cli, DefaultSweepWritesAValidReport) {
  const Result r = run("sweep --input gaussian --group-sizes 32,128,256");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  for (const char* w : {"scheme", "SQNR", "bound", "grid", "expect", "rtn", "report: 3 run(s) written to qeval-report.json"})
    EXPECT_NE(r.out.find(w), std::string::npos) << w << "\n" << r.out;
  const auto j = nlohmann::json::parse(slurp(dir_ + "/qeval-report.json"));
  EXPECT_EQ(j["schema_version"], 2);  // v2: run ids are spec hashes (docs/report-schema.md, migration notes)
  EXPECT_EQ(j["tool"]["name"], "qeval");
  EXPECT_EQ(j["command_line"][1], "sweep");
  for (const char* k : {"cpu", "compiler", "build_type", "git", "libraries"}) EXPECT_TRUE(j["environment"].contains(k)) << k;
  for (const char* k : {"eigen", "nlohmann_json", "cli11"}) EXPECT_TRUE(j["environment"]["libraries"].contains(k)) << k;
  EXPECT_EQ(j["input"]["distribution"], "gaussian");
  EXPECT_EQ(j["input"]["rows"], 1024);
  EXPECT_EQ(j["input"]["cols"], 4096);
  EXPECT_TRUE(j["seed"].is_number_unsigned());
  ASSERT_EQ(j["runs"].size(), 3u);
  const int64_t groups[] = {32, 128, 256};
  double prev = 1e9;
  for (size_t i = 0; i < 3; ++i) {
    const auto& run = j["runs"][i];
    EXPECT_EQ(run["kind"], "tensor");
    EXPECT_EQ(run["config"]["scheme"], "rtn");
    EXPECT_EQ(run["config"]["params"]["bits"], 4);
    EXPECT_EQ(run["config"]["params"]["group_size"], groups[i]);
    EXPECT_EQ(run["config"]["params"]["mapping"], "symmetric");
    const auto& m = run["metrics"];
    EXPECT_NEAR(m["bound_db"].get<double>(), 24.08, 0.005);
    EXPECT_NEAR(m["grid_adjusted_db"].get<double>(), 23.52, 0.005);
    const double sqnr = m["sqnr_db"].get<double>();
    EXPECT_LT(sqnr, prev);  // larger groups, lower SQNR
    prev = sqnr;
    const double sum = m["gap_db"]["grid"].get<double>() + m["gap_db"]["range"].get<double>() +
                       m["gap_db"]["other"].get<double>();
    EXPECT_NEAR(sum, m["gap_db"]["total"].get<double>(), 1e-9);
    EXPECT_NEAR(m["bits_per_weight"].get<double>(), 4.0 + 16.0 / groups[i], 1e-12);
    EXPECT_EQ(m["clipping"]["elements"], 0);
    EXPECT_TRUE(run["timing_ms"]["quantize"].is_number());
  }
  // g128: DESIGN.md's worked example (18.60 dB; 4M values → sd 0.004 dB).
  EXPECT_NEAR(j["runs"][1]["metrics"]["sqnr_db"].get<double>(), 18.60, 0.05);
}

}  // namespace
