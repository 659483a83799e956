// quant/cpu/gemm_avx512.cpp — AVX-512 VNNI int8 GEMM for W8A8: C[M,N] (int32) = A[M,K] (int8) · B[N,K]ᵀ (int8).
//
// vpdpbusd multiplies *unsigned* bytes of its first source by *signed* bytes of its second and adds
// groups of four into int32 lanes. Both operands here are signed, so B is fed as u8 = B + 128 (a bit
// flip: b xor 0x80) and the excess is removed afterwards:
//   Σ_k (B[n][k] + 128)·A[m][k] = Σ_k A[m][k]·B[n][k] + 128·Σ_k A[m][k]   →   C = acc − 128·rowsum(A)[m].
// The correction depends only on the row of A (computed once, O(M·K)), which is why the activations
// stay signed and the weights get the offset. Worked number: A = [−3, 5], B = [2, −1]: acc =
// 130·(−3) + 127·5 = 245, rowsum = 2, 245 − 256 = −11 = (−3)·2 + 5·(−1). No intermediate saturates:
// (b + 128)·a ∈ [−32640, 32385] and vpdpbusd adds the four products into the lane in int32 with
// wrap-around, so the result equals the exact dot product modulo 2^32 (exact while |C| < 2^31).
// Padding: k beyond K is zero in A (or the packed B is zero there), so padded lanes add 0.
//
// Kernels:
//   * small M (decode, M ≤ kSmallM = 16), straight from the unpacked matrices — B is streamed from
//     memory exactly once and nothing is packed (packing B would cost as much as the product at M = 1):
//       - M ≤ 2: row_dot, one row of B at a time (one long sequential stream), 4 k-steps in flight;
//       - else:  dot_tile, 4 rows of A × 4 rows of B, 64 k per step, the next 4 rows of B prefetched;
//     both end with horizontal sums (reduce16 / reduce_add);
//   * large M: B packed once per 64-column panel as u8 in the layout vpdpbusd wants ([k/4][64][4 bytes],
//     4 zmm per k-quad; the panel, K × 64 bytes, stays in L2) and a 6×64 register tile (24 zmm
//     accumulators) that broadcasts A's 4-byte k-quads straight from its rows; C is written once
//     (K is split only beyond 8192). Loop order: panel of B (jr) → 6-row tiles of A (ir).
//
// Compiled with AVX-512 flags; internal linkage except the entry point (see kernels_avx512.hpp).
// GCC 12 reports -W(maybe-)uninitialized inside the intrinsic headers (their _mm512_undefined_*() "don't
// care" operands, e.g. in _mm512_unpacklo_epi32) once they are inlined here; a known false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "quant/cpu/kernels_avx512.hpp"

namespace qeval::cpu::avx512 {
namespace {

constexpr int64_t kSmallM = 16;     // M at or below this → unpacked kernels (row_dot / dot_tile), no packing
constexpr int64_t kRowDotMaxM = 2;  // M at or below this → row_dot (see gemm_small_m)
constexpr int kMR = 6;           // rows of the packed micro-tile
constexpr int64_t kNR = 64;      // columns of the packed micro-tile (4 zmm × 16 int32)
constexpr int64_t kKC = 8192;    // k per block: one packed B panel (KC × 64 bytes = 512 KiB) stays in L2

__mmask16 mask16(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1u);
}
__mmask64 mask64(int64_t n) {
  return n >= 64 ? ~static_cast<__mmask64>(0) : n <= 0 ? 0 : ((static_cast<__mmask64>(1) << n) - 1);
}

// corr[i] = 128·Σ_k A[i][k] modulo 2^32 (what the u8 offset of B added to row i of C).
void row_corrections(const int8_t* a, int64_t lda, int64_t m, int64_t k, int32_t* corr) {
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t i = 0; i < m; ++i) {
    const int8_t* row = a + i * lda;
    __m512i acc = _mm512_setzero_si512();
    for (int64_t kk = 0; kk < k; kk += 64)
      acc = _mm512_dpbusd_epi32(acc, ones, _mm512_maskz_loadu_epi8(mask64(k - kk), row + kk));
    const uint32_t s = static_cast<uint32_t>(_mm512_reduce_add_epi32(acc));
    corr[i] = static_cast<int32_t>(s << 7);
  }
}

