// gpu/kernels/gemm_tiled.cl — T0/T1 int8 GEMM C = A·Wᵀ (A: M×K activations, W: N×K weights, both K-contiguous)
// with local-memory tiling and 4×int8 dot products; int32 output (exact) or the scale/zero-point epilogue.
//
// Tile: BM×BN outputs per work-group of (BM/TM)·(BN/TN) work-items, K in stages of 32 bytes (8 words of four
// int8), double-buffered in local memory as As[k4][m] / Bs[k4][n] (k-major, so a work-item reads TM (TN)
// consecutive words of one k4 row with 128-bit loads). Each work-item owns TM×TN accumulators at rows
// {h·(BM/2)… } — two blocks of 4 rows (and columns) half a tile apart when TM = 8, which keeps the 128-bit
// local loads of a warp/wave on distinct banks. Row stride of the local tiles is BM + 4 words: the two
// work-items that store the two halves of one A row then hit different banks (528 B apart ≡ 16 banks).
//
// Operands: A bytes are storage codes or int8; a_xor (0x80808080 for uint8 storage codes u) turns them into
// the signed operand u − 128 while staging. W is int8 (w_xor as for A) or, with QEVAL_W_BITS == 4, int4
// storage codes packed two per byte (planar stream, low nibble first), expanded to u − 8 while staging.
// K tails and M/N edges are zero-filled in the tiles, so they add nothing to the accumulators.
//
// Epilogue (QEVAL_EPI == 1, common.cl): at the end of every K segment of `seg` elements (a multiple of 32, or K)
// the accumulators are folded into float results with that segment's scales and zero points.
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
#define NTX (BN / TN)           // work-items along n
#define NTY (BM / TM)           // work-items along m
#define NTHREADS (NTX * NTY)
#define BK 32                   // K bytes per stage
#define BK4 8                   // words per row per stage
#define LDA (BM + 4)            // local row stride (words)
#define LDB (BN + 4)
#define HM (NTY * 4)            // distance between a work-item's 4-row blocks
#define HN (NTX * 4)
// Staging: two work-items per tile row, each 16 bytes of A (or of int8 W; 8 bytes of int4 W).
#define ROWS_PER_PASS (NTHREADS / 2)

#if (TM % 4) || (TN % 4)
#error "TM and TN must be multiples of 4"
#endif
#if (BM % ROWS_PER_PASS) && (ROWS_PER_PASS % BM)
#error "BM must be a multiple or a divisor of NTHREADS/2"
#endif

