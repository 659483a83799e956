// gpu/kernels/dequantize.cl — x̂ of every packed weight format on the device (int2..8 affine, fp4 e2m1 and
// bitsandbytes fp4, nf4, fp8 e4m3/e5m2), bit-exact with qeval::ref::dequantize_ref.
//
// One work-item per element (r, k) of the stored matrix; the element decoders are in common.cl. After
// decoding: stored column k goes to output column perm[k] (GPTQ act-order; NULL = identity) and is divided
// by col_scale[j] (AWQ/SmoothQuant fold; NULL = none) as one correctly rounded float division, like the
// reference: the host uses col_scale only on devices that report correctly rounded division, where every
// program is built with -cl-fp32-correctly-rounded-divide-sqrt (common.cl qeval_div says why a detour
// through double is no substitute).
#include "common.cl"

__kernel void dequantize_rows(__global const uchar* codes, int rows, int cols, int row_bytes, int fmt, int bits,
                              int sym, __global const float* scales, __global const int* zps, int glen,
                              int gpr,  // gpr == 0: one scale for the whole tensor
                              __global const int* perm, __global const float* col_scale, __global float* out,
                              int ldo) {
  const int k = get_global_id(0);
  const int r = get_global_id(1);
  if (k >= cols || r >= rows) return;
  const uint u = packed_code_at(codes + (size_t)r * (size_t)row_bytes, k, bits);
  const int gi = gpr == 0 ? 0 : r * gpr + k / glen;
  float v = dequant_code(u, fmt, bits, sym, scales[gi], zps ? zps[gi] : 0);
  const int j = perm ? perm[k] : k;
  if (col_scale) v = qeval_div(v, col_scale[j]);
  out[(size_t)r * (size_t)ldo + j] = v;
}

// NaN at the listed flat indices r·cols + (stored column) (QuantizedMatrix::non_finite, NonFinitePolicy::
// propagate), mapped through perm like the values.
__kernel void scatter_nan(__global const long* idx, int n, int cols, __global const int* perm, __global float* out,
                          int ldo) {
  const int i = get_global_id(0);
  if (i >= n) return;
  const long f = idx[i];
  const int r = (int)(f / cols);
  const int k = (int)(f % cols);
  const int j = perm ? perm[k] : k;
  out[(size_t)r * (size_t)ldo + j] = NAN;
}
