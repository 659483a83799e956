// gpu/kernels/quantize.cl — dynamic (per-token / grouped) integer quantization of rows on the device:
// storage codes, scales, zero points and per-group code sums, bit-exact with qeval::ref::quantize_affine_ref.
//
// The arithmetic contract of quant/affine.hpp, step by step:
//   1. the group's finite min/max (order-independent, so a tree reduction finds exactly the reference's);
//   2. group_params_from_range() replicated operation for operation (QEVAL_PARAMS_DEVICE, which the host
//      sets only on devices with cl_khr_fp64 AND correctly rounded float division): the scale and zero point
//      in double (every double operation is IEEE correctly rounded in OpenCL C), inv_scale = 1.0f / scale
//      in float like the reference, correctly rounded because every program is built with
//      -cl-fp32-correctly-rounded-divide-sqrt there (common.cl qeval_recip). On any other device the host
//      computes the parameters from the min/max a first launch wrote (minmax_out), and a second launch
//      (QEVAL_PARAMS_IN = 1) writes the codes;
//   3. per element, in float: v = round(x·inv_scale) (one correctly rounded product; rint = ties-to-even),
//      clamped to [qmin − zp, qmax − zp], code = int(v) + zp, storage code u = code + offset.
// Inputs are float32 or binary16 (QEVAL_IN_HALF; vload_half is exact and everything after it is fp32 —
// the min/max, the range and the scale never pass through fp16, so a ±65504 range cannot overflow).
//
// Work split: a "segment" is one group of one row (per-token: the whole row). TPS threads share a segment
// (a power of two); each handles up to QEVAL_MAX_NV vectors of QEVAL_VEC (1, 4 or 8) elements, kept in
// registers between the range pass and the code pass. A work-group holds get_local_size(0) / TPS segments.
// The segment's min/max/count and code sums are reduced in local memory (a tree) or, with QEVAL_NV_SHFL
// (NVIDIA), by warp shuffles (plus one local step across the warps of a segment when TPS > 32). Min, max and
// integer sums do not depend on the order, so every variant (gpu/variants.hpp QuantizeVariant: VEC, work-group
// size, TPS bound, reduction) writes the same bits.
#include "common.cl"

#ifndef QEVAL_VEC
#define QEVAL_VEC 1
#endif
#ifndef QEVAL_MAX_NV
#define QEVAL_MAX_NV 8
#endif
#ifndef QEVAL_IN_HALF
#define QEVAL_IN_HALF 0
#endif
#ifndef QEVAL_PARAMS_IN
#define QEVAL_PARAMS_IN 0
#endif
#ifndef QEVAL_PARAMS_DEVICE
#define QEVAL_PARAMS_DEVICE 0
#endif

// LOAD4/LOAD8 read VEC elements at an index that is a multiple of VEC of a row whose start is VEC-aligned (the
// host picks VEC dividing the row stride and group length; buffers are 128-byte aligned), so they are aligned
// vector loads — vloadn/vload_halfn only promise element alignment and compilers then split them.
#if QEVAL_IN_HALF
#define IN_T ushort
#define HP(p, i) ((__global const half*)((p) + (i)))
#define LOAD1(p, i) vload_half(0, HP(p, i))
#define LOAD4(p, i) vloada_half4(0, HP(p, i))
#define LOAD8(p, i) vloada_half8(0, HP(p, i))
#else
#define IN_T float
#define LOAD1(p, i) ((p)[i])
#define LOAD4(p, i) (*(__global const float4*)((p) + (i)))
#define LOAD8(p, i) (*(__global const float8*)((p) + (i)))
#endif

// Elements e0 .. e0 + VEC − 1 of a group (gl elements at p) into xs[b .. b + VEC) (zeros past gl). A macro with
// constant indices after unrolling, not a function taking &xs[b]: an escaping address would keep xs in private
// (stack) memory instead of registers.
#if QEVAL_VEC == 8
#define LOAD_VEC(xs, b, p, e0, gl)                                                                 \
  if ((e0) + 8 <= (gl)) {                                                                          \
    const float8 t_ = convert_float8(LOAD8(p, e0));                                                \
    xs[(b) + 0] = t_.s0; xs[(b) + 1] = t_.s1; xs[(b) + 2] = t_.s2; xs[(b) + 3] = t_.s3;            \
    xs[(b) + 4] = t_.s4; xs[(b) + 5] = t_.s5; xs[(b) + 6] = t_.s6; xs[(b) + 7] = t_.s7;            \
  } else {                                                                                         \
    for (int e_ = 0; e_ < 8; ++e_) xs[(b) + e_] = (e0) + e_ < (gl) ? LOAD1(p, (e0) + e_) : 0.0f;   \
  }
