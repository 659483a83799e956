// gpu/kernels/matmul_a16.cl — weight-only quantized matmul Y = X·Ŵᵀ with float activations (W4A16, W8A16 and
// every other packed format): weights are dequantized in registers while a tile is staged, bit-exactly as
// dequantize_ref does (common.cl: dequant_code), then multiplied in fp32 with fma. Also the fp32 outlier
// part of the LLM.int8 split.
//
// Tile: 64×64 outputs per work-group of 16×16 work-items (4×4 each), K in stages of 16.
// QEVAL_IN_HALF: X is binary16 (converted exactly to float on load; all arithmetic in fp32).
#include "common.cl"

#ifndef QEVAL_IN_HALF
#define QEVAL_IN_HALF 0
#endif
#if QEVAL_IN_HALF
#define X_T ushort
#define XLOAD(p, i) vload_half(0, (__global const half*)((p) + (i)))
#else
#define X_T float
#define XLOAD(p, i) ((p)[i])
#endif

#define QEVAL_FMT_F32 6  // W is a plain float matrix (ldw in floats): dequantized already

#define A16_BM 64
#define A16_BN 64
#define A16_BK 16

__kernel __attribute__((reqd_work_group_size(256, 1, 1))) void matmul_a16(
    int M, int N, int K, __global const X_T* X, int ldx,
    __global const uchar* Wc, int ldw,  // packed codes (row_bytes per row), or floats for QEVAL_FMT_F32
    int fmt, int bits, int sym, __global const float* scales, __global const int* zps, int glen, int gpr,
    __global float* Y, int ldy) {
  __local float Xs[A16_BK][A16_BM + 4];
  __local float Ws[A16_BK][A16_BN + 4];
  const int tid = get_local_id(0);
  const int tx = tid % 16, ty = tid / 16;
  const int m_base = get_group_id(1) * A16_BM;
  const int n_base = get_group_id(0) * A16_BN;
  float acc[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

  for (int k0 = 0; k0 < K; k0 += A16_BK) {
    // stage: 64 rows × 16 k of X and of Ŵ; work-item tid fills row tid/4, k (tid%4)·4 … +3
    const int sr = tid >> 2;
    const int sk = (tid & 3) * 4;
    for (int e = 0; e < 4; ++e) {
      const int k = k0 + sk + e;
      const int m = m_base + sr;
      Xs[sk + e][sr] = (m < M && k < K) ? XLOAD(X, (size_t)m * (size_t)ldx + k) : 0.0f;
      const int n = n_base + sr;
      float w = 0.0f;
      if (n < N && k < K) {
        if (fmt == QEVAL_FMT_F32) {
          w = ((__global const float*)Wc)[(size_t)n * (size_t)ldw + k];
        } else {
          const uint u = packed_code_at(Wc + (size_t)n * (size_t)ldw, k, bits);
          const int gi = gpr == 0 ? 0 : n * gpr + k / glen;
          w = dequant_code(u, fmt, bits, sym, scales[gi], zps ? zps[gi] : 0);
        }
      }
      Ws[sk + e][sr] = w;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int kk = 0; kk < A16_BK; ++kk) {
      const float4 xa = vload4(0, &Xs[kk][ty * 4]);
      const float4 wb = vload4(0, &Ws[kk][tx * 4]);
      const float xs[4] = {xa.s0, xa.s1, xa.s2, xa.s3};
      const float ws[4] = {wb.s0, wb.s1, wb.s2, wb.s3};
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = fma(xs[i], ws[j], acc[i][j]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  for (int i = 0; i < 4; ++i) {
    const int m = m_base + ty * 4 + i;
    if (m >= M) continue;
    for (int j = 0; j < 4; ++j) {
      const int n = n_base + tx * 4 + j;
      if (n < N) Y[(size_t)m * (size_t)ldy + n] = acc[i][j];
    }
  }
}

// LLM.int8 outlier part: Y[m][n] += Σ_i X[m][c_i]·W[n][c_i] over the outlier columns c_i, in fp32
// (W is the float weight matrix, ldw in floats). One work-item per output.
__kernel void outlier_accumulate(int M, int N, __global const X_T* X, int ldx, __global const float* W, int ldw,
                                 __global const int* cols, int ncols, __global float* Y, int ldy) {
  const int n = get_global_id(0);
  const int m = get_global_id(1);
  if (n >= N || m >= M) return;
  float s = 0.0f;
  for (int i = 0; i < ncols; ++i) {
    const int c = cols[i];
    s = fma(XLOAD(X, (size_t)m * (size_t)ldx + c), W[(size_t)n * (size_t)ldw + c], s);
  }
  Y[(size_t)m * (size_t)ldy + n] += s;
}
