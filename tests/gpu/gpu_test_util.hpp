// tests/gpu/gpu_test_util.hpp — shared helpers of the OpenCL tests: the device (or a clear skip), seeds,
// the tiers to test, and first-difference reporting for exact comparisons.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gpu/device.hpp"
#include "quant/matrix.hpp"
#include "quant/rng.hpp"

namespace qeval::test {

// Fixed seed of the OpenCL tests (override with QEVAL_SEED); printed in every failure message.
inline uint64_t gpu_seed() { return seed_from_env(0xC1'0CE1'2024ULL); }

// The default OpenCL device, or skip the test with the reason (no device is not a failure: CI without
// PoCL builds and skips; CI with PoCL runs everything).
#define QEVAL_CL_DEVICE_OR_SKIP(dev)                                                                          \
  std::shared_ptr<qeval::gpu::Device> dev = qeval::gpu::default_device();                                     \
  if (!dev)                                                                                                   \
  GTEST_SKIP() << "no OpenCL device found (install pocl-opencl-icd, or a GPU driver, or set QEVAL_CL_DEVICE); " \
                  "OpenCL tests skipped"

// Every GEMM tier usable on the device, plus T3-emulated (it runs everywhere and keeps T3's layout tested).
inline std::vector<gpu::Tier> tiers_to_test(gpu::Device& d) {
  std::vector<gpu::Tier> out;
  for (const auto& s : d.tiers())
    if (s.usable()) out.push_back(s.tier);
  return out;
}

inline std::vector<float> gaussian_vec(size_t n, uint64_t seed, double sd = 1.0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal() * sd);
  return v;
}

inline quant::Matrix gaussian_matrix(int64_t rows, int64_t cols, uint64_t seed, double sd = 1.0) {
  quant::Matrix m(rows, cols);
  Rng rng(seed);
  for (auto& x : m.data) x = static_cast<float>(rng.normal() * sd);
  return m;
}

inline std::vector<int8_t> random_s8(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int8_t> v(n);
  for (auto& x : v) x = static_cast<int8_t>(static_cast<int>(rng.below(256)) - 128);
  return v;
}

inline uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// Index and values of the first difference of two equal-size vectors (exact), or "" when equal.
// Floats compare by bit pattern except that any NaN equals any NaN.
template <class T>
std::string first_difference(const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size())
    return "size " + std::to_string(got.size()) + " vs expected " + std::to_string(want.size());
  size_t n_diff = 0, first = got.size();
  for (size_t i = 0; i < got.size(); ++i) {
    bool same;
    if constexpr (std::is_floating_point_v<T>)
      same = (got[i] != got[i] && want[i] != want[i]) || bits_of(got[i]) == bits_of(want[i]);
    else
      same = got[i] == want[i];
    if (!same) {
      if (first == got.size()) first = i;
      ++n_diff;
    }
  }
  if (n_diff == 0) return "";
  std::ostringstream s;
  s << n_diff << " of " << got.size() << " differ; first at index " << first << ": got " << +got[first]
    << ", expected " << +want[first];
  return s.str();
}

}  // namespace qeval::test