// Sum of each of 16 vectors → lane t of the result holds Σ lanes of v[t]. Pairwise tree: 32-bit, then
// 64-bit interleaves within 128-bit lanes, then two 128-bit lane shuffles (45 shuffles/adds in all).
__m512i reduce16(const __m512i* v) {
  __m512i s1[8], s2[4], s3[2];
  for (int i = 0; i < 8; ++i)
    s1[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                             _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i)
    s2[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(s1[2 * i], s1[2 * i + 1]),
                             _mm512_unpackhi_epi64(s1[2 * i], s1[2 * i + 1]));
  // s2[i]: 128-bit lane L holds partial sums of v[4i..4i+3].
  for (int i = 0; i < 2; ++i)
    s3[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(s2[2 * i], s2[2 * i + 1], 0x88),
                             _mm512_shuffle_i32x4(s2[2 * i], s2[2 * i + 1], 0xDD));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(s3[0], s3[1], 0x88), _mm512_shuffle_i32x4(s3[0], s3[1], 0xDD));
}

// ---- small M: unpacked dot tiles ------------------------------------------------------------------

// Accumulators c<j><i> (row j of A × row i of B) are named variables so that they stay in registers
// (see micro_tile for what GCC does with an array of them).
#define QEVAL_DOT_B_ROW(i, LOAD)                                                         \
  if constexpr (NB > i) {                                                                \
    const __m512i bv = _mm512_xor_si512(LOAD(b + i * ldb + kk), x80);                    \
    c0##i = _mm512_dpbusd_epi32(c0##i, bv, a0);                                          \
    if constexpr (MB > 1) c1##i = _mm512_dpbusd_epi32(c1##i, bv, a1);                    \
    if constexpr (MB > 2) c2##i = _mm512_dpbusd_epi32(c2##i, bv, a2);                    \
    if constexpr (MB > 3) c3##i = _mm512_dpbusd_epi32(c3##i, bv, a3);                    \
  }
#define QEVAL_DOT_STEP(LOAD)                                                  \
  {                                                                           \
    const __m512i a0 = LOAD(a + kk);                                          \
    const __m512i a1 = MB > 1 ? LOAD(a + lda + kk) : z;                       \
    const __m512i a2 = MB > 2 ? LOAD(a + 2 * lda + kk) : z;                   \
    const __m512i a3 = MB > 3 ? LOAD(a + 3 * lda + kk) : z;                   \
    QEVAL_DOT_B_ROW(0, LOAD)                                                  \
    QEVAL_DOT_B_ROW(1, LOAD)                                                  \
    QEVAL_DOT_B_ROW(2, LOAD)                                                  \
    QEVAL_DOT_B_ROW(3, LOAD)                                                  \
  }

template <int MB, int NB>
void dot_tile(const int8_t* a, int64_t lda, const int8_t* b, const int8_t* b_next, int64_t ldb, int64_t k,
              const int32_t* corr, int32_t* c, int64_t ldc) {
  static_assert(MB >= 1 && MB <= 4 && NB >= 1 && NB <= 4, "at most 4×4 accumulators (one reduce16)");
  const __m512i x80 = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i z = _mm512_setzero_si512();
  __m512i c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
  __m512i c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
  // The next block of B rows (the caller's next n0) is touched ahead: each row is a short stream
  // (K bytes), too short for the hardware prefetcher to ramp up on before it ends.
  const int8_t* bnext = b_next;
  int64_t kk = 0;
#define QEVAL_LOADU(p) _mm512_loadu_si512(p)
  for (; kk + 64 <= k; kk += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(bnext + kk), _MM_HINT_T0);
    if constexpr (NB > 1) _mm_prefetch(reinterpret_cast<const char*>(bnext + ldb + kk), _MM_HINT_T0);
    if constexpr (NB > 2) _mm_prefetch(reinterpret_cast<const char*>(bnext + 2 * ldb + kk), _MM_HINT_T0);
    if constexpr (NB > 3) _mm_prefetch(reinterpret_cast<const char*>(bnext + 3 * ldb + kk), _MM_HINT_T0);
    QEVAL_DOT_STEP(QEVAL_LOADU)
  }
