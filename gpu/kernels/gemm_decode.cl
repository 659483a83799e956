// gpu/kernels/gemm_decode.cl — T0/T1 int8 GEMM for decode shapes (M ≤ QEVAL_DEC_MMAX rows of activations, one
// token per row): a weight-streaming kernel. With M ≤ 16 the tiled kernel would compute mostly padding, and
// the work is bound by reading W once (N·K bytes), so every work-item streams 16-byte slices of one weight row
// and multiplies them with all M activation rows, staged in local memory per K chunk.
//
// Work-group: 256 work-items = (256 / TPC) weight rows × TPC work-items per row; work-item `lane` of a row
// reads bytes 16·(lane + TPC·j) of each chunk of KC = 16·TPC·J bytes (a row's TPC lanes read 16·TPC
// contiguous bytes per step: coalesced), J loads issued before they are used (memory-level parallelism).
// The TPC partial sums of a row are added in local memory at the end. Exact int32 output, or the per-row
// epilogue (one K segment: per-token activations × per-channel weights) — grouped epilogues use the tiled
// kernel. K tails and rows past N/M are zero-filled.
#include "common.cl"

#ifndef QEVAL_DEC_MMAX
#define QEVAL_DEC_MMAX 16
#endif
#ifndef QEVAL_DEC_TPC
#define QEVAL_DEC_TPC 16
#endif
#ifndef QEVAL_DEC_J
#define QEVAL_DEC_J 8
#endif
#ifndef QEVAL_EPI
#define QEVAL_EPI 0
#endif
#define MMAX QEVAL_DEC_MMAX
#define TPC QEVAL_DEC_TPC
#define DJ QEVAL_DEC_J
#define KC (16 * TPC * DJ)         // K bytes per chunk
#define ROWS_PER_WG (256 / TPC)
#if TPC < MMAX || (256 % TPC) || (MMAX * KC / 4 < MMAX * 256)
#error "gemm_decode needs TPC >= MMAX, TPC | 256 and KC >= 1024"
#endif

__kernel __attribute__((reqd_work_group_size(256, 1, 1))) void gemm_decode(
    int M, int N, int K, __global const uchar* A, int lda, uint a_xor, __global const uchar* W, int ldw, uint w_xor,
    int vec, __global int* C, int ldc, __global float* Y, int ldy, QEVAL_EPI_PARAMS) {
  __local uint As[MMAX * (KC / 4)];
  const int tid = get_local_id(0);
  const int row = tid / TPC;
  const int lane = tid % TPC;
  const int n = get_group_id(0) * ROWS_PER_WG + row;
  int acc[MMAX];
#pragma unroll
  for (int m = 0; m < MMAX; ++m) acc[m] = 0;

  for (int kc = 0; kc < K; kc += KC) {
    // W slices first (their latency overlaps the A staging below)
    uint4 wv[DJ];
#pragma unroll
    for (int j = 0; j < DJ; ++j) {
      const int k = kc + 16 * (lane + TPC * j);
      uint4 w = load_s8_16(W, ldw, N, K, n, k, vec);
      if (w_xor && n < N) w ^= xor_mask16(w_xor, K, k);
      wv[j] = w;
    }
    // stage A[0..M) × [kc, kc + KC) as words
    for (int i = tid; i < M * (KC / 16); i += 256) {
      const int m = i / (KC / 16);
      const int q = i % (KC / 16);
      uint4 a = load_s8_16(A, lda, M, K, m, kc + 16 * q, vec);
      if (a_xor) a ^= xor_mask16(a_xor, K, kc + 16 * q);
      vstore4(a, 0, &As[m * (KC / 4) + 4 * q]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
    for (int j = 0; j < DJ; ++j) {
      const int q = lane + TPC * j;
#pragma unroll
      for (int m = 0; m < MMAX; ++m) {
        if (m < M) {
          const uint4 a = vload4(0, &As[m * (KC / 4) + 4 * q]);
          int s = acc[m];
          s = dot4_acc(a.s0, wv[j].s0, s);
          s = dot4_acc(a.s1, wv[j].s1, s);
          s = dot4_acc(a.s2, wv[j].s2, s);
          s = dot4_acc(a.s3, wv[j].s3, s);
          acc[m] = s;
        }
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }

  // Sum the TPC partials of each weight row: red[m][tid], tree over the lanes of a row.
  __local int* red = (__local int*)As;  // MMAX·256 ints ≤ MMAX·KC/4 words (KC ≥ 1024)
#pragma unroll
  for (int m = 0; m < MMAX; ++m) red[m * 256 + tid] = acc[m];
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = TPC / 2; s > 0; s >>= 1) {
    if (lane < s) {
#pragma unroll
      for (int m = 0; m < MMAX; ++m) red[m * 256 + tid] += red[m * 256 + tid + s];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  // lanes 0..M−1 of each row write one output each (m = lane)
  if (lane < M && lane < MMAX && n < N) {
    const int m = lane;
    const int v = red[m * 256 + row * TPC];
#if QEVAL_EPI
    Y[(size_t)m * (size_t)ldy + n] = epi_term(m, n, v, 0, K, QEVAL_EPI_ARGS);
#else
    C[(size_t)m * (size_t)ldc + n] = v;
#endif
  }
}
