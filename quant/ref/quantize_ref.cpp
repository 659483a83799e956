// quant/ref/quantize_ref.cpp — scalar reference quantize/dequantize for every Format (int affine and code books).
#include "quant/ref/quantize_ref.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "quant/choose_qparams.hpp"
#include "quant/float_formats.hpp"
#include "quant/pack.hpp"
#include "quant/quantize.hpp"

namespace qeval::ref {

using quant::GroupParams;
using quant::Mapping;
using quant::NonFinitePolicy;

namespace {

constexpr float kFltMax = std::numeric_limits<float>::max();

std::string value_text(float v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return std::to_string(v);
}

// The storage code of a code book's +0: index 7 in NF4 (its table is sorted, 0 in the middle), 0 elsewhere.
uint8_t zero_code(Format f) { return f == Format::nf4 ? 7 : 0; }

// How a row splits into groups: `per_row` groups of `glen` consecutive elements (kPerRow and
// kPerTensor: one group spanning the row; kPerTensor then shares one GroupParams across all rows).
// With QuantParams::partial_last_group the last group of a row is shorter (QuantParams::group_extent).
struct Grouping {
  int64_t glen;     // elements per full group within a row (cols for per-row / per-tensor)
  int64_t per_row;  // groups per row (the last may be partial)
};
Grouping grouping(const QuantParams& p, int64_t cols) {
  if (p.group_size > 0) return {p.group_size, p.groups_per_row(cols)};
  return {cols, 1};
}

// The whole matrix as one contiguous buffer (only for kPerTensor range finding).
const float* contiguous(MatrixView x, std::vector<float>& buf) {
  if (x.row_stride == x.cols || x.rows <= 1) return x.data;
  buf.resize(static_cast<size_t>(x.rows * x.cols));
  for (int64_t r = 0; r < x.rows; ++r)
    for (int64_t c = 0; c < x.cols; ++c) buf[static_cast<size_t>(r * x.cols + c)] = x(r, c);
  return buf.data();
}

void prepare(QuantizedMatrix& q, MatrixView x, Format f, const QuantParams& p) {
  q.format = f;
  q.params = p;
  q.rows = x.rows;
  q.cols = x.cols;
  q.codes.assign(static_cast<size_t>(q.rows * q.row_bytes()), 0);
  q.scales.assign(static_cast<size_t>(q.num_groups()), 0.0f);
  q.zero_points.clear();
  if (f == Format::int_affine && p.mapping == Mapping::asymmetric)
    q.zero_points.assign(static_cast<size_t>(q.num_groups()), 0);
}

// ---- code books: scale and codes of one group ---------------------------------------------------
struct BookGroup {
  float scale = 0.0f;
  float inv = 0.0f;
};
BookGroup book_group_from_amax(double amax, Format f) {
  BookGroup g;
  double s = amax / static_cast<double>(quant::format_max(f));
  if (s > static_cast<double>(kFltMax)) s = kFltMax;
  g.scale = static_cast<float>(s);
  g.inv = g.scale > 0.0f ? 1.0f / g.scale : 0.0f;
  if (!std::isfinite(g.inv)) g.inv = 0.0f;  // denormal scale (amax below ~1e-36): the group becomes 0
  return g;
}
uint8_t book_encode(float x, const BookGroup& g, Format f) {
  if (g.inv == 0.0f) return zero_code(f);  // all-zero (or underflowing) group: every code is +0
  return quant::encode_code(f, x * g.inv);
}
float book_decode(uint8_t u, float scale, Format f) {
  const float d = quant::decode_code(f, u);
  const float v = scale * d;
  if (std::isinf(v) && std::isfinite(d)) return v > 0 ? kFltMax : -kFltMax;  // same saturation as int
  return v;
}

BookGroup choose_book_group(const float* x, int64_t n, Format f, const QuantParams& p) {
  auto err = [&](float lo, float hi) {
    const BookGroup g = book_group_from_amax(std::fmax(std::fabs(double(lo)), std::fabs(double(hi))), f);
    double e = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(x[i])) continue;
      const double d = static_cast<double>(x[i]) - static_cast<double>(book_decode(book_encode(x[i], g, f), g.scale, f));
      e += d * d;
    }
    return e;
  };
  const quant::ClipRange c = quant::choose_range(x, n, p, err);
  return book_group_from_amax(std::fmax(std::fabs(double(c.lo)), std::fabs(double(c.hi))), f);
}

}  // namespace