#undef QEVAL_LOADU
  // Park the accumulators before the k tail: if the tail used the named registers too, GCC would
  // shuffle and spill them inside the main loop (as in micro_tile).
  alignas(64) __m512i v[16] = {c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33};
  if (kk < k) {
    // A's lanes past K load as 0, so whatever B's padded lanes hold (0 xor 0x80 = 128) adds 0.
    const __mmask64 mk = mask64(k - kk);
    for (int i = 0; i < NB; ++i) {
      const __m512i bv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mk, b + i * ldb + kk), x80);
      for (int j = 0; j < MB; ++j)
        v[j * 4 + i] = _mm512_dpbusd_epi32(v[j * 4 + i], bv, _mm512_maskz_loadu_epi8(mk, a + j * lda + kk));
    }
  }
  // Lane t = j·NB + i of the reduction is C[j][i].
  if constexpr (NB < 4) {
    for (int j = 0; j < MB; ++j)
      for (int i = 0; i < NB; ++i) v[j * NB + i] = v[j * 4 + i];
  }
  alignas(64) int32_t s[16];
  _mm512_store_si512(s, reduce16(v));
  for (int j = 0; j < MB; ++j)
    for (int i = 0; i < NB; ++i)
      c[j * ldc + i] = static_cast<int32_t>(static_cast<uint32_t>(s[j * NB + i]) - static_cast<uint32_t>(corr[j]));
}
#undef QEVAL_DOT_B_ROW
#undef QEVAL_DOT_STEP

using DotTileFn = void (*)(const int8_t*, int64_t, const int8_t*, const int8_t*, int64_t, int64_t, const int32_t*,
                           int32_t*, int64_t);

// Decode: one row of B at a time against up to 4 rows of A, 4 k-steps in flight, so B is read as
// one long sequential stream (its rows are contiguous when ldb == K) instead of several short ones.
#define QEVAL_ROW_U(u)                                                                                  \
  {                                                                                                     \
    const __m512i bv = _mm512_xor_si512(_mm512_loadu_si512(brow + kk + 64 * u), x80);                  \
    c0##u = _mm512_dpbusd_epi32(c0##u, bv, _mm512_loadu_si512(a + kk + 64 * u));                       \
    if constexpr (MB > 1) c1##u = _mm512_dpbusd_epi32(c1##u, bv, _mm512_loadu_si512(a + lda + kk + 64 * u));     \
    if constexpr (MB > 2) c2##u = _mm512_dpbusd_epi32(c2##u, bv, _mm512_loadu_si512(a + 2 * lda + kk + 64 * u)); \
    if constexpr (MB > 3) c3##u = _mm512_dpbusd_epi32(c3##u, bv, _mm512_loadu_si512(a + 3 * lda + kk + 64 * u)); \
  }
