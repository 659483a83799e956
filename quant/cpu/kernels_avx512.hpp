// quant/cpu/kernels_avx512.hpp — internal: raw-pointer AVX-512 / VNNI / AMX kernels behind quant/cpu/dispatch.cpp.
//
// Only dispatch.cpp (compiled without ISA flags) calls these, and only after cpu_features() said the
// instructions and their OS state are available. The translation units that define them are compiled
// with -mavx512* (and -mamx-* for the AMX file), so they must not define or instantiate anything
// another translation unit could share: no std:: containers or templates, no calls to the inline
// functions of quant/affine.hpp (the linker keeps one copy of an inline function, and it could keep
// the AVX-512 one and run it on a CPU without AVX-512). That is why every scalar step of the formula
// (min/max → clip → scale, zero point) happens in dispatch.cpp and these kernels take plain arrays.
//
// Conventions shared by all kernels here:
//   * matrices are row-major with a row stride in elements;
//   * a "group" is `group` consecutive elements of a row (group divides cols); group g of row r of a
//     block has the parameter index r·(cols/group) + g in every per-group array;
//   * codes are storage codes u ∈ [0, 2^bits), packed as in quant/matrix.hpp (LSB-first bit stream,
//     int4 element 2k = low nibble of byte k, each row starts on a byte boundary, padding bits 0).
#pragma once

#include <cstdint>

namespace qeval::cpu::avx512 {

// ---- quantize / dequantize (quantize_avx512.cpp) -----------------------------------------------

// Pass 1: lo/hi[r·gpr + g] = min/max of group g of row r, for rows [0, rows). Returns -1 when every
// element is finite, else the row-major index r·cols + c of the first NaN/±Inf (lo/hi then partial).
int64_t group_minmax(const float* x, int64_t rows, int64_t cols, int64_t stride, int64_t group, float* lo,
                     float* hi);

// Pass 2: u = int(round_nearest_even(clamp(x·inv[i], clo[i], chi[i]))) + add[i] for every element,
// i = the element's group. clo/chi are the integer code bounds relative to the zero point
// (qmin − zp, qmax − zp) and add = zp + storage offset, so that this equals the reference's
// clamp(round(x·inv) + zp, qmin, qmax) + offset exactly (rounding commutes with clamping to integers).
// Writes rows × row_bytes bytes of packed codes (bits 8 or 4).
void quantize_codes(const float* x, int64_t rows, int64_t cols, int64_t stride, int64_t group, int bits,
                    const float* inv, const float* clo, const float* chi, const int32_t* add, uint8_t* codes,
                    int64_t row_bytes);

// x̂ = scale[i] · float(u − sub[i]), sub = storage offset + zero point: the reference's
// scale · float(q − zp) with q = u − offset (all integers far below 2^24, so the float conversion is exact).
void dequantize_codes(const uint8_t* codes, int64_t row_bytes, int64_t rows, int64_t cols, int64_t group, int bits,
                      const float* scale, const int32_t* sub, float* out, int64_t out_stride);

// ---- scratch memory -----------------------------------------------------------------------------

// A 64-byte aligned scratch buffer of `bytes` rounded up to a multiple of 64, plus 64 bytes of slack. Its constructor and destructor are defined in dispatch.cpp, compiled without ISA flags,
// so the VNNI and AMX translation units share one copy that any CPU can run (see the top of this file).
struct AlignedBuffer {
  uint8_t* p = nullptr;
  explicit AlignedBuffer(int64_t bytes);  // throws std::bad_alloc
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
};

// ---- int8 GEMM (gemm_avx512.cpp, gemm_amx.cpp) --------------------------------------------------

// C[m][n] = Σ_k A[m][k]·B[n][k] in int32 (wrapping), A: m×k int8 (lda), B: n×k int8 (ldb), C: m×n (ldc).
// VNNI: vpdpbusd multiplies unsigned by signed bytes, so B is fed as u8 = B + 128 (B xor 0x80) and
// the excess 128·Σ_k A[m][k] is subtracted per row of C (see gemm_avx512.cpp).
void gemm_s8s8_s32_vnni(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb,
                        int32_t* c, int64_t ldc);

// AMX-INT8 (tdpbssd multiplies signed by signed, no correction). The caller must have checked AMX
// support including the Linux XTILEDATA permission (cpu_features().amx_int8).
void gemm_s8s8_s32_amx(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb,
                       int32_t* c, int64_t ldc);

// Shared by the VNNI and AMX packers (gemm_avx512.cpp): a 16-row × 64-byte block of B → 16 k-quads of
// 16 columns × 4 bytes (the layout vpdpbusd and tdpbssd read): dst[q·dst_stride + 4i + j] =
// B[i][4q + j] xor flip for q < nquads; rows i ≥ rows_valid and bytes k ≥ kvalid are 0 (flip not applied).
void pack_b_16x64(const int8_t* b, int64_t ldb, int64_t rows_valid, int64_t kvalid, uint8_t flip, uint8_t* dst,
                  int64_t dst_stride, int64_t nquads);

}  // namespace qeval::cpu::avx512