#elif QEVAL_VEC == 4
#define LOAD_VEC(xs, b, p, e0, gl)                                                                 \
  if ((e0) + 4 <= (gl)) {                                                                          \
    const float4 t_ = convert_float4(LOAD4(p, e0));                                                \
    xs[(b) + 0] = t_.s0; xs[(b) + 1] = t_.s1; xs[(b) + 2] = t_.s2; xs[(b) + 3] = t_.s3;            \
  } else {                                                                                         \
    for (int e_ = 0; e_ < 4; ++e_) xs[(b) + e_] = (e0) + e_ < (gl) ? LOAD1(p, (e0) + e_) : 0.0f;   \
  }
#else
#define LOAD_VEC(xs, b, p, e0, gl) xs[b] = LOAD1(p, e0);
#endif

#define RND_EVEN 0
#define RND_AWAY 1
#define RND_ZERO 2

inline float round_by(float v, int mode) {
  return mode == RND_EVEN ? rint(v) : (mode == RND_AWAY ? round(v) : trunc(v));
}

#if QEVAL_PARAMS_DEVICE && !defined(QEVAL_HAS_FP64)
#error "QEVAL_PARAMS_DEVICE needs cl_khr_fp64 (the host computes the parameters on devices without it)"
#endif
#ifdef QEVAL_HAS_FP64
typedef double clip_t;
// quant::group_params_from_range (quant/affine.hpp) after choose_range's minmax clip, in the same
// operations (double for the scale and zero point, float for 1.0f / scale). Writes scale, inv_scale and
// the zero point.
inline void group_params(float lo, float hi, int bits, int asym, double clip, float* scale, float* inv, int* zp) {
  if (clip != 1.0) {  // choose_range: c.lo = float(double(lo)·r), c.hi = float(double(hi)·r)
    lo = (float)((double)lo * clip);
    hi = (float)((double)hi * clip);
  }
  const double kFltMaxD = 3.4028234663852886e38;
  float s;
  int z = 0;
  if (!asym) {
    const double amax = fmax(fabs((double)lo), fabs((double)hi));
    double d = amax / (double)((1 << (bits - 1)) - 1);
    if (d > kFltMaxD) d = kFltMaxD;
    s = (float)d;
  } else {
    const double l = fmin((double)lo, 0.0);
    const double h = fmax((double)hi, 0.0);
    const double levels = (double)((1 << bits) - 1);
    double d = (h - l) / levels;
    if (d > kFltMaxD) d = kFltMaxD;
    s = (float)d;
    if (s > 0.0f) {
      double zd = -rint(l / (double)s);
      if (zd < 0.0) zd = 0.0;
      if (zd > levels) zd = levels;
      z = (int)zd;
    }
  }
  float iv = s > 0.0f ? qeval_recip(s) : 0.0f;
  if (!isfinite(iv)) iv = 0.0f;
  *scale = s;
  *inv = iv;
  *zp = z;
}
#else
typedef float clip_t;
#endif