template <int MB>
void row_dot(const int8_t* a, int64_t lda, const int8_t* brow, int64_t k, const int32_t* corr, int32_t* c,
             int64_t ldc) {
  static_assert(MB >= 1 && MB <= 4, "4 rows of A × 4 k-steps = 16 accumulators");
  const __m512i x80 = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i z = _mm512_setzero_si512();
  __m512i c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
  __m512i c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
  int64_t kk = 0;
  for (; kk + 256 <= k; kk += 256) {
    QEVAL_ROW_U(0)
    QEVAL_ROW_U(1)
    QEVAL_ROW_U(2)
    QEVAL_ROW_U(3)
  }
  // Park (see dot_tile), then the k tail 64 at a time with masks.
  alignas(64) __m512i v[4] = {_mm512_add_epi32(_mm512_add_epi32(c00, c01), _mm512_add_epi32(c02, c03)),
                              _mm512_add_epi32(_mm512_add_epi32(c10, c11), _mm512_add_epi32(c12, c13)),
                              _mm512_add_epi32(_mm512_add_epi32(c20, c21), _mm512_add_epi32(c22, c23)),
                              _mm512_add_epi32(_mm512_add_epi32(c30, c31), _mm512_add_epi32(c32, c33))};
  for (; kk < k; kk += 64) {
    const __mmask64 mk = mask64(k - kk);
    const __m512i bv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mk, brow + kk), x80);
    for (int j = 0; j < MB; ++j) v[j] = _mm512_dpbusd_epi32(v[j], bv, _mm512_maskz_loadu_epi8(mk, a + j * lda + kk));
  }
  for (int j = 0; j < MB; ++j)
    c[j * ldc] =
        static_cast<int32_t>(static_cast<uint32_t>(_mm512_reduce_add_epi32(v[j])) - static_cast<uint32_t>(corr[j]));
}
#undef QEVAL_ROW_U

void gemm_small_m(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb,
                  int32_t* c, int64_t ldc, const int32_t* corr) {
  static const DotTileFn table[4][4] = {
      {dot_tile<1, 1>, dot_tile<1, 2>, dot_tile<1, 3>, dot_tile<1, 4>},
      {dot_tile<2, 1>, dot_tile<2, 2>, dot_tile<2, 3>, dot_tile<2, 4>},
      {dot_tile<3, 1>, dot_tile<3, 2>, dot_tile<3, 3>, dot_tile<3, 4>},
      {dot_tile<4, 1>, dot_tile<4, 2>, dot_tile<4, 3>, dot_tile<4, 4>},
  };
  // M ≤ 2: row_dot (one sequential stream over B). Measured on the EPYC (Zen 4), one thread, N = K = 4096:
  // M = 1 0.46–0.55 ms vs 1.0–1.4 ms with the 4×4 tiles; M = 2 0.90 vs 0.95–1.08; from M = 4 on the tiles
  // win (0.9 vs 1.6 ms at M = 4), since each B vector then feeds 4 rows of A from registers.
  if (m <= kRowDotMaxM) {
    using RowFn = void (*)(const int8_t*, int64_t, const int8_t*, int64_t, const int32_t*, int32_t*, int64_t);
    static const RowFn rows[4] = {row_dot<1>, row_dot<2>, row_dot<3>, row_dot<4>};
    for (int64_t j = 0; j < n; ++j)
      for (int64_t m0 = 0; m0 < m; m0 += 4) {
        const int64_t mb = m - m0 < 4 ? m - m0 : 4;
        rows[mb - 1](a + m0 * lda, lda, b + j * ldb, k, corr + m0, c + m0 * ldc + j, ldc);
      }
    return;
  }
  // n-blocks outer: the 4 rows of B (4·K bytes) stay in L1 while every row block of A (≤ 16·K bytes,
  // L1/L2) passes over them, so B is read from memory exactly once.
  for (int64_t n0 = 0; n0 < n; n0 += 4) {
    const int64_t nb = n - n0 < 4 ? n - n0 : 4;
    for (int64_t m0 = 0; m0 < m; m0 += 4) {
      const int64_t mb = m - m0 < 4 ? m - m0 : 4;
      // Rows to prefetch: the next block of B (this block again at the end: no pointer past B).
      const int8_t* b_next = n0 + 4 < n ? b + (n0 + 4) * ldb : b + n0 * ldb;
      table[mb - 1][nb - 1](a + m0 * lda, lda, b + n0 * ldb, b_next, ldb, k, corr + m0, c + m0 * ldc + n0, ldc);
    }
  }
}

// ---- large M: packed blocks + 6×64 register tile ----------------------------------------------------

