// eval/sweep/config.hpp — reading sweep config JSON: ConfigError (every problem names its JSON path), path
// helpers, typed readers of one value, list axes, and the config file loader.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace qeval::sweep {

inline constexpr int kConfigVersion = 1;

// A problem in a sweep config. what() = "<json path>: <problem>".
class ConfigError : public std::invalid_argument {
 public:
  ConfigError(std::string path, const std::string& problem)
      : std::invalid_argument(path + ": " + problem), path_(std::move(path)), problem_(problem) {}
  const std::string& path() const { return path_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string path_, problem_;
};

// JSON path helpers: key_path("sweeps[0]", "bits") = "sweeps[0].bits"; index_path("bits", 2) = "bits[2]".
std::string key_path(const std::string& path, const std::string& key);
std::string index_path(const std::string& path, size_t i);

// A value for an error message: its JSON, cut to 60 characters.
std::string shown_value(const nlohmann::json& v);

// One value of a given type, or a ConfigError "<path>: <value> is not <what>". as_int accepts integral floats (4.0).
int64_t as_int(const nlohmann::json& v, const std::string& path, const char* what);
double as_double(const nlohmann::json& v, const std::string& path, const char* what);
std::string as_string(const nlohmann::json& v, const std::string& path, const char* what);
bool as_bool(const nlohmann::json& v, const std::string& path);
uint64_t as_seed(const nlohmann::json& v, const std::string& path);  // a non-negative integer

// An axis of entry[key]: a list (or a scalar, read as a one-element list), `def` when the key is absent.
// Returns (value, JSON path) pairs — "<path>.<key>[i]", or "<path>.<key> (default)" for defaults; an empty list
// is a ConfigError.
std::vector<std::pair<nlohmann::json, std::string>> config_axis(const nlohmann::json& entry, const std::string& path,
                                                                const char* key, const nlohmann::json& def);

// Runs `f`; any std::exception other than a ConfigError becomes a ConfigError at `path` with its message.
template <class F>
auto at_path(const std::string& path, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ConfigError(path, e.what());
  }
}

// A JSON file; errors name the file (and the parse position). `what` names it in messages ("sweep config").
nlohmann::json load_json_file(const std::string& path, const std::string& what);
// Reads a sweep config file (load_json_file with what = "sweep config").
nlohmann::json load_config_file(const std::string& path);

}  // namespace qeval::sweep
