// tests/quant/layouts_opencl_check.cl — compiles quant/layouts.h as OpenCL C 1.2 (clang -fsyntax-only, see CMakeLists).
#include "quant/layouts.h"

__kernel void layouts_check(__global const qeval_block_q4_32* q4, __global const qeval_block_q8_32* q8,
                            __global float* out) {
  const size_t i = get_global_id(0);
  const uchar u = q4[i].qs[0] & 15;
  out[i] = vload_half(0, (__global const half*)&q4[i].d) *
               (qeval_fp4_e2m1_values[u] + qeval_fp4_bnb_values[u] + qeval_nf4_values[u]) +
           (float)q8[i].qs[31] + QEVAL_FP8_E4M3_MAX + (float)QEVAL_ROW_BYTES(3, 3);
}