// In-register transpose of a 16×16 matrix of dwords: r[i] = row i → r[j] = column j.
void transpose16x16_epi32(__m512i* r) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);      // a0 b0 a1 b1 | per 128-bit lane
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);  // a2 b2 a3 b3
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);      // a0 b0 c0 d0
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);      // a1 b1 c1 d1
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);  // a2 b2 c2 d2
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);  // a3 b3 c3 d3
  }
  // u[4i+e], 128-bit lane L = rows 4i..4i+3 of column 4L+e; gather lane L of u[e], u[4+e], u[8+e], u[12+e].
  for (int e = 0; e < 4; ++e) {
    const __m512i s0 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x44);
    const __m512i s1 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xEE);
    const __m512i s2 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x44);
    const __m512i s3 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xEE);
    r[0 + e] = _mm512_shuffle_i32x4(s0, s2, 0x88);
    r[4 + e] = _mm512_shuffle_i32x4(s0, s2, 0xDD);
    r[8 + e] = _mm512_shuffle_i32x4(s1, s3, 0x88);
    r[12 + e] = _mm512_shuffle_i32x4(s1, s3, 0xDD);
  }
}

// Packs B[n0 .. n0+nc) × [k0 .. k0+kc) as u8 (b xor 0x80) into panels of 64 columns:
// panel p at bp + p·kcq·256, byte (kq·256 + col·4 + j) = B[n0 + 64p + col][k0 + 4kq + j] + 128;
// columns ≥ n and k ≥ k0 + kc are 0 (contribute nothing).
void pack_b(const int8_t* b, int64_t ldb, int64_t n0, int64_t nc, int64_t k0, int64_t kc, uint8_t* bp) {
  const int64_t kcq = (kc + 3) / 4;
  for (int64_t p = 0; p * kNR < nc; ++p) {
    uint8_t* panel = bp + p * kcq * 256;
    for (int64_t v = 0; v < 4; ++v) {
      const int64_t col0 = p * kNR + v * 16;  // within the block
      const int64_t rows_valid = nc - col0;
      for (int64_t kk = 0; kk < kc; kk += 64) {
        const int64_t q0 = kk / 4;
        // Columns past the block are zero; no pointer into B is formed for them.
        const int8_t* src = rows_valid > 0 ? b + (n0 + col0) * ldb + k0 + kk : b;
        pack_b_16x64(src, ldb, rows_valid, kc - kk, 0x80, panel + q0 * 256 + v * 64, 256, kcq - q0 < 16 ? kcq - q0 : 16);
      }
    }
  }
}

// Four bytes of A as one dword (the k-quad vpdpbusd multiplies in one lane).
inline int32_t load_i32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// C tile (MR × up to 64) = or += the product of one A micro-panel and one B micro-panel.
// The 24 accumulators are named variables, not an array: GCC does not scalarize an array of 24 zmm
// (1.5 KiB, above its SRA size limit) and then keeps it on the stack, storing every accumulator every
// iteration — measured 2.5× slower. Rows ≥ MR are compiled out (if constexpr).
#define QEVAL_TILE_ROW(r)                                                 \
  if constexpr (MR > r) {                                                 \
    const __m512i av = _mm512_set1_epi32(load_i32(a + r * lda + 4 * q)); \
    c##r##0 = _mm512_dpbusd_epi32(c##r##0, b0, av);                       \
    c##r##1 = _mm512_dpbusd_epi32(c##r##1, b1, av);                       \
    c##r##2 = _mm512_dpbusd_epi32(c##r##2, b2, av);                       \
    c##r##3 = _mm512_dpbusd_epi32(c##r##3, b3, av);                       \
  }

