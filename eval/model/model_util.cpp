// eval/model/model_util.cpp — the shared eval/model helpers (see .hpp).
#include "eval/model/model_util.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>

#include "eval/model/llama.hpp"

namespace qeval::model {

ThreadScope::ThreadScope(int n) : prev(at::get_num_threads()) {
  if (n > 0) configure_threads(n);
}

ThreadScope::~ThreadScope() {
  if (at::get_num_threads() != prev) at::set_num_threads(prev);
}

quant::MatrixView view_of(const at::Tensor& t) { return quant::MatrixView(t.data_ptr<float>(), t.size(0), t.size(1)); }

quant::MutableMatrixView mutable_view_of(at::Tensor& t) {
  return quant::MutableMatrixView(t.data_ptr<float>(), t.size(0), t.size(1));
}

double sqnr_db(const at::Tensor& ref, const at::Tensor& got) {
  // One double buffer reused (the output layer of a 7B model is 1 GB in double): the same element values and the
  // same sum() over the same shape as ref.pow(2).sum() and (ref − got).pow(2).sum() in double — x·x is what
  // pow(·, 2) computes — so the figure is bit for bit the one of the three-copy version.
  at::Tensor buf = ref.to(at::kDouble);
  const double sig = buf.mul_(buf).sum().item<double>();
  buf.copy_(ref).sub_(got);
  const double err = buf.mul_(buf).sum().item<double>();
  if (err == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(sig / err);
}

nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace qeval::model
