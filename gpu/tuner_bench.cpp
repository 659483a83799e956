// gpu/tuner_bench.cpp — the tuner's shape classes (gpu/tuner_bench.hpp): quantize (per token, grouped int4),
// int8 GEMM (prefill, decode M = 1 and 16) and W4A8, each with its inputs, exactness check and timing.
#include "gpu/tuner_bench.hpp"

#include <algorithm>
#include <functional>

#include "gpu/epilogue_ref.hpp"
#include "gpu/ops.hpp"
#include "quant/ref/gemm_ref.hpp"
#include "quant/ref/quantize_ref.hpp"
#include "quant/rng.hpp"

namespace qeval::gpu {

namespace {

constexpr int kSamples = 2048;  // sampled outputs of a timed GEMM checked against the reference

double median_seconds(const std::function<void(Event*)>& run, int reps) {
  Event warm;
  run(&warm);
  event_seconds(warm.get());  // waits
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    Event e;
    run(&e);
    t.push_back(event_seconds(e.get()));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::vector<int8_t> random_s8(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int8_t> v(n);
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t r = rng.next_u64();
    for (size_t j = 0; j < 8 && i + j < n; ++j) v[i + j] = static_cast<int8_t>(r >> (8 * j));
  }
  return v;
}

// Floats in [-4, 4) with 29 random bits each (cheap for 64 M values; the distribution does not matter here).
quant::Matrix random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  Rng rng(seed);
  quant::Matrix m(rows, cols);
  for (auto& v : m.data) v = static_cast<float>(static_cast<int32_t>(rng.next_u64() >> 32)) * 0x1p-29f;
  return m;
}

Buffer device_bytes(Device& d, const void* p, size_t n) {
  Buffer b(d.context(), n);
  b.write(d.queue(), p, n);
  return b;
}

std::string compare_quantized(const quant::QuantizedMatrix& got, const quant::QuantizedMatrix& want) {
  if (got.codes != want.codes) return "codes differ from ref::quantize_affine_ref";
  if (got.scales != want.scales) return "scales differ from ref::quantize_affine_ref";
  if (got.zero_points != want.zero_points) return "zero points differ from ref::quantize_affine_ref";
  return "";
}

// ---- quantize ---------------------------------------------------------------------------------------------

class QuantizeBench final : public ClassBench {
 public:
  QuantizeBench(ShapeClass c, Device& d, bool large) : d_(d), vs_(quantize_catalogue(c, d.info())) {
    p_.bits = c == ShapeClass::quantize_per_token ? 8 : 4;
    p_.group_size = c == ShapeClass::quantize_per_token ? quant::kPerRow : 128;
    p_.mapping = quant::Mapping::symmetric;
    p_.partial_last_group = true;
    rows_ = large ? 16384 : 512;
    x_ = random_matrix(rows_, kCols, 0x5eed);
    dx_ = upload(d, x_.view());
    want_ = ref::quantize_affine_ref(x_.view(), p_);
    ragged_ = random_matrix(37, 576, 0x5eee);  // 576 = 4·128 + 64: a partial last group
    ragged_want_ = ref::quantize_affine_ref(ragged_.view(), p_);
  }
  size_t size() const override { return vs_.size(); }
  std::string name(size_t i) const override { return vs_[i].name(); }
  nlohmann::json variant(size_t i) const override { return to_json(vs_[i]); }
  std::string verify(size_t i) override {
    const ActQuantSpec s = ActQuantSpec::from_params(p_);
    std::string r = compare_quantized(download(d_, quantize_rows(d_, dx_, s, nullptr, nullptr, &vs_[i])), want_);
    if (!r.empty()) return r + " (timed shape)";
    const DevMatrix rx = upload(d_, ragged_.view());
    r = compare_quantized(download(d_, quantize_rows(d_, rx, s, nullptr, nullptr, &vs_[i])), ragged_want_);
    return r.empty() ? "" : r + " (37×576)";
  }
  double seconds(size_t i, int reps) override {
    const ActQuantSpec s = ActQuantSpec::from_params(p_);
    return median_seconds([&](Event* e) { quantize_rows(d_, dx_, s, nullptr, e, &vs_[i]); }, reps);
  }
  double figure(double sec) const override {  // bytes read + written: input, codes, scales
    const double groups = static_cast<double>(rows_) * (p_.group_size > 0 ? kCols / p_.group_size : 1);
    return (rows_ * kCols * 4.0 + rows_ * kCols * p_.bits / 8.0 + groups * 4.0) / sec / 1e9;
  }
  const char* unit() const override { return "GB/s"; }
  const char* baseline() const override { return "copy"; }
  nlohmann::json shape() const override {
    const std::string what = p_.group_size > 0 ? "int4 sym g128, fp32 in" : "int8 sym per token, fp32 in";
    return {{"M", rows_}, {"K", kCols}, {"what", what}};
  }

