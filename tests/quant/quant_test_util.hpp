// tests/quant/quant_test_util.hpp — shared helpers of the quant/ tests: seeded inputs, sentinels, error stats.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "quant/matrix.hpp"
#include "quant/rng.hpp"

namespace qeval::test {

// Fixed seed of the quant tests (override with QEVAL_SEED); print it in every failure message.
inline uint64_t quant_seed() { return seed_from_env(0x51AB'2024ULL); }

// A value no quantizer writes: a NaN with a payload. Output buffers are filled with it before a call,
// so an element the code under test forgot to write is caught (STYLE 11). Compared by bit pattern.
inline float sentinel() {
  const uint32_t bits = 0x7FC0'5EEDu;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline bool is_sentinel(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b == 0x7FC0'5EEDu;
}

// rows × cols standard normals scaled by `sd`, stored with a padded row stride (cols + pad) whose padding
// holds kPadValue: a quantizer that reads past a row's end pulls 1e30 into a group's range, and the
// tests' scale check (s = the group's own range / levels, computed independently) or SQNR fails loudly.
inline constexpr float kPadValue = 1e30f;
struct PaddedMatrix {
  std::vector<float> buf;
  int64_t rows = 0, cols = 0, stride = 0;
  quant::MatrixView view() const { return quant::MatrixView(buf.data(), rows, cols, stride); }
  float& at(int64_t r, int64_t c) { return buf[static_cast<size_t>(r * stride + c)]; }
  float at(int64_t r, int64_t c) const { return buf[static_cast<size_t>(r * stride + c)]; }
};
inline PaddedMatrix gaussian_padded(int64_t rows, int64_t cols, uint64_t seed, double sd = 1.0, int64_t pad = 3) {
  PaddedMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.stride = cols + pad;
  m.buf.assign(static_cast<size_t>(rows * m.stride), kPadValue);
  Rng rng(seed);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m.at(r, c) = static_cast<float>(rng.normal() * sd);
  return m;
}

inline quant::Matrix gaussian(int64_t rows, int64_t cols, uint64_t seed, double sd = 1.0) {
  quant::Matrix m(rows, cols);
  Rng rng(seed);
  for (auto& v : m.data) v = static_cast<float>(rng.normal() * sd);
  return m;
}

// SQNR of y against x in dB, 10·log10(Σx² / Σ(x − y)²), summed in double: the tests' own, independent of
// eval/metrics.
inline double sqnr_db(const quant::Matrix& x, const quant::Matrix& y) {
  double s = 0, e = 0;
  for (size_t i = 0; i < x.data.size(); ++i) {
    s += double(x.data[i]) * x.data[i];
    const double d = double(x.data[i]) - y.data[i];
    e += d * d;
  }
  return 10.0 * std::log10(s / e);
}

// A sentinel-filled output of rows × cols with `pad` extra columns per row (checked to stay untouched).
struct PaddedOut {
  std::vector<float> buf;
  int64_t rows = 0, cols = 0, stride = 0;
  PaddedOut(int64_t r, int64_t c, int64_t pad = 2)
      : buf(static_cast<size_t>(r * (c + pad)), sentinel()), rows(r), cols(c), stride(c + pad) {}
  quant::MutableMatrixView mut() { return quant::MutableMatrixView(buf.data(), rows, cols, stride); }
  float at(int64_t r, int64_t c) const { return buf[static_cast<size_t>(r * stride + c)]; }
  // Count of in-matrix elements still holding the sentinel, and of padding elements overwritten.
  int64_t unwritten() const {
    int64_t n = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) n += is_sentinel(at(r, c));
    return n;
  }
  int64_t padding_clobbered() const {
    int64_t n = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = cols; c < stride; ++c) n += !is_sentinel(buf[static_cast<size_t>(r * stride + c)]);
    return n;
  }
};

}  // namespace qeval::test
