// gpu/compute_backend.hpp — a kernel-level facade over quant/ and the OpenCL kernels (fake-quantize a weight,
// quantized matmul on a QuantizedMatrix), with a CPU implementation over quant/ and a factory that also knows "opencl".
//
// This is NOT the model path's seam: eval/model calls every quantized linear layer through
// eval/model/backend/linear_backend.hpp (LinearBackend: supports / prepare / linear, which knows the schemes'
// traits). gpu/ stays below schemes/ (it depends on quant/ only), so the model path's `opencl` backend (issue 13) is a
// LinearBackend in eval/model/backend that calls these kernels (and gpu/ops.hpp) — see docs/ARCHITECTURE.md.
//
// This header needs no OpenCL and no gpu/ library for the CPU part (header-only), so eval/ can include it in
// every build. The OpenCL backend (gpu/backend.cpp, library qeval_gpu) exists when qeval is built with
// QEVAL_OPENCL=ON; linking qeval_gpu defines QEVAL_HAVE_OPENCL, and make_compute_backend("opencl") without it
// throws a clear error.
//
// Semantics shared by both implementations (so a sweep on either backend gives the same error metrics):
//   fake_quantize_weight: out = dequantize(quantize(w)) for Format::int_affine (quant::quantize_affine) or a
//     code-book format (quant::quantize_float_format); bit-exact across backends.
//   matmul: Y = X·Ŵᵀ with Ŵ the dequantized weights. With `act` set (int8 dynamic activation quantization)
//     and int8/int4 affine weights the product runs as W8A8/W4A8 integer GEMM + epilogue; otherwise as a
//     float product of X and Ŵ. Float results agree between backends within the derived tolerances of
//     tests/gpu (integer parts exactly).
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "quant/affine.hpp"
#include "quant/matrix.hpp"
#include "quant/quantize.hpp"

namespace qeval::gpu {

// Dynamic activation quantization for the integer matmul path (per token or grouped, int8).
struct ActivationQuant {
  int64_t group_size = quant::kPerRow;
  quant::Mapping mapping = quant::Mapping::symmetric;
};

class ComputeBackend {
 public:
  virtual ~ComputeBackend() = default;
  // "cpu" or "opencl"; details() adds the device and the tier that actually runs ("opencl: NVIDIA H100 … T0/dp4a").
  virtual std::string name() const = 0;
  virtual std::string details() const = 0;

  // out (w.rows × w.cols) = x̂ of w under (format, params). out may alias w.
  virtual void fake_quantize_weight(quant::MatrixView w, quant::Format format, const quant::QuantParams& params,
                                    quant::MutableMatrixView out) = 0;

  // y (x.rows × w.rows) = X·Ŵᵀ for an already quantized weight.
  virtual void matmul(quant::MatrixView x, const quant::QuantizedMatrix& w, const std::optional<ActivationQuant>& act,
                      quant::MutableMatrixView y) = 0;
};

// The CPU backend: quant/'s dispatchers (AVX-512 or the reference) and a double-accumulated product.
class CpuComputeBackend final : public ComputeBackend {
 public:
  std::string name() const override { return "cpu"; }
  std::string details() const override { return "cpu: quant/ dispatch (AVX-512 when available, else reference)"; }
  void fake_quantize_weight(quant::MatrixView w, quant::Format format, const quant::QuantParams& p,
                            quant::MutableMatrixView out) override {
    const quant::QuantizedMatrix q =
        format == quant::Format::int_affine ? quant::quantize_affine(w, p) : quant::quantize_float_format(w, format, p);
    quant::dequantize(q, out);
  }
  void matmul(quant::MatrixView x, const quant::QuantizedMatrix& w, const std::optional<ActivationQuant>& act,
              quant::MutableMatrixView y) override {
    if (x.cols != w.cols || y.rows != x.rows || y.cols != w.rows)
      throw std::invalid_argument("matmul: shapes disagree (x " + std::to_string(x.rows) + "x" + std::to_string(x.cols) +
                                  ", w " + std::to_string(w.rows) + "x" + std::to_string(w.cols) + ", y " +
                                  std::to_string(y.rows) + "x" + std::to_string(y.cols) + ")");
    quant::Matrix wd(w.rows, w.cols), xd(x.rows, x.cols);
    quant::dequantize(w, wd.mut());
    if (act) {
      quant::QuantParams ap;
      ap.bits = 8;
      ap.group_size = act->group_size;
      ap.mapping = act->mapping;
      quant::fake_quantize_affine(x, ap, xd.mut());
    } else {
      for (int64_t r = 0; r < x.rows; ++r)
        for (int64_t c = 0; c < x.cols; ++c) xd(r, c) = x(r, c);
    }
    for (int64_t m = 0; m < x.rows; ++m)
      for (int64_t n = 0; n < w.rows; ++n) {
        double s = 0.0;
        for (int64_t k = 0; k < x.cols; ++k) s += static_cast<double>(xd(m, k)) * static_cast<double>(wd(n, k));
        y(m, n) = static_cast<float>(s);
      }
  }
};

#ifdef QEVAL_HAVE_OPENCL
// gpu/backend.cpp. selector: see gpu/device.hpp open_device() ("" = $QEVAL_CL_DEVICE or the first GPU).
std::unique_ptr<ComputeBackend> make_opencl_backend(const std::string& selector);
#endif

// "cpu", "opencl" or "opencl:<device selector>". Throws std::invalid_argument for an unknown name and
// std::runtime_error when OpenCL was not built in or no device is found.
inline std::unique_ptr<ComputeBackend> make_compute_backend(const std::string& name) {
  if (name == "cpu") return std::make_unique<CpuComputeBackend>();
  if (name == "opencl" || name.rfind("opencl:", 0) == 0) {
#ifdef QEVAL_HAVE_OPENCL
    return make_opencl_backend(name.size() > 7 ? name.substr(7) : std::string());
#else
    throw std::runtime_error("backend 'opencl': qeval was built without OpenCL (configure with -DQEVAL_OPENCL=ON)");
#endif
  }
  throw std::invalid_argument("unknown backend '" + name + "'; expected cpu or opencl[:<device>]");
}

}  // namespace qeval::gpu