 private:
  static constexpr int64_t kCols = 4096;
  Device& d_;
  std::vector<QuantizeVariant> vs_;
  quant::QuantParams p_;
  int64_t rows_ = 0;
  quant::Matrix x_, ragged_;
  DevMatrix dx_;
  quant::QuantizedMatrix want_, ragged_want_;
};

// ---- int8 GEMM (int32 output) ---------------------------------------------------------------------------

class GemmBench final : public ClassBench {
 public:
  GemmBench(ShapeClass c, Device& d, bool large) : c_(c), d_(d), vs_(gemm_catalogue(c, d.info())) {
    const bool prefill = c == ShapeClass::gemm_prefill;
    M_ = prefill ? (large ? 4096 : 256) : (c == ShapeClass::gemm_decode_m1 ? 1 : 16);
    N_ = prefill ? (large ? 4096 : 256) : (large ? 16384 : 2048);
    K_ = prefill ? (large ? 4096 : 1024) : (large ? 8192 : 2048);
    A_ = random_s8(static_cast<size_t>(M_ * K_), 11);
    W_ = random_s8(static_cast<size_t>(N_ * K_), 12);
    dA_ = device_bytes(d, A_.data(), A_.size());
    dW_ = device_bytes(d, W_.data(), W_.size());
    dC_ = Buffer(d.context(), static_cast<size_t>(M_ * N_) * 4);
    rM_ = prefill ? 130 : M_;
    rA_ = random_s8(static_cast<size_t>(rM_ * kRaggedK), 13);
    rW_ = random_s8(static_cast<size_t>(kRaggedN * kRaggedK), 14);
    rWant_.resize(static_cast<size_t>(rM_ * kRaggedN));
    ref::gemm_s8s8_s32_ref(rM_, kRaggedN, kRaggedK, rA_.data(), kRaggedK, rW_.data(), kRaggedK, rWant_.data(),
                           kRaggedN);
  }
  size_t size() const override { return vs_.size(); }
  std::string name(size_t i) const override { return vs_[i].name(); }
  nlohmann::json variant(size_t i) const override { return to_json(vs_[i]); }
  std::string verify(size_t i) override;
  double seconds(size_t i, int reps) override {
    const GemmOptions o = options(i);
    return median_seconds([&](Event* e) { gemm_s8s8_s32(d_, M_, N_, K_, dA_, K_, dW_, K_, dC_, N_, o, 0, 0, e); },
                          reps);
  }
  double figure(double sec) const override {
    if (c_ == ShapeClass::gemm_prefill) return 2.0 * M_ * N_ * K_ / sec / 1e12;
    return (static_cast<double>(N_) * K_ + static_cast<double>(M_) * K_) / sec / 1e9;  // weights streamed once
  }
  const char* unit() const override { return c_ == ShapeClass::gemm_prefill ? "TOPS" : "GB/s"; }
  const char* baseline() const override { return c_ == ShapeClass::gemm_prefill ? "dot4_peak" : "copy"; }
  nlohmann::json shape() const override { return {{"M", M_}, {"N", N_}, {"K", K_}, {"what", "int8 x int8 -> int32"}}; }

