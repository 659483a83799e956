// tests/fuzz/fuzz_config.cpp — libFuzzer driver: sweep config bytes → JSON → plan_sweep (`qeval sweep --config`).
//
// Contract under test (eval/cli/plan.hpp): a config that is not valid gives a ConfigError (a std::invalid_argument
// naming the JSON path) before any run starts; nothing else may escape, and ASan/UBSan must stay silent. Bytes
// that are not JSON stop at the parser (load_config_file turns that into one line naming the file). Relative input
// paths resolve against tests/data, so a config may name the committed fixtures.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "eval/sweep/plan.hpp"
#include "quant/json_text.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json config;
  try {  // as the file readers parse (quant/json_text.hpp: nesting limit, every JSON error one exception)
    config = qeval::parse_json_text(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const std::invalid_argument&) {  // the reader's one-line "not valid JSON" error
    return 0;
  }
  try {
    (void)qeval::sweep::plan_sweep(config, 20240229, QEVAL_SOURCE_DIR "/tests/data");
  } catch (const std::invalid_argument&) {  // ConfigError and the parsers' invalid_argument
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_config: an exception other than ConfigError escaped plan_sweep: %s\n", e.what());
    std::abort();
  }
  return 0;
}
