// quant/cpu/quantize_avx512.cpp — AVX-512 int8/int4 affine quantize (min/max pass + code pass) and dequantize kernels.
//
// Compiled with -mavx512f/bw/vl/dq; reached only through quant/cpu/dispatch.cpp after the CPU check.
// Everything here has internal linkage except the three entry points of kernels_avx512.hpp (see that
// header for why: no inline/template code may be shared with the non-AVX translation units).
//
// Bit-exactness with qeval::ref (quant/affine.hpp's contract):
//   * min/max are exact in any order, so the SIMD min/max equals the reference's per group;
//   * the code is round_nearest_even(x·inv_scale) with one float32 product (vmulps = mulss per lane,
//     no FMA contraction), clamped to [qmin − zp, qmax − zp], plus zp. We clamp *before* rounding —
//     round(clamp(p, lo, hi)) == clamp(round(p), lo, hi) for integer lo ≤ hi because rounding is monotone
//     and fixes integers — and round in the float→int conversion with an explicit
//     {rn-sae} (vcvtps2dq), independent of MXCSR. Worked number: p = 7.5, hi = 7 → clamp 7 → 7, and
//     round(7.5) = 8 → clamp 7: same. Products that overflow to ±inf clamp to the bound as in the reference.
//   * dequantize: scale · float(u − sub) (exact int→float, one float product), then saturated to ±FLT_MAX
//     like quant::dequantize_one.
// GCC 12 reports -W(maybe-)uninitialized inside the intrinsic headers (their _mm512_undefined_*() "don't
// care" operands, e.g. in _mm512_unpacklo_epi32) once they are inlined here; a known false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "quant/cpu/kernels_avx512.hpp"

namespace qeval::cpu::avx512 {
namespace {

// vfpclassps categories (Intel SDM, VFPCLASSPS imm8): bit0 QNaN, bit3 +Inf, bit4 −Inf, bit7 SNaN.
constexpr int kClassNonFinite = 0x01 | 0x08 | 0x10 | 0x80;
constexpr float kFltMax = 3.40282346638528859812e38f;

__mmask16 mask16(int64_t n) {  // lowest n lanes, 0 ≤ n ≤ 16
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}
__mmask64 mask64(int64_t n) {  // lowest n bytes, 0 ≤ n ≤ 64
  return n >= 64 ? ~static_cast<__mmask64>(0) : ((static_cast<__mmask64>(1) << n) - 1);
}
__mmask32 mask32(int64_t n) {  // lowest n bytes of 32, 0 ≤ n ≤ 32
  return n >= 32 ? ~static_cast<__mmask32>(0) : ((static_cast<__mmask32>(1) << n) - 1);
}

// Scratch memory without std:: containers (see kernels_avx512.hpp).
struct Scratch {
  uint8_t* p = nullptr;
  explicit Scratch(int64_t bytes) {
    const size_t n = (static_cast<size_t>(bytes) + 127) & ~static_cast<size_t>(63);
    p = static_cast<uint8_t*>(std::aligned_alloc(64, n));
    if (p) std::memset(p, 0, n);
  }
  ~Scratch() { std::free(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// ---- pass 1: min/max of one group -----------------------------------------------------------------

// min/max of x[0, n) (n ≥ 1). Returns true when all elements are finite.
bool minmax_group(const float* x, int64_t n, float& lo, float& hi) {
  const __m512 pinf = _mm512_set1_ps(__builtin_inff());
  const __m512 ninf = _mm512_set1_ps(-__builtin_inff());
  __m512 mn0 = pinf, mn1 = pinf, mn2 = pinf, mn3 = pinf;
  __m512 mx0 = ninf, mx1 = ninf, mx2 = ninf, mx3 = ninf;
  __mmask16 bad = 0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512 v0 = _mm512_loadu_ps(x + i);
    const __m512 v1 = _mm512_loadu_ps(x + i + 16);
    const __m512 v2 = _mm512_loadu_ps(x + i + 32);
    const __m512 v3 = _mm512_loadu_ps(x + i + 48);
    mn0 = _mm512_min_ps(mn0, v0);
    mx0 = _mm512_max_ps(mx0, v0);
    mn1 = _mm512_min_ps(mn1, v1);
    mx1 = _mm512_max_ps(mx1, v1);
    mn2 = _mm512_min_ps(mn2, v2);
    mx2 = _mm512_max_ps(mx2, v2);
    mn3 = _mm512_min_ps(mn3, v3);
    mx3 = _mm512_max_ps(mx3, v3);
    const __mmask16 b01 = _kor_mask16(_mm512_fpclass_ps_mask(v0, kClassNonFinite),
                                      _mm512_fpclass_ps_mask(v1, kClassNonFinite));
    const __mmask16 b23 = _kor_mask16(_mm512_fpclass_ps_mask(v2, kClassNonFinite),
                                      _mm512_fpclass_ps_mask(v3, kClassNonFinite));
    bad = _kor_mask16(bad, _kor_mask16(b01, b23));
  }
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    mn0 = _mm512_min_ps(mn0, v);
    mx0 = _mm512_max_ps(mx0, v);
    bad = _kor_mask16(bad, _mm512_fpclass_ps_mask(v, kClassNonFinite));
  }
  if (i < n) {
    const __mmask16 m = mask16(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    mn1 = _mm512_mask_min_ps(mn1, m, mn1, v);
    mx1 = _mm512_mask_max_ps(mx1, m, mx1, v);
    bad = _kor_mask16(bad, _mm512_mask_fpclass_ps_mask(m, v, kClassNonFinite));
  }
  if (bad) return false;
  lo = _mm512_reduce_min_ps(_mm512_min_ps(_mm512_min_ps(mn0, mn1), _mm512_min_ps(mn2, mn3)));
  hi = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(mx0, mx1), _mm512_max_ps(mx2, mx3)));
  return true;
}

// Index of the first NaN/±Inf in x[0, n) (the caller knows there is one).
int64_t first_non_finite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = mask16(n - i);
    const __mmask16 b = _mm512_mask_fpclass_ps_mask(m, _mm512_maskz_loadu_ps(m, x + i), kClassNonFinite);
    if (b) return i + __builtin_ctz(static_cast<unsigned>(b));
  }
  return n;  // not reached
}

