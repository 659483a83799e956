// quant/json_text.hpp — JSON text → nlohmann::json for every qeval reader of JSON files, with a nesting limit.
//
// nlohmann parses iteratively but copies and dumps values recursively: a file of "[[[[…" 200,000 deep (400 KB) parsed
// fine and then overflowed the stack in the first copy (`qeval check` and `qeval sweep --config` died with SIGSEGV;
// found with the fuzz drivers of tests/fuzz). No file qeval reads nests deeper than ~10 levels (a report:
// runs[].metrics.layers[].…), so anything past kMaxJsonDepth is refused while parsing. Header-only (every part of
// qeval includes quant/).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace qeval {

inline constexpr int kMaxJsonDepth = 128;

// Parses `text`. Throws std::invalid_argument whose what() is nlohmann's message (a syntax error, or a number beyond
// double: out_of_range 406) or "JSON nested deeper than 128 levels"; callers prefix the file they read.
inline nlohmann::json parse_json_text(std::string_view text) {
  // `depth` counts the containers around an event (the top-level value's start is at 0), so the 129th nested
  // container starts at depth 128.
  const nlohmann::json::parser_callback_t limit = [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth >= kMaxJsonDepth)
      throw std::invalid_argument("JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return true;
  };
  try {
    return nlohmann::json::parse(text.data(), text.data() + text.size(), limit);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(e.what());
  }
}

}  // namespace qeval