 private:
  static constexpr int64_t kRaggedN = 300, kRaggedK = 4144;  // not multiples of any tile, K tail of 48
  GemmOptions options(size_t i) const {
    GemmOptions o;
    o.tier = Tier::t0;
    o.variant = vs_[i];
    return o;
  }
  ShapeClass c_;
  Device& d_;
  std::vector<GemmVariant> vs_;
  int64_t M_ = 0, N_ = 0, K_ = 0, rM_ = 0;
  std::vector<int8_t> A_, W_, rA_, rW_;
  std::vector<int32_t> rWant_;
  Buffer dA_, dW_, dC_;
};

std::string GemmBench::verify(size_t i) {
  const GemmOptions o = options(i);
  std::vector<int32_t> got(rWant_.size(), 0x5EED5EED);
  {
    const Buffer a = device_bytes(d_, rA_.data(), rA_.size()), w = device_bytes(d_, rW_.data(), rW_.size());
    const Buffer c(d_.context(), got.size() * 4);
    gemm_s8s8_s32(d_, rM_, kRaggedN, kRaggedK, a, kRaggedK, w, kRaggedK, c, kRaggedN, o);
    c.read(d_.queue(), got.data(), got.size() * 4);
  }
  if (got != rWant_) return "int32 accumulators differ from ref::gemm_s8s8_s32_ref (" + std::to_string(rM_) + "x300x4144)";
  std::vector<int32_t> c(static_cast<size_t>(M_ * N_), 0x5EED5EED);
  dC_.write(d_.queue(), c.data(), c.size() * 4);  // sentinel: every element must be written
  gemm_s8s8_s32(d_, M_, N_, K_, dA_, K_, dW_, K_, dC_, N_, o);
  dC_.read(d_.queue(), c.data(), c.size() * 4);
  Rng rng(0x5a3b1e);
  for (int s = 0; s < kSamples; ++s) {
    const int64_t m = static_cast<int64_t>(rng.below(static_cast<uint64_t>(M_)));
    const int64_t n = static_cast<int64_t>(rng.below(static_cast<uint64_t>(N_)));
    int32_t want = 0;
    ref::gemm_s8s8_s32_ref(1, 1, K_, A_.data() + m * K_, K_, W_.data() + n * K_, K_, &want, 1);
    if (c[static_cast<size_t>(m * N_ + n)] != want)
      return "C[" + std::to_string(m) + "][" + std::to_string(n) + "] of the timed shape differs from the reference";
  }
  return "";
}

// ---- W4A8 (int4 g128 weights, per-token int8 activations, float epilogue) --------------------------------

quant::QuantizedMatrix random_quantized(int64_t rows, int64_t cols, int bits, int64_t g, uint64_t seed) {
  quant::QuantizedMatrix q;
  q.params.bits = bits;
  q.params.group_size = g;
  q.params.mapping = quant::Mapping::symmetric;
  q.rows = rows;
  q.cols = cols;
  Rng rng(seed);
  q.codes.resize(static_cast<size_t>(rows * q.row_bytes()));
  for (auto& b : q.codes) b = static_cast<uint8_t>(rng.below(256));
  if (bits == 8)
    for (auto& b : q.codes) b = b == 0 ? 1 : b;  // symmetric int8 codes are 1..255 (q = u − 128 ≥ −127)
  else
    for (auto& b : q.codes) b = static_cast<uint8_t>(((b & 0xF) == 0 ? 1 : b & 0xF) | ((b >> 4) == 0 ? 0x10 : b & 0xF0));
  q.scales.resize(static_cast<size_t>(q.num_groups()));
  for (auto& s : q.scales) s = static_cast<float>(0.001 + 0.01 * rng.uniform(0.0, 1.0));
  return q;
}

class W4A8Bench final : public ClassBench {
 public:
  W4A8Bench(Device& d, bool large) : d_(d), vs_(gemm_catalogue(ShapeClass::matmul_w4a8, d.info())) {
    M_ = N_ = large ? 4096 : 256;
    K_ = large ? 4096 : 1024;
    a_ = random_quantized(M_, K_, 8, quant::kPerRow, 21);
    w_ = random_quantized(N_, K_, 4, 128, 22);
    da_ = upload(d, a_);
    dw_ = upload(d, w_);
    dY_ = Buffer(d.context(), static_cast<size_t>(M_ * N_) * 4);
    ra_ = random_quantized(70, 512, 8, quant::kPerRow, 23);
    rw_ = random_quantized(72, 512, 4, 128, 24);
    want_ = std::make_unique<EpilogueRef>(a_, w_);  // once: centered codes of 2 × 16 M elements
    ragged_want_ = std::make_unique<EpilogueRef>(ra_, rw_);
  }
  size_t size() const override { return vs_.size(); }
  std::string name(size_t i) const override { return vs_[i].name(); }
  nlohmann::json variant(size_t i) const override { return to_json(vs_[i]); }
  std::string verify(size_t i) override;
  double seconds(size_t i, int reps) override {
    const GemmOptions o = options(i);
    return median_seconds([&](Event* e) { matmul_quantized(d_, da_, dw_, dY_, N_, o, e); }, reps);
  }
  double figure(double sec) const override { return 2.0 * M_ * N_ * K_ / sec / 1e12; }
  const char* unit() const override { return "TOPS"; }
  const char* baseline() const override { return "dot4_peak"; }
  nlohmann::json shape() const override {
    return {{"M", M_}, {"N", N_}, {"K", K_}, {"what", "W4A8: int8 per token x int4 sym g128, float out"}};
  }

