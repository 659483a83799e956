// quant/params_json.cpp — QuantParams ⇄ JSON with strict checking (unknown keys, wrong types, version).
#include "quant/params_json.hpp"

#include <set>
#include <stdexcept>
#include <string>

#include "quant/json_text.hpp"

namespace qeval::quant {

namespace {

const char* type_name(const nlohmann::json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number_float()) return "a non-integer number";
  return v.type_name();  // "string", "boolean", "null", "object", "array"
}

[[noreturn]] void bad_type(const std::string& key, const nlohmann::json& v, const char* expected) {
  throw std::invalid_argument("QuantParams JSON: key \"" + key + "\" must be " + expected + ", got " +
                              type_name(v) + " (" + v.dump() + ")");
}

int64_t get_int(const nlohmann::json& v, const std::string& key) {
  if (!v.is_number_integer()) bad_type(key, v, "an integer");
  return v.get<int64_t>();
}
double get_number(const nlohmann::json& v, const std::string& key) {
  if (!v.is_number()) bad_type(key, v, "a number");
  return v.get<double>();
}
std::string get_string(const nlohmann::json& v, const std::string& key) {
  if (!v.is_string()) bad_type(key, v, "a string");
  return v.get<std::string>();
}

// Runs a parse_* function and prefixes its error with the key.
template <class F>
auto parse_key(const std::string& key, const std::string& value, F parse) {
  try {
    return parse(value);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("QuantParams JSON: key \"" + key + "\": " + e.what());
  }
}

}  // namespace

void to_json(nlohmann::json& j, const QuantParams& p) {
  j = nlohmann::json{
      {"bits", p.bits},
      {"group_size", p.group_size},
      {"mapping", to_string(p.mapping)},
      {"rounding", to_string(p.rounding)},
      {"range", to_string(p.range)},
      {"clip_ratio", p.clip_ratio},
      {"clip_percentile", p.clip_percentile},
      {"partial_last_group", p.partial_last_group},
      {"non_finite", to_string(p.non_finite)},
      {"version", p.version},
  };
}

void from_json(const nlohmann::json& j, QuantParams& out) {
  static const std::set<std::string> known = {"bits",       "group_size",      "mapping",    "rounding", "range",
                                              "clip_ratio", "clip_percentile", "non_finite", "version",
                                              "partial_last_group"};
  if (!j.is_object())
    throw std::invalid_argument(std::string("QuantParams JSON must be an object, got ") + type_name(j));
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!known.count(it.key())) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw std::invalid_argument("QuantParams JSON: unknown key \"" + it.key() + "\"; accepted keys: " + list);
    }
  }
  QuantParams p;  // defaults for missing keys
  // Version first: a config from another version is rejected before its fields are interpreted.
  if (j.contains("version")) {
    const int64_t v = get_int(j["version"], "version");
    if (v != QuantParams::kVersion)
      throw std::invalid_argument("QuantParams JSON: \"version\" is " + std::to_string(v) + " but this build reads " +
                                  std::to_string(QuantParams::kVersion) +
                                  "; re-create the config with this version of qeval");
    p.version = static_cast<int>(v);
  }
  if (j.contains("bits")) {
    const int64_t b = get_int(j["bits"], "bits");
    if (b < kMinBits || b > kMaxBits)
      throw std::invalid_argument("QuantParams JSON: \"bits\" = " + std::to_string(b) + " is out of range; accepted: " +
                                  std::to_string(kMinBits) + ".." + std::to_string(kMaxBits));
    p.bits = static_cast<int>(b);
  }
  if (j.contains("group_size")) p.group_size = get_int(j["group_size"], "group_size");
  if (j.contains("mapping")) p.mapping = parse_key("mapping", get_string(j["mapping"], "mapping"), parse_mapping);
  if (j.contains("rounding"))
    p.rounding = parse_key("rounding", get_string(j["rounding"], "rounding"), parse_rounding);
  if (j.contains("range")) p.range = parse_key("range", get_string(j["range"], "range"), parse_range_method);
  if (j.contains("clip_ratio")) p.clip_ratio = get_number(j["clip_ratio"], "clip_ratio");
  if (j.contains("clip_percentile")) p.clip_percentile = get_number(j["clip_percentile"], "clip_percentile");
  if (j.contains("partial_last_group")) {
    if (!j["partial_last_group"].is_boolean())
      throw std::invalid_argument(std::string("QuantParams JSON: \"partial_last_group\" must be a boolean, got ") +
                                  type_name(j["partial_last_group"]));
    p.partial_last_group = j["partial_last_group"].get<bool>();
  }
  if (j.contains("non_finite"))
    p.non_finite = parse_key("non_finite", get_string(j["non_finite"], "non_finite"), parse_non_finite_policy);
  try {
    p.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("QuantParams JSON: ") + e.what());
  }
  out = p;
}

QuantParams params_from_json_text(const std::string& text) {
  nlohmann::json j;
  try {
    j = parse_json_text(text);
  } catch (const std::invalid_argument& e) {  // a syntax error, a number beyond double, nesting too deep
    throw std::invalid_argument(std::string("QuantParams JSON: not valid JSON: ") + e.what());
  }
  return j.get<QuantParams>();
}

}  // namespace qeval::quant
