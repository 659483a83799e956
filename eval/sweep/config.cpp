// eval/sweep/config.cpp — sweep config JSON readers: paths, typed values, axes, files.
#include "eval/sweep/config.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include "quant/json_text.hpp"

namespace qeval::sweep {

using nlohmann::json;

std::string key_path(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }
std::string index_path(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

std::string shown_value(const json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

int64_t as_int(const json& v, const std::string& path, const char* what) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() && std::fabs(v.get<double>()) < 1e15)
    return static_cast<int64_t>(v.get<double>());
  throw ConfigError(path, shown_value(v) + " is not " + what);
}

double as_double(const json& v, const std::string& path, const char* what) {
  if (v.is_number()) return v.get<double>();
  throw ConfigError(path, shown_value(v) + " is not " + what);
}

std::string as_string(const json& v, const std::string& path, const char* what) {
  if (v.is_string()) return v.get<std::string>();
  throw ConfigError(path, shown_value(v) + " is not " + what);
}

bool as_bool(const json& v, const std::string& path) {
  if (v.is_boolean()) return v.get<bool>();
  throw ConfigError(path, shown_value(v) + " is not true or false");
}

uint64_t as_seed(const json& v, const std::string& path) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    throw ConfigError(path, shown_value(v) + " is not a non-negative integer");
  return v.get<uint64_t>();
}

std::vector<std::pair<json, std::string>> config_axis(const json& entry, const std::string& path, const char* key,
                                                      const json& def) {
  std::vector<std::pair<json, std::string>> out;
  const std::string p = key_path(path, key);
  if (!entry.contains(key)) {
    for (size_t i = 0; i < def.size(); ++i) out.emplace_back(def[i], p + " (default)");
    return out;
  }
  const json& v = entry[key];
  if (!v.is_array()) return {{v, p}};
  if (v.empty()) throw ConfigError(p, "is an empty list (leave the key out for the default)");
  for (size_t i = 0; i < v.size(); ++i) out.emplace_back(v[i], index_path(p, i));
  return out;
}

json load_json_file(const std::string& path, const std::string& what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + what + " '" + path + "' (" + std::strerror(errno) + ")");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return parse_json_text(ss.str());
  } catch (const std::invalid_argument& e) {  // a syntax error, a number beyond double, nesting too deep
    throw std::runtime_error(what + " '" + path + "' is not valid JSON: " + e.what());
  }
}

json load_config_file(const std::string& path) { return load_json_file(path, "sweep config"); }

}  // namespace qeval::sweep
