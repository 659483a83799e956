// eval/common/files.hpp — small helpers every eval/ floor may include (header-only, no dependencies): a monotonic
// clock in seconds, project-relative paths, file existence and extensions.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <string>

namespace qeval::common {

// Seconds on the steady clock (differences are durations; the origin is arbitrary).
inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// `p` relative to `root` ("" root or an absolute/empty `p`: `p` unchanged).
inline std::string resolve_path(const std::string& root, const std::string& p) {
  if (p.empty() || p[0] == '/' || root.empty()) return p;
  return root + "/" + p;
}

inline bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

// "w.npy" ends with ".npy".
inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace qeval::common
