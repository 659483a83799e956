// eval/sweep/tensor_kind.hpp — the "tensor" run kind: one scheme config on one tensor, quantize + dequantize
// through the QuantTester (the tests' code path), metrics against the 6.02·b bound.
//
// sweeps[i] of kind "tensor" (every axis a list; a scalar is read as a one-element list):
//   schemes      ["rtn", "nf4", ...]                     default ["rtn"]
//   bits         [2, 3, 4, 8]                            default: each scheme's own
//   group_sizes  [32, 128, "row", "tensor", 0, -1]       default: each scheme's own
//   mappings     ["sym", "asym"]                         default ["sym"]
//   backends     ["cpu", "opencl"]                       default ["cpu"]   (opencl: the device dequantizes, and
//                quantizes where the scheme's codes are plain affine with a minmax range — the entry's quantized_on)
//   inputs       ["gaussian", {"distribution": "outliers", "rows": 256, "cols": 1024, "seed": 7,
//                 "outlier_channels": 8, "outlier_scale": 20, "nu": 3}, "w.npy",
//                 {"file": "w.f32", "shape": "4096x4096", "tensors": ["w"]}]   default ["gaussian"]
//                (synthetic defaults: 1024 × 4096, the config's seed)
//   ranges       ["minmax", "percentile", "mse"]         default ["minmax"]
//   clip_ratios  [1.0, 0.9]    percentiles [99.99]      roundings ["nearest_even"]   non_finite ["error"]
//   options      {"codebook": ["e2m1", "bnb"], "fp8.format": "e5m2"}   ("scheme.key" = that scheme only)
//   partial_groups [false, true]   a shorter last group where the group size does not divide the row
//                (QuantParams::partial_last_group: 576 in g128 = 4 × 128 + 64)         default [false]
// Runs are enumerated inputs × tensors × schemes × bits × group sizes × mappings × ranges × clip ratios ×
// percentiles × roundings × non-finite × partial groups × option values × backends (backends innermost, so the same
// config on cpu and opencl sit side by side). Identical runs collapse.
//
// Each run is a TensorRunSpec (below): the SchemeConfig of eval/sweep/axes.hpp's scheme axes, the backend, the
// input (eval/sweep/tensor_input.hpp) and tensor, and the protocol. Its JSON (the run id hashes it):
// {"kind": "tensor", "config": {scheme, params, options}, "backend", "input": <input description (+ "xxh64" of a
// file's bytes)>, "tensor": <name>, "protocol": <tensor protocol>}.
// The tensor protocol ({"kind": "tensor", "measure": "quantize+dequantize", "sampling": "rows"}) says
// what is measured and how its noise is estimated: rows are treated as independent samples and the
// standard error of SQNR and MSE over them is reported (metrics.sampling; docs/regression-gate.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/sweep/run_kind.hpp"
#include "eval/sweep/tensor_input.hpp"
#include "quant/affine.hpp"
#include "schemes/scheme.hpp"

namespace qeval::sweep {

// What a tensor run measures and how its noise is estimated ("rows": rows as independent samples; "none").
struct TensorProtocol {
  std::string sampling = "rows";
  nlohmann::json to_json() const;  // {"kind": "tensor", "measure": "quantize+dequantize", "sampling", "version": 1}
};
// The tensor protocol of `given` (null: defaults); throws ConfigError (at `path`) for unknown keys/values.
TensorProtocol parse_tensor_protocol(const nlohmann::json& given, const std::string& path);

// One tensor run, typed: what TensorExecutor::execute runs from.
struct TensorRunSpec final : RunSpec {
  schemes::SchemeConfig config;               // scheme + QuantParams + options (axes.hpp)
  std::string backend = "cpu";                // "cpu", "opencl"
  std::shared_ptr<const TensorInput> input;   // shared by the runs on that input
  inputs::TensorInfo tensor;                  // the tensor of the input (name, rows, cols)
  TensorProtocol protocol;
  std::vector<std::string> axes;              // config paths of the axis values that made this run

  nlohmann::json to_json() const override;
  nlohmann::json explain() const override;
};

// Sampling statistics of the SQNR/MSE estimates from per-row sums (rows as independent samples):
// with a_r = Σ_j x², b_r = Σ_j e² over row r, SQNR = 10·log10(Σa/Σb) and by the delta method
//   var(ln(Σa/Σb)) ≈ [s_a²/ā² + s_b²/b̄² − 2·s_ab/(ā·b̄)] / R,   se_dB = 10·log10(e)·sqrt(var),
//   se(MSE) = s_b / (cols·sqrt(R)).
// R < 2 rows, or non-finite sums: se = NaN (null).
struct SamplingStats {
  int64_t rows = 0;
  double sqnr_se_db = 0, mse_se = 0;
};
SamplingStats sampling_stats(quant::MatrixView x, quant::MatrixView xhat);

}  // namespace qeval::sweep
