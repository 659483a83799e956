// eval/model/model_util.hpp — small helpers the eval/model sources share, one copy each: the clock, project paths,
// an ATen thread-count scope, zero-copy views of fp32 tensors, SQNR and JSON numbers.
#pragma once

#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>

#include "eval/common/files.hpp"
#include "quant/matrix.hpp"

namespace qeval::model {

using common::now_s;         // eval/common/files.hpp: steady clock, seconds
using common::resolve_path;  // `p` relative to `root` unless it is absolute (or root is empty)

// Sets ATen's intra-op thread count for a scope (n > 0; n ≤ 0 leaves it) and restores it.
struct ThreadScope {
  int prev;
  explicit ThreadScope(int n);
  ~ThreadScope();
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;
};

// Views of a 2-D contiguous fp32 tensor's storage (no copy).
quant::MatrixView view_of(const at::Tensor& t);
quant::MutableMatrixView mutable_view_of(at::Tensor& t);

// 10·log10(Σref² / Σ(ref − got)²) in double; +inf when they are equal.
double sqnr_db(const at::Tensor& ref, const at::Tensor& got);

// v, or null when it is not finite (JSON has no inf/NaN).
nlohmann::json finite_or_null(double v);

}  // namespace qeval::model