// ---- pass 2: codes ------------------------------------------------------------------------------------

// Per-group parameters of the code pass, indexed by group.
struct CodeParams {
  const float* inv;
  const float* clo;
  const float* chi;
  const int32_t* add;
};

// Storage codes (int32 lanes) of 16 elements with the parameters of group gi.
__m512i codes16(__m512 v, const CodeParams& p, int64_t gi) {
  __m512 t = _mm512_mul_ps(v, _mm512_set1_ps(p.inv[gi]));
  t = _mm512_max_ps(t, _mm512_set1_ps(p.clo[gi]));
  t = _mm512_min_ps(t, _mm512_set1_ps(p.chi[gi]));
  const __m512i q = _mm512_cvt_roundps_epi32(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_add_epi32(q, _mm512_set1_epi32(p.add[gi]));
}

// Four int32 code vectors (values 0..255) → 64 bytes in element order. vpackssdw/vpackuswb work per
// 128-bit lane, leaving lane L = [a4L..a4L+3, b4L.., c4L.., d4L..]; the dword permutation restores order.
__m512i pack4_u8(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_packs_epi32(a, b);
  const __m512i cd = _mm512_packs_epi32(c, d);
  const __m512i abcd = _mm512_packus_epi16(ab, cd);
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_epi32(idx, abcd);
}

// 64 byte codes u < 16 in element order → 32 bytes of nibbles, element 2k in the low nibble of byte k.
// As 16-bit lanes w = u_even | u_odd << 8, the low byte of w | (w >> 4) is u_even | u_odd << 4.
__m256i pack_nibbles(__m512i u8) {
  const __m512i w = _mm512_or_si512(u8, _mm512_srli_epi16(u8, 4));
  return _mm512_cvtepi16_epi8(w);  // vpmovwb: keep the low byte of each 16-bit lane
}

// Tracks which group the next 16-lane vector of a row belongs to. Valid when every vector of the
// row (but a partial last one) lies inside one group: group % 16 == 0, or one group per row.
struct GroupCursor {
  int64_t group, gi = 0, left;
  explicit GroupCursor(int64_t g) : group(g), left(g) {}
  int64_t next() {  // group of the next 16 elements
    if (left <= 0) {
      ++gi;
      left += group;
    }
    left -= 16;
    return gi;
  }
};

// One row, groups aligned to vectors (see GroupCursor). Chunks of 64 elements; the last chunk masked.
template <int bits>
void quantize_row_aligned(const float* x, int64_t cols, int64_t group, const CodeParams& p, uint8_t* dst) {
  GroupCursor cur(group);
  int64_t c = 0;
  for (; c + 64 <= cols; c += 64) {
    const __m512i u0 = codes16(_mm512_loadu_ps(x + c), p, cur.next());
    const __m512i u1 = codes16(_mm512_loadu_ps(x + c + 16), p, cur.next());
    const __m512i u2 = codes16(_mm512_loadu_ps(x + c + 32), p, cur.next());
    const __m512i u3 = codes16(_mm512_loadu_ps(x + c + 48), p, cur.next());
    const __m512i u = pack4_u8(u0, u1, u2, u3);
    if constexpr (bits == 8)
      _mm512_storeu_si512(dst + c, u);
    else
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c / 2), pack_nibbles(u));
  }
  if (c < cols) {
    const int64_t rem = cols - c;  // 1..63
    __m512i u[4];
    for (int j = 0; j < 4; ++j) {
      const __mmask16 m = mask16(rem - 16 * j < 0 ? 0 : rem - 16 * j);
      if (m == 0) {
        u[j] = _mm512_setzero_si512();
        continue;
      }
      // Lanes past the row read as 0 and are zeroed again after the formula: padding codes are 0.
      u[j] = _mm512_maskz_mov_epi32(m, codes16(_mm512_maskz_loadu_ps(m, x + c + 16 * j), p, cur.next()));
    }
    const __m512i all = pack4_u8(u[0], u[1], u[2], u[3]);
    if constexpr (bits == 8)
      _mm512_mask_storeu_epi8(dst + c, mask64(rem), all);
    else
      _mm256_mask_storeu_epi8(dst + c / 2, mask32((rem + 1) / 2), pack_nibbles(all));
  }
}

