// tests/eval/cli/html_browser_test.cpp — `qeval report` renders in a real headless browser (Debian's chromium)
// without JavaScript errors, draws its charts, and needs no network. Skips with a message when chromium is
// absent. Screenshots are kept in the build tree (tests/eval/sweep/report-*.png) for a human to look at.
#include <gtest/gtest.h>

#include <regex>

#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"
#include "tests/eval/sweep/test_util.hpp"

namespace qeval {
namespace {

using nlohmann::json;
using testing::CmdResult;
using testing::TempDir;

const std::string kQeval = QEVAL_CLI_PATH;

std::string find_chromium() {
  for (const char* c : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (::access(c, X_OK) == 0) return c;
  return "";
}

struct Render {
  std::string dom, log;
  int status = -1;
};

// Loads the page (file://, no network: --proxy-server to nowhere makes any fetch fail loudly) and dumps the DOM
// after the scripts ran; the console log goes to stderr.
Render render(const std::string& chromium, const TempDir& dir, const std::string& html, const std::string& shot) {
  const std::string flags = "--headless --disable-gpu --no-sandbox --no-first-run --disable-extensions "
                            "--user-data-dir='" + dir / "profile" + "' --proxy-server=127.0.0.1:9 "
                            "--virtual-time-budget=8000 --window-size=1400,2600 --enable-logging=stderr --v=0 ";
  Render r;
  CmdResult d = testing::run_in(dir.path(), "timeout 90 '" + chromium + "' " + flags + "--dump-dom 'file://" + html + "'");
  r.status = d.status;
  r.dom = d.out;
  r.log = d.err;
  if (!shot.empty())
    testing::run_in(dir.path(), "timeout 90 '" + chromium + "' " + flags + "--screenshot='" + shot + "' 'file://" + html + "'");
  return r;
}

int rendered_charts(const std::string& dom) {
  std::smatch m;
  if (!std::regex_search(dom, m, std::regex("data-qeval-rendered=\"([0-9]+)\""))) return -1;
  return std::stoi(m[1]);
}

void expect_clean(const Render& r) {
  std::smatch m;
  // The attribute on <html> (the page's own script mentions the name too).
  EXPECT_FALSE(std::regex_search(r.dom, m, std::regex("<html[^>]*data-qeval-errors"))) << "JavaScript errors recorded in the page";
  ASSERT_TRUE(std::regex_search(r.dom, m, std::regex("<pre id=\"qeval-js-errors\"[^>]*>([^<]*)</pre>")));
  EXPECT_EQ(m[1].str(), "") << "errors: " << m[1].str();
  // Chromium's console log: uncaught exceptions and console.error calls of the page.
  std::regex bad("(Uncaught|CONSOLE[:(][0-9]+.*[Ee]rror)");
  std::sregex_iterator it(r.log.begin(), r.log.end(), bad), end;
  for (; it != end; ++it) ADD_FAILURE() << "browser console: " << it->str();
}

TEST(ReportHtml, RendersWithoutJavaScriptErrorsInChromium) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium not installed (apt-get install chromium); the HTML report is not checked";
  TempDir dir("qeval_html_test");
  const std::string q = "'" + kQeval + "' ";
  // Tensor runs: several schemes, bit widths, group sizes and two input distributions.
  testing::write_text(dir / "c.json", R"({"name": "html-test", "sweeps": [
      {"schemes": ["rtn"], "bits": [2, 3, 4, 8], "mappings": ["sym", "asym"], "group_sizes": [32, 128],
       "inputs": [{"distribution": "gaussian", "rows": 64, "cols": 1024}, {"distribution": "student-t", "rows": 64, "cols": 1024}]},
      {"schemes": ["nf4", "fp4"], "group_sizes": [64], "inputs": [{"distribution": "gaussian", "rows": 64, "cols": 1024}]}]})");
  ASSERT_EQ(testing::run_in(dir.path(), q + "sweep --config c.json --out r.json --jobs 2").status, 0);
  const CmdResult rep = testing::run_in(dir.path(), q + "report r.json -o r.html");
  ASSERT_EQ(rep.status, 0) << rep.err;
  const std::string html = testing::slurp(dir / "r.html");
  // Self-contained: no external resources.
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_NE(html.find("Chart.js v"), std::string::npos);