std::string non_finite_message(const char* what, int64_t row, int64_t col, float value) {
  return std::string(what) + " holds " + value_text(value) + " at (row " + std::to_string(row) + ", col " +
         std::to_string(col) + "); clean the input (find the layer or file that produced it) or pass "
         "non_finite=propagate, which quantizes the finite values and dequantizes NaN/Inf elements to NaN";
}

void check_view(MatrixView x, const char* what) {
  if (x.rows < 0 || x.cols < 0)
    throw std::invalid_argument(std::string(what) + ": negative shape " + std::to_string(x.rows) + " x " +
                                std::to_string(x.cols));
  if (x.row_stride < x.cols)
    throw std::invalid_argument(std::string(what) + ": row_stride " + std::to_string(x.row_stride) +
                                " is smaller than cols " + std::to_string(x.cols));
  if (x.size() > 0 && x.data == nullptr)
    throw std::invalid_argument(std::string(what) + ": null data for a " + std::to_string(x.rows) + " x " +
                                std::to_string(x.cols) + " matrix");
}

QuantizedMatrix quantize_affine_ref(MatrixView x, const QuantParams& p) {
  p.validate();
  check_view(x, "quantize_affine input");
  p.validate_for_row_length(x.cols);
  const int64_t n_bad = quant::check_finite(x, p.non_finite, "quantize_affine input");

  QuantizedMatrix q;
  prepare(q, x, Format::int_affine, p);
  if (n_bad > 0) q.non_finite.reserve(static_cast<size_t>(n_bad));
  const int qmin = p.qmin(), qmax = p.qmax();
  // Storage code u = q − qmin_storage: symmetric adds 2^(b−1) (int4: −7..7 → 1..15), asymmetric u = q.
  const int32_t offset = p.mapping == Mapping::symmetric ? (1 << (p.bits - 1)) : 0;
  const bool asym = p.mapping == Mapping::asymmetric;
  const Grouping gr = grouping(p, x.cols);

  GroupParams tensor_g;
  if (p.group_size == quant::kPerTensor) {
    std::vector<float> buf;
    tensor_g = quant::choose_group_params(contiguous(x, buf), x.size(), p);
    q.scales[0] = tensor_g.scale;
    if (asym) q.zero_points[0] = tensor_g.zero_point;
  }

  std::vector<uint8_t> u(static_cast<size_t>(x.cols));
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* row = x.row(r);
    for (int64_t j = 0; j < gr.per_row; ++j) {
      const float* gx = row + j * gr.glen;
      GroupParams g = tensor_g;
      if (p.group_size != quant::kPerTensor) {
        g = quant::choose_group_params(gx, p.group_extent(x.cols, j), p);
        const int64_t gi = q.group_index(r, j * gr.glen);
        q.scales[static_cast<size_t>(gi)] = g.scale;
        if (asym) q.zero_points[static_cast<size_t>(gi)] = g.zero_point;
      }
      for (int64_t i = 0; i < p.group_extent(x.cols, j); ++i) {
        const int64_t c = j * gr.glen + i;
        int32_t code;
        if (std::isfinite(gx[i])) {
          code = quant::quantize_one(gx[i], g, qmin, qmax, p.rounding);
        } else {
          code = g.zero_point;  // the code of 0; listed so dequantize writes NaN
          q.non_finite.push_back(r * x.cols + c);
        }
        u[static_cast<size_t>(c)] = static_cast<uint8_t>(code + offset);
      }
    }
    quant::pack_codes(u.data(), x.cols, p.bits, q.codes.data() + r * q.row_bytes());
  }
  return q;
}