// Any group size: group by group, 16 lanes at a time with a masked tail, bytes written at their
// element offset (int8 output row, or the byte-per-code scratch row before int4 packing).
void quantize_row_generic_u8(const float* x, int64_t cols, int64_t group, const CodeParams& p, uint8_t* u8) {
  const int64_t gpr = cols / group;
  for (int64_t g = 0; g < gpr; ++g) {
    const float* xg = x + g * group;
    uint8_t* ug = u8 + g * group;
    for (int64_t i = 0; i < group; i += 16) {
      const __mmask16 m = mask16(group - i);
      const __m512i u = codes16(_mm512_maskz_loadu_ps(m, xg + i), p, g);
      _mm_mask_storeu_epi8(ug + i, m, _mm512_cvtepi32_epi8(u));
    }
  }
}

// Byte-per-code row → nibble-packed row (cols codes → ceil(cols/2) bytes; odd cols: high nibble 0).
void pack_int4_row(const uint8_t* u8, int64_t cols, uint8_t* dst) {
  int64_t c = 0;
  for (; c + 64 <= cols; c += 64)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c / 2), pack_nibbles(_mm512_loadu_si512(u8 + c)));
  if (c < cols) {
    const int64_t rem = cols - c;
    const __m512i v = _mm512_maskz_loadu_epi8(mask64(rem), u8 + c);
    _mm256_mask_storeu_epi8(dst + c / 2, mask32((rem + 1) / 2), pack_nibbles(v));
  }
}

// ---- dequantize ---------------------------------------------------------------------------------

__m512 dequant16(__m512i u, const float* scale, const int32_t* sub, int64_t gi) {
  const __m512i q = _mm512_sub_epi32(u, _mm512_set1_epi32(sub[gi]));
  const __m512 v = _mm512_mul_ps(_mm512_set1_ps(scale[gi]), _mm512_cvtepi32_ps(q));
  return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-kFltMax)), _mm512_set1_ps(kFltMax));
}

// 32 bytes of nibbles → 64 byte codes in element order (inverse of pack_nibbles): as 16-bit lanes
// holding one byte b, (b & 0x0F) | (b & 0xF0) << 4 puts element 2k in the low and 2k+1 in the high byte.
__m512i unpack_nibbles(__m256i packed) {
  const __m512i w = _mm512_cvtepu8_epi16(packed);
  const __m512i lo = _mm512_and_si512(w, _mm512_set1_epi16(0x000F));
  const __m512i hi = _mm512_slli_epi16(_mm512_and_si512(w, _mm512_set1_epi16(0x00F0)), 4);
  return _mm512_or_si512(lo, hi);
}

template <int bits>
void dequantize_row_aligned(const uint8_t* src, int64_t cols, int64_t group, const float* scale, const int32_t* sub,
                            float* out) {
  GroupCursor cur(group);
  int64_t c = 0;
  for (; c < cols; c += 64) {
    const int64_t rem = cols - c < 64 ? cols - c : 64;
    __m512i u;
    if constexpr (bits == 8) {
      u = rem == 64 ? _mm512_loadu_si512(src + c) : _mm512_maskz_loadu_epi8(mask64(rem), src + c);
    } else {
      const __m256i packed = rem == 64 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + c / 2))
                                       : _mm256_maskz_loadu_epi8(mask32((rem + 1) / 2), src + c / 2);
      u = unpack_nibbles(packed);
    }
    if (rem == 64) {
      _mm512_storeu_ps(out + c, dequant16(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(u, 0)), scale, sub,
                                          cur.next()));
      _mm512_storeu_ps(out + c + 16, dequant16(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(u, 1)), scale, sub,
                                               cur.next()));
      _mm512_storeu_ps(out + c + 32, dequant16(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(u, 2)), scale, sub,
                                               cur.next()));
      _mm512_storeu_ps(out + c + 48, dequant16(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(u, 3)), scale, sub,
                                               cur.next()));
    } else {
      alignas(64) uint8_t tmp[64];
      _mm512_store_si512(tmp, u);
      for (int j = 0; j < 4 && 16 * j < rem; ++j) {
        const __mmask16 m = mask16(rem - 16 * j);
        const __m512i uj = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tmp + 16 * j)));
        _mm512_mask_storeu_ps(out + c + 16 * j, m, dequant16(uj, scale, sub, cur.next()));
      }
    }
  }
}

