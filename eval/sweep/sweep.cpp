// eval/sweep/sweep.cpp — `qeval sweep`: options → config, plan, then the engine (or the plan itself: dry run).
#include "eval/sweep/sweep.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <ostream>
#include <regex>
#include <stdexcept>

#include "eval/common/files.hpp"
#include "eval/inputs/synthetic.hpp"
#include "eval/sweep/axes.hpp"
#include "eval/sweep/explain.hpp"

namespace qeval::sweep {

namespace {

using nlohmann::json;

int64_t parse_int(const std::string& opt, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || end == v.c_str() || *end != '\0' || errno == ERANGE)
    throw std::invalid_argument(opt + ": '" + v + "' is not an integer");
  return x;
}

using common::ends_with;

// --option key=value / scheme.key=value; a repeated key becomes an axis (every value is run).
json options_json(const std::vector<std::string>& options) {
  json opts = json::object();
  for (const auto& s : options) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument("--option '" + s + "' is not key=value (e.g. --option codebook=bnb or "
                                  "--option fp4.codebook=bnb)");
    const std::string key = s.substr(0, eq), value = s.substr(eq + 1);
    if (!opts.contains(key)) opts[key] = json::array();
    if (std::find(opts[key].begin(), opts[key].end(), json(value)) == opts[key].end()) opts[key].push_back(value);
  }
  return opts;
}

// The scheme axes both kinds share (axes.hpp); only what was given, so the config stays short.
json scheme_axes_json(const SweepOptions& o, const std::string& kind) {
  json e = {{"kind", kind}};
  if (kind == "model") e["models"] = json::array({o.model});
  e["schemes"] = o.schemes;
  if (!o.bits.empty()) e["bits"] = o.bits;
  if (!o.group_sizes.empty()) e["group_sizes"] = o.group_sizes;
  if (!o.mappings.empty()) {
    json m = json::array();
    for (auto x : o.mappings)
      if (std::find(m.begin(), m.end(), json(mapping_word(x))) == m.end()) m.push_back(mapping_word(x));
    e["mappings"] = m;
  }
  if (o.partial_groups) e["partial_groups"] = {true};
  if (const json opts = options_json(o.options); !opts.empty()) e["options"] = opts;
  return e;
}

// Model entries add the protocol and the run_model extras.
void add_model_keys(const SweepOptions& o, json& e) {
  if (!o.protocol.empty()) e["protocol"] = o.protocol;
  if (!o.activations.empty()) {
    json a = json::array();
    for (const auto& s : o.activations) a.push_back(s == "none" ? json(nullptr) : json(s));
    e["activations"] = a;
  }
  if (!o.backends.empty()) e["backends"] = o.backends;
  if (o.max_windows >= 0) e["max_windows"] = o.max_windows;
  e["lambada"] = o.lambada;
  e["blame_windows"] = o.blame_windows;
}

// Tensor entries add the backends, the quantizer details that differ from the defaults, and the input.
void add_tensor_keys(const SweepOptions& o, json& e) {
  if (!o.backends.empty()) e["backends"] = o.backends;
  const quant::QuantParams def;
  if (o.range != def.range) e["ranges"] = {quant::to_string(o.range)};
  if (o.clip_ratio != def.clip_ratio) e["clip_ratios"] = {o.clip_ratio};
  if (o.clip_percentile != def.clip_percentile) e["percentiles"] = {o.clip_percentile};
  if (o.rounding != def.rounding) e["roundings"] = {quant::to_string(o.rounding)};
  if (o.non_finite != def.non_finite) e["non_finite"] = {quant::to_string(o.non_finite)};
  if (inputs::is_distribution_name(o.input)) {
    if (!o.raw_shape.empty())
      throw std::invalid_argument("--shape applies to raw .f32 files; use --rows/--cols for a synthetic input");
    json in = {{"distribution", o.input}, {"rows", o.rows}, {"cols", o.cols}};
    if (o.input == "student-t" || o.input == "student_t") in["nu"] = o.student_nu;
    if (o.input == "outliers") {
      in["outlier_channels"] = o.outlier_channels;
      in["outlier_scale"] = o.outlier_scale;
    }
    e["inputs"] = json::array({in});
    return;
  }
  if (o.shape_given)
    throw std::invalid_argument("--rows/--cols set the shape of synthetic inputs; the shape of file '" + o.input +
                                "' comes from its .npy header (or --shape for raw .f32)");
  if (!o.raw_shape.empty() && !ends_with(o.input, ".f32"))
    throw std::invalid_argument("--shape applies to raw .f32 files only ('" + o.input + "' carries its own shape)");
  json in = {{"file", o.input}};
  if (!o.raw_shape.empty()) in["shape"] = o.raw_shape;
  e["inputs"] = json::array({in});
}

SweepPlan plan_of(const SweepOptions& o) {
  const bool from_file = !o.config_path.empty();
  try {
    return plan_sweep(from_file ? load_config_file(o.config_path) : config_from_options(o), o.seed);
  } catch (const ConfigError& e) {
    if (from_file) throw std::invalid_argument("sweep config '" + o.config_path + "': " + e.what());
    throw std::invalid_argument(options_error_text(e.what()));
  }
}

