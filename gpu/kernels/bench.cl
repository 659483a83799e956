// gpu/kernels/bench.cl — micro-kernels for the performance baselines of tests/bench/gpu_bench.cpp:
// the measured 4×int8 dot-product peak of the tier's dot4 (common.cl).
#include "common.cl"

// Each work-item runs QEVAL_PEAK_CHAINS independent dependency chains d = dot4(d, b, d) for `iters`
// rounds: one dot4 per chain per round (each operand depends on the previous result, so no compiler can
// fold the loop into a multiplication). One dot4 = 4 int8 multiply-adds = 8 integer ops.
#define QEVAL_PEAK_CHAINS 16
__kernel void int_dot_peak(__global int* out, int iters, uint seed) {
  const uint g = (uint)get_global_id(0);
  uint b = (g * 2654435761u) ^ seed;
  int d[QEVAL_PEAK_CHAINS];
#pragma unroll
  for (int c = 0; c < QEVAL_PEAK_CHAINS; ++c) d[c] = (int)(g + (uint)c * 0x01010101u);
  for (int i = 0; i < iters; ++i) {
#pragma unroll
    for (int u = 0; u < 8; ++u) {
#pragma unroll
      for (int c = 0; c < QEVAL_PEAK_CHAINS; ++c) d[c] = dot4_acc((uint)d[c], b, d[c]);
    }
  }
  int s = 0;
#pragma unroll
  for (int c = 0; c < QEVAL_PEAK_CHAINS; ++c) s ^= d[c];
  out[g] = s;
}