// Loads the four words (16 bytes, k = k0 + 16·half …) of row `row` of an int8 matrix, zero outside
// [0, rows) × [0, K). vec: the row stride and base keep 4-byte alignment, so whole words can be loaded.
__kernel __attribute__((reqd_work_group_size(NTHREADS, 1, 1))) void gemm_tiled(
    int M, int N, int K, __global const uchar* A, int lda, uint a_xor, __global const uchar* W, int ldw, uint w_xor,
    int vec,                                  // 1: lda, ldw and the bases allow whole-word loads
    __global int* C, int ldc,                 // QEVAL_EPI == 0: int32 C
    __global float* Y, int ldy,               // QEVAL_EPI == 1: float Y
    QEVAL_EPI_PARAMS) {
  __local uint As[2][BK4][LDA];
  __local uint Bs[2][BK4][LDB];

  const int tid = get_local_id(0);
  const int tx = tid % NTX;
  const int ty = tid / NTX;
  const int m_base = get_group_id(1) * BM;
  const int n_base = get_group_id(0) * BN;

  // staging coordinates: row r_ld (+ pass·ROWS_PER_PASS), half h_ld (bytes 16·h_ld … of the stage)
  const int r_ld = tid >> 1;
  const int h_ld = tid & 1;

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
  uint4 ra[(BM + ROWS_PER_PASS - 1) / ROWS_PER_PASS];
  uint4 rb[(BN + ROWS_PER_PASS - 1) / ROWS_PER_PASS];

#define LOAD_STAGE(kk)                                                                                        \
  {                                                                                                           \
    for (int p = 0; p < (BM + ROWS_PER_PASS - 1) / ROWS_PER_PASS; ++p) {                    \
      const int rr = r_ld + p * ROWS_PER_PASS;                                                                \
      ra[p] = rr < BM ? load_s8_16(A, lda, M, K, m_base + rr, (kk) + 16 * h_ld, vec) : (uint4)(0u);           \
    }                                                                                                         \
    for (int p = 0; p < (BN + ROWS_PER_PASS - 1) / ROWS_PER_PASS; ++p) {                    \
      const int rr = r_ld + p * ROWS_PER_PASS;                                                                \
      rb[p] = rr < BN ? LOAD_W(W, ldw, N, K, n_base + rr, (kk) + 16 * h_ld, vec) : (uint4)(0u);               \
    }                                                                                                         \
  }
#if QEVAL_W_BITS == 4
#define LOAD_W load_s4_16
#define W_XOR_APPLY(x) (x)
#else
#define LOAD_W load_s8_16
#define W_XOR_APPLY(x) ((x) ^ (uint4)(w_xor))
#endif
// Zero-filled (out-of-range) A words must stay 0 after the XOR: mask the XOR by "row in range".
#define STORE_STAGE(buf)                                                                                      \
  {                                                                                                           \
    for (int p = 0; p < (BM + ROWS_PER_PASS - 1) / ROWS_PER_PASS; ++p) {                    \
      const int rr = r_ld + p * ROWS_PER_PASS;                                                                \
      if (rr < BM) {                                                                                          \
        uint4 w = ra[p];                                                                                      \
        As[buf][4 * h_ld + 0][rr] = w.s0;                                                                     \
        As[buf][4 * h_ld + 1][rr] = w.s1;                                                                     \
        As[buf][4 * h_ld + 2][rr] = w.s2;                                                                     \
        As[buf][4 * h_ld + 3][rr] = w.s3;                                                                     \
      }                                                                                                       \
    }                                                                                                         \
    for (int p = 0; p < (BN + ROWS_PER_PASS - 1) / ROWS_PER_PASS; ++p) {                    \
      const int rr = r_ld + p * ROWS_PER_PASS;                                                                \
      if (rr < BN) {                                                                                          \
        uint4 w = rb[p];                                                                                      \
        Bs[buf][4 * h_ld + 0][rr] = w.s0;                                                                     \
        Bs[buf][4 * h_ld + 1][rr] = w.s1;                                                                     \
        Bs[buf][4 * h_ld + 2][rr] = w.s2;                                                                     \
        Bs[buf][4 * h_ld + 3][rr] = w.s3;                                                                     \
      }                                                                                                       \
    }                                                                                                         \
  }

  // The XOR (storage code → signed operand) must not touch the zero padding beyond K or M/N: the padded
  // bytes would become −128. So it is applied after the load, to the bytes in range only (xor_mask16).
  LOAD_STAGE(0);
#define FIX_XOR(kk)                                                                                           \
  {                                                                                                           \
    for (int p = 0; p < (BM + ROWS_PER_PASS - 1) / ROWS_PER_PASS; ++p) {                    \
      const int rr = r_ld + p * ROWS_PER_PASS;                                                                \
      if (a_xor && m_base + rr < M) ra[p] ^= xor_mask16(a_xor, K, (kk) + 16 * h_ld);                          \
    }                                                                                                         \
    if (QEVAL_W_BITS == 8 && w_xor) {                                                                         \
      for (int p = 0; p < (BN + ROWS_PER_PASS - 1) / ROWS_PER_PASS; ++p) {                  \
        const int rr = r_ld + p * ROWS_PER_PASS;                                                              \
        if (n_base + rr < N) rb[p] ^= xor_mask16(w_xor, K, (kk) + 16 * h_ld);                                 \
      }                                                                                                       \
    }                                                                                                         \
  }
  FIX_XOR(0);
  STORE_STAGE(0);
  barrier(CLK_LOCAL_MEM_FENCE);

  for (int st = 0; st < nstages; ++st) {
    const int buf = st & 1;
    const int k_next = (st + 1) * BK;
    if (st + 1 < nstages) {
      LOAD_STAGE(k_next);
      FIX_XOR(k_next);
    }
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
#pragma unroll
        for (int i = 0; i < TM; ++i) {
          const int m = m_base + (i / 4) * HM + ty * 4 + (i % 4);
#pragma unroll
          for (int j = 0; j < TN; ++j) {
            const int n = n_base + (j / 4) * HN + tx * 4 + (j % 4);
            if (m < M && n < N) yacc[i][j] += epi_term(m, n, acc[i][j], s, G, QEVAL_EPI_ARGS);
            acc[i][j] = 0;
          }
        }
      }
    }
#endif
    if (st + 1 < nstages) {
      STORE_STAGE(buf ^ 1);
    }
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
