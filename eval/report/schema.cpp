// eval/report/schema.cpp — report validation (JSON paths in every error) and the v1 → v2 migration.
#include "eval/report/schema.hpp"

#include <set>

#include "eval/report/report.hpp"
#include "eval/report/views.hpp"

namespace qeval::report {

namespace {

std::string type_name(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "object";
    case nlohmann::json::value_t::array: return "array";
    case nlohmann::json::value_t::string: return "string";
    case nlohmann::json::value_t::boolean: return "boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "integer";
    case nlohmann::json::value_t::number_float: return "number";
    default: return "value";
  }
}

std::string shown(const nlohmann::json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return type_name(v) + " " + s;
}

std::string key_path(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }
std::string index_path(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

enum class T { object, array, string, integer, uinteger, number, number_or_null, boolean, string_or_null, any };

const char* describe(T t) {
  switch (t) {
    case T::object: return "an object";
    case T::array: return "an array";
    case T::string: return "a string";
    case T::integer: return "an integer";
    case T::uinteger: return "a non-negative integer";
    case T::number: return "a number";
    case T::number_or_null: return "a number or null";
    case T::boolean: return "true or false";
    case T::string_or_null: return "a string or null";
    case T::any: return "a value";
  }
  return "a value";
}

bool is(const nlohmann::json& v, T t) {
  switch (t) {
    case T::object: return v.is_object();
    case T::array: return v.is_array();
    case T::string: return v.is_string();
    case T::integer: return v.is_number_integer();
    case T::uinteger: return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
    case T::number: return v.is_number();
    case T::number_or_null: return v.is_number() || v.is_null();
    case T::boolean: return v.is_boolean();
    case T::string_or_null: return v.is_string() || v.is_null();
    case T::any: return true;
  }
  return false;
}

// Checks obj[key] exists (when required) and has type t; returns a pointer to it or null when absent.
const nlohmann::json* field(const nlohmann::json& obj, const std::string& path, const std::string& key, T t,
                            bool required = true) {
  if (!obj.contains(key)) {
    if (required) throw ReportError(key_path(path, key), std::string("missing (expected ") + describe(t) + ")");
    return nullptr;
  }
  const nlohmann::json& v = obj[key];
  if (!is(v, t)) throw ReportError(key_path(path, key), std::string("expected ") + describe(t) + ", got " + shown(v));
  return &v;
}

void validate_tensor_metrics(const nlohmann::json& m, const std::string& p) {
  field(m, p, "bits", T::integer);
  for (const char* k : {"bits_per_weight", "mse", "sqnr_db", "max_abs_error", "cosine", "bound_db", "grid_adjusted_db",
                        "expected_sqnr_db"})
    field(m, p, k, T::number_or_null);
  for (const char* k : {"elements", "non_finite_inputs", "non_finite_outputs"}) field(m, p, k, T::uinteger);
  const auto& g = *field(m, p, "gap_db", T::object);
  for (const char* k : {"total", "grid", "range", "other"}) field(g, key_path(p, "gap_db"), k, T::number_or_null);
  const auto& s = *field(m, p, "signal", T::object);
  for (const char* k : {"power", "mean", "max_abs", "crest_factor", "range_over_sigma"})
    field(s, key_path(p, "signal"), k, T::number_or_null);
  const auto& n = *field(m, p, "noise_model", T::object);
  field(n, key_path(p, "noise_model"), "uniform_grid", T::boolean);
  field(n, key_path(p, "noise_model"), "half_step_violations", T::uinteger);
  const auto& c = *field(m, p, "clipping", T::object);
  field(c, key_path(p, "clipping"), "elements", T::uinteger);
  field(c, key_path(p, "clipping"), "fraction", T::number_or_null);
  field(c, key_path(p, "clipping"), "error_share", T::number_or_null);
  // v2: the sampling noise of the SQNR/MSE estimates (absent in migrated v1 reports).
  if (const auto* sm = field(m, p, "sampling", T::object, false)) {
    const std::string sp = key_path(p, "sampling");
    field(*sm, sp, "rows", T::uinteger);
    field(*sm, sp, "sqnr_se_db", T::number_or_null);
    field(*sm, sp, "mse_se", T::number_or_null);
  }
}

void validate_model_metrics(const nlohmann::json& m, const std::string& p) {
  // The model evaluator's EvalResult::to_json (eval/model/ppl.hpp) plus bits_per_weight; every field that
  // the views and the regression gate read is checked when present.
  field(m, p, "bits_per_weight", T::number_or_null, false);
  field(m, p, "delta_ppl", T::number_or_null, false);
  field(m, p, "delta_mean_nll_se", T::number_or_null, false);
  if (const auto* kl = field(m, p, "kl", T::object, false)) {
    field(*kl, key_path(p, "kl"), "mean", T::number_or_null);
    field(*kl, key_path(p, "kl"), "se", T::number_or_null, false);
    field(*kl, key_path(p, "kl"), "bias_bound", T::number_or_null, false);
  }
  if (const auto* ppl = field(m, p, "ppl", T::object, false)) {
    field(*ppl, key_path(p, "ppl"), "ppl", T::number_or_null);
    field(*ppl, key_path(p, "ppl"), "ppl_se", T::number_or_null, false);
  }
}

void validate_run(const nlohmann::json& r, const std::string& p, std::set<std::string>& ids) {
  if (!r.is_object()) throw ReportError(p, "expected an object, got " + shown(r));
  const std::string kind = field(r, p, "kind", T::string)->get<std::string>();
  const std::string id = field(r, p, "id", T::string)->get<std::string>();
  if (id.empty()) throw ReportError(key_path(p, "id"), "is empty");
  if (!ids.insert(id).second) throw ReportError(key_path(p, "id"), "'" + id + "' appears twice in runs[]");
  field(r, p, "name", T::string);
  const auto& spec = *field(r, p, "spec", T::object);
  const std::string want = run_id(spec);
  if (want != id)
    throw ReportError(key_path(p, "id"), "'" + id + "' is not the hash of the run's spec (" + want +
                                             "): the spec was edited, or the report was written by another tool");
  field(r, p, "timing_ms", T::object, false);
  if (kind == "tensor") {
    const auto& c = *field(r, p, "config", T::object);
    field(c, key_path(p, "config"), "scheme", T::string);
    field(c, key_path(p, "config"), "label", T::string);
    const auto& par = *field(c, key_path(p, "config"), "params", T::object);
    field(par, key_path(p, "config.params"), "bits", T::integer);
    field(par, key_path(p, "config.params"), "group_size", T::integer);
    field(c, key_path(p, "config"), "options", T::object);
    field(r, p, "backend", T::string);
    field(r, p, "target", T::string);
    field(r, p, "input", T::object);
    const auto& t = *field(r, p, "tensor", T::object);
    field(t, key_path(p, "tensor"), "name", T::string);
    field(t, key_path(p, "tensor"), "rows", T::uinteger);
    field(t, key_path(p, "tensor"), "cols", T::uinteger);
    field(r, p, "seed", T::uinteger);
    validate_tensor_metrics(*field(r, p, "metrics", T::object), key_path(p, "metrics"));
  } else if (kind == "model") {
    validate_model_metrics(*field(r, p, "metrics", T::object), key_path(p, "metrics"));
    for (const char* key : {"per_layer", "metrics.blame"})
    if (const auto* pl = std::string(key) == "per_layer" ? field(r, p, "per_layer", T::array, false)
                                                         : field(r["metrics"], key_path(p, "metrics"), "blame", T::array, false))
      for (size_t i = 0; i < pl->size(); ++i) {
        const std::string lp = index_path(key_path(p, key), i);
        if (!(*pl)[i].is_object()) throw ReportError(lp, "expected an object, got " + shown((*pl)[i]));
        field((*pl)[i], lp, "layer", T::string);
        field((*pl)[i], lp, "output_sqnr_db", T::number_or_null, false);
        field((*pl)[i], lp, "kl_alone", T::number_or_null, false);
      }
  }
  // Other kinds (added later without a version bump): only the common fields above.
}

}  // namespace

void validate(const nlohmann::json& j) {
  if (!j.is_object()) throw ReportError("", "a report is a JSON object, got " + shown(j));
  const auto& v = *field(j, "", "schema_version", T::integer);
  if (v.get<int64_t>() != kSchemaVersion)
    throw ReportError("schema_version", std::to_string(v.get<int64_t>()) + " is not the current version " +
                                            std::to_string(kSchemaVersion) + " (migrate() first)");
  const auto& tool = *field(j, "", "tool", T::object);
  field(tool, "tool", "name", T::string);
  field(tool, "tool", "version", T::string);
  field(j, "", "created", T::string);
  const auto& cl = *field(j, "", "command_line", T::array);
  for (size_t i = 0; i < cl.size(); ++i)
    if (!cl[i].is_string()) throw ReportError(index_path("command_line", i), "expected a string, got " + shown(cl[i]));
  const auto& prod = *field(j, "", "producer", T::object);
  field(prod, "producer", "command", T::string);
  field(prod, "producer", "date", T::string);
  field(prod, "producer", "git_sha", T::string_or_null);
  field(j, "", "environment", T::object);
  field(j, "", "seed", T::uinteger);
  field(j, "", "config", T::object);
  field(j, "", "protocol", T::object);
  const auto& plan = *field(j, "", "plan", T::object);
  field(plan, "plan", "runs", T::uinteger);
  const auto& pids = *field(plan, "plan", "ids", T::array);
  for (size_t i = 0; i < pids.size(); ++i)
    if (!pids[i].is_string()) throw ReportError(index_path("plan.ids", i), "expected a string, got " + shown(pids[i]));
  if (pids.size() != plan["runs"].get<uint64_t>())
    throw ReportError("plan.ids", "holds " + std::to_string(pids.size()) + " ids but plan.runs is " +
                                      plan["runs"].dump());
  if (const auto* sh = field(j, "", "shard", T::object, false)) {
    const auto idx = field(*sh, "shard", "index", T::uinteger)->get<uint64_t>();
    const auto cnt = field(*sh, "shard", "count", T::uinteger)->get<uint64_t>();
    if (cnt < 1 || idx >= cnt) throw ReportError("shard", "index " + std::to_string(idx) + " is not in [0, count " + std::to_string(cnt) + ")");
  }
  field(j, "", "merged_from", T::array, false);
  field(j, "", "views", T::object, false);
  const auto& runs = *field(j, "", "runs", T::array);
  std::set<std::string> ids;
  for (size_t i = 0; i < runs.size(); ++i) validate_run(runs[i], index_path("runs", i), ids);
  // Every run of the report belongs to its plan.
  std::set<std::string> planned;
  for (const auto& x : pids) planned.insert(x.get<std::string>());
  for (size_t i = 0; i < runs.size(); ++i)
    if (!planned.count(runs[i]["id"].get<std::string>()))
      throw ReportError(index_path("runs", i) + ".id", "'" + runs[i]["id"].get<std::string>() + "' is not in plan.ids");
}

namespace {

// A v1 field read during migration: `def` when absent, the string when it is one, else a ReportError naming it (a
// number where v1 wrote a string must not escape as nlohmann's type_error).
std::string v1_string(const nlohmann::json& obj, const std::string& path, const std::string& key,
                      const std::string& def = "") {
  if (!obj.is_object() || !obj.contains(key)) return def;
  const nlohmann::json& v = obj[key];
  if (!v.is_string()) throw ReportError(key_path(path, key), "expected a string, got " + shown(v));
  return v.get<std::string>();
}

// v1 → v2 (docs/report-schema.md, "Migration notes").
void migrate_v1(nlohmann::json& j) {
  if (!j.contains("runs") || !j["runs"].is_array()) throw ReportError("runs", "missing (expected an array)");
  const nlohmann::json input = j.contains("input") ? j["input"] : nlohmann::json::object();
  nlohmann::json protocol = {{"kind", "tensor"}, {"measure", "quantize+dequantize"}, {"sampling", "rows"}};
  nlohmann::json ids = nlohmann::json::array();
  for (size_t i = 0; i < j["runs"].size(); ++i) {
    nlohmann::json& r = j["runs"][i];
    const std::string p = index_path("runs", i);
    if (!r.is_object()) throw ReportError(p, "expected an object, got " + shown(r));
    if (r.contains("id") && r["id"].is_string()) r["name"] = r["id"];
    nlohmann::json spec = {{"kind", v1_string(r, p, "kind", "tensor")}, {"backend", "cpu"}, {"input", input},
                           {"protocol", protocol}};
    if (r.contains("config") && r["config"].is_object()) {
      nlohmann::json c = r["config"];
      c.erase("label");
      spec["config"] = c;
    }
    if (r.contains("tensor") && r["tensor"].is_object()) spec["tensor"] = v1_string(r["tensor"], p + ".tensor", "name");
    r["spec"] = spec;
    r["id"] = run_id(spec);
    r["backend"] = "cpu";
    r["input"] = input;
    ids.push_back(r["id"]);
  }
  if (j.contains("input")) j["inputs"] = nlohmann::json::array({input});
  std::string cmd;
  if (j.contains("command_line") && j["command_line"].is_array())
    for (size_t i = 0; i < j["command_line"].size(); ++i) {
      const nlohmann::json& a = j["command_line"][i];
      if (!a.is_string()) throw ReportError(index_path("command_line", i), "expected a string, got " + shown(a));
      cmd += (cmd.empty() ? "" : " ") + a.get<std::string>();
    }
  nlohmann::json git_sha = nullptr;
  if (j.contains("environment") && j["environment"].is_object() && j["environment"].contains("git") &&
      j["environment"]["git"].is_object() && j["environment"]["git"].contains("sha"))
    git_sha = j["environment"]["git"]["sha"];
  j["producer"] = {{"command", cmd},
                   {"user", ""},
                   {"host", ""},
                   {"date", v1_string(j, "", "created")},
                   {"git_sha", git_sha},
                   {"git_dirty", false},
                   {"tool_version", j.contains("tool") ? v1_string(j["tool"], "tool", "version") : std::string()}};
  j["config"] = {{"migrated_from_schema", 1}};
  j["protocol"] = protocol;
  j["plan"] = {{"runs", ids.size()}, {"ids", ids}};
  j["views"] = compute_views(j["runs"]);
  j["schema_version"] = 2;
}

}  // namespace

nlohmann::json migrate(nlohmann::json j) {
  if (!j.is_object()) throw ReportError("", "a report is a JSON object, got " + shown(j));
  if (!j.contains("schema_version")) throw ReportError("schema_version", "missing: not a qeval report");
  if (!j["schema_version"].is_number_integer())
    throw ReportError("schema_version", "expected an integer, got " + shown(j["schema_version"]));
  const int64_t v = j["schema_version"].get<int64_t>();
  if (v > kSchemaVersion)
    throw ReportError("schema_version", std::to_string(v) + " is newer than this qeval understands (" +
                                            std::to_string(kOldestReadableSchemaVersion) + ".." +
                                            std::to_string(kSchemaVersion) + "); use a newer qeval");
  if (v < kOldestReadableSchemaVersion)
    throw ReportError("schema_version", std::to_string(v) + " is not a known version (" +
                                            std::to_string(kOldestReadableSchemaVersion) + ".." +
                                            std::to_string(kSchemaVersion) + ")");
  if (v == 1) migrate_v1(j);
  return j;
}

nlohmann::json load_report(const std::string& path) {
  nlohmann::json j = read_json_file(path);
  try {
    j = migrate(std::move(j));
    validate(j);
  } catch (const ReportError& e) {
    throw std::runtime_error("report '" + path + "': " + e.what());
  }
  return j;
}

}  // namespace qeval::report
