// eval/model/model_util.cpp — the shared eval/model helpers (see .hpp).
#include "eval/model/model_util.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <limits>
#include <memory>
#include <utility>

#include "eval/model/llama.hpp"
#include "eval/model/ref/ggml_dequant_ref.hpp"

namespace qeval::model {

ThreadScope::ThreadScope(int n) : prev(at::get_num_threads()) {
  if (n > 0) configure_threads(n);
}

ThreadScope::~ThreadScope() {
  if (at::get_num_threads() != prev) at::set_num_threads(prev);
}

at::Tensor fp32_of(const at::Tensor& t) {
  const at::ScalarType st = t.scalar_type();
  if (st == at::kFloat) return t;
  if (st != at::kHalf && st != at::kBFloat16)
    throw std::invalid_argument(std::string("fp32_of: tensor of dtype ") + c10::toString(st) +
                                " (weights are fp32, F16 or BF16)");
  const at::Tensor src = t.contiguous();
  at::Tensor out = at::empty(src.sizes(), at::kFloat);
  const auto* bytes = static_cast<const uint8_t*>(src.data_ptr());
  if (st == at::kHalf) {
    ref::dequantize_row_f16(bytes, out.data_ptr<float>(), src.numel());
  } else {
    ref::dequantize_row_bf16(bytes, out.data_ptr<float>(), src.numel());
  }
  return out;
}

ResidentSet resident_set() {
  ResidentSet r;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {  // "VmHWM:\t  123456 kB"
    double* to = line.rfind("VmRSS:", 0) == 0 ? &r.rss_gb : line.rfind("VmHWM:", 0) == 0 ? &r.peak_gb : nullptr;
    if (to) *to = std::strtod(line.c_str() + 6, nullptr) * 1024.0 / 1e9;
  }
  return r;
}

quant::MatrixView view_of(const at::Tensor& t) { return quant::MatrixView(t.data_ptr<float>(), t.size(0), t.size(1)); }

quant::MutableMatrixView mutable_view_of(at::Tensor& t) {
  return quant::MutableMatrixView(t.data_ptr<float>(), t.size(0), t.size(1));
}

namespace {

// The thread's reusable double buffer (SqnrBufferScope) for sums whose order cascade_square_sums cannot match.
struct SqnrBuffer {
  int scopes = 0;
  size_t size = 0;
  std::unique_ptr<double[]> data;
};
thread_local SqnrBuffer t_sqnr;

double* sqnr_buffer(size_t n, std::unique_ptr<double[]>& local) {
  if (t_sqnr.scopes == 0) {
    local.reset(new double[n]);
    return local.get();
  }
  if (t_sqnr.size < n) {
    t_sqnr.data.reset();  // the old one first: never two alive
    t_sqnr.data.reset(new double[n]);
    t_sqnr.size = n;
  }
  return t_sqnr.data.get();
}

// Σ of a double buffer through LibTorch's sum: the reduction (order included) sqnr_db always used.
double torch_sum(double* p, int64_t n) {
  return at::from_blob(p, {n}, at::TensorOptions().dtype(at::kDouble)).sum().item<double>();
}

// The sums with a double buffer: each element's double is the one ref.to(kDouble).mul_(·) and
// copy_(ref).sub_(got).mul_(·) produced (float → double is exact; one subtraction, one product in double), summed by
// at::sum over the same number of doubles — a contiguous tensor's sum does not depend on its shape.
SquareSums buffered_sums(const float* r, const float* g, int64_t n) {
  std::unique_ptr<double[]> local;
  double* buf = sqnr_buffer(static_cast<size_t>(n), local);
  for (int64_t i = 0; i < n; ++i) buf[i] = static_cast<double>(r[i]) * static_cast<double>(r[i]);
  SquareSums out;
  out.sig = torch_sum(buf, n);
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(r[i]) - static_cast<double>(g[i]);
    buf[i] = d * d;
  }
  out.err = torch_sum(buf, n);
  return out;
}

// Does cascade_square_sums with `lanes` give at::sum's bits on this machine, at `threads`? Probed on sizes that
// take every path: below one vector, tails, one and several chunks.
bool cascade_matches(int lanes, int threads) {
  for (int64_t n : {int64_t{5}, int64_t{4099}, int64_t{98317}, int64_t{1000003}}) {
    std::vector<float> r(static_cast<size_t>(n)), g(r.size());
    for (int64_t i = 0; i < n; ++i) {  // a fixed, irregular pattern (a probe, not a test: no Rng needed)
      r[static_cast<size_t>(i)] = static_cast<float>((i * 7919) % 10007) / 1000.0f - 5.0f;
      g[static_cast<size_t>(i)] = r[static_cast<size_t>(i)] + static_cast<float>((i * 31) % 17) / 64.0f;
    }
    const SquareSums want = buffered_sums(r.data(), g.data(), n);
    const SquareSums got = cascade_square_sums(r.data(), g.data(), n, lanes, threads, false);
    if (want.sig != got.sig || want.err != got.err) return false;
  }
  return true;
}

// The lane count with which cascade_square_sums reproduces at::sum at `threads` (8, 4; 0: neither — use the
// buffer), probed once per thread count.
int cascade_lanes(int threads) {
  static std::mutex mu;
  static std::map<int, int> known;
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(threads);
  if (it != known.end()) return it->second;
  int lanes = 0;
  for (int w : {8, 4})
    if (lanes == 0 && cascade_matches(w, threads)) lanes = w;
  known[threads] = lanes;
  return lanes;
}

}  // namespace

SqnrBufferScope::SqnrBufferScope() { ++t_sqnr.scopes; }

SqnrBufferScope::~SqnrBufferScope() {
  if (--t_sqnr.scopes == 0) t_sqnr = SqnrBuffer();
}

SquareSums square_sums(const float* ref, const float* got, int64_t n) {
  const int threads = at::in_parallel_region() ? 1 : at::get_num_threads();
  const int lanes = std::getenv("QEVAL_SQNR_BUFFER") ? 0 : cascade_lanes(threads);
  return lanes ? cascade_square_sums(ref, got, n, lanes, threads, true) : buffered_sums(ref, got, n);
}

double sqnr_db(const at::Tensor& ref, const at::Tensor& got) {
  SquareSums s;
  if (ref.scalar_type() == at::kFloat && got.scalar_type() == at::kFloat && ref.sizes() == got.sizes() &&
      ref.is_contiguous() && got.is_contiguous()) {
    s = square_sums(ref.data_ptr<float>(), got.data_ptr<float>(), ref.numel());
  } else {  // other dtypes or layouts: the same figures through LibTorch (one double buffer)
    at::Tensor buf = ref.to(at::kDouble);
    s.sig = buf.mul_(buf).sum().item<double>();
    buf.copy_(ref).sub_(got);
    s.err = buf.mul_(buf).sum().item<double>();
  }
  if (s.err == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(s.sig / s.err);
}

nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace qeval::model
