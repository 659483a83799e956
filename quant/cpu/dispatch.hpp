// quant/cpu/dispatch.hpp — run-time CPU feature detection and the entry points of the fast CPU kernels.
//
// Every function here returns FastStatus::unsupported when the CPU, the format or the parameters are
// outside what the fast kernel implements; the caller (quant/quantize.cpp) then runs qeval::ref.
//
// Environment variable QEVAL_CPU (read once, at the first call):
//   unset, "" or "auto"  use the best kernels the CPU and OS support (AMX > AVX-512 VNNI > reference);
//   "ref"                force the scalar reference everywhere: every try_* returns unsupported
//                        (bisecting a suspected kernel bug, or timing the reference);
//   "avx512"             allow AVX-512/VNNI but not AMX (compare the two paths on an AMX machine).
// Any other value makes the first call throw std::invalid_argument naming the accepted values.
//
// The decision is made here, in code compiled without ISA flags: the AVX-512 and AMX kernels live in
// the OBJECT library qeval_quant_avx512 and are only called after cpu_features() confirmed both the
// CPUID bits and the OS state (XCR0 via XGETBV; for AMX also Linux's XTILEDATA permission), so the
// same binary runs on a CPU without AVX-512.
#pragma once

#include <cstdint>
#include <string>

#include "quant/affine.hpp"
#include "quant/matrix.hpp"

namespace qeval::cpu {

using quant::MatrixView;
using quant::MutableMatrixView;
using quant::QuantizedMatrix;
using quant::QuantParams;

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  bool amx_tile = false;  // CPUID and OS (XCR0) support
  bool amx_int8 = false;
  std::string model_name;  // brand string
  // The level the dispatcher uses: avx512 needs f+bw+vl+dq (+OS support for zmm state).
  bool has_avx512() const { return avx512f && avx512bw && avx512vl && avx512dq; }
  std::string summary() const;  // e.g. "avx2 fma avx512f avx512bw avx512vl avx512dq avx512vnni"
};
// Detected once (thread-safe static). Every flag already includes the OS check: the AVX-512 flags are
// false unless XCR0 enables opmask + ZMM state, AVX2/FMA unless it enables YMM state, and the AMX
// flags unless XCR0 enables XTILECFG + XTILEDATA and (Linux) arch_prctl(ARCH_REQ_XCOMP_PERM) succeeded.
const CpuFeatures& cpu_features();

// What QEVAL_CPU selects (see the top of this file).
enum class CpuOverride : uint8_t { none, ref, no_amx };
CpuOverride cpu_override();  // throws std::invalid_argument for an unknown QEVAL_CPU value

// Name of the kernel tier try_quantize_affine / try_gemm_s8s8_s32 run on this machine:
// "ref", "avx512", "avx512-vnni" or "amx" (for the GEMM), after QEVAL_CPU.
std::string active_quantize_isa();
std::string active_gemm_isa();

enum class FastStatus : uint8_t { done, unsupported, non_finite };

struct FastResult {
  FastStatus status = FastStatus::unsupported;
  int64_t row = -1, col = -1;  // first non-finite element when status == non_finite
  float value = 0.0f;
};

// Quantizes x into out (out.params = p, rows/cols set, codes/scales/zero_points sized and filled),
// for Format::int_affine with bits 8 or 4, RangeMethod::minmax, Rounding::nearest_even,
// NonFinitePolicy::error. Bit-exact with ref::quantize_affine_ref. On FastStatus::non_finite the
// first NaN/±Inf in row-major order is reported and `out` holds no meaningful result.
FastResult try_quantize_affine(MatrixView x, const QuantParams& p, QuantizedMatrix& out);

// Dequantizes int_affine bits 8 or 4 without perm/col_scale, any group size including kPerTensor.
// Bit-exact with the reference; elements listed in q.non_finite are written as NaN like the reference.
FastResult try_dequantize(const QuantizedMatrix& q, MutableMatrixView out);

// Which int8 GEMM kernel to use: `best` = AMX when available (and not disabled by QEVAL_CPU=avx512) and
// m ≥ 16, else AVX-512 VNNI (which has its own kernel for m ≤ 16, the decode shapes); `vnni` / `amx`
// force one (unsupported when the CPU lacks it) — for tests and benchmarks.
enum class GemmPath : uint8_t { best, vnni, amx };

// C[m][n] = Σ_k A[m][k]·B[n][k]: A is m×k int8 (activations, row stride lda), B is n×k int8 (weights
// stored [out_features, in_features], row stride ldb), C is m×n int32 (row stride ldc). The result is
// the exact dot product modulo 2^32 (two's-complement wrap, like qeval::ref::gemm_s8s8_s32_ref); it is
// the exact value whenever |C| < 2^31, which any int8 input guarantees for k ≤ 131071
// (|a·b| ≤ 128·128 = 16384 and 16384·131071 < 2^31). Throws std::invalid_argument for negative sizes,
// null pointers with non-zero sizes, or strides smaller than the row length.
FastResult try_gemm_s8s8_s32(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b,
                             int64_t ldb, int32_t* c, int64_t ldc, GemmPath path = GemmPath::best);

}  // namespace qeval::cpu
