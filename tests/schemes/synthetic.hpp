// tests/schemes/synthetic.hpp — fixed-seed synthetic layers for the calibration-scheme tests: Gaussian weights,
// inputs with low-rank correlation, salient (large mean|x|) channels and outlier channels, plus the error metrics.
#pragma once

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "quant/matrix.hpp"
#include "quant/quantize.hpp"
#include "quant/rng.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes::test {

inline quant::Matrix gaussian(int64_t rows, int64_t cols, uint64_t seed, double sd = 1.0) {
  Rng rng(seed);
  quant::Matrix m(rows, cols);
  for (auto& v : m.data) v = static_cast<float>(sd * rng.normal());
  return m;
}

// Inputs X [n, in] = Z·B + noise·N with Z [n, rank], B [rank, in] Gaussian (so XᵀX/n has `rank` dominant
// directions: strongly correlated features), then `n_big` channels (every in/n_big-th, starting at 3) multiplied
// by `big` — the few large-magnitude channels LLM activations have. B comes from `seed` (the layer's input
// distribution), Z and N from `sample` (which tokens): calibration and held-out data share `seed`, differ in `sample`.
inline quant::Matrix correlated_inputs(int64_t n, int64_t in, uint64_t seed, int64_t rank = 8, double noise = 0.1,
                                       int64_t n_big = 4, double big = 10.0, uint64_t sample = 0) {
  Rng brng(seed);
  Eigen::MatrixXd b(rank, in);
  for (int64_t k = 0; k < rank; ++k)
    for (int64_t j = 0; j < in; ++j) b(k, j) = brng.normal() / std::sqrt(static_cast<double>(rank));
  Rng rng(sample == 0 ? seed ^ 0x9e3779b97f4a7c15ull : sample);
  Eigen::MatrixXd z(n, rank), e(n, in);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t k = 0; k < rank; ++k) z(r, k) = rng.normal();
    for (int64_t j = 0; j < in; ++j) e(r, j) = noise * rng.normal();
  }
  const Eigen::MatrixXd xd = z * b + e;
  quant::Matrix x(n, in);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < in; ++j) x(r, j) = static_cast<float>(xd(r, j));
  for (int64_t k = 0; k < n_big; ++k) {
    const int64_t j = (3 + k * (in / std::max<int64_t>(n_big, 1))) % in;
    for (int64_t r = 0; r < n; ++r) x(r, j) = static_cast<float>(x(r, j) * big);
  }
  return x;
}

// Inputs with salient channels: X_tj = σ_j·N(0,1) with σ_j = 1 except every (in/n_salient)-th channel (from 1),
// which gets σ = factor — the few input features with large mean|x| that AWQ protects. `seed` draws the values.
inline quant::Matrix salient_inputs(int64_t n, int64_t in, uint64_t seed, int64_t n_salient, double factor) {
  quant::Matrix x = gaussian(n, in, seed);
  for (int64_t k = 0; k < n_salient; ++k) {
    const int64_t j = (1 + k * (in / n_salient)) % in;
    for (int64_t t = 0; t < n; ++t) x(t, j) = static_cast<float>(x(t, j) * factor);
  }
  return x;
}

// ‖X·Wᵀ − X·Ŵᵀ‖²_F in double.
inline Eigen::MatrixXd to_eigen(const quant::Matrix& m) {
  Eigen::MatrixXd d(m.rows, m.cols);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) d(r, c) = m(r, c);
  return d;
}

inline double output_error(const quant::Matrix& x, const quant::Matrix& w, const quant::Matrix& wq) {
  return (to_eigen(x) * (to_eigen(w) - to_eigen(wq)).transpose()).squaredNorm();
}

// ‖A − B‖²_F in double.
inline double sq_diff(const quant::Matrix& a, const quant::Matrix& b) {
  double e = 0.0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    const double d = double(a.data[i]) - double(b.data[i]);
    e += d * d;
  }
  return e;
}

// y = x·wᵀ in double, stored as float.
inline quant::Matrix matmul_t(const quant::Matrix& x, const quant::Matrix& w) {
  quant::Matrix y(x.rows, w.rows);
  for (int64_t t = 0; t < x.rows; ++t)
    for (int64_t o = 0; o < w.rows; ++o) {
      double s = 0.0;
      for (int64_t j = 0; j < x.cols; ++j) s += double(x(t, j)) * double(w(o, j));
      y(t, o) = static_cast<float>(s);
    }
  return y;
}

// A calibration over captured inputs x (the view points into x: keep x alive).
inline Calibration calib_of(const quant::Matrix& x, const std::string& layer = "test.layer") {
  Calibration c;
  c.inputs = x.view();
  c.n_samples = x.rows;
  c.layer_name = layer;
  return c;
}

// dequantize(quantize(w)) through a scheme.
inline quant::Matrix fake_weight(const Scheme& s, const quant::Matrix& w, const Calibration* c) {
  const quant::QuantizedMatrix q = s.quantize(w.view(), c);
  quant::Matrix out(w.rows, w.cols);
  s.dequantize(q, out.mut());
  return out;
}

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

inline SchemeConfig config(const std::string& id, int bits, int64_t group,
                           std::map<std::string, std::string> opts = {},
                           quant::Mapping m = quant::Mapping::symmetric) {
  SchemeConfig c = default_config(id);
  c.params.bits = bits;
  c.params.group_size = group;
  c.params.mapping = m;
  c.options = Options(std::move(opts));
  return c;
}

// Expects f to throw and its message to contain every one of `parts`.
#define EXPECT_ERROR_MENTIONS(stmt, ...)                                                    \
  do {                                                                                      \
    const std::string msg_ = ::qeval::schemes::test::error_of([&] { stmt; });              \
    EXPECT_FALSE(msg_.empty()) << "no exception from: " #stmt;                              \
    for (const char* part_ : {__VA_ARGS__})                                                  \
      EXPECT_NE(msg_.find(part_), std::string::npos) << "'" << part_ << "' missing in: " << msg_; \
  } while (0)

}  // namespace qeval::schemes::test
