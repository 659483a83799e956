// gpu/epilogue_ref.hpp — the float bits every int8-GEMM epilogue variant must produce, replicated on the host from
// exact integer segment sums: y = Σ_s fl(fl(sa·sw)·fl(C_s)), summed in float from 0 in segment order, C_s the
// exact Σ_k (u_a − za)(u_w − zw) of segment s (common.cl epi_combine; gemm_tiled.cl's yacc; the decode kernel's
// single term). The tuner and the tests compare a variant's float output with it bit for bit.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/matrix.hpp"

namespace qeval::gpu {

class EpilogueRef {
 public:
  // a: activations, w: weights (int_affine, the groupings matmul_quantized accepts).
  EpilogueRef(const quant::QuantizedMatrix& a, const quant::QuantizedMatrix& w);
  float at(int64_t m, int64_t n) const;

 private:
  const quant::QuantizedMatrix& a_;
  const quant::QuantizedMatrix& w_;
  std::vector<int32_t> ca_, cw_;  // u − offset − zero point per element, row-major
  int64_t seg_ = 1, nseg_ = 1;
};

}  // namespace qeval::gpu
