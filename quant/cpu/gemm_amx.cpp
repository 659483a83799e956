// quant/cpu/gemm_amx.cpp — AMX-INT8 GEMM for W8A8: C[M,N] (int32) = A[M,K] (int8) · B[N,K]ᵀ (int8) with tdpbssd.
//
// tdpbssd multiplies signed by signed bytes, so unlike the VNNI kernel no offset/correction is needed:
// C_tile[m][n] += Σ_q Σ_j A_tile[m][4q + j] · B_tile[q][4n + j] (Intel SDM, TDPBSSD), int32 wrap-around.
// Tiles: 16 rows × 64 bytes each (palette 1). A tile = 16 rows of A × 64 k; B tile = 16 k-quads ×
// (16 columns × 4 bytes) — B transposed into quads (pack_b_16x64, shared with the VNNI packer, no flip);
// C tile = 16 × 16 int32. A 2×2 block of C tiles (tmm0-3) uses tmm4-5 for A and tmm6-7 for B, so every
// k-step of 64 does 4 loads and 4 tdpbssd (16·16·64·4 = 65536 MACs).
//
// Blocking: pc (KC = 1024 k; the whole M×KC block of A packed once) → jc (NC = 256 columns; packed B
// block 256 KiB, in L2) → ic (32 rows; the 32×1024 A panel, 32 KiB, stays in L1 across jr) → jr (32 columns). C is accumulated in place
// across pc (tile load/store with the row stride of C; edge tiles go through a 16×16 scratch tile).
// Everything is zero-padded to whole tiles in the packed copies, so tails need no special kernel.
//
// Requires AMX-TILE + AMX-INT8 and, on Linux, the XTILEDATA permission (quant/cpu/dispatch.cpp asks for it
// in cpu_features(); calling this without it raises SIGILL). Compiled with -mamx-tile -mamx-int8 on top of
// the AVX-512 flags; internal linkage except the entry point (see kernels_avx512.hpp).
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

constexpr int64_t kTile = 16;     // rows of every tile; columns of a C tile
constexpr int64_t kTileK = 64;    // k bytes per A tile row / per k-step
constexpr int64_t kKC = 1024;     // k per block (16 k-steps)
constexpr int64_t kNC = 256;      // columns per packed B block
constexpr int64_t kTileBytes = kTile * kTileK;  // 1 KiB

// Palette-1 tile configuration (Intel SDM, LDTILECFG): 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

void configure_tiles() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof(cfg));
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = static_cast<uint8_t>(kTile);
    cfg.colsb[t] = static_cast<uint16_t>(kTileK);
  }
  _tile_loadconfig(&cfg);
}

__mmask64 mask64(int64_t n) {
  return n >= 64 ? ~static_cast<__mmask64>(0) : n <= 0 ? 0 : ((static_cast<__mmask64>(1) << n) - 1);
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// A[i0 .. i0+32) × [k0 .. k0+kc) → two row strips of 16, each kc/64 tiles of 16 rows × 64 bytes
// (strip s, k-step t at ap + (s·steps + t)·1 KiB); rows ≥ m and k ≥ K zero.
void pack_a_panel(const int8_t* a, int64_t lda, int64_t m, int64_t k, int64_t i0, int64_t k0, int64_t steps,
                  uint8_t* ap) {
  for (int64_t s = 0; s < 2; ++s)
    for (int64_t t = 0; t < steps; ++t) {
      uint8_t* tile = ap + (s * steps + t) * kTileBytes;
      const int64_t kk = k0 + t * kTileK;
      const __mmask64 mk = mask64(k - kk);
      for (int64_t r = 0; r < kTile; ++r) {
        const int64_t row = i0 + s * kTile + r;
        const __m512i v = row < m ? _mm512_maskz_loadu_epi8(mk, a + row * lda + kk) : _mm512_setzero_si512();
        _mm512_store_si512(tile + r * kTileK, v);
      }
    }
}

// B[j0 .. j0+nc) × [k0 .. k0+kc) → strips of 16 columns, each `steps` tiles of 16 k-quads × 64 bytes
// (strip s, k-step t at bp + (s·steps + t)·1 KiB); columns ≥ n and k ≥ K zero.
void pack_b_block(const int8_t* b, int64_t ldb, int64_t n, int64_t k, int64_t j0, int64_t nc_pad, int64_t k0,
                  int64_t steps, uint8_t* bp) {
  for (int64_t s = 0; s < nc_pad / kTile; ++s)
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t col0 = j0 + s * kTile;
      const int64_t kk = k0 + t * kTileK;
      const int8_t* src = col0 < n ? b + col0 * ldb + kk : b;  // strips past N are all zero (not read)
      pack_b_16x64(src, ldb, n - col0, k - kk, 0, bp + (s * steps + t) * kTileBytes, kTileK, kTile);
    }
}

// The tile intrinsics take the tile number as a literal (it becomes part of the register name).
#define QEVAL_TILE_CASES(OP) \
  switch (t) {               \
    case 0: OP(0); break;    \
    case 1: OP(1); break;    \
    case 2: OP(2); break;    \
    default: OP(3); break;   \
  }

