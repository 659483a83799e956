// tests/fuzz/fuzz_gguf.cpp — libFuzzer driver: GGUF bytes → parse, config, dequantize every tensor.
//
// Contract under test: any input either loads or throws CheckpointError; nothing else may escape, and
// AddressSanitizer/UBSan must stay silent.
#include <cstdint>
#include <cstdlib>
#include <cstdio>

#include "eval/model/checkpoint.hpp"
#include "eval/model/gguf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qeval::model;
  try {
    const GgufFile f = parse_gguf(data, size, "fuzz.gguf");
    for (const auto& t : f.tensors) {
      try {
        (void)read_gguf_tensor(f, t);
      } catch (const CheckpointError&) {
      }
    }
    (void)load_gguf_bytes(data, size, "fuzz.gguf");
  } catch (const CheckpointError&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "non-CheckpointError exception escaped: %s\n", e.what());
    std::abort();
  }
  return 0;
}
