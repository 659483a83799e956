// quant/ref/gemm_ref.cpp — scalar reference int8 × int8 → int32 GEMM (C = A·Bᵀ), int64 accumulation.
#include "quant/ref/gemm_ref.hpp"

#include <stdexcept>
#include <string>

namespace qeval::ref {

void gemm_s8s8_s32_ref(int64_t M, int64_t N, int64_t K, const int8_t* A, int64_t lda, const int8_t* B, int64_t ldb,
                       int32_t* C, int64_t ldc) {
  if (M < 0 || N < 0 || K < 0)
    throw std::invalid_argument("gemm_s8s8_s32_ref: negative size M=" + std::to_string(M) + " N=" + std::to_string(N) +
                                " K=" + std::to_string(K));
  if (M == 0 || N == 0) return;
  if (C == nullptr || ldc < N)
    throw std::invalid_argument("gemm_s8s8_s32_ref: C is null or ldc=" + std::to_string(ldc) + " < N=" +
                                std::to_string(N));
  if (K > 0 && (A == nullptr || B == nullptr || lda < K || ldb < K))
    throw std::invalid_argument("gemm_s8s8_s32_ref: A/B null or lda=" + std::to_string(lda) + " / ldb=" +
                                std::to_string(ldb) + " < K=" + std::to_string(K));
  for (int64_t m = 0; m < M; ++m) {
    const int8_t* a = A + m * lda;
    for (int64_t n = 0; n < N; ++n) {
      const int8_t* b = B + n * ldb;
      int64_t acc = 0;  // exact: |acc| ≤ 16384·K < 2^63 for any K that fits in memory
      for (int64_t k = 0; k < K; ++k) acc += static_cast<int64_t>(a[k]) * static_cast<int64_t>(b[k]);
      // Modulo 2^32 through uint32 (well defined), then reinterpreted as two's complement.
      C[m * ldc + n] = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(acc)));
    }
  }
}

}  // namespace qeval::ref
