// eval/inputs/source.hpp — where the evaluator's tensors come from: an interface (synthetic, file, later model files).
//
// A TensorSource lists named 2-D fp32 tensors and hands each out as a MatrixView plus an owner that
// keeps its storage alive. The synthetic and file sources below own a quant::Matrix; the model
// sources of a later issue (GGUF, safetensors through eval/model) plug in behind the same interface
// and can hand out zero-copy views over torch::Tensor storage (the owner then holds the tensor).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "quant/matrix.hpp"

namespace qeval::inputs {

// One tensor a source offers, before it is loaded.
struct TensorInfo {
  std::string name;    // unique within the source ("synthetic", the file stem, "model.layers.0.mlp.up_proj.weight")
  int64_t rows = 0;    // [out, in] for weights, [tokens, features] for activations
  int64_t cols = 0;    // the innermost (reduction) axis: groups run along it
  std::string dtype;   // storage type before conversion to fp32: "f32", "f16", "bf16", ...
};

// A loaded tensor: a row-major fp32 view and whatever keeps its memory alive.
struct Tensor {
  TensorInfo info;
  quant::MatrixView view;
  std::shared_ptr<const void> owner;
};

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  // "synthetic", "npy", "raw_f32" (later "gguf", "safetensors").
  virtual std::string kind() const = 0;
  // Everything needed to reproduce the input, embedded in the report's `input` field
  // (distribution, parameters and seed; or path, byte size, dtype and shape).
  virtual nlohmann::json describe() const = 0;
  // The tensors this source offers, in a stable order.
  virtual std::vector<TensorInfo> tensors() const = 0;
  // Loads one tensor by name; throws std::invalid_argument for an unknown name and
  // std::runtime_error for I/O or format problems (the message names the file and the fix).
  virtual Tensor load(const std::string& name) const = 0;
};

// Wraps an owned matrix as a Tensor (what the synthetic and file sources return).
Tensor make_owned_tensor(TensorInfo info, quant::Matrix m);

}  // namespace qeval::inputs