// Writes one row of the tile: C = acc − corr (first k block) or C += acc; lanes past nvalid untouched
// (masked-off lanes of a masked load/store are not accessed).
inline void store_tile_row(int32_t* cr, __m512i a0, __m512i a1, __m512i a2, __m512i a3, bool first, int32_t corr,
                           int64_t nvalid) {
  __m512i v0, v1, v2, v3;
  if (nvalid == kNR) {
    if (first) {
      const __m512i cv = _mm512_set1_epi32(corr);
      v0 = _mm512_sub_epi32(a0, cv), v1 = _mm512_sub_epi32(a1, cv);
      v2 = _mm512_sub_epi32(a2, cv), v3 = _mm512_sub_epi32(a3, cv);
    } else {
      v0 = _mm512_add_epi32(_mm512_loadu_si512(cr), a0), v1 = _mm512_add_epi32(_mm512_loadu_si512(cr + 16), a1);
      v2 = _mm512_add_epi32(_mm512_loadu_si512(cr + 32), a2), v3 = _mm512_add_epi32(_mm512_loadu_si512(cr + 48), a3);
    }
    _mm512_storeu_si512(cr, v0);
    _mm512_storeu_si512(cr + 16, v1);
    _mm512_storeu_si512(cr + 32, v2);
    _mm512_storeu_si512(cr + 48, v3);
    return;
  }
  const __mmask16 m0 = mask16(nvalid), m1 = mask16(nvalid - 16), m2 = mask16(nvalid - 32), m3 = mask16(nvalid - 48);
  if (first) {
    const __m512i cv = _mm512_set1_epi32(corr);
    v0 = _mm512_sub_epi32(a0, cv), v1 = _mm512_sub_epi32(a1, cv);
    v2 = _mm512_sub_epi32(a2, cv), v3 = _mm512_sub_epi32(a3, cv);
  } else {
    v0 = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m0, cr), a0);
    v1 = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m1, cr + 16), a1);
    v2 = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m2, cr + 32), a2);
    v3 = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m3, cr + 48), a3);
  }
  _mm512_mask_storeu_epi32(cr, m0, v0);
  _mm512_mask_storeu_epi32(cr + 16, m1, v1);
  _mm512_mask_storeu_epi32(cr + 32, m2, v2);
  _mm512_mask_storeu_epi32(cr + 48, m3, v3);
}