// --dry-run, --explain, --plan-json: the plan (this shard's runs), nothing executed.
int print_plan(const SweepPlan& plan, const SweepOptions& o, std::ostream& out) {
  int si = 0, sn = 1;
  if (!o.shard.empty()) parse_shard(o.shard, &si, &sn);
  const std::vector<const Run*> mine = shard_runs(plan, si, sn);
  if (o.plan_json) {
    out << plan_json(plan, mine).dump(2) << "\n";
    return 0;
  }
  out << "qeval sweep: " << mine.size() << " run(s)";
  if (sn > 1) out << " (shard " << si << "/" << sn << " of " << plan.runs.size() << ")";
  if (plan.duplicates) out << ", " << plan.duplicates << " duplicate(s) collapsed";
  out << " (dry run: nothing executed)\n";
  if (o.explain) out << explain_text(mine);
  else
    for (const Run* r : mine) out << r->id << "  " << r->name << "\n";
  return 0;
}

}  // namespace

std::vector<std::string> parse_word_list(const std::string& text) {
  std::vector<std::string> items;
  std::string cur;
  for (char c : text + ",") {
    if (c != ',') {
      cur += c;
      continue;
    }
    if (!cur.empty()) items.push_back(cur);
    cur.clear();
  }
  return items;
}

std::vector<int64_t> parse_bits_list(const std::vector<std::string>& items) {
  std::vector<int64_t> out;
  for (const auto& s : items) out.push_back(parse_int("--bits", s));
  return out;
}

std::vector<int64_t> parse_group_list(const std::vector<std::string>& items) {
  std::vector<int64_t> out;
  for (const auto& s : items) {
    int64_t g = 0;
    if (!parse_group_word(s, &g)) g = parse_int("--group-sizes", s);
    if (g < quant::kPerTensor)
      throw std::invalid_argument("--group-sizes: " + s + " is invalid (a positive size, 0 = per row, -1 = per tensor)");
    out.push_back(g);
  }
  return out;
}

std::vector<quant::Mapping> parse_mapping_list(const std::vector<std::string>& items) {
  std::vector<quant::Mapping> out;
  for (const auto& s : items) {
    quant::Mapping m{};
    if (!parse_mapping_word(s, &m)) throw std::invalid_argument("--mapping: '" + s + "' is not sym or asym");
    out.push_back(m);
  }
  return out;
}

json config_from_options(const SweepOptions& o) {
  if (o.schemes.empty()) throw std::invalid_argument("--scheme: no scheme given (see `qeval list-schemes`)");
  const std::string kind = o.model.empty() ? "tensor" : "model";
  json e = scheme_axes_json(o, kind);
  if (kind == "model") add_model_keys(o, e);
  else add_tensor_keys(o, e);
  return {{"version", kConfigVersion}, {"seed", o.seed}, {"sweeps", json::array({e})}};
}

std::string options_error_text(const std::string& msg) {
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"schemes", "--scheme"},          {"bits", "--bits"},         {"group_sizes", "--group-sizes"},
      {"mappings", "--mapping"},        {"backends", "--backend"},  {"inputs", "--input"},
      {"ranges", "--range"},            {"clip_ratios", "--clip-ratio"}, {"percentiles", "--percentile"},
      {"roundings", "--rounding"},      {"non_finite", "--non-finite"},  {"options", "--option"},
      {"partial_groups", "--partial-groups"}, {"models", "--model"}, {"protocol", "--protocol"},
      {"activations", "--activation"}};
  // "sweeps[0].options.fp4.codebook" → "--option fp4.codebook" (the key stays: it is what the user typed).
  std::string s = std::regex_replace(msg, std::regex("sweeps\\[0\\]\\.options\\.([A-Za-z_0-9.]+)"), "--option $1");
  for (const auto& [k, opt] : names) {
    const std::regex re("sweeps\\[0\\]\\." + k + "(\\[[0-9]+\\])?(\\.[A-Za-z_0-9]+)*( \\(default[^)]*\\))?");
    s = std::regex_replace(s, re, opt);
  }
  s = std::regex_replace(s, std::regex("^sweeps\\[0\\]: "), "");
  s = std::regex_replace(s, std::regex("sweeps\\[0\\]"), "the sweep");
  return s;
}

int run_sweep(const SweepOptions& o, const std::vector<std::string>& command_line, std::ostream& out, std::ostream& err) {
  const SweepPlan plan = plan_of(o);
  if (o.dry_run || o.explain || o.plan_json) return print_plan(plan, o, out);
  EngineOptions eo;
  eo.out = o.write_report ? o.out : "";
  eo.resume = o.resume;
  eo.jobs = o.jobs;
  if (!o.shard.empty()) parse_shard(o.shard, &eo.shard_index, &eo.shard_count);
  eo.progress = o.progress;
  eo.inject_rounding = o.inject_rounding;
  eo.inject_scale_error = o.inject_scale_error;
  eo.twin = o.twin || plan.config.value("twin", false);
  eo.command_line = command_line;
  eo.extra_libraries = o.extra_libraries;
  eo.handle_signals = o.handle_signals;
  return run_engine(plan, eo, out, err).exit_code;
}

}  // namespace qeval::sweep
