// gpu/kernels/common.cl — shared OpenCL C helpers: the 4×int8 dot product per tier, the element decoders of
// every packed format, and the scale/zero-point epilogue of the quantized GEMMs. Included by the kernel
// files (the build resolves the #include, gpu/tools/embed_cl.cpp); OpenCL C 1.2.
#ifndef QEVAL_COMMON_CL
#define QEVAL_COMMON_CL

#include "quant/layouts.h"

// Exactness first: no contraction of a·b + c into fma where a kernel must reproduce the reference bit for
// bit (codes, dequantized values). The GEMM epilogues are float and tested with a derived tolerance.
#pragma OPENCL FP_CONTRACT OFF

#ifdef QEVAL_HAS_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

// ---- float division as the reference does it -----------------------------------------------------------
// The reference computes inv_scale = 1.0f / scale and x̂ / col_scale as correctly rounded float divisions.
// OpenCL C lets a float division be off by 2.5 ulp unless the program is built with
// -cl-fp32-correctly-rounded-divide-sqrt, which gpu/device.cpp passes to every program on a device that
// reports CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT (the host computes the parameters on any other device).
// Writing (float)(1.0 / (double)s) instead does not help: LLVM shrinks fptrunc(fdiv(fpext a, fpext b)) to
// a float division (legal, the double rounding is innocuous), which the device then does approximately
// — NVIDIA's OpenCL did exactly that (issue 13: one code off in rare elements).
//
// QEVAL_CL_APPROX_RECIP (tests only, tests/gpu/exactness_cl_test.cpp): an approximate reciprocal of the
// kind GPUs have (an initial guess from the exponent bits and three Newton steps in float; within about
// 2 ulp, often 1 ulp off), deterministic on every device, so a test on PoCL shows that an inexact
// reciprocal changes codes on crafted inputs. Host twin: approx_recip_model() in that test.
#ifdef QEVAL_CL_APPROX_RECIP
inline float qeval_recip(float s) {
  float y = as_float(0x7EF311C3u - as_uint(s));
  for (int i = 0; i < 3; ++i) {
    const float e = s * y;
    y = y * (2.0f - e);
  }
  return y;
}
inline float qeval_div(float a, float b) { return a * qeval_recip(b); }
#else
inline float qeval_recip(float s) { return 1.0f / s; }
inline float qeval_div(float a, float b) { return a / b; }
#endif

// ---- dot4: acc + Σ_{i<4} a_i·b_i over the four signed bytes of two 32-bit words ---------------------
// T0 portable: four multiplies in int (no overflow: |a_i·b_i| ≤ 16384).
// T0 on NVIDIA (QEVAL_DOT4_NV): the PTX dp4a.s32.s32 instruction (sm_61+) through inline assembly, which
//   NVIDIA's OpenCL compiler accepts; used only after its known-answer probe passed (gpu/device.cpp).
// T1 (QEVAL_DOT4_KHR): cl_khr_integer_dot_product's packed 4×8-bit dot product.
#if defined(QEVAL_DOT4_NV)
inline int dot4_acc(uint a, uint b, int c) {
  int d;
  asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}
#elif defined(QEVAL_DOT4_KHR)
#if defined(__opencl_c_integer_dot_product_input_4x8bit_packed)
inline int dot4_acc(uint a, uint b, int c) { return c + dot_4x8packed_ss_int(a, b); }
#elif defined(__opencl_c_integer_dot_product_input_4x8bit)
inline int dot4_acc(uint a, uint b, int c) { return c + dot(as_char4(a), as_char4(b)); }
#elif defined(cl_khr_integer_dot_product)
// Pre-3.0 OpenCL C: only the extension macro is defined; the packed form is what every implementation has.
#pragma OPENCL EXTENSION cl_khr_integer_dot_product : enable
inline int dot4_acc(uint a, uint b, int c) { return c + dot_4x8packed_ss_int(a, b); }
#else
#error "T1 needs cl_khr_integer_dot_product (feature macro __opencl_c_integer_dot_product_input_4x8bit*)"
#endif
#else
inline int dot4_acc(uint a, uint b, int c) {
  const char4 x = as_char4(a);
  const char4 y = as_char4(b);
  return c + (int)x.s0 * (int)y.s0 + (int)x.s1 * (int)y.s1 + (int)x.s2 * (int)y.s2 + (int)x.s3 * (int)y.s3;
}
#endif