// Any group size, from a byte-per-code row.
void dequantize_row_generic_u8(const uint8_t* u8, int64_t cols, int64_t group, const float* scale,
                               const int32_t* sub, float* out) {
  const int64_t gpr = cols / group;
  for (int64_t g = 0; g < gpr; ++g) {
    for (int64_t i = 0; i < group; i += 16) {
      const __mmask16 m = mask16(group - i);
      const __m512i u = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, u8 + g * group + i));
      _mm512_mask_storeu_ps(out + g * group + i, m, dequant16(u, scale, sub, g));
    }
  }
}

// Nibble-packed row → byte-per-code row.
void unpack_int4_row(const uint8_t* src, int64_t cols, uint8_t* u8) {
  for (int64_t c = 0; c < cols; c += 64) {
    const int64_t rem = cols - c < 64 ? cols - c : 64;
    const __m256i packed = _mm256_maskz_loadu_epi8(mask32((rem + 1) / 2), src + c / 2);
    _mm512_mask_storeu_epi8(u8 + c, mask64(rem), unpack_nibbles(packed));
  }
}

bool vector_aligned_groups(int64_t cols, int64_t group) { return group % 16 == 0 || group == cols; }

}  // namespace

// ---- entry points ---------------------------------------------------------------------------------

int64_t group_minmax(const float* x, int64_t rows, int64_t cols, int64_t stride, int64_t group, float* lo,
                     float* hi) {
  const int64_t gpr = cols / group;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * stride;
    for (int64_t g = 0; g < gpr; ++g) {
      const float* xg = xr + g * group;
      if (!minmax_group(xg, group, lo[r * gpr + g], hi[r * gpr + g]))
        return r * cols + g * group + first_non_finite(xg, group);
    }
  }
  return -1;
}

void quantize_codes(const float* x, int64_t rows, int64_t cols, int64_t stride, int64_t group, int bits,
                    const float* inv, const float* clo, const float* chi, const int32_t* add, uint8_t* codes,
                    int64_t row_bytes) {
  const int64_t gpr = cols / group;
  if (vector_aligned_groups(cols, group)) {
    for (int64_t r = 0; r < rows; ++r) {
      const CodeParams p{inv + r * gpr, clo + r * gpr, chi + r * gpr, add + r * gpr};
      if (bits == 8)
        quantize_row_aligned<8>(x + r * stride, cols, group, p, codes + r * row_bytes);
      else
        quantize_row_aligned<4>(x + r * stride, cols, group, p, codes + r * row_bytes);
    }
    return;
  }
  Scratch scratch(bits == 4 ? cols : 0);
  for (int64_t r = 0; r < rows; ++r) {
    const CodeParams p{inv + r * gpr, clo + r * gpr, chi + r * gpr, add + r * gpr};
    if (bits == 8) {
      quantize_row_generic_u8(x + r * stride, cols, group, p, codes + r * row_bytes);
    } else {
      quantize_row_generic_u8(x + r * stride, cols, group, p, scratch.p);
      pack_int4_row(scratch.p, cols, codes + r * row_bytes);
    }
  }
}

void dequantize_codes(const uint8_t* codes, int64_t row_bytes, int64_t rows, int64_t cols, int64_t group, int bits,
                      const float* scale, const int32_t* sub, float* out, int64_t out_stride) {
  const int64_t gpr = cols / group;
  if (vector_aligned_groups(cols, group)) {
    for (int64_t r = 0; r < rows; ++r) {
      if (bits == 8)
        dequantize_row_aligned<8>(codes + r * row_bytes, cols, group, scale + r * gpr, sub + r * gpr,
                                  out + r * out_stride);
      else
        dequantize_row_aligned<4>(codes + r * row_bytes, cols, group, scale + r * gpr, sub + r * gpr,
                                  out + r * out_stride);
    }
    return;
  }
  Scratch scratch(bits == 4 ? cols : 0);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* u8 = codes + r * row_bytes;
    if (bits == 4) {
      unpack_int4_row(u8, cols, scratch.p);
      u8 = scratch.p;
    }
    dequantize_row_generic_u8(u8, cols, group, scale + r * gpr, sub + r * gpr, out + r * out_stride);
  }
}

}  // namespace qeval::cpu::avx512
