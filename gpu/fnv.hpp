// gpu/fnv.hpp — FNV-1a 64-bit hashing and hex formatting for the on-disk cache keys of the OpenCL backend.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace qeval::gpu {

inline constexpr uint64_t kFnvOffset = 1469598103934665603ull;

inline uint64_t fnv1a(const std::string& s, uint64_t h = kFnvOffset) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

inline std::string hex64(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace qeval::gpu
