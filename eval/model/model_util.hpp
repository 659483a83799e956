// eval/model/model_util.hpp — small helpers the eval/model sources share, one copy each: the clock, project paths,
// an ATen thread-count scope, zero-copy views of fp32 tensors, SQNR and JSON numbers.
#pragma once

#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>

#include "eval/common/files.hpp"
#include "eval/model/sqnr_sum.hpp"
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

// `t` when it is fp32, else a contiguous fp32 copy of an F16 (kHalf) or BF16 (kBFloat16) tensor, converted by the
// loader's own converters (ref::dequantize_row_f16/bf16), so a weight kept in file precision gives at use exactly
// the floats the fp32 load gives. Throws std::invalid_argument for another dtype.
at::Tensor fp32_of(const at::Tensor& t);

// Views of a 2-D contiguous fp32 tensor's storage (no copy).
quant::MatrixView view_of(const at::Tensor& t);
quant::MutableMatrixView mutable_view_of(at::Tensor& t);

// 10·log10(Σref² / Σ(ref − got)²) in double; +inf when they are equal. The sums are at::sum's over the double
// values (bit for bit): for contiguous fp32 in one pass over the floats (sqnr_sum.hpp; QEVAL_SQNR_BUFFER=1 forces
// the double buffer), else through a double buffer.
double sqnr_db(const at::Tensor& ref, const at::Tensor& got);
// The two sums of sqnr_db for n contiguous floats each.
SquareSums square_sums(const float* ref, const float* got, int64_t n);

// While one lives on this thread, sqnr_db reuses one double buffer across calls instead of fresh pages per layer
// (quantize_model holds one for its layers); the buffer is freed when the outermost scope ends.
class SqnrBufferScope {
 public:
  SqnrBufferScope();
  ~SqnrBufferScope();
  SqnrBufferScope(const SqnrBufferScope&) = delete;
  SqnrBufferScope& operator=(const SqnrBufferScope&) = delete;
};

// The process's resident set now and its peak so far (VmRSS, VmHWM of /proc/self/status), in GB (10⁹ bytes); −1 each
// where /proc is not available. A model run records it after every stage (timings.memory_gb, issue 15).
struct ResidentSet {
  double rss_gb = -1.0;
  double peak_gb = -1.0;
};
ResidentSet resident_set();

// v, or null when it is not finite (JSON has no inf/NaN).
nlohmann::json finite_or_null(double v);

}  // namespace qeval::model
