// tests/fuzz/fuzz_report.cpp — libFuzzer driver: report bytes → JSON → migrate + validate, then `qeval check`'s
// and `qeval diff`'s reading of the validated report(s).
//
// Input: one report (checked against itself) or a JSON array [baseline, current]. Contract under test
// (eval/report/schema.hpp): a report that does not follow the schema gives a ReportError naming the JSON path;
// a report that validates is safe for check_regression / format_gate / diff_reports — no exception at all
// escapes them (a json::type_error there would mean validate() let a field through unchecked), and ASan/UBSan
// stay silent.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "eval/report/check.hpp"
#include "eval/report/diff.hpp"
#include "eval/report/schema.hpp"
#include "quant/json_text.hpp"

namespace {

using nlohmann::json;

[[noreturn]] void finding(const char* where, const char* what) {
  std::fprintf(stderr, "fuzz_report: %s threw on a validated report: %s\n", where, what);
  std::abort();
}

// migrate + validate; false when the report is rejected the documented way.
bool readable(json& r) {
  try {
    r = qeval::report::migrate(std::move(r));
    qeval::report::validate(r);
    return true;
  } catch (const qeval::report::ReportError&) {
    return false;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_report: migrate/validate threw something other than ReportError: %s\n", e.what());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  json in;
  try {  // as the file readers parse (quant/json_text.hpp: nesting limit, every JSON error one exception)
    in = qeval::parse_json_text(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const std::invalid_argument&) {  // the reader's one-line "not valid JSON" error
    return 0;
  }
  json base = in.is_array() && in.size() == 2 ? in[0] : in;
  json cur = in.is_array() && in.size() == 2 ? in[1] : in;
  if (!readable(base) || !readable(cur)) return 0;
  try {
    const qeval::report::GateResult g = qeval::report::check_regression(base, cur);
    (void)qeval::report::format_gate(g, "base.json", "cur.json", base);
    (void)g.to_json().dump();
  } catch (const std::exception& e) {
    finding("check_regression/format_gate", e.what());
  }
  try {
    const json d = qeval::report::diff_reports(base, cur, "base.json", "cur.json");
    (void)qeval::report::format_diff(d);
  } catch (const std::exception& e) {
    finding("diff_reports/format_diff", e.what());
  }
  return 0;
}
