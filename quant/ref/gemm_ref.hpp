// quant/ref/gemm_ref.hpp — INTERNAL: scalar reference int8 GEMM (W8A8), the oracle of the VNNI/AMX kernels.
//
// Included by quant/cpu/dispatch.cpp's tests and benchmarks only; never by a public header.
#pragma once

#include <cstdint>

namespace qeval::ref {

// C[m][n] = Σ_k A[m][k]·B[n][k] for m < M, n < N.
//   A: M×K int8, row-major, row stride lda (activations, one row per token);
//   B: N×K int8, row-major, row stride ldb (weights [out_features, in_features]: C = A·Bᵀ);
//   C: M×N int32, row stride ldc.
// Accumulates exactly in int64, then stores the value modulo 2^32 as two's-complement int32 (the wrap
// the SIMD kernels produce). Exact whenever |C| < 2^31, i.e. for any int8 input when K ≤ 131071
// (|a·b| ≤ (−128)·(−128) = 16384; 16384·131071 = 2147467264 < 2^31 = 2147483648).
// K = 0 writes zeros. Throws std::invalid_argument for negative sizes, strides below the row length,
// or null pointers with non-zero sizes.
void gemm_s8s8_s32_ref(int64_t M, int64_t N, int64_t K, const int8_t* A, int64_t lda, const int8_t* B, int64_t ldb,
                       int32_t* C, int64_t ldc);

}  // namespace qeval::ref