// ---- segment reductions -------------------------------------------------------------------------------
// Every thread of a segment gets the segment's finite min, max and non-finite count (seg_range) or the sum of
// an int (seg_sum). Local arrays hold one slot per work-item (tree) or per warp (shuffles). The branch on tps is
// uniform over the work-group, so the barriers inside are reached by every work-item.
#if defined(QEVAL_NV_SHFL)
#define WARP 32
inline void seg_range(float* lo, float* hi, int* cnt, int tps, int lid, __local float* lmin, __local float* lmax,
                      __local int* lcnt) {
  for (int o = min(tps, WARP) / 2; o > 0; o >>= 1) {
    *lo = fmin(*lo, shfl_xor_f32(*lo, o));
    *hi = fmax(*hi, shfl_xor_f32(*hi, o));
    *cnt += shfl_xor_i32(*cnt, o);
  }
  if (tps <= WARP) return;
  if (lid % WARP == 0) {
    lmin[lid / WARP] = *lo;
    lmax[lid / WARP] = *hi;
    lcnt[lid / WARP] = *cnt;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  const int w0 = (lid - lid % tps) / WARP;  // the segment's first warp
  *lo = lmin[w0];
  *hi = lmax[w0];
  *cnt = lcnt[w0];
  for (int w = 1; w < tps / WARP; ++w) {
    *lo = fmin(*lo, lmin[w0 + w]);
    *hi = fmax(*hi, lmax[w0 + w]);
    *cnt += lcnt[w0 + w];
  }
  barrier(CLK_LOCAL_MEM_FENCE);  // the slots are reused
}
inline int seg_sum(int v, int tps, int lid, __local int* lcnt) {
  for (int o = min(tps, WARP) / 2; o > 0; o >>= 1) v += shfl_xor_i32(v, o);
  if (tps <= WARP) return v;
  if (lid % WARP == 0) lcnt[lid / WARP] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  const int w0 = (lid - lid % tps) / WARP;
  v = lcnt[w0];
  for (int w = 1; w < tps / WARP; ++w) v += lcnt[w0 + w];
  return v;
}
#else
inline void seg_range(float* lo, float* hi, int* cnt, int tps, int lid, __local float* lmin, __local float* lmax,
                      __local int* lcnt) {
  const int t = lid % tps;
  lmin[lid] = *lo;
  lmax[lid] = *hi;
  lcnt[lid] = *cnt;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = tps >> 1; s > 0; s >>= 1) {
    if (t < s) {
      lmin[lid] = fmin(lmin[lid], lmin[lid + s]);
      lmax[lid] = fmax(lmax[lid], lmax[lid + s]);
      lcnt[lid] += lcnt[lid + s];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  *lo = lmin[lid - t];
  *hi = lmax[lid - t];
  *cnt = lcnt[lid - t];
  barrier(CLK_LOCAL_MEM_FENCE);  // the slots are reused
}
inline int seg_sum(int v, int tps, int lid, __local int* lcnt) {
  const int t = lid % tps;
  lcnt[lid] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = tps >> 1; s > 0; s >>= 1) {
    if (t < s) lcnt[lid] += lcnt[lid + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  return lcnt[lid - t];
}
#endif

// Storage codes u[0 .. VEC) of elements e0 … of the group starting at column c0 of row prow: bytes, or (packed
// int4) two per byte, element 2k in the low nibble. c0 + e0 is a multiple of VEC (VEC ≥ 4 when packed).
inline void store_codes(__global uchar* prow, int c0, int e0, int gl, int packed4, const uint* u) {
// Full vectors are stored with one aligned store (row_bytes and c0 + e0 keep the alignment, as for the loads).
#define NIB(q) ((uchar)(u[2 * (q)] | (u[2 * (q) + 1] << 4)))
#if QEVAL_VEC == 8
  if (packed4 && e0 + 8 <= gl) {
    *(__global uchar4*)(prow + ((c0 + e0) >> 1)) = (uchar4)(NIB(0), NIB(1), NIB(2), NIB(3));
    return;
  }
  if (!packed4 && e0 + 8 <= gl) {
    *(__global uchar8*)(prow + c0 + e0) = (uchar8)((uchar)u[0], (uchar)u[1], (uchar)u[2], (uchar)u[3], (uchar)u[4],
                                                   (uchar)u[5], (uchar)u[6], (uchar)u[7]);
    return;
  }
#elif QEVAL_VEC == 4
  if (packed4 && e0 + 4 <= gl) {
    *(__global uchar2*)(prow + ((c0 + e0) >> 1)) = (uchar2)(NIB(0), NIB(1));
    return;
  }
  if (!packed4 && e0 + 4 <= gl) {
    *(__global uchar4*)(prow + c0 + e0) = (uchar4)((uchar)u[0], (uchar)u[1], (uchar)u[2], (uchar)u[3]);
    return;
  }
#endif
#if QEVAL_VEC >= 4
  if (packed4) {
    const int b0 = (c0 + e0) >> 1;
    for (int q = 0; q < QEVAL_VEC / 2; ++q)
      if (e0 + 2 * q < gl) prow[b0 + q] = NIB(q);
    return;
  }
#endif
#undef NIB
  for (int e = 0; e < QEVAL_VEC; ++e)
    if (e0 + e < gl) prow[c0 + e0 + e] = (uchar)u[e];
}

// One segment per TPS work-items: range, parameters (or the range only: minmax_out), codes, code sums.
__kernel void quantize_codes(
    __global const IN_T* x, int rows, int cols, int ld,  // input rows (ld: elements between rows)
    int glen, int gpr,                                   // group length, groups per row (the last group of
                                                         //   a row may be shorter: partial_last_group)
    int bits, int asym, int rounding, clip_t clip,
    int tps, int nv,                                     // threads per segment, vectors per thread
    __global uchar* codes, int row_bytes, int packed,    // packed: 1 = planar bit stream (bits 8 or 4,
                                                         //   aligned); 0 = one storage code per byte
    __global float* scales, __global int* zps,           // per group (zps: asymmetric only)
    __global int* sums,                                  // per group Σ(u − 2^(b−1)), or NULL
    __global const uchar* col_mask,                      // 1 = column excluded (LLM.int8 outliers), or NULL
    __global int* nonfinite,                             // count of NaN/±Inf seen (atomic), never NULL
    __global float* minmax_out,                          // QEVAL_PARAMS_IN == 0 && params_on_host: lo, hi
    __local float* lmin, __local float* lmax, __local int* lcnt) {
  const int lid = get_local_id(0);
  const int spw = get_local_size(0) / tps;  // segments per work-group
  const int t = lid % tps;
  const int sid = get_group_id(0) * spw + lid / tps;
  const bool live = sid < rows * gpr;
  const int r = live ? sid / gpr : 0;
  const int c0 = live ? (sid % gpr) * glen : 0;
  __global const IN_T* px = x + (size_t)r * (size_t)ld + c0;
  const int gl = min(glen, cols - c0);  // this group's length: glen, or a partial last group

  // ---- pass 1: load and find the finite range ------------------------------------------------------
  float xs[QEVAL_MAX_NV * QEVAL_VEC];
  float lo = INFINITY, hi = -INFINITY;
  int bad = 0;
#pragma unroll
  for (int i = 0; i < QEVAL_MAX_NV; ++i) {
    const int e0 = (t + i * tps) * QEVAL_VEC;  // first element of this vector within the group
    if (i < nv && live && e0 < gl) {
      LOAD_VEC(xs, i * QEVAL_VEC, px, e0, gl)
#pragma unroll
      for (int e = 0; e < QEVAL_VEC; ++e) {
        const float xv = xs[i * QEVAL_VEC + e];
        if (e0 + e >= gl || (col_mask && col_mask[c0 + e0 + e])) continue;
        if (!isfinite(xv)) {
          ++bad;
        } else {
          lo = fmin(lo, xv);
          hi = fmax(hi, xv);
        }
      }
    }
  }
  seg_range(&lo, &hi, &bad, tps, lid, lmin, lmax, lcnt);
  float scale, inv;
  int zp;
#if QEVAL_PARAMS_IN
  // Parameters computed on the host from the min/max of a first pass (devices without fp64 or without
  // correctly rounded float division).
  scale = live ? scales[sid] : 0.0f;
  zp = (live && asym) ? zps[sid] : 0;
  inv = live ? minmax_out[2 * sid] : 0.0f;  // the host stores inv_scale in slot 2·sid for the second pass
#else
  if (lo > hi) {  // no finite value: finite_min_max() returns {0, 0}
    lo = 0.0f;
    hi = 0.0f;
  }
#if QEVAL_PARAMS_DEVICE
  group_params(lo, hi, bits, asym, clip, &scale, &inv, &zp);
#else
  scale = 0.0f;
  inv = 0.0f;
  zp = 0;
#endif
  if (live && t == 0) {
    if (minmax_out) {
      minmax_out[2 * sid] = lo;
      minmax_out[2 * sid + 1] = hi;
    } else {
      scales[sid] = scale;
      if (asym) zps[sid] = zp;
    }
    if (bad > 0) atomic_add(nonfinite, bad);
  }
  if (minmax_out) return;  // first pass of params_on_host: the range only (uniform per launch)
#endif

  // ---- pass 2: codes --------------------------------------------------------------------------------
  const int qmin = asym ? 0 : -((1 << (bits - 1)) - 1);
  const int qmax = asym ? (1 << bits) - 1 : (1 << (bits - 1)) - 1;
  const int offset = asym ? 0 : (1 << (bits - 1));
  const float clo = (float)(qmin - zp);
  const float chi = (float)(qmax - zp);
  const int half_range = 1 << (bits - 1);
  const int packed4 = packed && bits == 4;
  int sum = 0;
  __global uchar* prow = codes + (size_t)r * (size_t)row_bytes;
#pragma unroll
  for (int i = 0; i < QEVAL_MAX_NV; ++i) {
    const int e0 = (t + i * tps) * QEVAL_VEC;
    if (i < nv && live && e0 < gl) {
      uint u[QEVAL_VEC];
#pragma unroll
      for (int e = 0; e < QEVAL_VEC; ++e) {
        const int c = e0 + e;
        const float xv = xs[i * QEVAL_VEC + e];
        int code = zp;  // the code of 0: masked columns, NaN/±Inf (propagate policy), padding
        if (c < gl && isfinite(xv) && !(col_mask && col_mask[c0 + c])) {
          float q = round_by(xv * inv, rounding);
          q = q < clo ? clo : (q > chi ? chi : q);
          code = (int)q + zp;
        }
        u[e] = (uint)(code + offset);
        if (c < gl) sum += (int)u[e] - half_range;
      }
      store_codes(prow, c0, e0, gl, packed4, u);
    }
  }
  if (sums) {  // uniform per launch
    sum = seg_sum(sum, tps, lid, lcnt);
    if (live && t == 0) sums[sid] = sum;
  }
}

// Planar bit-stream packing of one-code-per-byte rows (bits 2..8, any column count): each work-item
// writes one output byte, gathering the (at most 8/bits + 1) codes that touch it. No write races.
__kernel void pack_rows(__global const uchar* u, int rows, int cols, int bits, __global uchar* out, int row_bytes) {
  const int b = get_global_id(0);
  const int r = get_global_id(1);
  if (b >= row_bytes || r >= rows) return;
  __global const uchar* ur = u + (size_t)r * (size_t)cols;
  const int bit0 = b * 8;
  int c = bit0 / bits;
  uint acc = 0;
  for (; c < cols && c * bits < bit0 + 8; ++c) {
    const int pos = c * bits - bit0;  // may be negative for the code straddling in from the left
    const uint code = (uint)ur[c];
    acc |= pos >= 0 ? (code << pos) : (code >> (-pos));
  }
  out[(size_t)r * (size_t)row_bytes + b] = (uchar)(acc & 0xFFu);
}

// Σ over each K segment of seg elements of the signed GEMM operand codes (u − off) of one row, for the
// asymmetric epilogue (common.cl). Storage codes one per byte (int8) or int4 packed (bits == 4).
__kernel void segment_sums(__global const uchar* codes, int rows, int cols, int row_bytes, int bits, int off,
                           int seg, int nseg, __global int* out) {
  const int s = get_global_id(0);
  const int r = get_global_id(1);
  if (s >= nseg || r >= rows) return;
  __global const uchar* row = codes + (size_t)r * (size_t)row_bytes;
  const int c1 = min(cols, (s + 1) * seg);
  int acc = 0;
  for (int c = s * seg; c < c1; ++c) acc += (int)packed_code_at(row, c, bits) - off;
  out[r * nseg + s] = acc;
}

// VNNI packing of weights for the T2/T3 GEMM (quant/layouts.h §4): one work-item per 32-bit word.
// W: storage codes, int8 (w_xor 0x80 turns u into u − 128) or int4 packed (bits == 4: u − 8); zero beyond
// N or K. Host twin: gpu/vnni.cpp.
__kernel void pack_vnni(__global const uchar* W, int N, int K, int ldw, int bits, uint w_xor, int sg, int KB,
                        __global uint* out) {
  const int widx = get_global_id(0);
  const int ntiles = (N + sg - 1) / sg;
  if (widx >= ntiles * KB * 8 * sg) return;
  const int l = widx % sg;
  const int j = (widx / sg) % 8;
  const int kb = (widx / (8 * sg)) % KB;
  const int t = widx / (8 * sg * KB);
  const int n = t * sg + l;
  uint w = 0;
  for (int i = 0; i < 4; ++i) {
    const int k = kb * 32 + 4 * j + i;
    if (n < N && k < K) {
      __global const uchar* row = W + (size_t)n * (size_t)ldw;
      const uint s = bits == 4 ? ((packed_code_at(row, k, 4) - 8u) & 0xFFu) : (((uint)row[k] ^ w_xor) & 0xFFu);
      w |= s << (8 * i);
    }
  }
  out[QEVAL_VNNI_WORD_INDEX(t, kb, j, l, KB, sg)] = w;
}
