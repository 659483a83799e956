// schemes/llm_int8/llm_int8.cpp — LLM.int8(): fp32 outlier columns + vector-wise int8 for the rest (see .hpp),
// with per-layer outlier statistics for the report.
#include "schemes/llm_int8/llm_int8.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/cpu/dispatch.hpp"
#include "quant/quantize.hpp"
#include "schemes/common/calib_common.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {

namespace {

// Codes of one matrix quantized per row, symmetric: q[r][c] ∈ [−(2^(b−1) − 1), 2^(b−1) − 1] and the row scales.
struct RowCodes {
  std::vector<int8_t> q;
  std::vector<float> scale;
};
RowCodes row_codes(const quant::Matrix& m, int bits) {
  quant::QuantParams p;
  p.bits = bits;
  p.group_size = quant::kPerRow;
  p.mapping = quant::Mapping::symmetric;
  RowCodes out;
  out.q.resize(static_cast<size_t>(m.rows * m.cols));
  if (m.cols == 0) {
    out.scale.assign(static_cast<size_t>(m.rows), 0.0f);
    return out;
  }
  const quant::QuantizedMatrix qm = quant::quantize_affine(m.view(), p);
  out.scale = qm.scales;
  const int offset = 1 << (bits - 1);  // symmetric storage code u = q + 2^(b−1)
  std::vector<uint8_t> u(static_cast<size_t>(m.cols));
  for (int64_t r = 0; r < m.rows; ++r) {
    quant::unpack_row(qm, r, u.data());
    for (int64_t c = 0; c < m.cols; ++c)
      out.q[static_cast<size_t>(r * m.cols + c)] = static_cast<int8_t>(static_cast<int>(u[static_cast<size_t>(c)]) - offset);
  }
  return out;
}

}  // namespace

std::vector<int64_t> llm_int8_outlier_columns(quant::MatrixView x, double threshold) {
  std::vector<int64_t> outl;
  for (int64_t j = 0; j < x.cols; ++j) {
    bool big = false;
    for (int64_t r = 0; r < x.rows && !big; ++r) big = std::fabs(static_cast<double>(x(r, j))) > threshold;
    if (big) outl.push_back(j);
  }
  return outl;
}

namespace {

// The columns of m listed in `cols`, compacted.
quant::Matrix gather_columns(quant::MatrixView m, const std::vector<int64_t>& cols) {
  const int64_t n = static_cast<int64_t>(cols.size());
  quant::Matrix out(m.rows, n);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t k = 0; k < n; ++k) out(r, k) = m(r, cols[static_cast<size_t>(k)]);
  return out;
}

// acc [t, out] = Σ_k a[r][k]·b[o][k], exact: int32 through the dispatched kernel for k ≤ 131071 (|q| ≤ 127:
// 127²·131071 < 2^31), else (or when no fast kernel runs) the scalar loop in int64.
void gemm_codes(int64_t t, int64_t out, int64_t k, const std::vector<int8_t>& a, const std::vector<int8_t>& b,
                std::vector<int32_t>& acc) {
  const cpu::FastResult fr =
      k <= 131071 ? cpu::try_gemm_s8s8_s32(t, out, k, a.data(), k, b.data(), k, acc.data(), out) : cpu::FastResult{};
  if (fr.status == cpu::FastStatus::done) return;
  for (int64_t r = 0; r < t; ++r)
    for (int64_t o = 0; o < out; ++o) {
      const int8_t* pa = a.data() + r * k;
      const int8_t* pb = b.data() + o * k;
      int64_t s = 0;
      for (int64_t i = 0; i < k; ++i) s += static_cast<int32_t>(pa[i]) * static_cast<int32_t>(pb[i]);
      acc[static_cast<size_t>(r * out + o)] = static_cast<int32_t>(s);
    }
}

}  // namespace

Int8Part llm_int8_regular_part(quant::MatrixView x, quant::MatrixView w, const std::vector<int64_t>& regular,
                               int bits) {
  const int64_t t = x.rows, out = w.rows, nr = static_cast<int64_t>(regular.size());
  const RowCodes qx = row_codes(gather_columns(x, regular), bits), qw = row_codes(gather_columns(w, regular), bits);
  Int8Part part;
  part.acc.assign(static_cast<size_t>(t * out), 0);
  if (nr > 0) gemm_codes(t, out, nr, qx.q, qw.q, part.acc);
  part.x_scale = qx.scale;
  part.w_scale = qw.scale;
  return part;
}

void llm_int8_epilogue(quant::MatrixView x, quant::MatrixView w, const std::vector<int64_t>& outliers,
                       const Int8Part& part, quant::MutableMatrixView y) {
  const int64_t out = w.rows;
  for (int64_t r = 0; r < x.rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double v = static_cast<double>(part.acc[static_cast<size_t>(r * out + o)]) *
                 part.x_scale[static_cast<size_t>(r)] * part.w_scale[static_cast<size_t>(o)];
      for (int64_t j : outliers) v += static_cast<double>(x(r, j)) * static_cast<double>(w(o, j));
      y(r, o) = static_cast<float>(v);
    }
}

