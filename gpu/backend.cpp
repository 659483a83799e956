// gpu/backend.cpp — host-matrix wrappers around gpu/ops.hpp, the OpenCL ComputeBackend and the backend factory.
#include "gpu/backend.hpp"

#include <cstdlib>
#include <stdexcept>

#include "quant/quantize.hpp"

namespace qeval::gpu {

namespace {

std::vector<int32_t> read_sums(Device& d, const DevQuantized& q) {
  std::vector<int32_t> s(static_cast<size_t>(q.rows * q.gpr));
  if (q.sums && !s.empty()) q.sums.read(d.queue(), s.data(), s.size() * 4);
  return s;
}

}  // namespace

quant::QuantizedMatrix quantize_cl(Device& d, quant::MatrixView x, const quant::QuantParams& p,
                                   std::vector<int32_t>* group_sums) {
  ActQuantSpec s = ActQuantSpec::from_params(p);
  s.with_sums = group_sums != nullptr;
  const DevQuantized q = quantize_rows(d, upload(d, x), s);
  if (group_sums) *group_sums = read_sums(d, q);
  quant::QuantizedMatrix out = download(d, q);
  out.params = p;
  return out;
}

quant::QuantizedMatrix quantize_f16_cl(Device& d, const uint16_t* x, int64_t rows, int64_t cols, int64_t ld,
                                       const quant::QuantParams& p, std::vector<int32_t>* group_sums) {
  ActQuantSpec s = ActQuantSpec::from_params(p);
  s.with_sums = group_sums != nullptr;
  const DevQuantized q = quantize_rows(d, upload_f16(d, x, rows, cols, ld), s);
  if (group_sums) *group_sums = read_sums(d, q);
  quant::QuantizedMatrix out = download(d, q);
  out.params = p;
  return out;
}

void dequantize_cl(Device& d, const quant::QuantizedMatrix& q, quant::MutableMatrixView out) {
  if (out.rows != q.rows || out.cols != q.cols)
    throw std::invalid_argument("dequantize_cl: output is " + std::to_string(out.rows) + " x " +
                                std::to_string(out.cols) + " but the quantized matrix is " + std::to_string(q.rows) +
                                " x " + std::to_string(q.cols));
  const DevQuantized dq = upload(d, q);
  DevMatrix o = alloc_matrix(d, q.rows, q.cols);
  dequantize(d, dq, o.buf, o.ld);
  const quant::Matrix h = download(d, o);
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c) out(r, c) = h(r, c);
}

void gemm_s8s8_s32_cl(Device& d, int64_t M, int64_t N, int64_t K, const int8_t* A, int64_t lda, const int8_t* B,
                      int64_t ldb, int32_t* C, int64_t ldc, const GemmOptions& o) {
  if (M < 0 || N < 0 || K < 0 || lda < K || ldb < K || ldc < N)
    throw std::invalid_argument("gemm_s8s8_s32_cl: negative size or a stride below its row length");
  if (M == 0 || N == 0) return;
  if ((M * K > 0 && !A) || (N * K > 0 && !B) || !C) throw std::invalid_argument("gemm_s8s8_s32_cl: null pointer");
  Buffer bA(d.context(), static_cast<size_t>(M * lda)), bB(d.context(), static_cast<size_t>(N * ldb));
  Buffer bC(d.context(), static_cast<size_t>(M * ldc) * 4);
  bA.write(d.queue(), A, static_cast<size_t>(M * lda));
  bB.write(d.queue(), B, static_cast<size_t>(N * ldb));
  gemm_s8s8_s32(d, M, N, K, bA, lda, bB, ldb, bC, ldc, o);
  std::vector<int32_t> c(static_cast<size_t>(M * ldc));
  bC.read(d.queue(), c.data(), c.size() * 4);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) C[m * ldc + n] = c[static_cast<size_t>(m * ldc + n)];
}

quant::Matrix matmul_quantized_cl(Device& d, const quant::QuantizedMatrix& a, const quant::QuantizedMatrix& w,
                                  const GemmOptions& o) {
  const DevQuantized da = upload(d, a);
  DevQuantized dw = upload(d, w);
  DevMatrix y = alloc_matrix(d, a.rows, w.rows);
  matmul_quantized(d, da, dw, y.buf, y.ld, o);
  return download(d, y);
}

quant::Matrix matmul_a16_cl(Device& d, quant::MatrixView x, const quant::QuantizedMatrix& w) {
  const DevMatrix dx = upload(d, x);
  const DevQuantized dw = upload(d, w);
  DevMatrix y = alloc_matrix(d, x.rows, w.rows);
  matmul_a16(d, dx, dw, y.buf, y.ld);
  return download(d, y);
}

