// eval/model/backend/linear_backend.hpp — the one seam the model path calls for every quantized linear layer.
//
// A LinearBackend decides at plan time whether it runs a layer's schemes (supports), turns the quantized layer into
// its own form once (prepare: packed codes, device buffers, tensors) and computes y = layer(x) at every forward
// (linear). LlamaModel::linear() calls it for every layer that carries a quantization; layers that carry none, and
// the differentiable training forward, stay on LibTorch's fp32 matmul.
//
//   ref     (ref_backend.hpp)  fake quantization: the activation scheme's fake_quantize, the weight's dequantized
//                              codes × LibTorch fp32 at::mm, or a Target::linear scheme's own linear(). Today's path.
//   cpu     (cpu_backend.hpp)  packed integer kernels of quant/cpu: W8A8, W4A8, W4A16, LLM.int8 (int8 part +
//                              fp32 outlier columns, asked of the scheme: Scheme::outlier_columns), grouped weights.
//   opencl  (opencl_backend.hpp) the kernels of gpu/ops.hpp behind the same interface, on one OpenCL device
//                              (builds with QEVAL_OPENCL only): W8A8, W4A8, W·A16, LLM.int8, grouped weights.
// A new backend implements this class (LibTorch-free: it sees quant/ and schemes/ types only, so a backend over
// quant/cpu or gpu/ needs no LibTorch) and adds one line to make_linear_backend (backends.cpp).
// docs/ARCHITECTURE.md ("The backend seam") walks through it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quant/matrix.hpp"
#include "schemes/scheme.hpp"

namespace qeval::model {

// How a backend sums the products of a linear layer. native: its own order (ref: one at::mm, in the order this
// machine's BLAS chooses). split_k: the reduction split into two halves (the first a multiple of 16 columns) whose
// products are added — another, equally valid order, the kind of difference another CPU's kernel makes. The
// reassociation twin of a model run (model_run.hpp) repeats the run with split_k to measure how far float summation
// order alone moves its metrics; the CI gate's tolerances come from that.
enum class Reassociation : uint8_t { native, split_k };
inline const char* to_string(Reassociation r) { return r == Reassociation::native ? "native" : "split_k"; }

// One quantized linear layer y = x·Wᵀ, W [out, in], as eval/model hands it to prepare(): its schemes and what they
// produced. Views stay valid while `storage` lives (prepare() keeps it if it keeps the views).
struct QuantizedLinear {
  std::string layer;  // "blk.3.ffn_down", "output" (GGUF tensor names without ".weight")
  // Weight side: a Target::weight scheme, or a Target::linear scheme that owns the whole product (SmoothQuant,
  // LLM.int8); null: fp weights.
  std::shared_ptr<const schemes::Scheme> weight_scheme;
  const quant::QuantizedMatrix* codes = nullptr;  // what weight_scheme->quantize() stored; valid during prepare()
  quant::MatrixView weight;                       // the layer's fp32 weight (migration folds applied)
  quant::MatrixView effective;                    // the dequantized codes (the weight itself when fp)
  std::shared_ptr<const schemes::Calibration> linear_calib;  // what a Target::linear scheme's linear() receives
  // Activation side: null: fp inputs.
  std::shared_ptr<const schemes::Scheme> act_scheme;
  std::shared_ptr<const schemes::Calibration> act_calib;  // a calibrated activation scheme's frozen ranges
  std::shared_ptr<const void> storage;                    // owns what `weight` and `effective` point into
  // Set for a Target::weight scheme when the model keeps the layer compact (LinearLayer::codes): the stored codes,
  // alive as long as the model's layer. A backend that multiplies the dequantized weight may keep these instead of
  // `effective` and dequantize them with weight_scheme->dequantize at use (bit-identical: the same formula).
  std::shared_ptr<const quant::QuantizedMatrix> compact;
};

// A layer in a backend's own form, made once by prepare().
class PreparedLinear {
 public:
  virtual ~PreparedLinear() = default;
};

// Whether a backend runs a layer: ok, or one line saying why not (e.g. "no int4 × fp8 kernel").
struct Support {
  bool ok = true;
  std::string reason;
};

// Per call.
struct LinearCall {
  Reassociation order = Reassociation::native;
  // When data is set (rows × in): receives the input the product multiplied, i.e. after activation quantization
  // (a backend that multiplies codes writes their values) — what LlamaModel's observer shows.
  quant::MutableMatrixView input_seen;
};

class LinearBackend {
 public:
  virtual ~LinearBackend() = default;
  virtual std::string name() const = 0;

  // Plan time: does this backend run a layer whose weight (or linear) scheme and activation scheme have these
  // traits? Null: that side stays fp. Asked before any quantization, so an unsupported pair fails first.
  virtual Support supports(const schemes::SchemeTraits* weight, const schemes::SchemeTraits* act) const = 0;

  // Once per layer, after its schemes ran.
  virtual std::shared_ptr<const PreparedLinear> prepare(const QuantizedLinear& layer) const = 0;

  // Every forward: y [rows, out] = the layer applied to x [rows, in], x as the model computed it (activation
  // quantization, if any, is the backend's job).
  virtual void linear(const PreparedLinear& layer, quant::MatrixView x, quant::MutableMatrixView y,
                      const LinearCall& call) const = 0;

  // What this backend runs on, for the report's metrics.backend (key, value), asked once per run after the layers
  // were prepared: cpu: gemm_isa; opencl: the device, its driver and the GEMM tier. Default: nothing.
  virtual std::vector<std::pair<std::string, std::string>> environment() const { return {}; }
};

// ---- the registry (backends.cpp) ------------------------------------------------------------------------------

// The backends this build can make, by name: "ref", "cpu", and "opencl" when qeval is built with OpenCL.
std::vector<std::string> linear_backend_names();
// Throws std::invalid_argument naming the known backends when `name` is not one of them.
std::shared_ptr<const LinearBackend> make_linear_backend(const std::string& name);
// Plan-time check of one layer: throws std::invalid_argument in one line naming the backend, the layer, the two
// schemes, the backend's reason and the backends that do run the pair. Null schemes: that side stays fp.
void require_supported(const LinearBackend& backend, const std::string& layer, const schemes::Scheme* weight,
                       const schemes::Scheme* act);

}  // namespace qeval::model
