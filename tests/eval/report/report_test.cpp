// tests/eval/report/report_test.cpp — report header/environment fields, config and metrics JSON, atomic writes.
#include <gtest/gtest.h>

#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>

#include "eval/report/report.hpp"
#include "quant/params_json.hpp"

namespace qeval::report {
namespace {

TEST(Report, HeaderAndEnvironment) {
  const nlohmann::json j = new_report({"qeval", "sweep", "--bits", "4"});
  EXPECT_EQ(j["schema_version"], kSchemaVersion);
  EXPECT_EQ(j["tool"]["name"], "qeval");
  EXPECT_EQ(j["tool"]["version"], "0.1.0");
  EXPECT_TRUE(std::regex_match(j["created"].get<std::string>(),
                               std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)")))
      << j["created"];
  EXPECT_EQ(j["command_line"].size(), 4u);
  EXPECT_TRUE(j["runs"].is_array());
  const auto& env = j["environment"];
  EXPECT_TRUE(env["cpu"]["model"].is_string());
  EXPECT_TRUE(env["cpu"]["flags"].is_array());
  EXPECT_TRUE(env["compiler"]["id"].is_string());
  EXPECT_FALSE(env["compiler"]["version"].get<std::string>().empty());
  EXPECT_TRUE(env["build_type"].is_string());
  EXPECT_TRUE(env["git"]["dirty"].is_boolean());
  if (!env["git"]["sha"].is_null()) {
    EXPECT_TRUE(std::regex_match(env["git"]["sha"].get<std::string>(), std::regex("[0-9a-f]{40}")));
  }
  EXPECT_EQ(env["libraries"]["eigen"].get<std::string>().substr(0, 2), "3.");
  EXPECT_EQ(env["libraries"]["nlohmann_json"].get<std::string>().substr(0, 2), "3.");
  EXPECT_NE(version_string().find("qeval 0.1.0 (git "), std::string::npos) << version_string();
}

TEST(Report, NonFiniteNumbersAreNull) {
  EXPECT_TRUE(num(std::numeric_limits<double>::quiet_NaN()).is_null());
  EXPECT_TRUE(num(std::numeric_limits<double>::infinity()).is_null());
  EXPECT_EQ(num(1.5), 1.5);
}

TEST(Report, ConfigCarriesFullQuantParamsAndRoundTrips) {
  schemes::SchemeConfig c = schemes::default_config("fp4");
  c.options.set("codebook", "bnb");
  c.params.clip_ratio = 0.9;
  const nlohmann::json j = config_json(c);
  EXPECT_EQ(j["scheme"], "fp4");
  EXPECT_EQ(j["options"]["codebook"], "bnb");
  for (const char* k : {"bits", "group_size", "mapping", "rounding", "range", "clip_ratio", "clip_percentile",
                        "non_finite", "version"})
    EXPECT_TRUE(j["params"].contains(k)) << k;
  quant::QuantParams back;
  quant::from_json(j["params"], back);
  EXPECT_EQ(back, c.params);
}

TEST(Report, MetricsJsonFields) {
  metrics::TensorMetrics m;
  m.bits = 4;
  m.error.sqnr_db = 18.6;
  m.gap = metrics::decompose(4, std::numeric_limits<double>::quiet_NaN(), 18.6);
  const nlohmann::json j = metrics_json(m);
  for (const char* k : {"mse", "sqnr_db", "max_abs_error", "cosine", "bound_db", "grid_adjusted_db",
                        "expected_sqnr_db", "gap_db", "clipping", "signal", "noise_model", "bits_per_weight"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_TRUE(j["expected_sqnr_db"].is_null());
  EXPECT_TRUE(j["gap_db"]["range"].is_null());
  EXPECT_NEAR(j["gap_db"]["grid"].get<double>(), 0.56, 0.005);
}

std::vector<std::string> list_dir(const std::string& d) {
  std::vector<std::string> out;
  if (DIR* dir = opendir(d.c_str())) {
    while (dirent* e = readdir(dir))
      if (e->d_name[0] != '.') out.push_back(e->d_name);
    closedir(dir);
  }
  return out;
}

TEST(Report, AFileThatIsNotJsonIsNamed) {
  // parse_error, out_of_range (a number beyond double) and nesting that overflowed the stack in a copy (SIGSEGV
  // before the limit) read alike; found with tests/fuzz/fuzz_report.
  char tmpl[] = "/tmp/qeval_report_test_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string path = dir + "/r.json";
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  for (const std::string& text : {std::string(R"({"runs": [)"), std::string(R"({"seed": 1e99999})"), deep}) {
    std::ofstream(path) << text;
    try {
      (void)read_json_file(path);
      ADD_FAILURE() << text.substr(0, 60);
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("'" + path + "' is not valid JSON"), std::string::npos) << e.what();
    }
  }
  std::system(("rm -rf '" + dir + "'").c_str());
}

TEST(Report, AtomicWrite) {
  char tmpl[] = "/tmp/qeval_report_test_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string path = dir + "/r.json";
  nlohmann::json j = new_report({"qeval"});
  write_json_atomic(path, j);
  j["runs"].push_back({{"kind", "tensor"}});
  write_json_atomic(path, j);  // replaces the old one
  std::ifstream f(path);
  const nlohmann::json back = nlohmann::json::parse(f);
  EXPECT_EQ(back["runs"].size(), 1u);
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"r.json"});  // no temporary left behind
  try {
    write_json_atomic(dir + "/no/such/dir/r.json", j);
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir/r.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
  }
  EXPECT_EQ(list_dir(dir), std::vector<std::string>{"r.json"});
  std::system(("rm -rf '" + dir + "'").c_str());
}


TEST(Report, ProducerRunIdsAndVolatileFields) {
  const nlohmann::json j = new_report({"qeval", "sweep", "--out", "a b.json"});
  const auto& p = j["producer"];
  EXPECT_EQ(p["command"], "qeval sweep --out 'a b.json'");  // shell-pastable
  for (const char* k : {"user", "host", "date", "git_sha", "git_dirty", "tool_version"}) EXPECT_TRUE(p.contains(k)) << k;
  // Run ids: 16 hex digits, independent of key order, different for different specs.
  const nlohmann::json a = nlohmann::json::parse(R"({"kind": "tensor", "backend": "cpu", "x": 1.5})");
  const nlohmann::json b = nlohmann::json::parse(R"({"x": 1.5, "backend": "cpu", "kind": "tensor"})");
  EXPECT_TRUE(std::regex_match(run_id(a), std::regex("[0-9a-f]{16}")));
  EXPECT_EQ(run_id(a), run_id(b));
  EXPECT_NE(run_id(a), run_id(nlohmann::json::parse(R"({"kind": "tensor", "backend": "cpu", "x": 1.25})")));
  // xxh64 of the empty input is the published constant EF46DB3751D8E999 (xxHash spec test vector).
  EXPECT_EQ(xxh64_hex(""), "ef46db3751d8e999");
  // strip_volatile drops what differs between two executions of one sweep, nothing else.
  nlohmann::json r = j;
  r["runs"].push_back({{"id", "x"}, {"timing_ms", {{"quantize", 1.0}}}, {"metrics", {{"mse", 0.5}}}});
  const nlohmann::json s = strip_volatile(r);
  for (const char* k : {"created", "command_line", "producer", "environment"}) EXPECT_FALSE(s.contains(k)) << k;
  EXPECT_FALSE(s["runs"][0].contains("timing_ms"));
  EXPECT_EQ(s["runs"][0]["metrics"]["mse"], 0.5);
}

}  // namespace
}  // namespace qeval::report
