// eval/model/checkpoint_internal.hpp — helpers shared by the readers (internal header, not for the forward).
#pragma once

#include <string>

#include "eval/model/checkpoint.hpp"

namespace qeval::model {

// validate_checkpoint(); with check_data = false only the config and the tensor names/shapes are checked
// (used on a GGUF directory before dequantizing).
void validate_checkpoint_impl(const Checkpoint& cp, bool check_data);

// A JSON value for an error message: never throws (GGUF strings may be invalid UTF-8, which json::dump()
// rejects), cut to `max` characters.
inline std::string json_for_message(const nlohmann::json& v, size_t max = 80) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > max) s = s.substr(0, max) + "…";
  return s;
}

}  // namespace qeval::model
