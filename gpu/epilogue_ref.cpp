// gpu/epilogue_ref.cpp — host replica of the int8-GEMM epilogue (gpu/epilogue_ref.hpp).
#include "gpu/epilogue_ref.hpp"

#include <algorithm>

#include "quant/pack.hpp"

namespace qeval::gpu {

namespace {

// The integer factor q − zero_point of every element (x̂ = scale·(q − zp)), row-major.
std::vector<int32_t> centered(const quant::QuantizedMatrix& q) {
  std::vector<int32_t> out(static_cast<size_t>(q.rows * q.cols));
  const bool asym = q.params.mapping == quant::Mapping::asymmetric;
  const int off = asym ? 0 : (1 << (q.params.bits - 1));
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c) {
      const int u = quant::packed_code_at(q.codes.data() + r * q.row_bytes(), c, q.params.bits);
      const int zp = asym ? q.zero_points[static_cast<size_t>(q.group_index(r, c))] : 0;
      out[static_cast<size_t>(r * q.cols + c)] = u - off - zp;
    }
  return out;
}

int64_t glen(const quant::QuantizedMatrix& q) { return q.params.group_size > 0 ? q.params.group_size : q.cols; }

}  // namespace

EpilogueRef::EpilogueRef(const quant::QuantizedMatrix& a, const quant::QuantizedMatrix& w)
    : a_(a), w_(w), ca_(centered(a)), cw_(centered(w)) {
  seg_ = std::min(glen(a), glen(w));
  nseg_ = seg_ > 0 ? (a.cols + seg_ - 1) / seg_ : 1;
}

float EpilogueRef::at(int64_t m, int64_t n) const {
  const int64_t K = a_.cols;
  float y = 0.0f;
  for (int64_t s = 0; s < nseg_; ++s) {
    int64_t c = 0;
    const int64_t k1 = std::min(K, (s + 1) * seg_);
    for (int64_t k = s * seg_; k < k1; ++k)
      c += static_cast<int64_t>(ca_[static_cast<size_t>(m * K + k)]) * cw_[static_cast<size_t>(n * K + k)];
    const float sa = a_.scales[static_cast<size_t>(a_.group_index(m, s * seg_))];
    const float sw = w_.scales[static_cast<size_t>(w_.group_index(n, s * seg_))];
    y = y + (sa * sw) * static_cast<float>(c);
  }
  return y;
}

}  // namespace qeval::gpu
