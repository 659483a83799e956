// quant/matrix.cpp — Format names, QuantizedMatrix group indexing, bits/weight accounting and consistency checks.
#include "quant/matrix.hpp"

#include <cmath>
#include <stdexcept>

namespace qeval::quant {

const char* to_string(Format f) {
  switch (f) {
    case Format::int_affine: return "int_affine";
    case Format::fp4_e2m1: return "fp4_e2m1";
    case Format::fp4_bnb: return "fp4_bnb";
    case Format::nf4: return "nf4";
    case Format::fp8_e4m3: return "fp8_e4m3";
    case Format::fp8_e5m2: return "fp8_e5m2";
  }
  return "?";
}

Format parse_format(const std::string& s) {
  for (Format f : {Format::int_affine, Format::fp4_e2m1, Format::fp4_bnb, Format::nf4, Format::fp8_e4m3,
                   Format::fp8_e5m2})
    if (s == to_string(f)) return f;
  throw std::invalid_argument("unknown format '" + s +
                              "'; accepted: int_affine, fp4_e2m1, fp4_bnb, nf4, fp8_e4m3, fp8_e5m2");
}

int format_bits(Format f) {
  switch (f) {
    case Format::int_affine: return 0;
    case Format::fp4_e2m1:
    case Format::fp4_bnb:
    case Format::nf4: return 4;
    case Format::fp8_e4m3:
    case Format::fp8_e5m2: return 8;
  }
  return 0;
}

int64_t QuantizedMatrix::groups_per_row() const { return params.groups_per_row(cols); }

int64_t QuantizedMatrix::num_groups() const {
  return params.group_size == kPerTensor ? 1 : rows * groups_per_row();
}

int64_t QuantizedMatrix::group_index(int64_t r, int64_t c) const {
  if (params.group_size == kPerTensor) return 0;
  if (params.group_size == kPerRow) return r;
  return r * groups_per_row() + c / params.group_size;
}

// Accounting (bits per stored weight), matching the GPTQ/AWQ papers' convention:
//   codes:        `bits` per element;
//   scales:       16 bits (fp16) per group — we keep fp32 in memory, but a deployed format stores fp16;
//   zero points:  `bits` per group, only for asymmetric int_affine (float formats have none).
// Not counted: perm (int32 per input column, shared by all rows), col_scale (folded into the previous
// op at deployment) and the non_finite list (empty for a valid model).
// Worked number: int4 asym g128 → 4 + (16 + 4)/128 = 4.15625; int4 sym g128 → 4.125; per-channel over
// 4096 columns → 4 + 16/4096 = 4.0039.
double QuantizedMatrix::bits_per_weight() const {
  const double n = static_cast<double>(rows) * static_cast<double>(cols);
  if (n <= 0.0) return static_cast<double>(params.bits);
  const bool has_zp = format == Format::int_affine && params.mapping == Mapping::asymmetric;
  const double per_group = 16.0 + (has_zp ? params.bits : 0);
  return params.bits + static_cast<double>(num_groups()) * per_group / n;
}

void QuantizedMatrix::validate() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("QuantizedMatrix: " + what); };
  params.validate();
  if (rows < 0 || cols < 0)
    fail("negative shape " + std::to_string(rows) + " x " + std::to_string(cols));
  const int fb = format_bits(format);
  if (fb != 0 && params.bits != fb)
    fail(std::string("format ") + to_string(format) + " has " + std::to_string(fb) + "-bit codes but params.bits = " +
         std::to_string(params.bits));
  params.validate_for_row_length(cols);
  const int64_t want_codes = rows * row_bytes();
  if (static_cast<int64_t>(codes.size()) != want_codes)
    fail("codes holds " + std::to_string(codes.size()) + " bytes, expected rows x row_bytes = " +
         std::to_string(rows) + " x " + std::to_string(row_bytes()) + " = " + std::to_string(want_codes));
  const int64_t g = num_groups();
  if (static_cast<int64_t>(scales.size()) != g)
    fail("scales holds " + std::to_string(scales.size()) + " values, expected " + std::to_string(g) + " (groups)");
  const bool want_zp = format == Format::int_affine && params.mapping == Mapping::asymmetric;
  if (want_zp && static_cast<int64_t>(zero_points.size()) != g)
    fail("zero_points holds " + std::to_string(zero_points.size()) + " values, expected " + std::to_string(g) +
         " (one per group, asymmetric)");
  if (!want_zp && !zero_points.empty())
    fail("zero_points holds " + std::to_string(zero_points.size()) +
         " values but must be empty (symmetric or float format)");
  if (want_zp) {
    const int32_t levels = (1 << params.bits) - 1;
    for (size_t i = 0; i < zero_points.size(); ++i)
      if (zero_points[i] < 0 || zero_points[i] > levels)
        fail("zero_points[" + std::to_string(i) + "] = " + std::to_string(zero_points[i]) + " is outside [0, " +
             std::to_string(levels) + "]");
  }
  for (size_t i = 0; i < scales.size(); ++i)
    if (!(scales[i] >= 0.0f) || std::isinf(scales[i]))
      fail("scales[" + std::to_string(i) + "] = " + std::to_string(scales[i]) + " is not a finite value >= 0");
  if (!perm.empty()) {
    if (static_cast<int64_t>(perm.size()) != cols)
      fail("perm holds " + std::to_string(perm.size()) + " entries, expected cols = " + std::to_string(cols));
    std::vector<char> seen(static_cast<size_t>(cols), 0);
    for (size_t k = 0; k < perm.size(); ++k) {
      const int32_t j = perm[k];
      if (j < 0 || j >= cols || seen[static_cast<size_t>(j)])
        fail("perm is not a permutation of 0.." + std::to_string(cols - 1) + " (perm[" + std::to_string(k) +
             "] = " + std::to_string(j) + (j >= 0 && j < cols ? " repeats)" : " is out of range)"));
      seen[static_cast<size_t>(j)] = 1;
    }
  }
  if (!col_scale.empty()) {
    if (static_cast<int64_t>(col_scale.size()) != cols)
      fail("col_scale holds " + std::to_string(col_scale.size()) + " entries, expected cols = " + std::to_string(cols));
    for (size_t j = 0; j < col_scale.size(); ++j)
      if (!std::isfinite(col_scale[j]) || col_scale[j] == 0.0f)
        fail("col_scale[" + std::to_string(j) + "] = " + std::to_string(col_scale[j]) +
             " must be finite and non-zero (the effective weight is divided by it)");
  }
  for (size_t i = 0; i < non_finite.size(); ++i) {
    if (non_finite[i] < 0 || non_finite[i] >= rows * cols)
      fail("non_finite[" + std::to_string(i) + "] = " + std::to_string(non_finite[i]) + " is outside [0, " +
           std::to_string(rows * cols) + ")");
    if (i > 0 && non_finite[i] <= non_finite[i - 1]) fail("non_finite is not strictly ascending");
  }
}

}  // namespace qeval::quant
