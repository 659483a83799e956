// eval/model/backend/outlier_split.hpp — what the real-kernel backends (cpu, opencl) share: LLM.int8's split of one
// call's input features, asked of the scheme, the codes of its int8 part, and the input_seen copy of fp inputs.
//
// The algorithm (which features are outliers: LLM.int8's threshold) lives in schemes/llm_int8 and is reached only
// through Scheme::outlier_columns(x); each backend composes y = int8 part over the regular features (its own kernels)
// + Σ_{j∈outliers} x_j·w_jᵀ in fp32 from this split.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "quant/affine.hpp"
#include "quant/matrix.hpp"
#include "schemes/scheme.hpp"

namespace qeval::model {

struct FeatureSplit {
  std::vector<int64_t> outliers;  // ascending: the scheme's outlier_columns(x)
  std::vector<int64_t> regular;   // the complement in [0, x.cols), ascending
};

// `calib`: the layer's linear calibration (QuantizedLinear::linear_calib), so the scheme counts the call in its
// run_stats() as its own linear() would on the ref path.
inline FeatureSplit split_features(const schemes::Scheme& s, quant::MatrixView x, const schemes::Calibration* calib) {
  FeatureSplit f;
  f.outliers = s.outlier_columns(x, calib);
  size_t o = 0;
  for (int64_t j = 0; j < x.cols; ++j) {
    if (o < f.outliers.size() && f.outliers[o] == j) {
      ++o;
      continue;
    }
    f.regular.push_back(j);
  }
  return f;
}

// The int8 part's codes: `bits`-bit symmetric, one group per row over the regular features — per token for x, per
// output row for w (LLM.int8's vector-wise quantization; the scheme's own llm_int8_regular_part uses the same).
inline quant::QuantParams outlier_split_params(int bits) {
  quant::QuantParams p;
  p.bits = bits;
  p.group_size = quant::kPerRow;
  return p;
}

// input_seen of a layer whose input is multiplied as it is (fp activations): a copy of x. No-op when out is unset.
inline void copy_rows(quant::MatrixView x, quant::MutableMatrixView out) {
  if (!out.data) return;
  for (int64_t r = 0; r < x.rows; ++r)
    std::memcpy(out.row(r), x.row(r), static_cast<size_t>(x.cols) * sizeof(float));
}

}  // namespace qeval::model
