// eval/report/html.cpp — the self-contained HTML report: inline Chart.js, plot data, tables, error capture.
#include "eval/report/html.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "eval/metrics/metrics.hpp"
#include "eval/report/views.hpp"

#if QEVAL_HAVE_EMBEDDED_CHARTJS
extern const unsigned char qeval_chartjs[];
extern const std::size_t qeval_chartjs_size;
#endif

namespace qeval::report {

namespace {
using nlohmann::json;

bool read_file(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return !out->empty();
}

double num_at(const json& j, const char* ptr) {
  const json::json_pointer p(ptr);
  if (!j.contains(p)) return NAN;
  const json& v = j.at(p);
  return v.is_number() ? v.get<double>() : NAN;
}

double num_at(const json& j, const std::string& ptr) { return num_at(j, ptr.c_str()); }

// The value at a JSON pointer, null when absent.
json json_ptr_or_null(const json& j, const char* ptr) {
  const json::json_pointer p(ptr);
  return j.contains(p) ? j.at(p) : json();
}

std::string fmt(double v, const char* f) {
  if (!std::isfinite(v)) return "&ndash;";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A table cell with a sort key.
std::string td(double v, const char* f) {
  std::string key = std::isfinite(v) ? fmt(v, "%.17g") : "";
  return "<td class=\"n\" data-v=\"" + key + "\">" + fmt(v, f) + "</td>";
}
std::string tdt(const std::string& s) { return "<td>" + html_escape(s) + "</td>"; }

std::string group_text(const json& params) {
  const int64_t g = params.value("group_size", int64_t{0});
  if (g == 0) return "row";
  if (g == -1) return "tensor";
  return std::to_string(g);
}

// The input column: the synthetic distribution and shape (the seed is in the header unless it differs).
std::string short_input(const json& r) {
  const json& in = r.contains("input") ? r["input"] : json();
  if (in.is_object() && in.value("kind", std::string()) == "synthetic")
    return in.value("distribution", std::string()) + " " + std::to_string(in.value("rows", 0)) + "x" +
           std::to_string(in.value("cols", 0));
  return input_label(r);
}

json point(double x, double y, const std::string& name) { return {{"x", x}, {"y", y}, {"name", name}}; }

// The series a tensor run belongs to in its SQNR-vs-bits chart: its config without the bits.
std::string series_key(const json& r) {
  const json& p = r.at("config").at("params");
  std::string key = r.at("config").value("scheme", std::string()) + " " +
                    (p.value("mapping", std::string()) == "symmetric" ? "sym" : "asym") + " " +
                    (p.value("group_size", int64_t{0}) > 0 ? "g" + group_text(p) : "per-" + group_text(p));
  if (p.value("range", std::string("minmax")) != "minmax") key += " " + p.value("range", std::string());
  if (p.value("rounding", std::string("nearest_even")) != "nearest_even") key += " " + p.value("rounding", std::string());
  for (const auto& [k, v] : r.at("config").at("options").items()) key += " " + k + "=" + v.get<std::string>();
  if (r.value("backend", std::string("cpu")) != "cpu") key += " @" + r.value("backend", std::string());
  return key;
}

// SQNR vs bits: one chart per tensor type, one series per config without bits.
json sqnr_charts(const json& rep) {
  struct TypeSeries {
    std::vector<std::string> order;
    std::map<std::string, json> series;
    int bmin = 99, bmax = 0;
  };
  std::vector<std::string> types;
  std::map<std::string, TypeSeries> by_type;
  for (const auto& r : rep.at("runs")) {
    if (r.value("kind", std::string()) != "tensor") continue;
    const int bits = run_bits(r);
    const double sq = num_at(r, "/metrics/sqnr_db");
    if (bits < 0 || !std::isfinite(sq)) continue;
    const std::string type = tensor_type(r);
    const std::string key = series_key(r);
    if (!by_type.count(type)) types.push_back(type);
    TypeSeries& ts = by_type[type];
    if (!ts.series.count(key)) {
      ts.order.push_back(key);
      ts.series[key] = json::array();
    }
    ts.series[key].push_back(point(bits, sq, r.value("name", std::string())));
    ts.bmin = std::min(ts.bmin, bits);
    ts.bmax = std::max(ts.bmax, bits);
  }
  json charts = json::array();
  for (const auto& type : types) {
    const TypeSeries& ts = by_type[type];
    json sv = json::array();
    for (const auto& k : ts.order) sv.push_back({{"label", k}, {"points", ts.series.at(k)}});
    const int lo = std::max(1, ts.bmin - 1), hi = std::min(16, ts.bmax + 1);
    json bound = json::array(), grid = json::array();
    for (int b = lo; b <= hi; ++b) {
      bound.push_back({{"x", b}, {"y", metrics::bound_db(b)}});
      grid.push_back({{"x", b}, {"y", metrics::grid_adjusted_db(b)}});
    }
    charts.push_back({{"title", "Measured SQNR vs bits — " + type}, {"series", sv}, {"bound", bound}, {"grid", grid}});
  }
  return charts;
}

// Pareto fronts, from the views.
json pareto_charts(const json& views) {
  json pf = json::array();
  static const std::map<std::string, std::string> titles = {
      {"sqnr_db", "SQNR (dB)"}, {"mse", "MSE"}, {"kl_mean", "KL mean (nats)"}, {"delta_ppl", "Δ perplexity"}};
  for (const auto& v : views.at("pareto")) {
    const std::string metric = v.at("metric").get<std::string>();
    json all = json::array(), front = json::array();
    std::map<std::string, json> by_id;
    for (const auto& p : v.at("points")) {
      if (!p.at("bits_per_weight").is_number() || !p.at("value").is_number()) continue;
      json pt = point(p["bits_per_weight"].get<double>(), p["value"].get<double>(), p.value("name", std::string()));
      by_id[p.at("id").get<std::string>()] = pt;
      all.push_back(pt);
    }
    for (const auto& id : v.at("front"))
      if (by_id.count(id.get<std::string>())) front.push_back(by_id[id.get<std::string>()]);
    if (all.empty()) continue;
    pf.push_back({{"title", (titles.count(metric) ? titles.at(metric) : metric) + " vs bits/weight — " +
                                v.at("input").get<std::string>()},
                  {"metric", metric},
                  {"ylabel", titles.count(metric) ? titles.at(metric) : metric},
                  {"log", metric == "mse" || metric == "kl_mean"},
                  {"better", v.at("better")},
                  {"points", all},
                  {"front", front}});
  }
  return pf;
}

// Blame bars, from the views.
json blame_charts(const json& views) {
  json bl = json::array();
  for (const auto& b : views.at("blame")) {
    json labels = json::array(), values = json::array();
    const std::string by = b.at("ranked_by").get<std::string>();
    for (const auto& l : b.at("layers")) {
      labels.push_back(l.at("layer"));
      values.push_back(l.at(by));
    }
    bl.push_back({{"title", "Per-layer blame — " + b.at("name").get<std::string>()},
                  {"xlabel", by == "kl_alone" ? "KL when only this layer is quantized" : "output SQNR (dB)"},
                  {"labels", labels},
                  {"values", values}});
  }
  return bl;
}

// Everything the page's script plots.
json chart_data(const json& rep, const json& views) {
  json d;
  d["sqnr_vs_bits"] = sqnr_charts(rep);
  d["pareto"] = pareto_charts(views);
  d["blame"] = blame_charts(views);
  return d;
}

const char* kCss = R"CSS(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0 0 6px 0;font-size:22px}
header .meta{font-size:13px;color:#c9d1e0;line-height:1.6}
header code{color:#fff;background:#2e3647;padding:1px 5px;border-radius:3px}
main{padding:16px 28px 40px}
section{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:14px 18px;margin:14px 0}
h2{font-size:17px;margin:0 0 10px 0}
h3{font-size:14px;margin:12px 0 6px 0;color:#39424f}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:14px}
.chart{position:relative;height:360px}
.note{font-size:12px;color:#5b6574;margin:6px 0}
table{border-collapse:collapse;font-size:12px;width:100%}
th,td{border-bottom:1px solid #e6e9ef;padding:4px 8px;text-align:left;white-space:nowrap}
th{background:#eef1f6;cursor:pointer;position:sticky;top:0}
td.n{text-align:right;font-variant-numeric:tabular-nums}
th.n{text-align:right}
.scroll{max-height:520px;overflow:auto}
pre{background:#f1f3f7;padding:10px;border-radius:6px;font-size:12px;overflow:auto;max-height:400px}
#qeval-js-errors{background:#ffe9e9;color:#8a1010;border:1px solid #f3b0b0}
.warn{background:#fff4dd;border:1px solid #f0d08a;padding:8px 12px;border-radius:6px;font-size:13px}
)CSS";

// Runs before anything else: records every script error into the DOM.
const char* kErrorCapture = R"JS(
(function(){
  window.__qevalErrors = [];
  function record(m){
    window.__qevalErrors.push(String(m));
    document.documentElement.setAttribute('data-qeval-errors', String(window.__qevalErrors.length));
    var el = document.getElementById('qeval-js-errors');
    if (el) { el.textContent = window.__qevalErrors.join('\n'); el.hidden = false; }
  }
  window.__qevalRecord = record;
  window.addEventListener('error', function(e){ record('error: ' + e.message + ' (' + e.filename + ':' + e.lineno + ')'); });
  window.addEventListener('unhandledrejection', function(e){ record('unhandled rejection: ' + e.reason); });
  var ce = console.error;
  console.error = function(){ record('console.error: ' + Array.prototype.join.call(arguments, ' ')); ce.apply(console, arguments); };
})();
)JS";

const char* kRenderer = R"JS(
(function(){
  var data = JSON.parse(document.getElementById('qeval-data').textContent);
  var palette = ['#1f77b4','#d62728','#2ca02c','#ff7f0e','#9467bd','#8c564b','#e377c2','#17becf','#bcbd22','#7f7f7f',
                 '#393b79','#637939','#8c6d31','#843c39','#7b4173'];
  var charts = 0;
  function color(i, a){ var c = palette[i % palette.length]; return a ? c + a : c; }
  function fmt(v){ return (Math.abs(v) >= 1e-3 && Math.abs(v) < 1e5) ? v.toPrecision(4) : v.toExponential(3); }
  function tooltip(){
    return {callbacks: {label: function(c){
      var n = c.raw && c.raw.name ? c.raw.name + ': ' : (c.dataset.label ? c.dataset.label + ': ' : '');
      return n + '(' + fmt(c.parsed.x) + ', ' + fmt(c.parsed.y) + ')'; }}};
  }
  function place(parentId, title){
    var parent = document.getElementById(parentId);
    var box = document.createElement('div');
    var h = document.createElement('h3'); h.textContent = title; box.appendChild(h);
    var wrap = document.createElement('div'); wrap.className = 'chart';
    var cv = document.createElement('canvas'); wrap.appendChild(cv); box.appendChild(wrap);
    parent.appendChild(box);
    return cv;
  }
  function scatter(cv, datasets, xt, yt, ylog, xint){
    new Chart(cv.getContext('2d'), {type: 'scatter', data: {datasets: datasets},
      options: {animation: false, responsive: true, maintainAspectRatio: false,
        scales: {x: {type: 'linear', grace: '4%', title: {display: true, text: xt}, ticks: xint ? {stepSize: 1} : {}},
                 y: ylog ? {type: 'logarithmic', title: {display: true, text: yt}}
                         : {type: 'linear', grace: '5%', title: {display: true, text: yt}}},
        plugins: {legend: {position: 'bottom', labels: {boxWidth: 12, font: {size: 11}}}, tooltip: tooltip()}}});
    charts++;
  }
  // SQNR vs bits with the bound lines, one chart per tensor type.
  data.sqnr_vs_bits.forEach(function(sv){
    var ds = [];
    ds.push({label: '6.02·b bound', data: sv.bound, showLine: true, borderColor: '#222', borderDash: [6,4],
             pointRadius: 0, borderWidth: 1.5, backgroundColor: '#222'});
    ds.push({label: 'grid-adjusted 20·log10(2^b−1)', data: sv.grid, showLine: true, borderColor: '#888',
             borderDash: [2,3], pointRadius: 0, borderWidth: 1.5, backgroundColor: '#888'});
    sv.series.forEach(function(s, i){
      ds.push({label: s.label, data: s.points, backgroundColor: color(i), borderColor: color(i), pointRadius: 4,
               showLine: s.points.length > 1, borderWidth: 1});
    });
    scatter(place('charts-sqnr', sv.title), ds, 'bits b', 'SQNR (dB)', false, true);
  });
  if (!data.sqnr_vs_bits.length)
    document.getElementById('charts-sqnr').innerHTML = '<p class="note">No tensor runs with a finite SQNR.</p>';
  // Pareto fronts.
  data.pareto.forEach(function(p, i){
    var ds = [{label: 'all runs', data: p.points, backgroundColor: '#9aa5b866', borderColor: '#9aa5b8', pointRadius: 3.5},
              {label: 'Pareto front (' + p.better + ' is better)', data: p.front, showLine: true, borderColor: color(1),
               backgroundColor: color(1), pointRadius: 4.5, borderWidth: 2}];
    scatter(place('charts-pareto', p.title), ds, 'bits/weight (codes + fp16 scales + zero points)', p.ylabel, p.log, false);
  });
  if (!data.pareto.length)
    document.getElementById('charts-pareto').innerHTML = '<p class="note">No runs with bits/weight and an error metric.</p>';
  // Blame.
  data.blame.forEach(function(b){
    var cv = place('charts-blame', b.title);
    cv.parentNode.style.height = Math.max(240, 18 * b.labels.length + 60) + 'px';
    new Chart(cv.getContext('2d'), {type: 'bar',
      data: {labels: b.labels, datasets: [{label: b.xlabel, data: b.values, backgroundColor: color(3)}]},
      options: {indexAxis: 'y', animation: false, responsive: true, maintainAspectRatio: false,
                plugins: {legend: {display: false}}, scales: {x: {title: {display: true, text: b.xlabel}}}}});
    charts++;
  });
  if (!data.blame.length) {
    var el = document.getElementById('charts-blame');
    if (el) el.innerHTML = '<p class="note">No per-layer blame in this report (model runs with per_layer[] add it).</p>';
  }
  // Sortable tables.
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function(t){
    Array.prototype.forEach.call(t.tHead.rows[0].cells, function(th, col){
      th.addEventListener('click', function(){
        var asc = th.getAttribute('data-asc') !== '1'; th.setAttribute('data-asc', asc ? '1' : '0');
        var rows = Array.prototype.slice.call(t.tBodies[0].rows);
        rows.sort(function(a, b){
          var x = a.cells[col], y = b.cells[col];
          var xv = x.getAttribute('data-v'), yv = y.getAttribute('data-v');
          var r = (xv !== null && yv !== null) ? ((xv === '' ? Infinity : +xv) - (yv === '' ? Infinity : +yv))
                                              : x.textContent.localeCompare(y.textContent);
          return asc ? r : -r;
        });
        rows.forEach(function(r){ t.tBodies[0].appendChild(r); });
      });
    });
  });
  document.documentElement.setAttribute('data-qeval-rendered', String(charts));
})();
)JS";

std::string script_safe(std::string s) {
  // Inside <script>, "</" could end the element: "<\/" means the same in JSON strings (and in JS strings and
  // regular expressions; Debian's chart.min.js 3.9.1 holds no "</" at all).
  size_t pos = 0;
  while ((pos = s.find("</", pos)) != std::string::npos) {
    s.replace(pos, 2, "<\\/");
    pos += 3;
  }
  return s;
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  return o;
}

std::string chartjs_source(std::string* where) {
#if QEVAL_HAVE_EMBEDDED_CHARTJS
  if (where) *where = std::string("embedded at build time from ") + QEVAL_CHARTJS_SOURCE_NAME;
  if (const char* e = std::getenv("QEVAL_CHARTJS"); !(e && *e))
    return std::string(reinterpret_cast<const char*>(qeval_chartjs), qeval_chartjs_size);
#endif
  std::vector<std::string> tried;
  if (const char* e = std::getenv("QEVAL_CHARTJS"); e && *e) tried.push_back(e);
  for (const char* p : {"/usr/share/javascript/chart.js/chart.umd.js", "/usr/share/javascript/chart.js/chart.umd.min.js",
                        "/usr/share/javascript/chart.js/chart.min.js"})
    tried.push_back(p);
  for (const auto& p : tried) {
    std::string s;
    if (read_file(p, &s)) {
      if (where) *where = p;
      return s;
    }
  }
  std::string list;
  for (const auto& p : tried) list += (list.empty() ? "" : ", ") + p;
  throw std::runtime_error("Chart.js not found (tried " + list +
                           "); install it with `apt-get install libjs-chart.js` or point $QEVAL_CHARTJS at chart.umd.js");
}

// Runs on a real-kernel backend: their agreement with the ref path on the same windows, against its bound
// (metrics.agreement, eval/model/model_run.hpp; docs/model-eval.md), and both paths' tokens/s.
void agreement_section(std::ostringstream& h, const json& rep) {
  std::ostringstream rows;
  for (const auto& r : rep.at("runs")) {
    const json a = json_ptr_or_null(r, "/metrics/agreement");
    if (!a.is_object()) continue;
    const std::string be = a.value("backend", std::string());
    rows << "<tr>" << tdt(r.value("name", std::string())) << tdt(be) << tdt(json_ptr_or_null(r, "/metrics/backend").value("gemm_isa", std::string("-")))
         << td(num_at(a, "/kl/mean"), "%.3e") << td(num_at(a, "/bound/kl_mean"), "%.3e") << td(num_at(a, "/kl/p99"), "%.3e")
         << td(num_at(a, "/bound/kl_p99"), "%.3e") << td(num_at(a, "/max_abs_dlogit"), "%.4f")
         << td(num_at(a, "/bound/max_abs_dlogit"), "%.4f") << td(num_at(a, "/top1"), "%.4f")
         << td(num_at(a, "/bound/top1_min"), "%.4f") << td(num_at(a, "/delta_ppl"), "%.4f")
         << td(num_at(a, "/throughput/ref/tokens_per_s"), "%.0f") << td(num_at(a, "/throughput/" + be + "/tokens_per_s"), "%.0f")
         << tdt(a.value("within_bound", false) ? "yes" : "NO") << "</tr>\n";
  }
  if (rows.str().empty()) return;
  h << "<section><h2>Agreement with the ref path (fake quantization)</h2><p class=\"note\">KL(ref ‖ backend), max "
       "|Δlogit|, top-1 agreement and Δppl on the same windows; bounds: 4× the ref path's own summation-order noise "
       "(docs/model-eval.md). tok/s: prefill tokens per second of each path in the same run.</p>"
       "<div class=\"scroll\"><table class=\"sortable\"><thead><tr><th>run</th><th>backend</th><th>gemm</th>"
       "<th class=\"n\">KL mean</th><th class=\"n\">bound</th><th class=\"n\">KL p99</th><th class=\"n\">bound</th>"
       "<th class=\"n\">max |Δlogit|</th><th class=\"n\">bound</th><th class=\"n\">top-1</th><th class=\"n\">min</th>"
       "<th class=\"n\">Δppl</th><th class=\"n\">ref tok/s</th><th class=\"n\">backend tok/s</th><th>within</th>"
       "</tr></thead><tbody>\n"
    << rows.str() << "</tbody></table></div></section>\n";
}

namespace {

// The page's header: name, run count, provenance of the report.
void page_header(std::ostringstream& h, const json& rep, const std::string& name) {
  const json& prod = rep.value("producer", json::object());
  h << "<header><h1>qeval report — " << html_escape(name) << "</h1><div class=\"meta\">";
  h << rep.at("runs").size() << " run(s) · schema v" << rep.value("schema_version", 0) << " · created "
    << html_escape(rep.value("created", std::string())) << " · seed " << rep.value("seed", json(0)).dump();
  const json sha = prod.value("git_sha", json());
  h << "<br>produced by <code>" << html_escape(prod.value("command", std::string())) << "</code> at git "
    << html_escape(sha.is_string() ? sha.get<std::string>().substr(0, 12) : std::string("unknown"))
    << (prod.value("git_dirty", false) ? " (dirty)" : "") << " by " << html_escape(prod.value("user", std::string())) << "@"
    << html_escape(prod.value("host", std::string())) << " · qeval " << html_escape(prod.value("tool_version", std::string()));
  if (rep.contains("merged_from")) h << "<br>merged from " << rep["merged_from"].size() << " shard report(s)";
  if (rep.contains("baseline")) h << "<br>baseline refreshed " << html_escape(rep["baseline"].value("refreshed", std::string()));
  h << "</div></header>\n<main>\n";
}

// The tensor runs' table and the SQNR-vs-bound-per-type table.
void tensor_tables(std::ostringstream& h, const json& rep, const json& views) {
  h << "<section><h2>Tensor runs</h2><p class=\"note\">Click a column to sort. ±se: standard error of SQNR over the "
       "rows (sampling noise).</p><div class=\"scroll\"><table class=\"sortable\"><thead><tr>"
    << "<th>run</th><th>scheme</th><th class=\"n\">bits</th><th>group</th><th>map</th><th>backend</th><th>input</th>"
    << "<th class=\"n\">b/w</th><th class=\"n\">MSE</th><th class=\"n\">SQNR dB</th><th class=\"n\">±se</th>"
    << "<th class=\"n\">bound</th><th class=\"n\">grid</th><th class=\"n\">expected</th><th class=\"n\">gap</th>"
    << "<th class=\"n\">clip %</th><th class=\"n\">time ms</th></tr></thead><tbody>\n";
  for (const auto& r : rep.at("runs")) {
    if (r.value("kind", std::string()) != "tensor") continue;
    const json& p = r.at("config").at("params");
    double t = 0;
    if (r.contains("timing_ms"))
      for (const auto& [k, v] : r["timing_ms"].items())
        if (v.is_number()) t += v.get<double>();
    std::string scheme = r.at("config").value("scheme", std::string());
    for (const auto& [k, v] : r.at("config").at("options").items()) scheme += " " + k + "=" + v.get<std::string>();
    h << "<tr>" << "<td title=\"" << html_escape(r.value("id", std::string())) << "\">" << html_escape(r.value("name", std::string()))
      << "</td>" << tdt(scheme) << td(p.value("bits", 0), "%.0f") << tdt(group_text(p))
      << tdt(p.value("mapping", std::string()) == "symmetric" ? "sym" : "asym") << tdt(r.value("backend", std::string()))
      << tdt(short_input(r)) << td(num_at(r, "/metrics/bits_per_weight"), "%.3f") << td(num_at(r, "/metrics/mse"), "%.4e")
      << td(num_at(r, "/metrics/sqnr_db"), "%.3f") << td(num_at(r, "/metrics/sampling/sqnr_se_db"), "%.4f")
      << td(num_at(r, "/metrics/bound_db"), "%.2f") << td(num_at(r, "/metrics/grid_adjusted_db"), "%.2f")
      << td(num_at(r, "/metrics/expected_sqnr_db"), "%.2f") << td(num_at(r, "/metrics/gap_db/total"), "%.2f")
      << td(100.0 * num_at(r, "/metrics/clipping/fraction"), "%.3f") << td(t, "%.1f") << "</tr>\n";
  }
  h << "</tbody></table></div></section>\n";
  h << "<section><h2>SQNR vs the bound per tensor type</h2><div class=\"scroll\"><table class=\"sortable\"><thead><tr>"
    << "<th>tensor type</th><th>config</th><th class=\"n\">bits</th><th class=\"n\">runs</th><th class=\"n\">SQNR dB</th>"
    << "<th class=\"n\">expected</th><th class=\"n\">6.02·b</th><th class=\"n\">grid-adjusted</th><th class=\"n\">gap</th>"
    << "</tr></thead><tbody>\n";
  for (const auto& b : views.at("bound_by_tensor_type"))
    h << "<tr>" << tdt(b.value("tensor_type", std::string())) << tdt(b.value("config", std::string()))
      << td(b.value("bits", 0), "%.0f") << td(b.value("runs", 0), "%.0f") << td(num_at(b, "/sqnr_db"), "%.3f")
      << td(num_at(b, "/expected_sqnr_db"), "%.2f") << td(num_at(b, "/bound_db"), "%.2f")
      << td(num_at(b, "/grid_adjusted_db"), "%.2f") << td(num_at(b, "/gap_db"), "%.2f") << "</tr>\n";
  h << "</tbody></table></div></section>\n";
}

// The model runs' table and the backend-agreement table.
void model_tables(std::ostringstream& h, const json& rep) {
  h << "<section><h2>Model runs</h2><div class=\"scroll\"><table class=\"sortable\"><thead><tr><th>run</th>"
       "<th class=\"n\">b/w</th><th class=\"n\">ppl</th><th class=\"n\">±se</th><th class=\"n\">Δppl</th>"
       "<th class=\"n\">KL mean</th><th class=\"n\">KL p99</th><th class=\"n\">top-1</th><th>backend</th>"
       "<th class=\"n\">tok/s</th><th class=\"n\">fp tok/s</th></tr></thead><tbody>\n";
  for (const auto& r : rep.at("runs")) {
    if (r.value("kind", std::string()) != "model") continue;
    h << "<tr><td>" << html_escape(r.value("name", std::string())) << "</td>" << td(num_at(r, "/metrics/bits_per_weight"), "%.3f")
      << td(num_at(r, "/metrics/ppl/ppl"), "%.4f") << td(num_at(r, "/metrics/ppl/ppl_se"), "%.4f")
      << td(num_at(r, "/metrics/delta_ppl"), "%.4f") << td(num_at(r, "/metrics/kl/mean"), "%.5f")
      << td(num_at(r, "/metrics/kl/p99"), "%.4f") << td(num_at(r, "/metrics/top1"), "%.4f")
      << tdt(json_ptr_or_null(r, "/spec/backend").is_string() ? r["spec"]["backend"].get<std::string>() : "ref")
      << td(num_at(r, "/metrics/throughput/quantized/tokens_per_s"), "%.0f")
      << td(num_at(r, "/metrics/throughput/fp_reference/tokens_per_s"), "%.0f") << "</tr>\n";
  }
  h << "</tbody></table></div></section>\n";
  agreement_section(h, rep);
}

}  // namespace

std::string render_html(const json& rep, const std::string& title_hint, const std::string& chartjs) {
  const json views = compute_views(rep.at("runs"));
  const json data = chart_data(rep, views);
  const json& cfg = rep.value("config", json::object());
  const std::string name = cfg.value("name", title_hint);
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    << "<title>qeval report — " << html_escape(name) << "</title>\n<style>" << kCss << "</style>\n"
    << "<script>" << kErrorCapture << "</script>\n</head>\n<body>\n";
  page_header(h, rep, name);
  h << "<pre id=\"qeval-js-errors\" hidden></pre>\n";
  if (rep.contains("fault_injection"))
    h << "<p class=\"warn\">FAULT INJECTION: this report was produced with " << html_escape(rep["fault_injection"].dump())
      << " (test-only).</p>\n";
  // ---- charts
  h << "<section><h2>SQNR against the bound</h2><p class=\"note\">Dashed: the 6.02·b dB bound (rate–distortion limit "
       "for a Gaussian source, full-scale uniform signal); dotted: the min/max affine grid's 20·log10(2<sup>b</sup>−1). "
       "docs/metrics.md explains the gap.</p><div id=\"charts-sqnr\" class=\"grid\"></div></section>\n";
  h << "<section><h2>Pareto fronts: bits/weight against error</h2><p class=\"note\">bits/weight counts the codes plus "
       "fp16 scales and zero points (QuantizedMatrix::bits_per_weight). A run is on the front when no other run on the "
       "same input has fewer bits and a better metric.</p><div id=\"charts-pareto\" class=\"grid\"></div></section>\n";
  h << "<section><h2>Per-layer blame</h2><div id=\"charts-blame\" class=\"grid\"></div></section>\n";
  // ---- tables
  bool any_tensor = false, any_model = false;
  for (const auto& r : rep.at("runs")) {
    any_tensor = any_tensor || r.value("kind", std::string()) == "tensor";
    any_model = any_model || r.value("kind", std::string()) == "model";
  }
  if (any_tensor) tensor_tables(h, rep, views);
  if (any_model) model_tables(h, rep);
  // ---- provenance
  h << "<section><h2>Config, protocol, environment</h2>";
  h << "<h3>config</h3><pre>" << html_escape(rep.value("config", json::object()).dump(2)) << "</pre>";
  h << "<h3>protocol</h3><pre>" << html_escape(rep.value("protocol", json::object()).dump(2)) << "</pre>";
  h << "<h3>environment</h3><pre>" << html_escape(rep.value("environment", json::object()).dump(2)) << "</pre>";
  h << "</section>\n</main>\n";
  h << "<script id=\"qeval-data\" type=\"application/json\">" << script_safe(data.dump(-1, ' ', true)) << "</script>\n";
  h << "<script>/* Chart.js, inlined (MIT License) */\n" << script_safe(chartjs) << "\n</script>\n";
  h << "<script>" << kRenderer << "</script>\n</body>\n</html>\n";
  return h.str();
}

}  // namespace qeval::report