 private:
  GemmOptions options(size_t i) const {
    GemmOptions o;
    o.tier = Tier::t0;
    o.variant = vs_[i];
    return o;
  }
  Device& d_;
  std::vector<GemmVariant> vs_;
  int64_t M_ = 0, N_ = 0, K_ = 0;
  quant::QuantizedMatrix a_, w_, ra_, rw_;
  std::unique_ptr<EpilogueRef> want_, ragged_want_;
  DevQuantized da_, dw_;
  Buffer dY_;
};

std::string W4A8Bench::verify(size_t i) {
  const GemmOptions o = options(i);
  {
    const DevQuantized a = upload(d_, ra_);
    DevQuantized w = upload(d_, rw_);
    DevMatrix y = alloc_matrix(d_, ra_.rows, rw_.rows);
    matmul_quantized(d_, a, w, y.buf, y.ld, o);
    const quant::Matrix got = download(d_, y);
    for (int64_t m = 0; m < ra_.rows; ++m)
      for (int64_t n = 0; n < rw_.rows; ++n)
        if (got(m, n) != ragged_want_->at(m, n)) return "float output differs from the epilogue reference (70x72x512)";
  }
  std::vector<float> y(static_cast<size_t>(M_ * N_));
  matmul_quantized(d_, da_, dw_, dY_, N_, o);
  dY_.read(d_.queue(), y.data(), y.size() * 4);
  const EpilogueRef& want = *want_;
  Rng rng(0x5a3b1e);
  for (int s = 0; s < kSamples / 4; ++s) {
    const int64_t m = static_cast<int64_t>(rng.below(static_cast<uint64_t>(M_)));
    const int64_t n = static_cast<int64_t>(rng.below(static_cast<uint64_t>(N_)));
    if (y[static_cast<size_t>(m * N_ + n)] != want.at(m, n))
      return "Y[" + std::to_string(m) + "][" + std::to_string(n) + "] of the timed shape differs from the epilogue reference";
  }
  return "";
}

}  // namespace

std::unique_ptr<ClassBench> make_class_bench(ShapeClass c, Device& d, bool large) {
  switch (c) {
    case ShapeClass::quantize_per_token:
    case ShapeClass::quantize_grouped: return std::make_unique<QuantizeBench>(c, d, large);
    case ShapeClass::gemm_prefill:
    case ShapeClass::gemm_decode_m1:
    case ShapeClass::gemm_decode_m16: return std::make_unique<GemmBench>(c, d, large);
    case ShapeClass::matmul_w4a8: return std::make_unique<W4A8Bench>(d, large);
  }
  return nullptr;
}

}  // namespace qeval::gpu