QuantizedMatrix quantize_float_format_ref(MatrixView x, Format f, const QuantParams& p) {
  p.validate();
  if (f == Format::int_affine)
    throw std::invalid_argument("quantize_float_format: int_affine is not a code-book format; use quantize_affine");
  const int fb = quant::format_bits(f);
  if (p.bits != fb)
    throw std::invalid_argument(std::string("quantize_float_format: format ") + quant::to_string(f) + " has " +
                                std::to_string(fb) + "-bit codes but params.bits = " + std::to_string(p.bits) +
                                "; set bits = " + std::to_string(fb));
  if (p.mapping != Mapping::symmetric)
    throw std::invalid_argument(std::string("quantize_float_format: ") + quant::to_string(f) +
                                " uses a symmetric absmax scale; params.mapping must be symmetric");
  if (p.rounding != quant::Rounding::nearest_even)
    throw std::invalid_argument(std::string("quantize_float_format: ") + quant::to_string(f) +
                                " rounds to the nearest code (its tie rule is fixed, see quant/float_formats.hpp); "
                                "params.rounding must be nearest_even, got " + quant::to_string(p.rounding));
  check_view(x, "quantize_float_format input");
  p.validate_for_row_length(x.cols);
  const int64_t n_bad = quant::check_finite(x, p.non_finite, "quantize_float_format input");

  QuantizedMatrix q;
  prepare(q, x, f, p);
  if (n_bad > 0) q.non_finite.reserve(static_cast<size_t>(n_bad));
  const Grouping gr = grouping(p, x.cols);
  BookGroup tensor_g;
  if (p.group_size == quant::kPerTensor) {
    std::vector<float> buf;
    tensor_g = choose_book_group(contiguous(x, buf), x.size(), f, p);
    q.scales[0] = tensor_g.scale;
  }
  std::vector<uint8_t> u(static_cast<size_t>(x.cols));
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* row = x.row(r);
    for (int64_t j = 0; j < gr.per_row; ++j) {
      const float* gx = row + j * gr.glen;
      BookGroup g = tensor_g;
      if (p.group_size != quant::kPerTensor) {
        g = choose_book_group(gx, p.group_extent(x.cols, j), f, p);
        q.scales[static_cast<size_t>(q.group_index(r, j * gr.glen))] = g.scale;
      }
      for (int64_t i = 0; i < p.group_extent(x.cols, j); ++i) {
        const int64_t c = j * gr.glen + i;
        if (std::isfinite(gx[i])) {
          u[static_cast<size_t>(c)] = book_encode(gx[i], g, f);
        } else {
          u[static_cast<size_t>(c)] = zero_code(f);
          q.non_finite.push_back(r * x.cols + c);
        }
      }
    }
    quant::pack_codes(u.data(), x.cols, p.bits, q.codes.data() + r * q.row_bytes());
  }
  return q;
}

void dequantize_ref(const QuantizedMatrix& q, MutableMatrixView out) {
  q.validate();
  check_view(out, "dequantize output");
  if (out.rows != q.rows || out.cols != q.cols)
    throw std::invalid_argument("dequantize: output is " + std::to_string(out.rows) + " x " + std::to_string(out.cols) +
                                " but the quantized matrix is " + std::to_string(q.rows) + " x " +
                                std::to_string(q.cols));
  const quant::QuantParams& p = q.params;
  const bool is_int = q.format == Format::int_affine;
  const bool asym = is_int && p.mapping == Mapping::asymmetric;
  const int32_t offset = is_int && p.mapping == Mapping::symmetric ? (1 << (p.bits - 1)) : 0;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<uint8_t> u(static_cast<size_t>(q.cols));
  std::vector<float> row(static_cast<size_t>(q.cols));
  size_t nf = 0;  // cursor into the ascending non_finite list
  for (int64_t r = 0; r < q.rows; ++r) {
    quant::unpack_codes(q.codes.data() + r * q.row_bytes(), q.cols, p.bits, u.data());
    for (int64_t k = 0; k < q.cols; ++k) {
      const int64_t gi = q.group_index(r, k);
      float v;
      if (is_int) {
        GroupParams g;
        g.scale = q.scales[static_cast<size_t>(gi)];
        g.zero_point = asym ? q.zero_points[static_cast<size_t>(gi)] : 0;
        v = quant::dequantize_one(static_cast<int32_t>(u[static_cast<size_t>(k)]) - offset, g);
      } else {
        v = book_decode(u[static_cast<size_t>(k)], q.scales[static_cast<size_t>(gi)], q.format);
      }
      if (nf < q.non_finite.size() && q.non_finite[nf] == r * q.cols + k) {
        v = nan;
        ++nf;
      }
      row[static_cast<size_t>(k)] = v;
    }
    float* o = out.row(r);
    for (int64_t k = 0; k < q.cols; ++k) {
      const int64_t j = q.perm.empty() ? k : q.perm[static_cast<size_t>(k)];
      float v = row[static_cast<size_t>(k)];
      if (!q.col_scale.empty()) v /= q.col_scale[static_cast<size_t>(j)];
      o[j] = v;
    }
  }
}

}  // namespace qeval::ref
