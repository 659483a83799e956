// tests/fuzz/fuzz_safetensors.cpp — libFuzzer driver: safetensors bytes → header parse, read every tensor.
//
// Contract under test: any input either parses or throws CheckpointError; nothing else may escape, and
// AddressSanitizer/UBSan must stay silent.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "eval/model/checkpoint.hpp"
#include "eval/model/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qeval::model;
  try {
    const SafetensorsFile f = parse_safetensors(data, size, "fuzz.safetensors");
    for (const auto& e : f.tensors) {
      try {
        (void)read_safetensors_tensor(f, e);
        (void)hf_to_canonical(e.name, f.file);
      } catch (const CheckpointError&) {
      }
    }
  } catch (const CheckpointError&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "non-CheckpointError exception escaped: %s\n", e.what());
    std::abort();
  }
  return 0;
}
