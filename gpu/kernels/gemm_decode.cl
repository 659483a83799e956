// gpu/kernels/gemm_decode.cl — T0/T1 int8 GEMM for decode shapes (M ≤ QEVAL_DEC_MMAX rows of activations, one
// token per row): a weight-streaming kernel. With M ≤ 16 the tiled kernel would compute mostly padding, and
// the work is bound by reading W once (N·K bytes), so every work-item streams 16-byte slices of weight rows
// and multiplies them with all M activation rows.
//
// Work-group: WG work-items = WG/TPC row groups × TPC lanes. Row group g of work-group b owns the RPT weight rows
// n = b·(WG/TPC)·RPT + r·(WG/TPC) + g (r < RPT); lane `lane` reads bytes 16·(lane + TPC·j) of each K chunk of
// KC = 16·TPC·J bytes (a row's TPC lanes read 16·TPC contiguous bytes per step: coalesced), J·RPT loads issued
// before they are used (memory-level parallelism), and each activation word it loads serves RPT weight rows.
// Activations: staged per chunk in local memory (STAGE_A = 1) or read straight from global memory through the
// cache (STAGE_A = 0; no barriers in the K loop). The TPC partial sums of a row are added in local memory
// (tree) or, with QEVAL_NV_SHFL (NVIDIA, TPC ≤ 32), by warp shuffles. Exact int32 output, or the per-row
// epilogue (one K segment: per-token activations × per-channel weights) — grouped epilogues use the tiled
// kernel. K tails and rows past N/M are zero-filled. The tuner's parameters (gpu/variants.hpp DecodeVariant):
// WG, TPC, J, RPT, MMAX, STAGE_A, SHFL; all give the same int32 results.
#include "common.cl"

#ifndef QEVAL_DEC_WG
#define QEVAL_DEC_WG 256
#endif
#ifndef QEVAL_DEC_MMAX
#define QEVAL_DEC_MMAX 16
#endif
#ifndef QEVAL_DEC_TPC
#define QEVAL_DEC_TPC 16
#endif
#ifndef QEVAL_DEC_J
#define QEVAL_DEC_J 8
#endif
#ifndef QEVAL_DEC_RPT
#define QEVAL_DEC_RPT 1
#endif
#ifndef QEVAL_DEC_STAGE_A
#define QEVAL_DEC_STAGE_A 1
#endif
#ifndef QEVAL_EPI
#define QEVAL_EPI 0
#endif
#define WG QEVAL_DEC_WG
#define MMAX QEVAL_DEC_MMAX
#define TPC QEVAL_DEC_TPC
#define DJ QEVAL_DEC_J
#define RPT QEVAL_DEC_RPT
#define GROUPS (WG / TPC)          // row groups per work-group
#define KC (16 * TPC * DJ)         // K bytes per chunk
#if (WG % TPC) || TPC < 1 || MMAX < 1 || RPT < 1
#error "gemm_decode needs TPC | WG, MMAX >= 1, RPT >= 1"
#endif
#if defined(QEVAL_NV_SHFL) && TPC > 32
#error "the shuffle reduction needs TPC <= 32 (one warp per row group)"
#endif

// Local memory: the staged A chunk, then (after the K loop) the partial sums of the tree reduction.
#if QEVAL_DEC_STAGE_A
#define A_WORDS (MMAX * (KC / 4))
#else
#define A_WORDS 1
#endif
#if defined(QEVAL_NV_SHFL)
#define RED_WORDS 1
#else
#define RED_WORDS (WG * MMAX)
#endif
#define LMEM_WORDS (A_WORDS > RED_WORDS ? A_WORDS : RED_WORDS)

// Σ over the TPC lanes of a row group (every lane gets the sum).
#if defined(QEVAL_NV_SHFL)
inline int lanes_sum(int v) {
  for (int o = TPC / 2; o > 0; o >>= 1) v += shfl_xor_i32(v, o);
  return v;
}
#endif

__kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void gemm_decode(
    int M, int N, int K, __global const uchar* A, int lda, uint a_xor, __global const uchar* W, int ldw, uint w_xor,
    int vec, __global int* C, int ldc, __global float* Y, int ldy, QEVAL_EPI_PARAMS) {
  __local uint lmem[LMEM_WORDS] __attribute__((aligned(16)));  // 128-bit accesses to the staged A
  __local uint* As = lmem;
  __local int* red = (__local int*)lmem;
  const int tid = get_local_id(0);
  const int grp = tid / TPC;
  const int lane = tid % TPC;
  const int n0 = get_group_id(0) * GROUPS * RPT + grp;  // row r: n0 + r·GROUPS
  int acc[RPT][MMAX];
#pragma unroll
  for (int r = 0; r < RPT; ++r)
#pragma unroll
    for (int m = 0; m < MMAX; ++m) acc[r][m] = 0;

  for (int kc = 0; kc < K; kc += KC) {
    // W slices first (their latency overlaps the A staging below)
    uint4 wv[RPT][DJ];
#pragma unroll
    for (int r = 0; r < RPT; ++r)
#pragma unroll
      for (int j = 0; j < DJ; ++j) {
        const int k = kc + 16 * (lane + TPC * j);
        const int n = n0 + r * GROUPS;
        uint4 w = load_s8_16(W, ldw, N, K, n, k, vec);
        if (w_xor && n < N) w ^= xor_mask16(w_xor, K, k);
        wv[r][j] = w;
      }
#if QEVAL_DEC_STAGE_A
    for (int i = tid; i < M * (KC / 16); i += WG) {  // stage A[0..M) × [kc, kc + KC) as words
      const int m = i / (KC / 16);
      const int q = i % (KC / 16);
      uint4 a = load_s8_16(A, lda, M, K, m, kc + 16 * q, vec);
      if (a_xor) a ^= xor_mask16(a_xor, K, kc + 16 * q);
      *(__local uint4*)&As[m * (KC / 4) + 4 * q] = a;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
#endif
#pragma unroll
    for (int j = 0; j < DJ; ++j) {
      const int q = lane + TPC * j;
#pragma unroll
      for (int m = 0; m < MMAX; ++m) {
        if (m < M) {
#if QEVAL_DEC_STAGE_A
          const uint4 a = *(__local const uint4*)&As[m * (KC / 4) + 4 * q];
#else
          uint4 a = load_s8_16(A, lda, M, K, m, kc + 16 * q, vec);
          if (a_xor) a ^= xor_mask16(a_xor, K, kc + 16 * q);
#endif
#pragma unroll
          for (int r = 0; r < RPT; ++r) {
            int s = acc[r][m];
            s = dot4_acc(a.s0, wv[r][j].s0, s);
            s = dot4_acc(a.s1, wv[r][j].s1, s);
            s = dot4_acc(a.s2, wv[r][j].s2, s);
            s = dot4_acc(a.s3, wv[r][j].s3, s);
            acc[r][m] = s;
          }
        }
      }
    }
#if QEVAL_DEC_STAGE_A
    barrier(CLK_LOCAL_MEM_FENCE);
#endif
  }

  // Sum the TPC partials of each (weight row, activation row); lane m % TPC writes output m.
#pragma unroll
  for (int r = 0; r < RPT; ++r) {
    const int n = n0 + r * GROUPS;
#if defined(QEVAL_NV_SHFL)
    int tot[MMAX];
#pragma unroll
    for (int m = 0; m < MMAX; ++m) tot[m] = lanes_sum(acc[r][m]);
#else
#pragma unroll
    for (int m = 0; m < MMAX; ++m) red[m * WG + tid] = acc[r][m];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = TPC / 2; s > 0; s >>= 1) {
      if (lane < s) {
#pragma unroll
        for (int m = 0; m < MMAX; ++m) red[m * WG + tid] += red[m * WG + tid + s];
      }
      barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif
    if (n < N) {
      for (int m = lane; m < M && m < MMAX; m += TPC) {
#if defined(QEVAL_NV_SHFL)
        int v = 0;
#pragma unroll
        for (int mm = 0; mm < MMAX; ++mm)
          if (mm == m) v = tot[mm];
#else
        const int v = red[m * WG + grp * TPC];
#endif
#if QEVAL_EPI
        Y[(size_t)m * (size_t)ldy + n] = epi_term(m, n, v, 0, K, QEVAL_EPI_ARGS);
#else
        C[(size_t)m * (size_t)ldc + n] = v;
#endif
      }
    }
#if !defined(QEVAL_NV_SHFL)
    barrier(CLK_LOCAL_MEM_FENCE);  // red is rewritten for the next row
#endif
  }
}
