// gpu/kernels/gemm_tiled.cl — T0/T1 int8 GEMM C = A·Wᵀ (A: M×K activations, W: N×K weights, both K-contiguous)
// with local-memory tiling and 4×int8 dot products; int32 output (exact) or the scale/zero-point epilogue.
//
// Tile: BM×BN outputs per work-group of (BM/TM)·(BN/TN) work-items, K in stages of BK = 32 or 64 bytes (BK/4
// words of four int8), double-buffered in local memory as As[k4][m] / Bs[k4][n] (k-major, so a work-item reads
// TM (TN) consecutive words of one k4 row with 128-bit loads). BM, BN, TM, TN, BK are the tuner's parameters
// (gpu/variants.hpp TiledVariant); every combination computes the same int32 accumulators and the same float
// epilogue bits. Each work-item owns TM×TN accumulators at rows
// {h·(BM/2)… } — two blocks of 4 rows (and columns) half a tile apart when TM = 8, which keeps the 128-bit
// local loads of a warp/wave on distinct banks. Row stride of the local tiles is BM + 4 words: the two
// work-items that store the two halves of one A row then hit different banks (528 B apart ≡ 16 banks).
//
// Operands: A bytes are storage codes or int8; a_xor (0x80808080 for uint8 storage codes u) turns them into
// the signed operand u − 128 while staging. W is int8 (w_xor as for A) or, with QEVAL_W_BITS == 4, int4
// storage codes packed two per byte (planar stream, low nibble first), expanded to u − 8 while staging.
// K tails and M/N edges are zero-filled in the tiles, so they add nothing to the accumulators.
//
// Epilogue (QEVAL_EPI == 1, common.cl): at the end of every K segment of `seg` elements (a multiple of BK, or K;
// the host checks) the accumulators are folded into float results with that segment's scales and zero points,
// loaded once per segment for the TM rows and TN columns of the work-item (epi_side_a / epi_side_w).
#include "common.cl"

#ifndef QEVAL_BM
#define QEVAL_BM 128
#endif
#ifndef QEVAL_BN
#define QEVAL_BN 128
#endif
#ifndef QEVAL_TM
#define QEVAL_TM 8
#endif
#ifndef QEVAL_TN
#define QEVAL_TN 8
#endif
#ifndef QEVAL_BK
#define QEVAL_BK 32
#endif
#ifndef QEVAL_W_BITS
#define QEVAL_W_BITS 8
#endif
#ifndef QEVAL_EPI
#define QEVAL_EPI 0
#endif

#define BM QEVAL_BM
#define BN QEVAL_BN
#define TM QEVAL_TM
#define TN QEVAL_TN
#define BK QEVAL_BK             // K bytes per stage
#define NTX (BN / TN)           // work-items along n
#define NTY (BM / TM)           // work-items along m
#define NTHREADS (NTX * NTY)
#define BK4 (BK / 4)            // words per row per stage
#define CPR (BK / 16)           // 16-byte parts per row per stage (consecutive work-items load one row's parts)
#define LDA (BM + 4)            // local row stride (words)
#define LDB (BN + 4)
#define HM (NTY * 4)            // distance between a work-item's 4-row blocks
#define HN (NTX * 4)
#define A_PASSES ((BM * CPR + NTHREADS - 1) / NTHREADS)  // 16-byte parts each work-item stages per stage
#define B_PASSES ((BN * CPR + NTHREADS - 1) / NTHREADS)

#if (TM % 4) || (TN % 4)
#error "TM and TN must be multiples of 4"
#endif
#if BK != 32 && BK != 64
#error "BK must be 32 or 64"
#endif

#if QEVAL_W_BITS == 4
#define LOAD_W load_s4_16
#else
#define LOAD_W load_s8_16
#endif

// Part p of this work-item's staging: tile row and 16-byte part within the stage.
#define PART_ROW(p) ((tid + (p) * NTHREADS) / CPR)
#define PART_K(p) (16 * ((tid + (p) * NTHREADS) % CPR))

__kernel __attribute__((reqd_work_group_size(NTHREADS, 1, 1))) void gemm_tiled(
    int M, int N, int K, __global const uchar* A, int lda, uint a_xor, __global const uchar* W, int ldw, uint w_xor,
    int vec,                                  // load_s8_16: 2 = 16-byte rows, 1 = 4-byte rows, 0 = bytes
    __global int* C, int ldc,                 // QEVAL_EPI == 0: int32 C
    __global float* Y, int ldy,               // QEVAL_EPI == 1: float Y
    QEVAL_EPI_PARAMS) {
  // 16-byte aligned: the operand reads below are 128-bit loads (LDA, LDB are multiples of 4 words).
  __local uint As[2][BK4][LDA] __attribute__((aligned(16)));
  __local uint Bs[2][BK4][LDB] __attribute__((aligned(16)));

  const int tid = get_local_id(0);
  const int tx = tid % NTX;
  const int ty = tid / NTX;
  const int m_base = get_group_id(1) * BM;
  const int n_base = get_group_id(0) * BN;

  int acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0;
#if QEVAL_EPI
  float yacc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) yacc[i][j] = 0.0f;
#endif

  const int nstages = (K + BK - 1) / BK;
  uint4 ra[A_PASSES];
  uint4 rb[B_PASSES];

  // Global → registers. The XOR (storage code → signed operand) must not touch the zero padding beyond K or
  // M/N (padded bytes would become −128), so it is applied to the bytes in range only (xor_mask16).
