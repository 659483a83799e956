// eval/model/backend/opencl_backend.hpp — the `opencl` LinearBackend: quantized layers through gpu/'s kernels on one device.
//
// The device: gpu::default_device() — the one `qeval devices` marks and the tensor sweep's opencl backend uses
// ($QEVAL_CL_DEVICE, else the first GPU, else the first device); no other device is opened or probed. The GEMM tier:
// gpu::default_gemm_tier ($QEVAL_CL_TIER, else the device's best usable tier). Both are recorded per run in
// metrics.backend (environment()).
//
// What it runs (asked of the schemes' traits, never their names), same contract as the cpu backend (cpu_backend.hpp):
//   W·A8  int_affine weights (2..8 bits, per-tensor / per-channel / grouped, sym or asym, GPTQ's act-order perm) ×
//         int activations (dynamic per token or grouped, static per tensor; sym or asym): the activation scheme's own
//         codes (quantized on the host by the scheme, as on cpu: the same codes on every backend) are uploaded,
//         the weight's codes were uploaded once in prepare(); gpu::matmul_quantized computes exact int32 sums per
//         K segment and the scale/zero-point epilogue in fp32. 8- and 4-bit weights go as they are (W8A8, W4A8 with
//         int4 unpacked in the kernel); 2/3/5/6/7-bit codes, and activation codes under 8 bits, are widened to
//         8-bit codes with the same q − zero_point once (widen_to_int8: exact). Act-order: the activation's columns are
//         permuted into the weight's stored order (per-token activations only, as on cpu).
//   W·A16 weights with fp32 activations (no activation scheme, or a dynamic one at or below its row threshold):
//         gpu::matmul_a16 (the weight dequantized in registers: every code format, int and code books) on the codes
//         uploaded once; weights with a perm / column scales / non-finite entries multiply their effective fp32
//         matrix (uploaded once) with gpu::matmul_f32.
//   LLM.int8 (Target::linear with outlier_columns): the outlier features are the scheme's (outlier_split.hpp); the
//         int8 part is gpu::quantize_rows of x and of the layer's fp32 weight (uploaded once) with the outliers
//         masked (excluded from the range, code of 0: the same codes as quantizing the regular sub-matrix), then
//         gpu::matmul_quantized; the outlier part gpu::outlier_accumulate in fp32. The weight's codes are kept for
//         the last outlier set and re-made only when a call's set differs.
// It says no (supports) where no kernel exists: int activations over code-book weights (fp4, nf4, fp8), per-feature
// activation scales, activation quantization over fp weights, Target::linear schemes without outlier columns
// (SmoothQuant), and any layer when no OpenCL device exists. Agreement with ref: docs/model-eval.md.
#pragma once

#include <memory>

#include "eval/model/backend/linear_backend.hpp"
#include "quant/matrix.hpp"

namespace qeval::model {

std::shared_ptr<const LinearBackend> make_opencl_backend();

// int_affine codes of 2..8 bits as 8-bit codes with the same q − zero_point and the same scales, zero points, groups
// and perm (symmetric: u₈ = u − 2^(b−1) + 128; asymmetric: u₈ = u). 8-bit input is returned as it is. Throws
// std::invalid_argument for other formats.
quant::QuantizedMatrix widen_to_int8(const quant::QuantizedMatrix& q);

}  // namespace qeval::model
