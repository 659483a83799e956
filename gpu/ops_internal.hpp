// gpu/ops_internal.hpp — launch and argument helpers shared by the host glue of the kernels (ops*.cpp); not a
// public header.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "gpu/cl_api.hpp"
#include "gpu/device.hpp"
#include "gpu/ops.hpp"

namespace qeval::gpu::detail {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline size_t round_up(int64_t a, int64_t b) { return static_cast<size_t>(ceil_div(a, b) * b); }
inline int next_pow2(int64_t v) {
  int p = 1;
  while (p < v) p <<= 1;
  return p;
}

// Enqueues a 2-D NDRange (nothing when the global size is 0); `ev` receives the event when given.
inline void launch(Device& d, cl_kernel k, size_t g0, size_t g1, size_t l0, size_t l1, Event* ev, const char* what) {
  const size_t g[2] = {g0, g1};
  const size_t l[2] = {l0, l1};
  if (g0 == 0 || g1 == 0) return;
  cl_event e = nullptr;
  const cl_int err = clEnqueueNDRangeKernel(d.queue(), k, 2, nullptr, g, l, 0, nullptr, ev ? &e : nullptr);
  if (err != CL_SUCCESS) throw ClError("clEnqueueNDRangeKernel", err, what);
  if (ev) *ev = Event(e);
}

// A buffer argument that may be absent (OpenCL 1.2: a NULL cl_mem gives the kernel a NULL pointer).
inline cl_mem opt(const Buffer* b) { return (b && *b) ? b->get() : static_cast<cl_mem>(nullptr); }
inline cl_mem opt(const Buffer& b) { return b ? b.get() : static_cast<cl_mem>(nullptr); }

inline void check_int(int64_t v, const char* what) {
  if (v < 0 || v > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument(std::string(what) + " = " + std::to_string(v) +
                                " is outside the kernels' int32 index range; split the matrix");
}

// The epilogue's arguments (common.cl QEVAL_EPI_PARAMS); all absent for the plain int32 GEMM.
struct Epi {
  cl_mem sa = nullptr, za = nullptr, sum_a = nullptr;
  int a_glen = 1, a_gpr = 0;
  cl_mem sw = nullptr, zw = nullptr, sum_w = nullptr;
  int w_glen = 1, w_gpr = 0;
  int seg = 1 << 30, nseg = 1, za_off = 0, zw_off = 0;
  void set(cl_kernel k, cl_uint& i) const {
    for (cl_mem m : {sa, za, sum_a}) set_arg(k, i++, m);
    set_arg(k, i++, a_glen);
    set_arg(k, i++, a_gpr);
    for (cl_mem m : {sw, zw, sum_w}) set_arg(k, i++, m);
    for (int v : {w_glen, w_gpr, seg, nseg, za_off, zw_off}) set_arg(k, i++, v);
  }
};

// One T0/T1 GEMM launch (gemm_tiled.cl or gemm_decode.cl, by gemm_variant_for): int32 C (epi == nullptr) or
// float Y with the epilogue. a_xor/w_xor: 0x80808080 for uint8 storage codes. ops_gemm.cpp.
void run_tiled(Device& d, const GemmOptions& o, int64_t M, int64_t N, int64_t K, cl_mem A, int64_t lda,
               uint32_t a_xor, cl_mem W, int64_t ldw, uint32_t w_xor, int w_bits, cl_mem C, int64_t ldc,
               const Epi* epi, Event* ev);

}  // namespace qeval::gpu::detail