Tier default_gemm_tier(Device& d) {
  const char* t = std::getenv("QEVAL_CL_TIER");
  if (!t || !*t) return d.best_tier();
  const Tier tier = parse_tier(t);
  if (!d.usable(tier))
    throw std::runtime_error(std::string("QEVAL_CL_TIER=") + t + ": tier not usable on " + d.info().label() + ": " +
                             d.tier(tier).detail);
  return tier;
}

// ---- the OpenCL ComputeBackend ------------------------------------------------------------------------

namespace {

class OpenClBackend final : public ComputeBackend {
 public:
  explicit OpenClBackend(std::shared_ptr<Device> d) : d_(std::move(d)), tier_(default_gemm_tier(*d_)) {}
  std::string name() const override { return "opencl"; }
  std::string details() const override {
    const TierState& s = d_->tier(tier_);
    return "opencl: " + d_->info().label() + ", GEMM tier " + to_string(tier_) +
           (s.variant.empty() ? "" : "/" + s.variant);
  }

  void fake_quantize_weight(quant::MatrixView w, quant::Format format, const quant::QuantParams& p,
                            quant::MutableMatrixView out) override {
    quant::QuantizedMatrix q;
    bool on_device = format == quant::Format::int_affine && p.range == quant::RangeMethod::minmax &&
                     p.group_size != quant::kPerTensor;
    if (on_device) {
      q = quantize_cl(*d_, w, p);
    } else {  // ranges/formats the device does not quantize: the CPU quantizes, the device dequantizes
      q = format == quant::Format::int_affine ? quant::quantize_affine(w, p) : quant::quantize_float_format(w, format, p);
    }
    dequantize_cl(*d_, q, out);
  }

  void matmul(quant::MatrixView x, const quant::QuantizedMatrix& w, const std::optional<ActivationQuant>& act,
              quant::MutableMatrixView y) override {
    if (y.rows != x.rows || y.cols != w.rows)
      throw std::invalid_argument("matmul: output must be x.rows × w.rows");
    quant::Matrix r;
    const bool int_path = act && w.format == quant::Format::int_affine && (w.params.bits == 8 || w.params.bits == 4) &&
                          w.perm.empty() && w.col_scale.empty() && w.non_finite.empty();
    if (int_path) {
      quant::QuantParams ap;
      ap.bits = 8;
      ap.group_size = act->group_size;
      ap.mapping = act->mapping;
      const quant::QuantizedMatrix a = quantize_cl(*d_, x, ap);
      GemmOptions o;
      o.tier = (w.params.bits == 4 && (tier_ == Tier::t2 || tier_ == Tier::t3)) ? Tier::t0 : tier_;
      r = matmul_quantized_cl(*d_, a, w, o);
    } else if (act) {  // activations quantized, weights not integer: fake-quantize X, then the float path
      quant::QuantParams ap;
      ap.bits = 8;
      ap.group_size = act->group_size;
      ap.mapping = act->mapping;
      quant::Matrix xq(x.rows, x.cols);
      dequantize_cl(*d_, quantize_cl(*d_, x, ap), xq.mut());
      r = float_matmul(xq.view(), w);
    } else {
      r = float_matmul(x, w);
    }
    for (int64_t i = 0; i < y.rows; ++i)
      for (int64_t j = 0; j < y.cols; ++j) y(i, j) = r(i, j);
  }

 private:
  quant::Matrix float_matmul(quant::MatrixView x, const quant::QuantizedMatrix& w) {
    if (w.perm.empty() && w.col_scale.empty() && w.non_finite.empty()) return matmul_a16_cl(*d_, x, w);
    quant::Matrix wd(w.rows, w.cols);
    if (!w.col_scale.empty() && !d_->info().correctly_rounded_div) quant::dequantize(w, wd.mut());  // exact on the CPU
    else dequantize_cl(*d_, w, wd.mut());
    const DevMatrix dx = upload(*d_, x), dw = upload(*d_, wd.view());
    DevMatrix y = alloc_matrix(*d_, x.rows, w.rows);
    matmul_f32(*d_, dx, dw, y.buf, y.ld);
    return download(*d_, y);
  }

  std::shared_ptr<Device> d_;
  Tier tier_ = Tier::t0;
};

}  // namespace

std::unique_ptr<ComputeBackend> make_opencl_backend(const std::string& selector) {
  return std::make_unique<OpenClBackend>(open_device(selector));
}

}  // namespace qeval::gpu
