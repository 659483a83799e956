// quant/matrix.hpp — the two data types every path shares: a float matrix view and a quantized matrix.
//
// model file → torch::Tensor (fp32) → MatrixView (zero-copy) → Scheme::quantize → QuantizedMatrix
//            → dequantize / quantized matmul → torch::Tensor. quant/ and schemes/ never see LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quant/affine.hpp"

namespace qeval::quant {

// A read-only row-major float matrix over storage someone else owns. A weight matrix is
// [out_features, in_features] (rows = output channels, the innermost axis is the reduction axis);
// an activation matrix is [tokens, features].
struct MatrixView {
  const float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;  // elements between row starts (≥ cols)

  MatrixView() = default;
  MatrixView(const float* d, int64_t r, int64_t c, int64_t stride = -1)
      : data(d), rows(r), cols(c), row_stride(stride < 0 ? c : stride) {}
  const float* row(int64_t r) const { return data + r * row_stride; }
  float operator()(int64_t r, int64_t c) const { return data[r * row_stride + c]; }
  int64_t size() const { return rows * cols; }
};

// A writable row-major float matrix view.
struct MutableMatrixView {
  float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;

  MutableMatrixView() = default;
  MutableMatrixView(float* d, int64_t r, int64_t c, int64_t stride = -1)
      : data(d), rows(r), cols(c), row_stride(stride < 0 ? c : stride) {}
  float* row(int64_t r) const { return data + r * row_stride; }
  float& operator()(int64_t r, int64_t c) const { return data[r * row_stride + c]; }
  operator MatrixView() const { return MatrixView(data, rows, cols, row_stride); }
  int64_t size() const { return rows * cols; }
};

// A dense owning float matrix (tests, synthetic inputs, results of dequantize).
struct Matrix {
  std::vector<float> data;
  int64_t rows = 0;
  int64_t cols = 0;

  Matrix() = default;
  Matrix(int64_t r, int64_t c, float fill = 0.0f) : data(static_cast<size_t>(r * c), fill), rows(r), cols(c) {}
  MatrixView view() const { return MatrixView(data.data(), rows, cols); }
  MutableMatrixView mut() { return MutableMatrixView(data.data(), rows, cols); }
  float& operator()(int64_t r, int64_t c) { return data[static_cast<size_t>(r * cols + c)]; }
  float operator()(int64_t r, int64_t c) const { return data[static_cast<size_t>(r * cols + c)]; }
};

// What a code means.
enum class Format : uint8_t {
  int_affine,  // x̂ = scale · (q − zero_point)          (quant/affine.hpp)
  fp4_e2m1,    // x̂ = scale · E2M1[u], OCP MX e2m1 values  (quant/float_formats.hpp)
  fp4_bnb,     // x̂ = scale · BNB_FP4[u], bitsandbytes' fp4 table
  nf4,         // x̂ = scale · NF4[u], bitsandbytes' normal-float table
  fp8_e4m3,    // x̂ = scale · e4m3(u), saturating, OCP FP8
  fp8_e5m2,    // x̂ = scale · e5m2(u), saturating, OCP FP8
};
const char* to_string(Format f);
Format parse_format(const std::string& s);  // throws std::invalid_argument listing the names
// Code width a format requires: 4 (fp4_e2m1, fp4_bnb, nf4), 8 (fp8_*), 0 for int_affine (any of 2..8).
int format_bits(Format f);

// The result of quantizing a matrix. Codes are stored packed, row by row, as *storage codes*
// u ∈ [0, 2^bits): for int_affine u = q − qmin_storage (symmetric adds 2^(bits−1), so int4 sym
// q = −7..7 is stored as 1..15; asymmetric stores q itself); for float formats u is the code-book
// index / bit pattern. The bit order is the LSB-first bit stream of quant/layouts.h: element c of a
// row occupies bits [c·bits, c·bits + bits) of the row's bytes, and each row starts on a byte
// boundary (row_bytes = ceil(cols·bits / 8)).
struct QuantizedMatrix {
  Format format = Format::int_affine;
  QuantParams params;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> codes;        // rows × row_bytes()
  std::vector<float> scales;         // rows × groups_per_row, or 1 for kPerTensor
  std::vector<int32_t> zero_points;  // same shape as scales for asymmetric int_affine; else empty

  // Extensions used by calibration-based schemes; empty when unused.
  // perm: stored column k holds original column perm[k] (GPTQ act-order). Groups are formed over
  // the stored (permuted) order.
  std::vector<int32_t> perm;
  // col_scale: per input column factor s_j folded into the stored weights (AWQ, SmoothQuant):
  // the stored matrix approximates W·diag(s), so the effective weight is dequantized / s_j.
  std::vector<float> col_scale;

  // Elements that were NaN/±Inf in the input under NonFinitePolicy::propagate, as flat indices
  // r·cols + c (c = stored column), ascending. Their stored code is the code of 0 (int_affine: the
  // zero point; float formats: +0), so the packed stream stays valid, and dequantize writes NaN there.
  // Empty under NonFinitePolicy::error (the input had none) — the usual case.
  std::vector<int64_t> non_finite;

  int64_t row_bytes() const { return (cols * params.bits + 7) / 8; }
  int64_t groups_per_row() const;  // 1 for kPerRow and kPerTensor
  // Number of entries scales (and zero_points, when used) must have: rows × groups_per_row(), 1 per tensor.
  int64_t num_groups() const;
  // Index into scales/zero_points of the group holding (row, stored column).
  int64_t group_index(int64_t r, int64_t c) const;
  // Storage accounting for bits/weight: codes + fp16 scales + zero points at `bits` each
  // (the convention of GPTQ/AWQ papers; fp32 scales would add 16 bits per group).
  double bits_per_weight() const;
  // Throws std::invalid_argument when the parts disagree (code bytes, scale/zero-point counts, perm not
  // a permutation of 0..cols−1, col_scale size or a zero/non-finite factor, non_finite out of range, bits
  // not matching the format), naming the part and both numbers.
  void validate() const;
};

}  // namespace qeval::quant