  const Render r = render(chromium, dir, dir / "r.html", std::string(QEVAL_BINARY_DIR) + "/report-tensor.png");
  ASSERT_EQ(r.status, 0) << r.log.substr(0, 2000);
  expect_clean(r);
  // Per input (gaussian, student-t): SQNR vs bits, and the SQNR and MSE Pareto fronts.
  EXPECT_EQ(rendered_charts(r.dom), 2 + 2 * 2) << r.dom.substr(0, 400);
  EXPECT_NE(r.dom.find("<canvas"), std::string::npos);
}

// The checks above can fail: a Chart.js that throws is caught in the DOM and in the console log.
TEST(ReportHtml, JavaScriptErrorsAreDetected) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium not installed (apt-get install chromium); the HTML report is not checked";
  TempDir dir("qeval_html_broken_test");
  const std::string q = "'" + kQeval + "' ";
  ASSERT_EQ(testing::run_in(dir.path(), q + "sweep --bits 2,4 --rows 8 --cols 256 --group-sizes 32 --out r.json").status, 0);
  testing::write_text(dir / "broken.js", "throw new Error('broken chart.js');\n");
  ASSERT_EQ(testing::run_in(dir.path(), "QEVAL_CHARTJS='" + dir / "broken.js" + "' " + q + "report r.json -o r.html").status, 0);
  const Render r = render(chromium, dir, dir / "r.html", "");
  std::smatch m;
  EXPECT_TRUE(std::regex_search(r.dom, m, std::regex("<html[^>]*data-qeval-errors=\"[1-9]")));
  EXPECT_NE(r.dom.find("broken chart.js"), std::string::npos);
  EXPECT_NE(r.log.find("Uncaught"), std::string::npos);
  EXPECT_EQ(rendered_charts(r.dom), -1);  // the renderer never finished
}

TEST(ReportHtml, ModelRunsGetBlameBars) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium not installed (apt-get install chromium); the HTML report is not checked";
  TempDir dir("qeval_html_model_test");
  // A model-run report as eval/model's run_model() will fill it (metrics with ppl/KL/blame).
  json r = report::new_report({"qeval", "sweep"});
  json ids = json::array();
  r["runs"] = json::array();
  for (int bits : {3, 4}) {
    json spec = {{"kind", "model"}, {"model", "models/tiny.gguf"}, {"plan", {{"weight", {{"scheme", "rtn"}, {"bits", bits}}}}}};
    json blame = json::array();
    for (int l = 0; l < 6; ++l)
      blame.push_back({{"layer", "blk." + std::to_string(l) + ".ffn_down"}, {"output_sqnr_db", 10.0 + bits * 3 + l},
                       {"kl_alone", 0.01 / (1 + l) / bits}});
    json run = {{"kind", "model"}, {"id", report::run_id(spec)}, {"name", "tiny/rtn/" + std::to_string(bits) + "b"},
                {"spec", spec},
                {"metrics", {{"bits_per_weight", bits + 0.5}, {"ppl", {{"ppl", 30.0 - bits}, {"ppl_se", 0.5}}},
                             {"delta_ppl", 4.0 / bits}, {"delta_mean_nll_se", 0.003},
                             {"kl", {{"mean", 0.1 / bits}, {"se", 0.002}, {"p99", 1.0 / bits}}}, {"top1", 0.9},
                             {"blame", blame}}}};
    ids.push_back(run["id"]);
    r["runs"].push_back(run);
  }
  r["seed"] = 0;
  r["config"] = {{"name", "model-html-test"}};
  r["protocol"] = {{"model", {{"name", "wikitext2-test-512-quick"}}}};
  r["plan"] = {{"runs", ids.size()}, {"ids", ids}};
  ASSERT_NO_THROW(report::validate(r));
  testing::write_text(dir / "m.json", r.dump(2));
  const CmdResult rep = testing::run_in(dir.path(), "'" + kQeval + "' report m.json -o m.html");
  ASSERT_EQ(rep.status, 0) << rep.err;
  const Render out = render(chromium, dir, dir / "m.html", std::string(QEVAL_BINARY_DIR) + "/report-model.png");
  ASSERT_EQ(out.status, 0);
  expect_clean(out);
  // KL and Δppl fronts, two blame charts; no SQNR chart (no tensor runs).
  EXPECT_EQ(rendered_charts(out.dom), 2 + 2);
}

}  // namespace
}  // namespace qeval
