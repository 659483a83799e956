// eval/report/html.hpp — `qeval report in.json -o report.html`: one self-contained HTML page (no network).
//
// The page inlines Chart.js (embedded into the binary at build time from Debian's libjs-chart.js) and the
// data it plots, so it opens offline and can be archived with the report. Contents:
//   * header: sweep name, when/how/by what it was produced (command, git SHA), protocol, seed;
//   * plots: SQNR vs bits with the 6.02·b line and the grid-adjusted 20·log10(2^b − 1) line; Pareto fronts of
//     bits/weight against each error metric (SQNR, MSE; KL, Δppl for model runs); per-layer blame bars
//     when model runs carry per_layer[];
//   * tables: every run (sortable by clicking a header), SQNR vs bound per tensor type;
//   * config, protocol and environment as JSON.
// The page records JavaScript errors (window.onerror, unhandled rejections, console.error) into the DOM
// (<pre id="qeval-js-errors">, html[data-qeval-errors]) and sets html[data-qeval-rendered="<charts>"] when
// drawing finished — what the headless-browser test reads.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace qeval::report {

// Chart.js source: the embedded copy, else $QEVAL_CHARTJS, else the Debian paths; throws std::runtime_error
// naming the paths tried and the fix (apt-get install libjs-chart.js) when none exists.
std::string chartjs_source(std::string* where = nullptr);

// The page for a (validated, current-version) report. `title_hint`: usually the report's file name.
std::string render_html(const nlohmann::json& report, const std::string& title_hint, const std::string& chartjs);

// &, <, >, ", ' escaped.
std::string html_escape(const std::string& s);

}  // namespace qeval::report