template <int MR>
void micro_tile(const int8_t* a, int64_t lda, const uint8_t* bp, int64_t kcq, int32_t* c, int64_t ldc, int64_t nvalid,
                bool first, const int32_t* corr) {
  static_assert(MR >= 1 && MR <= 6, "6 rows × 4 zmm = 24 accumulators");
  const __m512i z = _mm512_setzero_si512();
  __m512i c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z, c20 = z, c21 = z, c22 = z, c23 = z;
  __m512i c30 = z, c31 = z, c32 = z, c33 = z, c40 = z, c41 = z, c42 = z, c43 = z, c50 = z, c51 = z, c52 = z, c53 = z;
  for (int64_t q = 0; q < kcq; ++q) {
    const __m512i b0 = _mm512_load_si512(bp + q * 256);
    const __m512i b1 = _mm512_load_si512(bp + q * 256 + 64);
    const __m512i b2 = _mm512_load_si512(bp + q * 256 + 128);
    const __m512i b3 = _mm512_load_si512(bp + q * 256 + 192);
    QEVAL_TILE_ROW(0)
    QEVAL_TILE_ROW(1)
    QEVAL_TILE_ROW(2)
    QEVAL_TILE_ROW(3)
    QEVAL_TILE_ROW(4)
    QEVAL_TILE_ROW(5)
  }
  // Park the accumulators in memory first: with the epilogue's branches (first / N tail) inlined after
  // the loop, GCC's allocator otherwise spills them *inside* the loop (a store per dpbusd).
  alignas(64) int32_t t[MR][kNR];
#define QEVAL_PARK(r)                                    \
  if constexpr (MR > r) {                                \
    _mm512_store_si512(t[r], c##r##0);                   \
    _mm512_store_si512(t[r] + 16, c##r##1);              \
    _mm512_store_si512(t[r] + 32, c##r##2);              \
    _mm512_store_si512(t[r] + 48, c##r##3);              \
  }
  QEVAL_PARK(0)
  QEVAL_PARK(1)
  QEVAL_PARK(2)
  QEVAL_PARK(3)
  QEVAL_PARK(4)
  QEVAL_PARK(5)
#undef QEVAL_PARK
  for (int r = 0; r < MR; ++r)
    store_tile_row(c + r * ldc, _mm512_load_si512(t[r]), _mm512_load_si512(t[r] + 16), _mm512_load_si512(t[r] + 32),
                   _mm512_load_si512(t[r] + 48), first, corr[r], nvalid);
}
#undef QEVAL_TILE_ROW

using MicroFn = void (*)(const int8_t*, int64_t, const uint8_t*, int64_t, int32_t*, int64_t, int64_t, bool,
                         const int32_t*);

void gemm_packed(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb,
                 int32_t* c, int64_t ldc, const int32_t* corr) {
  static const MicroFn micro[kMR + 1] = {nullptr,       micro_tile<1>, micro_tile<2>, micro_tile<3>,
                                         micro_tile<4>, micro_tile<5>, micro_tile<6>};
  // The micro-kernel broadcasts A's k-quads straight from the rows of A. When K is not a multiple of 4
  // the last quad would read past the row (past the matrix, for the last row), so A is then copied
  // once with rows padded by zeros to a multiple of 4 (O(M·K), small next to the O(M·N·K) product).
  const int8_t* ap = a;
  int64_t ldap = lda;
  AlignedBuffer apad(k % 4 ? m * ((k + 3) / 4 * 4) : 0);
  if (k % 4) {
    ldap = (k + 3) / 4 * 4;
    for (int64_t i = 0; i < m; ++i) {
      std::memcpy(apad.p + i * ldap, a + i * lda, static_cast<size_t>(k));
      std::memset(apad.p + i * ldap + k, 0, static_cast<size_t>(ldap - k));
    }
    ap = reinterpret_cast<const int8_t*>(apad.p);
  }
  const int64_t kc_max = k < kKC ? k : kKC;
  AlignedBuffer bbuf(((kc_max + 3) / 4) * 256);  // one packed 64-column panel
  for (int64_t pc = 0; pc < k; pc += kKC) {
    const int64_t kc = k - pc < kKC ? k - pc : kKC;
    const int64_t kcq = (kc + 3) / 4;
    for (int64_t jr = 0; jr < n; jr += kNR) {
      const int64_t nvalid = n - jr < kNR ? n - jr : kNR;
      pack_b(b, ldb, jr, nvalid, pc, kc, bbuf.p);
      for (int64_t ir = 0; ir < m; ir += kMR) {
        const int64_t mr = m - ir < kMR ? m - ir : kMR;
        micro[mr](ap + ir * ldap + pc, ldap, bbuf.p, kcq, c + ir * ldc + jr, ldc, nvalid, pc == 0, corr + ir);
      }
    }
  }
}

}  // namespace

void pack_b_16x64(const int8_t* b, int64_t ldb, int64_t rows_valid, int64_t kvalid, uint8_t flip, uint8_t* dst,
                  int64_t dst_stride, int64_t nquads) {
  const __mmask64 mk = mask64(kvalid);
  const __m512i fl = _mm512_maskz_mov_epi8(mk, _mm512_set1_epi8(static_cast<char>(flip)));
  __m512i r[16];
  for (int i = 0; i < 16; ++i)
    r[i] = i < rows_valid ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(mk, b + i * ldb), fl) : _mm512_setzero_si512();
  transpose16x16_epi32(r);
  for (int64_t q = 0; q < nquads; ++q) _mm512_storeu_si512(dst + q * dst_stride, r[q]);
}

void gemm_s8s8_s32_vnni(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb,
                        int32_t* c, int64_t ldc) {
  AlignedBuffer corr_buf(m * 4);
  int32_t* corr = reinterpret_cast<int32_t*>(corr_buf.p);
  row_corrections(a, lda, m, k, corr);
  if (m <= kSmallM)
    gemm_small_m(m, n, k, a, lda, b, ldb, c, ldc, corr);
  else
    gemm_packed(m, n, k, a, lda, b, ldb, c, ldc, corr);
}

}  // namespace qeval::cpu::avx512
