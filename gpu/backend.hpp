// gpu/backend.hpp — host-matrix entry points of the OpenCL backend (upload, run, download) and the OpenCL
// ComputeBackend. For device-resident use (benchmarks, chained kernels) see gpu/ops.hpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gpu/compute_backend.hpp"
#include "gpu/device.hpp"
#include "gpu/ops.hpp"
#include "quant/matrix.hpp"

namespace qeval::gpu {

// Dynamic integer quantization of the rows of x on the device (params: minmax range, per row or grouped;
// see ActQuantSpec::from_params). Bit-exact with ref::quantize_affine_ref. `group_sums` (optional)
// receives Σ(u − 2^(b−1)) per group (the asymmetric-GEMM epilogue's ΣA).
quant::QuantizedMatrix quantize_cl(Device& d, quant::MatrixView x, const quant::QuantParams& p,
                                   std::vector<int32_t>* group_sums = nullptr);
// The same from binary16 inputs (rows × cols, row stride ld, IEEE half bit patterns).
quant::QuantizedMatrix quantize_f16_cl(Device& d, const uint16_t* x, int64_t rows, int64_t cols, int64_t ld,
                                       const quant::QuantParams& p, std::vector<int32_t>* group_sums = nullptr);

// out = x̂ of q (every Format), bit-exact with ref::dequantize_ref.
void dequantize_cl(Device& d, const quant::QuantizedMatrix& q, quant::MutableMatrixView out);

// C = A·Bᵀ in int32, exact (ref::gemm_s8s8_s32_ref's contract).
void gemm_s8s8_s32_cl(Device& d, int64_t M, int64_t N, int64_t K, const int8_t* A, int64_t lda, const int8_t* B,
                      int64_t ldb, int32_t* C, int64_t ldc, const GemmOptions& o);

// Y = Â·Ŵᵀ through the integer GEMM and the epilogue (a: int8 activations; w: int8/int4 weights).
quant::Matrix matmul_quantized_cl(Device& d, const quant::QuantizedMatrix& a, const quant::QuantizedMatrix& w,
                                  const GemmOptions& o);
// Y = X·Ŵᵀ with Ŵ dequantized in registers (W4A16, W8A16, any format).
quant::Matrix matmul_a16_cl(Device& d, quant::MatrixView x, const quant::QuantizedMatrix& w);
// The GEMM tier OpenCL runs use on d: $QEVAL_CL_TIER when set (std::runtime_error when that tier is not usable
// there), else d.best_tier(). The ComputeBackend below and the model path's `opencl` backend both ask this.
Tier default_gemm_tier(Device& d);

// The OpenCL ComputeBackend on a device (nullptr: open_device(selector)); GEMM tier: the device's best
// usable tier unless $QEVAL_CL_TIER names one.
std::unique_ptr<ComputeBackend> make_opencl_backend(const std::string& selector = "");

}  // namespace qeval::gpu