// Four packed unsigned nibbles (storage codes u, one per byte, 0..15) → four signed bytes u − 8.
// Byte-wise without borrows: (u | 0x80) − 8 ∈ [120, 135], then XOR 0x80 subtracts 128 mod 256.
// Worked number: u = 3 → 0x83 − 0x08 = 0x7B → 0xFB = −5 = 3 − 8.
inline uint nibbles_to_s8x4(uint w) { return ((w | 0x80808080u) - 0x08080808u) ^ 0x80808080u; }

// Two packed bytes of int4 storage codes (low nibble first, quant/layouts.h) → one word of 4 signed bytes.
inline uint int4x4_to_s8x4(uint two_bytes) {
  const uint spread = (two_bytes & 0xFu) | ((two_bytes & 0xF0u) << 4) | ((two_bytes & 0xF00u) << 8) |
                      ((two_bytes & 0xF000u) << 12);
  return nibbles_to_s8x4(spread);
}

// ---- element decode of every packed format (planar bit stream of quant/layouts.h) ---------------------
// Format ids: the order of qeval::quant::Format (quant/matrix.hpp).
#define QEVAL_FMT_INT 0
#define QEVAL_FMT_FP4_E2M1 1
#define QEVAL_FMT_FP4_BNB 2
#define QEVAL_FMT_NF4 3
#define QEVAL_FMT_FP8_E4M3 4
#define QEVAL_FMT_FP8_E5M2 5

// Storage code of element c (row-local index) from a row's bytes; bits ≤ 8, so at most two bytes.
inline uint packed_code_at(__global const uchar* row, int c, int bits) {
  const int bit = c * bits;
  const int byte = bit >> 3;
  const int shift = bit & 7;
  uint v = (uint)row[byte] >> shift;
  if (shift + bits > 8) v |= (uint)row[byte + 1] << (8 - shift);
  return v & ((1u << bits) - 1u);
}

// FP8 bit patterns → float, exactly (OCP OFP8 rev 1.0; quant/layouts.h): ldexp of small integers is exact.
inline float fp8_e4m3_value(uint u) {
  const int e = (int)((u >> 3) & 15u);
  const int m = (int)(u & 7u);
  float v;
  if (e == 15 && m == 7) v = NAN;                       // S.1111.111: the only NaN, no Inf
  else if (e == 0) v = ldexp((float)m, -9);             // subnormal: m·2^(1−7−3)
  else v = ldexp((float)(8 + m), e - 10);               // (1 + m/8)·2^(e−7)
  return (u & 0x80u) ? -v : v;
}
inline float fp8_e5m2_value(uint u) {
  const int e = (int)((u >> 2) & 31u);
  const int m = (int)(u & 3u);
  float v;
  if (e == 31) v = m == 0 ? INFINITY : NAN;
  else if (e == 0) v = ldexp((float)m, -16);            // subnormal: m·2^(1−15−2)
  else v = ldexp((float)(4 + m), e - 17);               // (1 + m/4)·2^(e−15)
  return (u & 0x80u) ? -v : v;
}

