// schemes/options.cpp — typed, validated access to a scheme's key=value options.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "schemes/scheme.hpp"

namespace qeval::schemes {

namespace {
[[noreturn]] void bad(const std::string& scheme, const std::string& key, const std::string& value,
                      const std::string& expected) {
  throw std::invalid_argument("scheme '" + scheme + "': option " + key + "='" + value + "' is not " +
                              expected);
}
}  // namespace

double Options::get_double(const std::string& scheme, const std::string& key, double def) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  const char* s = it->second.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s, &end);
  if (end == s || *end != '\0' || errno == ERANGE || !std::isfinite(v))
    bad(scheme, key, it->second, "a finite number");
  return v;
}

int64_t Options::get_int(const std::string& scheme, const std::string& key, int64_t def) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  const char* s = it->second.c_str();
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s, &end, 10);
  if (end == s || *end != '\0' || errno == ERANGE) bad(scheme, key, it->second, "an integer");
  return static_cast<int64_t>(v);
}

bool Options::get_bool(const std::string& scheme, const std::string& key, bool def) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  const std::string& v = it->second;
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  bad(scheme, key, v, "a boolean (true/false)");
}

std::string Options::get_string(const std::string& scheme, const std::string& key,
                                 const std::string& def, const std::vector<std::string>& allowed) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  if (allowed.empty()) return it->second;
  for (const auto& a : allowed)
    if (a == it->second) return a;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : " | ") + a;
  bad(scheme, key, it->second, "one of " + list);
}

void Options::check_known(const std::string& scheme, const std::vector<std::string>& known) const {
  for (const auto& [k, v] : kv_) {
    bool ok = false;
    for (const auto& n : known) ok = ok || n == k;
    if (!ok) {
      std::string list;
      for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
      throw std::invalid_argument("scheme '" + scheme + "' has no option '" + k + "' (its options: " +
                                  (list.empty() ? std::string("none") : list) + ")");
    }
  }
}

}  // namespace qeval::schemes