// C tile t (0..3) ← rows i, cols j of C: zero (first k block) or loaded from C. Edge tiles (rows past m
// or columns past n) go through `scratch`.
void load_c(int t, int32_t* c, int64_t ldc, int64_t i, int64_t j, int64_t m, int64_t n, bool first, int32_t* scratch) {
  if (first) {
#define QEVAL_ZERO(T) _tile_zero(T)
    QEVAL_TILE_CASES(QEVAL_ZERO)
#undef QEVAL_ZERO
    return;
  }
  const void* src = c + i * ldc + j;
  int64_t stride = ldc * 4;
  if (!(i + kTile <= m && j + kTile <= n)) {
    std::memset(scratch, 0, kTile * kTile * 4);
    for (int64_t r = 0; r < kTile && i + r < m; ++r)
      for (int64_t q = 0; q < kTile && j + q < n; ++q) scratch[r * kTile + q] = c[(i + r) * ldc + j + q];
    src = scratch;
    stride = kTile * 4;
  }
#define QEVAL_LOAD(T) _tile_loadd(T, src, stride)
  QEVAL_TILE_CASES(QEVAL_LOAD)
#undef QEVAL_LOAD
}

void store_c(int t, int32_t* c, int64_t ldc, int64_t i, int64_t j, int64_t m, int64_t n, int32_t* scratch) {
  if (i >= m || j >= n) return;
  if (i + kTile <= m && j + kTile <= n) {
    void* dst = c + i * ldc + j;
    const int64_t stride = ldc * 4;
#define QEVAL_STORE(T) _tile_stored(T, dst, stride)
    QEVAL_TILE_CASES(QEVAL_STORE)
#undef QEVAL_STORE
    return;
  }
#define QEVAL_STORE_SCRATCH(T) _tile_stored(T, scratch, kTile * 4)
  QEVAL_TILE_CASES(QEVAL_STORE_SCRATCH)
#undef QEVAL_STORE_SCRATCH
  for (int64_t r = 0; r < kTile && i + r < m; ++r)
    for (int64_t q = 0; q < kTile && j + q < n; ++q) c[(i + r) * ldc + j + q] = scratch[r * kTile + q];
}
#undef QEVAL_TILE_CASES

}  // namespace

void gemm_s8s8_s32_amx(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb,
                       int32_t* c, int64_t ldc) {
  const int64_t kc_max = round_up(k < kKC ? k : kKC, kTileK);
  const int64_t nc_max = round_up(n < kNC ? n : kNC, 2 * kTile);
  AlignedBuffer bbuf(nc_max * kc_max);
  const int64_t m_pad = round_up(m, 2 * kTile);
  AlignedBuffer abuf(m_pad * kc_max);  // the whole k block of A, packed once per pc
  alignas(64) int32_t scratch[kTile * kTile];
  configure_tiles();
  for (int64_t pc = 0; pc < k; pc += kKC) {
    const int64_t kc = k - pc < kKC ? k - pc : kKC;
    const int64_t steps = (kc + kTileK - 1) / kTileK;
    const bool first = pc == 0;
    for (int64_t ic = 0; ic < m; ic += 2 * kTile) pack_a_panel(a, lda, m, k, ic, pc, steps, abuf.p + ic * steps * kTileK);
    for (int64_t jc = 0; jc < n; jc += kNC) {
      const int64_t nc = n - jc < kNC ? n - jc : kNC;
      const int64_t nc_pad = round_up(nc, 2 * kTile);
      pack_b_block(b, ldb, n, k, jc, nc_pad, pc, steps, bbuf.p);
      for (int64_t ic = 0; ic < m; ic += 2 * kTile) {
        const uint8_t* a0 = abuf.p + ic * steps * kTileK;  // 32-row panel: 2·steps tiles
        const uint8_t* a1 = a0 + steps * kTileBytes;
        for (int64_t jr = 0; jr < nc_pad; jr += 2 * kTile) {
          const int64_t j = jc + jr;
          const uint8_t* b0 = bbuf.p + (jr / kTile) * steps * kTileBytes;
          const uint8_t* b1 = b0 + steps * kTileBytes;
          load_c(0, c, ldc, ic, j, m, n, first, scratch);
          load_c(1, c, ldc, ic, j + kTile, m, n, first, scratch);
          load_c(2, c, ldc, ic + kTile, j, m, n, first, scratch);
          load_c(3, c, ldc, ic + kTile, j + kTile, m, n, first, scratch);
          for (int64_t t = 0; t < steps; ++t) {
            _tile_loadd(4, a0 + t * kTileBytes, kTileK);
            _tile_loadd(5, a1 + t * kTileBytes, kTileK);
            _tile_loadd(6, b0 + t * kTileBytes, kTileK);
            _tile_loadd(7, b1 + t * kTileBytes, kTileK);
            _tile_dpbssd(0, 4, 6);
            _tile_dpbssd(1, 4, 7);
            _tile_dpbssd(2, 5, 6);
            _tile_dpbssd(3, 5, 7);
          }
          store_c(0, c, ldc, ic, j, m, n, scratch);
          store_c(1, c, ldc, ic, j + kTile, m, n, scratch);
          store_c(2, c, ldc, ic + kTile, j, m, n, scratch);
          store_c(3, c, ldc, ic + kTile, j + kTile, m, n, scratch);
        }
      }
    }
  }
  _tile_release();
}

}  // namespace qeval::cpu::avx512
