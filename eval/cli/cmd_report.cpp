// eval/cli/cmd_report.cpp — `qeval report`: a report as one self-contained HTML page (eval/report/html.hpp).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "eval/cli/command.hpp"
#include "eval/report/html.hpp"
#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"

namespace qeval::cli {

namespace {

struct ReportArgs {
  std::string in, out;
};

// "r.json" → "r.html"
std::string html_path(const std::string& in) {
  std::string out = in;
  if (out.size() > 5 && out.compare(out.size() - 5, 5, ".json") == 0) out.resize(out.size() - 5);
  return out + ".html";
}

void write_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) throw std::runtime_error("cannot write '" + path + "' (cannot create '" + tmp + "')");
    f << text;
    if (!f.flush()) throw std::runtime_error("cannot write '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename '" + tmp + "' to '" + path + "'");
}

int run_report(ReportArgs a) {
  const nlohmann::json r = report::load_report(a.in);
  if (a.out.empty()) a.out = html_path(a.in);
  std::string where;
  const std::string js = report::chartjs_source(&where);
  const size_t slash = a.in.find_last_of('/');
  const std::string html = report::render_html(r, a.in.substr(slash == std::string::npos ? 0 : slash + 1), js);
  write_atomic(a.out, html);
  std::cout << "report: " << r["runs"].size() << " run(s) rendered to " << a.out << " (" << html.size() / 1024
            << " KiB; Chart.js " << where << ")\n";
  return 0;
}

}  // namespace

Command add_report_command(CLI::App& app, const Invocation&) {
  auto a = std::make_shared<ReportArgs>();
  CLI::App* c = app.add_subcommand(
      "report", "Render a report as one self-contained HTML page (tables; SQNR vs bits with the 6.02*b line;\n"
                "Pareto fronts of bits/weight vs error; per-layer blame). Chart.js is inlined: no network needed.");
  c->add_option("report", a->in, "Report JSON (qeval sweep/merge output)")->required();
  c->add_option("-o,--out", a->out, "HTML file to write (default: the report's name with .html)");
  return {c, [a] { return run_report(*a); }};
}

}  // namespace qeval::cli
