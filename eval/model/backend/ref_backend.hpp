// eval/model/backend/ref_backend.hpp — the `ref` LinearBackend (fake quantization in LibTorch fp32) and the one
// definition of the reassociated fp32 product that the fp forward and the ref backend share.
//
// ref computes a quantized layer exactly as qeval's model figures always have: the activation scheme's
// fake_quantize of x (with its frozen calibration), then either a Target::linear scheme's own linear() on the fp
// weight or at::mm of x and the dequantized weight codes — in the order LinearCall::order names.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

#include "eval/model/backend/linear_backend.hpp"

namespace qeval::model {

// Where split_k cuts a reduction of length k: half of it rounded down to a multiple of 16, so both halves keep
// SIMD-friendly widths; 0 (no split) below 32. The linear layers, attention and RMSNorm all cut there.
int64_t split_point(int64_t k);

// y = x·wᵀ (x [rows, in], w [out, in], fp32) summed in `order`: native = one at::mm; split_k = the two halves at
// h = ⌊in/2⌋ rounded down to a multiple of 16 (inputs narrower than 32 stay whole), their products added.
// Differentiable (the training forward uses it).
at::Tensor matmul_t(const at::Tensor& x, const at::Tensor& w, Reassociation order);
// The same product written into y ([rows, out], contiguous), with the same arithmetic (at::mm_out).
void matmul_t_out(at::Tensor& y, const at::Tensor& x, const at::Tensor& w, Reassociation order);

std::shared_ptr<const LinearBackend> make_ref_backend();

}  // namespace qeval::model