#define LOAD_STAGE(kk)                                                                                        \
  {                                                                                                           \
    for (int p = 0; p < A_PASSES; ++p) {                                                   \
      const int rr = PART_ROW(p), k = (kk) + PART_K(p);                                                       \
      ra[p] = rr < BM ? load_s8_16(A, lda, M, K, m_base + rr, k, vec) : (uint4)(0u);                          \
      if (a_xor && rr < BM && m_base + rr < M) ra[p] ^= xor_mask16(a_xor, K, k);                              \
    }                                                                                                         \
    for (int p = 0; p < B_PASSES; ++p) {                                                   \
      const int rr = PART_ROW(p), k = (kk) + PART_K(p);                                                       \
      rb[p] = rr < BN ? LOAD_W(W, ldw, N, K, n_base + rr, k, vec) : (uint4)(0u);                              \
      if (QEVAL_W_BITS == 8 && w_xor && rr < BN && n_base + rr < N) rb[p] ^= xor_mask16(w_xor, K, k);         \
    }                                                                                                         \
  }
  // Registers → local memory (words k4 = part·4 + 0..3 of tile row rr).
#define STORE_STAGE(buf)                                                                                      \
  {                                                                                                           \
    for (int p = 0; p < A_PASSES; ++p) {                                                   \
      const int rr = PART_ROW(p), k4 = PART_K(p) / 4;                                                         \
      if (rr < BM) {                                                                                          \
        As[buf][k4 + 0][rr] = ra[p].s0;                                                                       \
        As[buf][k4 + 1][rr] = ra[p].s1;                                                                       \
        As[buf][k4 + 2][rr] = ra[p].s2;                                                                       \
        As[buf][k4 + 3][rr] = ra[p].s3;                                                                       \
      }                                                                                                       \
    }                                                                                                         \
    for (int p = 0; p < B_PASSES; ++p) {                                                   \
      const int rr = PART_ROW(p), k4 = PART_K(p) / 4;                                                         \
      if (rr < BN) {                                                                                          \
        Bs[buf][k4 + 0][rr] = rb[p].s0;                                                                       \
        Bs[buf][k4 + 1][rr] = rb[p].s1;                                                                       \
        Bs[buf][k4 + 2][rr] = rb[p].s2;                                                                       \
        Bs[buf][k4 + 3][rr] = rb[p].s3;                                                                       \
      }                                                                                                       \
    }                                                                                                         \
  }

  LOAD_STAGE(0);
  STORE_STAGE(0);
  barrier(CLK_LOCAL_MEM_FENCE);

  for (int st = 0; st < nstages; ++st) {
    const int buf = st & 1;
    if (st + 1 < nstages) LOAD_STAGE((st + 1) * BK);
#pragma unroll
    for (int kk = 0; kk < BK4; ++kk) {
      uint a[TM], b[TN];
#pragma unroll
      for (int h = 0; h < TM / 4; ++h) {
        const uint4 w = *(__local const uint4*)&As[buf][kk][h * HM + ty * 4];
        a[4 * h + 0] = w.s0;
        a[4 * h + 1] = w.s1;
        a[4 * h + 2] = w.s2;
        a[4 * h + 3] = w.s3;
      }
#pragma unroll
      for (int h = 0; h < TN / 4; ++h) {
        const uint4 w = *(__local const uint4*)&Bs[buf][kk][h * HN + tx * 4];
        b[4 * h + 0] = w.s0;
        b[4 * h + 1] = w.s1;
        b[4 * h + 2] = w.s2;
        b[4 * h + 3] = w.s3;
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = dot4_acc(a[i], b[j], acc[i][j]);
    }
#if QEVAL_EPI
    {
      const int k_end = min((st + 1) * BK, K);  // end of this stage (segments are multiples of BK, or K)
      if (k_end % seg == 0 || k_end == K) {
        const int s = (k_end - 1) / seg;
        const int G = min(seg, K - s * seg);
        EpiSide ea[TM], ew[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i) {
          const int m = m_base + (i / 4) * HM + ty * 4 + (i % 4);
          if (m < M) ea[i] = epi_side_a(m, s, QEVAL_EPI_ARGS);
        }
#pragma unroll
        for (int j = 0; j < TN; ++j) {
          const int n = n_base + (j / 4) * HN + tx * 4 + (j % 4);
          if (n < N) ew[j] = epi_side_w(n, s, QEVAL_EPI_ARGS);
        }
#pragma unroll
        for (int i = 0; i < TM; ++i) {
          const int m = m_base + (i / 4) * HM + ty * 4 + (i % 4);
#pragma unroll
          for (int j = 0; j < TN; ++j) {
            const int n = n_base + (j / 4) * HN + tx * 4 + (j % 4);
            if (m < M && n < N) yacc[i][j] += epi_combine(acc[i][j], ea[i], ew[j], G);
            acc[i][j] = 0;
          }
        }
      }
    }
#endif
    if (st + 1 < nstages) STORE_STAGE(buf ^ 1);
    barrier(CLK_LOCAL_MEM_FENCE);
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m_base + (i / 4) * HM + ty * 4 + (i % 4);
    if (m >= M) continue;
#pragma unroll
    for (int h = 0; h < TN / 4; ++h) {
      const int n0 = n_base + h * HN + tx * 4;
#if QEVAL_EPI
      __global float* y = Y + (size_t)m * (size_t)ldy;
      for (int q = 0; q < 4; ++q)
        if (n0 + q < N) y[n0 + q] = yacc[i][4 * h + q];
#else
      __global int* c = C + (size_t)m * (size_t)ldc;
      if (n0 + 4 <= N && (ldc & 3) == 0) {
        vstore4((int4)(acc[i][4 * h], acc[i][4 * h + 1], acc[i][4 * h + 2], acc[i][4 * h + 3]), 0, c + n0);
      } else {
        for (int q = 0; q < 4; ++q)
          if (n0 + q < N) c[n0 + q] = acc[i][4 * h + q];
      }
#endif
    }
  }
}
