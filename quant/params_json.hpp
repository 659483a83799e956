// quant/params_json.hpp — QuantParams ⇄ JSON (nlohmann/json); the only quant/ files that use nlohmann/json.
//
// Format (every key written by to_json; from_json accepts any subset, missing keys keep their defaults):
//   {"bits": 4, "group_size": 128, "mapping": "symmetric", "rounding": "nearest_even", "range": "minmax",
//    "clip_ratio": 1.0, "clip_percentile": 99.99, "non_finite": "error", "version": 1}
// group_size: > 0, 0 (per row) or -1 (per tensor). Enum values are the names of quant/affine.hpp's
// to_string(); "sym"/"asym" are accepted for mapping. A missing "version" means the current one.
#pragma once

#include <nlohmann/json.hpp>

#include "quant/affine.hpp"

namespace qeval::quant {

// Writes every field, version included, so a report reproduces its run exactly.
void to_json(nlohmann::json& j, const QuantParams& p);

// Reads and validates (QuantParams::validate()). Throws std::invalid_argument naming the key for an
// unknown key, a wrong type (e.g. "bits": "4" or 4.5) or a bad value, and for a version other than
// QuantParams::kVersion.
void from_json(const nlohmann::json& j, QuantParams& p);

// Convenience: parse JSON text (throws std::invalid_argument on a syntax error, with its position).
QuantParams params_from_json_text(const std::string& text);

}  // namespace qeval::quant