// x̂ of one storage code, as quant/ref/quantize_ref.cpp computes it:
//   int_affine: dequantize_one(q, g) = scale·float(q − zero_point), q = u − offset, saturated to ±FLT_MAX;
//   code books: scale·decode(u), saturated to ±FLT_MAX when the code itself is finite.
inline float dequant_code(uint u, int fmt, int bits, int sym, float scale, int zp) {
  if (fmt == QEVAL_FMT_INT) {
    const int q = (int)u - (sym ? (1 << (bits - 1)) : 0);
    const float v = scale * (float)(q - zp);
    return v > FLT_MAX ? FLT_MAX : (v < -FLT_MAX ? -FLT_MAX : v);
  }
  float d;
  if (fmt == QEVAL_FMT_FP4_E2M1) d = qeval_fp4_e2m1_values[u & 15u];
  else if (fmt == QEVAL_FMT_FP4_BNB) d = qeval_fp4_bnb_values[u & 15u];
  else if (fmt == QEVAL_FMT_NF4) d = qeval_nf4_values[u & 15u];
  else if (fmt == QEVAL_FMT_FP8_E4M3) d = fp8_e4m3_value(u);
  else d = fp8_e5m2_value(u);
  const float v = scale * d;
  if (isinf(v) && isfinite(d)) return v > 0.0f ? FLT_MAX : -FLT_MAX;
  return v;
}

// ---- scale/zero-point epilogue of the int8 GEMMs ------------------------------------------------------
// For a K segment s of G real elements in which every scale and zero point is constant:
//   Σ_k (qa − za)(qw − zw) = acc − zw·ΣA − za·ΣW + G·za·zw,   acc = Σ_k qa·qw (int32, exact),
// with qa, qw the signed GEMM operands (storage code − 2^(b−1)) and za, zw the zero points shifted the same
// way (za_off / zw_off = 2^(b−1) for asymmetric codes; a NULL zero-point array means symmetric, 0).
// ΣA[m][s], ΣW[n][s] are the segment sums of the signed operand codes. The correction is formed in
// 64-bit (|acc| ≤ 16384·K and each correction term is of the same order, so int32 could overflow for
// K ≥ 2^15) and the float result is (sa·sw)·float(corr).
#define QEVAL_EPI_PARAMS                                                                                  \
  __global const float *sa, __global const int *za, __global const int *sum_a, int a_glen, int a_gpr,     \
      __global const float *sw, __global const int *zw, __global const int *sum_w, int w_glen, int w_gpr, \
      int seg, int nseg, int za_off, int zw_off
#define QEVAL_EPI_ARGS sa, za, sum_a, a_glen, a_gpr, sw, zw, sum_w, w_glen, w_gpr, seg, nseg, za_off, zw_off

// One side of the epilogue of a segment: the scale, the shifted zero point and the code sum that the other
// side's zero point multiplies. Row m of A (epi_side_a) or row n of W (epi_side_w); a kernel may load these
// once per segment for a whole register tile (gemm_tiled.cl) — the per-element arithmetic below is the same,
// so every kernel variant gives the same float bits.
typedef struct {
  float s;   // scale
  long z;    // zero point − offset (0: symmetric)
  long sum;  // Σ of the signed operand codes over the segment (0 when the other side is symmetric)
} EpiSide;

inline EpiSide epi_side_a(int m, int s, QEVAL_EPI_PARAMS) {
  const int ga = m * a_gpr + (s * seg) / a_glen;
  EpiSide e;
  e.s = sa[ga];
  e.z = za ? (long)(za[ga] - za_off) : 0;
  e.sum = zw ? (long)sum_a[m * nseg + s] : 0;
  return e;
}

inline EpiSide epi_side_w(int n, int s, QEVAL_EPI_PARAMS) {
  const int gw = n * w_gpr + (s * seg) / w_glen;
  EpiSide e;
  e.s = sw[gw];
  e.z = zw ? (long)(zw[gw] - zw_off) : 0;
  e.sum = za ? (long)sum_w[n * nseg + s] : 0;
  return e;
}

inline float epi_combine(int acc, EpiSide a, EpiSide w, int G) {
  long corr = (long)acc;
  if (w.z != 0) corr -= w.z * a.sum;
  if (a.z != 0) corr -= a.z * w.sum;
  corr += (long)G * a.z * w.z;
  return (a.s * w.s) * (float)corr;
}

