// eval/model/checkpoint_internal.hpp — helpers shared by the readers (internal header, not for the forward).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/model/checkpoint.hpp"

namespace qeval::model {

// validate_checkpoint(); with check_data = false only the config and the tensor names/shapes are checked
// (used on a GGUF directory before dequantizing).
void validate_checkpoint_impl(const Checkpoint& cp, bool check_data);

// The index of the first F16 (bf16 = false) or BF16 code that is Inf or NaN (exponent bits all ones: 0x7C00 in
// binary16, 0x7F80 in bfloat16), or −1 when all are finite.
inline int64_t first_nonfinite16(const uint16_t* codes, size_t n, bool bf16) {
  const uint16_t mask = bf16 ? 0x7F80u : 0x7C00u;
  for (size_t i = 0; i < n; ++i)
    if ((codes[i] & mask) == mask) return static_cast<int64_t>(i);
  return -1;
}

// A shape as "[a, b, …]" for messages.
inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// A JSON value for an error message: never throws (GGUF strings may be invalid UTF-8, which json::dump()
// rejects), cut to `max` characters.
inline std::string json_for_message(const nlohmann::json& v, size_t max = 80) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > max) s = s.substr(0, max) + "…";
  return s;
}

}  // namespace qeval::model