Int8SplitStats llm_int8_matmul(quant::MatrixView x, quant::MatrixView w, double threshold, int bits,
                               quant::MutableMatrixView y) {
  if (x.cols != w.cols || y.rows != x.rows || y.cols != w.rows)
    throw std::invalid_argument("llm_int8: x is " + std::to_string(x.rows) + " x " + std::to_string(x.cols) +
                                ", w is " + std::to_string(w.rows) + " x " + std::to_string(w.cols) + ", y is " +
                                std::to_string(y.rows) + " x " + std::to_string(y.cols) + " (need y = x·wᵀ)");
  if (!(threshold > 0.0))
    throw std::invalid_argument("llm_int8: threshold " + std::to_string(threshold) +
                                " must be > 0 (|x| above it marks an outlier feature; the paper uses 6.0)");
  if (bits < quant::kMinBits || bits > quant::kMaxBits)
    throw std::invalid_argument("llm_int8: bits " + std::to_string(bits) + " outside 2..8");
  quant::check_finite(x, quant::NonFinitePolicy::error, "llm_int8 input");
  quant::check_finite(w, quant::NonFinitePolicy::error, "llm_int8 weight");
  const std::vector<int64_t> outl = llm_int8_outlier_columns(x, threshold);
  std::vector<int64_t> reg;
  for (int64_t j = 0, k = 0; j < x.cols; ++j) {
    if (k < static_cast<int64_t>(outl.size()) && outl[static_cast<size_t>(k)] == j) {
      ++k;
    } else {
      reg.push_back(j);
    }
  }
  llm_int8_epilogue(x, w, outl, llm_int8_regular_part(x, w, reg, bits), y);
  Int8SplitStats st;
  st.outlier_columns = static_cast<int64_t>(outl.size());
  st.columns = x.cols;
  return st;
}

namespace {

class LlmInt8 final : public Scheme {
 public:
  static constexpr double kDefaultThreshold = 6.0;  // the paper's outlier threshold

  explicit LlmInt8(const SchemeConfig& cfg) : Scheme(cfg) {
    const std::string id = cfg.scheme;
    cfg.options.check_known(id, {"threshold"});
    threshold_ = cfg.options.get_double(id, "threshold", kDefaultThreshold);
    if (!(threshold_ > 0.0))
      throw std::invalid_argument("scheme 'llm_int8': option threshold=" + cfg.options.items().at("threshold") +
                                  " must be > 0 (|x| above it marks an outlier feature computed in fp32; the paper "
                                  "uses 6.0)");
    if (cfg.params.group_size != quant::kPerRow)
      throw std::invalid_argument("scheme 'llm_int8': group size " + std::to_string(cfg.params.group_size) +
                                  " is not vector-wise; LLM.int8 uses one scale per token and per output channel "
                                  "(group size 0)");
    if (cfg.params.mapping != quant::Mapping::symmetric)
      throw std::invalid_argument("scheme 'llm_int8': the int8 product needs symmetric codes (zero points would "
                                  "need correction terms); use --sym");
    if (cfg.params.range != quant::RangeMethod::minmax || cfg.params.clip_ratio != 1.0)
      throw std::invalid_argument("scheme 'llm_int8': vector-wise absmax quantization uses range minmax with "
                                  "clip_ratio 1 (outliers are handled by the fp32 split, not by clipping)");
  }
  SchemeTraits traits() const override {
    SchemeTraits t;
    t.target = Target::linear;
    t.outlier_columns = true;
    t.activation = ActivationQuant::dynamic;  // per-token int8 codes of the regular features at every call
    return t;
  }

  // The stored weight of the regular part: per-output-channel codes.
  quant::QuantizedMatrix quantize(quant::MatrixView w, const Calibration*) const override {
    return quant::quantize_affine(w, params());
  }

  std::vector<int64_t> outlier_columns(quant::MatrixView x, const Calibration* c) const override {
    std::vector<int64_t> outl = llm_int8_outlier_columns(x, threshold_);
    if (c) record(c, Int8SplitStats{static_cast<int64_t>(outl.size()), x.cols});
    return outl;
  }

  bool linear(quant::MatrixView x, quant::MatrixView w, quant::MutableMatrixView y,
              const Calibration* c) const override {
    record(c, llm_int8_matmul(x, w, threshold_, params().bits, y));
    return true;
  }

  // Per layer: calls, outlier_columns and columns (summed over calls), outlier_fraction (their ratio: the
  // mean fraction of outlier features per call, weighted by width), last_ and max_outlier_fraction.
  std::map<std::string, std::map<std::string, double>> run_stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  // One call's split, counted under the layer's name.
  void record(const Calibration* c, const Int8SplitStats& st) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto& s = stats_[c ? c->layer_name : std::string()];
    s["calls"] += 1;
    s["outlier_columns"] += static_cast<double>(st.outlier_columns);
    s["columns"] += static_cast<double>(st.columns);
    s["outlier_fraction"] = s["outlier_columns"] / s["columns"];
    s["last_outlier_fraction"] = st.outlier_fraction();
    s["max_outlier_fraction"] = std::max(s["max_outlier_fraction"], st.outlier_fraction());
  }

  double threshold_ = kDefaultThreshold;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::map<std::string, double>> stats_;
};

}  // namespace

std::unique_ptr<Scheme> make_scheme_llm_int8(const SchemeConfig& cfg) { return std::make_unique<LlmInt8>(cfg); }

}  // namespace qeval::schemes
