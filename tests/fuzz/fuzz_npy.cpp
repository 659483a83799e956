// tests/fuzz/fuzz_npy.cpp — libFuzzer driver: .npy bytes → parse_npy (tensor inputs of `qeval sweep`).
//
// Contract under test (eval/inputs/file.hpp): any input either parses into rows × cols floats that account for
// every data byte, or throws std::runtime_error naming the problem; nothing else, and ASan/UBSan stay silent.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "eval/inputs/file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    std::string dtype;
    const qeval::quant::Matrix m = qeval::inputs::parse_npy(bytes, "fuzz.npy", &dtype);
    const size_t item = dtype == "f16" ? 2 : 4;
    if (m.rows < 1 || m.cols < 1 || m.data.size() != static_cast<size_t>(m.rows * m.cols) ||
        m.data.size() * item > size) {
      std::fprintf(stderr, "fuzz_npy: parsed %lldx%lld (%zu values, dtype %s) from %zu bytes\n",
                   static_cast<long long>(m.rows), static_cast<long long>(m.cols), m.data.size(), dtype.c_str(), size);
      std::abort();
    }
  } catch (const std::runtime_error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_npy: an exception other than std::runtime_error escaped: %s\n", e.what());
    std::abort();
  }
  return 0;
}
