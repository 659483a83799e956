// quant/quantize.cpp — public entry points: finite checks, backend dispatch (AVX-512 fast path → reference).
#include "quant/quantize.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "quant/cpu/dispatch.hpp"
#include "quant/pack.hpp"
#include "quant/ref/quantize_ref.hpp"

namespace qeval::quant {

namespace {

[[noreturn]] void avx512_unavailable(const char* op, const std::string& why) {
  const std::string feats = cpu::cpu_features().summary();
  throw std::runtime_error(std::string(op) + ": Backend::avx512 was requested but the AVX-512 kernel cannot run it (" +
                           why + "; CPU features: " + (feats.empty() ? "none detected" : feats) +
                           "). Use Backend::best (falls back to the reference) or Backend::ref.");
}

std::string fast_scope_quantize(const QuantParams& p) {
  return "it covers int_affine with bits 4 or 8, range minmax, rounding nearest_even, non_finite error on "
         "AVX-512 CPUs; asked for " + p.to_string() + ", range " + to_string(p.range) + ", rounding " +
         to_string(p.rounding) + ", non_finite " + to_string(p.non_finite);
}

}  // namespace

const char* to_string(Backend b) {
  switch (b) {
    case Backend::best: return "best";
    case Backend::ref: return "ref";
    case Backend::avx512: return "avx512";
  }
  return "?";
}

int64_t check_finite(MatrixView x, NonFinitePolicy policy, const char* what) {
  ref::check_view(x, what);
  int64_t count = 0;
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* row = x.row(r);
    for (int64_t c = 0; c < x.cols; ++c) {
      if (std::isfinite(row[c])) continue;
      if (policy == NonFinitePolicy::error) throw NonFiniteError(ref::non_finite_message(what, r, c, row[c]));
      ++count;
    }
  }
  return count;
}

QuantizedMatrix quantize_affine(MatrixView x, const QuantParams& p, Backend b) {
  if (b != Backend::ref) {
    // Validate first so that a bad request gets the same error whichever backend would have run.
    p.validate();
    ref::check_view(x, "quantize_affine input");
    p.validate_for_row_length(x.cols);
    QuantizedMatrix out;
    out.format = Format::int_affine;
    const cpu::FastResult r = cpu::try_quantize_affine(x, p, out);
    switch (r.status) {
      case cpu::FastStatus::done: return out;
      case cpu::FastStatus::non_finite:
        throw NonFiniteError(ref::non_finite_message("quantize_affine input", r.row, r.col, r.value));
      case cpu::FastStatus::unsupported:
        if (b == Backend::avx512) avx512_unavailable("quantize_affine", fast_scope_quantize(p));
        break;
    }
  }
  return ref::quantize_affine_ref(x, p);
}

QuantizedMatrix quantize_float_format(MatrixView x, Format f, const QuantParams& p) {
  return ref::quantize_float_format_ref(x, f, p);
}

void dequantize(const QuantizedMatrix& q, MutableMatrixView out, Backend b) {
  if (b != Backend::ref) {
    q.validate();
    ref::check_view(out, "dequantize output");
    if (out.rows != q.rows || out.cols != q.cols)
      throw std::invalid_argument("dequantize: output is " + std::to_string(out.rows) + " x " +
                                  std::to_string(out.cols) + " but the quantized matrix is " + std::to_string(q.rows) +
                                  " x " + std::to_string(q.cols));
    // The fast kernel does not undo perm/col_scale (quant/cpu/dispatch.hpp), so it is only asked
    // when there is nothing to undo; the non_finite list is applied here afterwards.
    const bool plain = q.format == Format::int_affine && q.perm.empty() && q.col_scale.empty();
    cpu::FastResult r;
    if (plain) r = cpu::try_dequantize(q, out);
    if (r.status == cpu::FastStatus::done) {
      const float nan = std::numeric_limits<float>::quiet_NaN();
      for (int64_t idx : q.non_finite) out(idx / q.cols, idx % q.cols) = nan;
      return;
    }
    if (b == Backend::avx512)
      avx512_unavailable("dequantize",
                         std::string("it covers int_affine bits 4 or 8 without perm/col_scale on AVX-512 CPUs; asked "
                                     "for ") + to_string(q.format) + " " + q.params.to_string() +
                             (q.perm.empty() ? "" : " with perm") + (q.col_scale.empty() ? "" : " with col_scale"));
  }
  ref::dequantize_ref(q, out);
}

void fake_quantize_affine(MatrixView x, const QuantParams& p, MutableMatrixView out, Backend b) {
  // Quantize completely before writing: out may alias x.
  const QuantizedMatrix q = quantize_affine(x, p, b);
  dequantize(q, out, b);
}

void unpack_row(const QuantizedMatrix& q, int64_t r, uint8_t* out) {
  if (r < 0 || r >= q.rows)
    throw std::invalid_argument("unpack_row: row " + std::to_string(r) + " is outside [0, " + std::to_string(q.rows) +
                                ")");
  const int64_t need = (r + 1) * q.row_bytes();
  if (static_cast<int64_t>(q.codes.size()) < need)
    throw std::invalid_argument("unpack_row: codes holds " + std::to_string(q.codes.size()) + " bytes, row " +
                                std::to_string(r) + " needs " + std::to_string(need));
  unpack_codes(q.codes.data() + r * q.row_bytes(), q.cols, q.params.bits, out);
}

}  // namespace qeval::quant