inline float epi_term(int m, int n, int acc, int s, int G, QEVAL_EPI_PARAMS) {
  return epi_combine(acc, epi_side_a(m, s, QEVAL_EPI_ARGS), epi_side_w(n, s, QEVAL_EPI_ARGS), G);
}

// ---- NVIDIA warp shuffles (QEVAL_NV_SHFL; PTX shfl.sync.bfly through inline assembly, sm_70+) -------------
// Butterfly exchange with lane ^ mask inside the 32-lane warp. Used only by kernel variants the tuner tries on
// NVIDIA devices and verifies against the reference (gpu/variants.cpp); every lane of the warp must execute it.
#if defined(QEVAL_NV_SHFL)
inline int shfl_xor_i32(int v, int mask) {
  int r;
  asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=r"(r) : "r"(v), "r"(mask));
  return r;
}
inline float shfl_xor_f32(float v, int mask) { return as_float(shfl_xor_i32(as_int(v), mask)); }
#endif

// ---- operand loads of the int8 GEMMs ------------------------------------------------------------------
// XOR mask for the 16 bytes k … k+15: `x` on the bytes below K, 0 on the zero padding beyond K (which must
// stay operand 0, not become −128).
inline uint4 xor_mask16(uint x, int K, int k) {
  if (k + 16 <= K) return (uint4)(x);
  uint m[4] = {0u, 0u, 0u, 0u};
  for (int i = 0; i < 16; ++i)
    if (k + i < K) m[i >> 2] |= x & (0xFFu << (8 * (i & 3)));
  return (uint4)(m[0], m[1], m[2], m[3]);
}

// vec (set by the host from the row strides; buffers are at least 128-byte aligned): 2 = every row start and k
// (a multiple of 16) are 16-byte aligned, so one 128-bit load (vloadn only promises element alignment, and
// compilers then emit four 32-bit loads); 1 = 4-byte aligned words; 0 = bytes.
inline uint4 load_s8_16(__global const uchar* P, int ld, int rows, int K, int row, int k, int vec) {
  uint4 w = (uint4)(0u);
  if (row >= rows) return w;
  __global const uchar* p = P + (size_t)row * (size_t)ld + k;
  if (vec == 2 && k + 16 <= K) return *(__global const uint4*)p;
  if (vec && k + 16 <= K) return vload4(0, (__global const uint*)p);
  uint tmp[4] = {0u, 0u, 0u, 0u};
  for (int i = 0; i < 16; ++i)
    if (k + i < K) tmp[i >> 2] |= (uint)p[i] << (8 * (i & 3));
  return (uint4)(tmp[0], tmp[1], tmp[2], tmp[3]);
}

// int4 variant: 16 elements k … k+15 of row `row` from the packed stream (8 bytes at k/2; k is even).
inline uint4 load_s4_16(__global const uchar* P, int ld, int rows, int K, int row, int k, int vec) {
  if (row >= rows) return (uint4)(0u);
  __global const uchar* p = P + (size_t)row * (size_t)ld + (k >> 1);
  uint2 b;
  if (vec == 2 && k + 16 <= K) {
    b = *(__global const uint2*)p;  // k/2 is a multiple of 8: 8-byte aligned
  } else if (vec && k + 16 <= K) {
    b = vload2(0, (__global const uint*)p);
  } else {
    uint tmp[2] = {0u, 0u};
    // nibbles beyond K must become the code 8 (operand 0), not 0 (operand −8)
    for (int i = 0; i < 16; ++i) {
      const uint nib = (k + i < K) ? (((uint)p[i >> 1] >> (4 * (i & 1))) & 0xFu) : 8u;
      tmp[i >> 3] |= nib << (4 * (i & 7));
    }
    b = (uint2)(tmp[0], tmp[1]);
  }
  return (uint4)(int4x4_to_s8x4(b.s0 & 0xFFFFu), int4x4_to_s8x4(b.s0 >> 16), int4x4_to_s8x4(b.s1 & 0xFFFFu),
                 int4x4_to_s8x4(b.s1 >> 16));
}

#endif  // QEVAL_COMMON_CL
