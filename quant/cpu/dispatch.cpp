// quant/cpu/dispatch.cpp — CPU feature detection (CPUID + XGETBV + Linux AMX permission), QEVAL_CPU, and the
// scalar drivers around the AVX-512 / VNNI / AMX kernels (parameter checks, per-group scale/zero point).
//
// Compiled WITHOUT ISA flags on purpose: this file decides whether the AVX-512 code may run, so it must
// itself run on any x86-64. Everything that touches the formula's scalar part (group_params_from_range,
// the clip of the range) is done here, once per group, and handed to the kernels as plain arrays.
#include "quant/cpu/dispatch.hpp"

#include <cpuid.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <vector>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "quant/choose_qparams.hpp"
#include "quant/cpu/kernels_avx512.hpp"

namespace qeval::cpu {

using quant::GroupParams;
using quant::Mapping;
using quant::MatrixView;
using quant::MutableMatrixView;
using quant::QuantizedMatrix;
using quant::QuantParams;

namespace {

// XCR0 (extended control register 0) through XGETBV. Only valid when CPUID.1:ECX.OSXSAVE[bit 27] is set.
// Inline asm rather than _xgetbv(), which would need -mxsave for this file.
uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

// XCR0 state-component bits (Intel SDM vol. 1, 13.1 "XSAVE-supported features").
constexpr uint64_t kXcr0Sse = 1u << 1;
constexpr uint64_t kXcr0Avx = 1u << 2;        // upper halves of ymm0-15
constexpr uint64_t kXcr0Opmask = 1u << 5;     // k0-k7
constexpr uint64_t kXcr0ZmmHi256 = 1u << 6;   // upper halves of zmm0-15
constexpr uint64_t kXcr0Hi16Zmm = 1u << 7;    // zmm16-31
constexpr uint64_t kXcr0TileCfg = 1u << 17;   // AMX TILECFG
constexpr uint64_t kXcr0TileData = 1u << 18;  // AMX TILEDATA (8 KiB of tile registers)

bool bit(uint32_t reg, int b) { return (reg >> b) & 1u; }

// Linux ≥ 5.16 keeps AMX tile data disabled per process until the process asks for it
// (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); Documentation/arch/x86/xstate.rst). Without the
// request the first tile instruction raises SIGILL even though CPUID and XCR0 advertise AMX.
bool request_amx_permission() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kArchGetXcompPerm = 0x1022;
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
  unsigned long bitmask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) != 0) return false;
  return (bitmask & (1ul << kXfeatureXtiledata)) != 0;
#else
  return false;  // no known way to ask; treat AMX as unavailable
#endif
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 1) return f;
  __cpuid(1, eax, ebx, ecx, edx);
  const bool osxsave = bit(ecx, 27);
  const bool cpu_fma = bit(ecx, 12);
  const bool cpu_avx = bit(ecx, 28);
  const uint64_t xcr0 = osxsave ? read_xcr0() : 0;
  const bool os_ymm = (xcr0 & (kXcr0Sse | kXcr0Avx)) == (kXcr0Sse | kXcr0Avx);
  const uint64_t zmm_state = kXcr0Sse | kXcr0Avx | kXcr0Opmask | kXcr0ZmmHi256 | kXcr0Hi16Zmm;
  const bool os_zmm = (xcr0 & zmm_state) == zmm_state;
  const bool os_amx = (xcr0 & (kXcr0TileCfg | kXcr0TileData)) == (kXcr0TileCfg | kXcr0TileData);

  f.fma = cpu_fma && cpu_avx && os_ymm;
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const unsigned max_sub7 = eax;
    f.avx2 = bit(ebx, 5) && cpu_avx && os_ymm;
    f.avx512f = bit(ebx, 16) && os_zmm;
    f.avx512dq = bit(ebx, 17) && os_zmm;
    f.avx512bw = bit(ebx, 30) && os_zmm;
    f.avx512vl = bit(ebx, 31) && os_zmm;
    f.avx512vnni = bit(ecx, 11) && os_zmm;
    const bool cpu_amx_tile = bit(edx, 24);
    const bool cpu_amx_int8 = bit(edx, 25);
    if (max_sub7 >= 1) {
      unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
      __cpuid_count(7, 1, a1, b1, c1, d1);
      f.avx512bf16 = bit(a1, 5) && os_zmm;
    }
    if (cpu_amx_tile && os_amx && request_amx_permission()) {
      f.amx_tile = true;
      f.amx_int8 = cpu_amx_int8;
    }
  }
  // Brand string: 48 bytes from extended leaves 0x80000002..4 (Intel SDM vol. 2A, CPUID).
  if (__get_cpuid_max(0x80000000u, nullptr) >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      unsigned r[4];
      __cpuid(0x80000002u + i, r[0], r[1], r[2], r[3]);
      std::memcpy(brand + 16 * i, r, 16);
    }
    std::string s(brand);
    const auto b = s.find_first_not_of(' ');
    const auto e = s.find_last_not_of(' ');
    f.model_name = b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  }
  return f;
}

CpuOverride parse_override() {
  const char* v = std::getenv("QEVAL_CPU");
  if (!v || !*v) return CpuOverride::none;
  const std::string s(v);
  if (s == "auto") return CpuOverride::none;
  if (s == "ref") return CpuOverride::ref;
  if (s == "avx512") return CpuOverride::no_amx;
  throw std::invalid_argument("QEVAL_CPU='" + s +
                              "' is not recognised; accepted: auto (or unset) = best kernels, ref = scalar "
                              "reference only, avx512 = AVX-512/VNNI without AMX");
}

bool avx512_allowed() { return cpu_override() != CpuOverride::ref && cpu_features().has_avx512(); }
bool vnni_allowed() { return avx512_allowed() && cpu_features().avx512vnni; }
bool amx_allowed() {
  return cpu_override() == CpuOverride::none && cpu_features().amx_tile && cpu_features().amx_int8 &&
         cpu_features().has_avx512();  // the AMX driver packs with AVX-512
}

// Rows of A below which GemmPath::best keeps the VNNI kernel on AMX machines (see try_gemm_s8s8_s32).
// Measured on a Xeon (AMX) at N = K = 4096, one thread: M = 8 VNNI 1.7 ms vs AMX 2.7 ms; M = 16 VNNI
// 3.0 ms vs AMX 2.5 ms (the AMX path repacks B on every call, which dominates at small M).
constexpr int64_t kAmxMinRows = 16;

FastResult done() {
  FastResult r;
  r.status = FastStatus::done;
  return r;
}

// Rows per block: the kernels run pass 1 (min/max) and pass 2 (codes) over a block of rows, so the
// block should stay in L2 between the passes. 64 KiB of fp32 = 4 rows of 4096 (L2 is ≥ 1 MiB on the
// AVX-512 CPUs we target, so this leaves room for the output and the other core's data).
int64_t block_rows_for(int64_t cols) {
  constexpr int64_t kBlockBytes = 64 * 1024;
  const int64_t r = kBlockBytes / (cols * static_cast<int64_t>(sizeof(float)));
  return r < 1 ? 1 : r;
}


}  // namespace

std::string CpuFeatures::summary() const {
  std::string s;
  auto add = [&s](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(avx2, "avx2");
  add(fma, "fma");
  add(avx512f, "avx512f");
  add(avx512bw, "avx512bw");
  add(avx512vl, "avx512vl");
  add(avx512dq, "avx512dq");
  add(avx512vnni, "avx512vnni");
  add(avx512bf16, "avx512bf16");
  add(amx_tile, "amx-tile");
  add(amx_int8, "amx-int8");
  return s;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

CpuOverride cpu_override() {
  static const CpuOverride o = parse_override();
  return o;
}

std::string active_quantize_isa() { return avx512_allowed() ? "avx512" : "ref"; }

std::string active_gemm_isa() {
  if (amx_allowed()) return "amx";
  if (vnni_allowed()) return "avx512-vnni";
  return "ref";
}

// ---- quantize ------------------------------------------------------------------------------------

namespace {

// The AVX-512 quantizer's contract; outside it the reference decides (and throws for invalid input).
bool in_fast_quantize_contract(MatrixView x, const QuantParams& p) {
  if (p.bits != 8 && p.bits != 4) return false;
  if (p.range != quant::RangeMethod::minmax || p.rounding != quant::Rounding::nearest_even ||
      p.non_finite != quant::NonFinitePolicy::error)
    return false;
  if (p.group_size == quant::kPerTensor || p.group_size < 0) return false;
  if (!(p.clip_ratio > 0.0 && p.clip_ratio <= 1.0)) return false;
  if (x.data == nullptr || x.rows <= 0 || x.cols <= 0 || x.row_stride < x.cols) return false;
  return !(p.group_size > 0 && x.cols % p.group_size != 0);
}

// Sizes `out` for rows × cols codes with gpr groups per row (zero points only when asymmetric).
void shape_output(QuantizedMatrix& out, const QuantParams& p, int64_t rows, int64_t cols, int64_t gpr) {
  out.format = quant::Format::int_affine;
  out.params = p;
  out.rows = rows;
  out.cols = cols;
  out.codes.resize(static_cast<size_t>(rows * out.row_bytes()));
  out.scales.resize(static_cast<size_t>(rows * gpr));
  if (p.mapping == Mapping::symmetric)
    out.zero_points.clear();
  else
    out.zero_points.resize(static_cast<size_t>(rows * gpr));
  out.perm.clear();
  out.col_scale.clear();
  out.non_finite.clear();
}

FastResult non_finite_at(MatrixView x, int64_t row, int64_t col) {
  FastResult res;
  res.status = FastStatus::non_finite;
  res.row = row;
  res.col = col;
  res.value = x(row, col);
  return res;
}

}  // namespace

FastResult try_quantize_affine(MatrixView x, const QuantParams& p, QuantizedMatrix& out) {
  if (!avx512_allowed() || !in_fast_quantize_contract(x, p)) return {};
  const int64_t rows = x.rows, cols = x.cols;
  const int64_t group = p.group_size > 0 ? p.group_size : cols;
  const int64_t gpr = cols / group;
  const bool sym = p.mapping == Mapping::symmetric;
  const int qmin = p.qmin(), qmax = p.qmax();
  // Storage code u = q + 2^(b−1) (symmetric) or q (asymmetric) — quant/layouts.h §1.
  const int32_t offset = sym ? (1 << (p.bits - 1)) : 0;
  shape_output(out, p, rows, cols, gpr);
  const int64_t row_bytes = out.row_bytes();

  const int64_t brows = std::min(rows, block_rows_for(cols));
  const size_t nb = static_cast<size_t>(brows * gpr);
  std::vector<float> lo(nb), hi(nb), inv(nb), clo(nb), chi(nb);
  std::vector<int32_t> add(nb);

  for (int64_t r0 = 0; r0 < rows; r0 += brows) {
    const int64_t nr = std::min(brows, rows - r0);
    const float* xb = x.data + r0 * x.row_stride;
    const int64_t bad = avx512::group_minmax(xb, nr, cols, x.row_stride, group, lo.data(), hi.data());
    if (bad >= 0) return non_finite_at(x, r0 + bad / cols, bad % cols);
    for (int64_t i = 0; i < nr * gpr; ++i) {
      const quant::ClipRange c = quant::clip_min_max(lo[i], hi[i], p.clip_ratio);  // the one clip rule
      const GroupParams g = quant::group_params_from_range(c.lo, c.hi, p.bits, p.mapping);
      const int64_t gi = r0 * gpr + i;
      out.scales[gi] = g.scale;
      if (!sym) out.zero_points[gi] = g.zero_point;
      inv[i] = g.inv_scale;
      clo[i] = static_cast<float>(qmin - g.zero_point);
      chi[i] = static_cast<float>(qmax - g.zero_point);
      add[i] = g.zero_point + offset;
    }
    avx512::quantize_codes(xb, nr, cols, x.row_stride, group, p.bits, inv.data(), clo.data(), chi.data(),
                           add.data(), out.codes.data() + r0 * row_bytes, row_bytes);
  }
  return done();
}

// ---- dequantize ----------------------------------------------------------------------------------

FastResult try_dequantize(const QuantizedMatrix& q, MutableMatrixView out) {
  if (!avx512_allowed()) return {};
  const QuantParams& p = q.params;
  if (q.format != quant::Format::int_affine || (p.bits != 8 && p.bits != 4)) return {};
  if (!q.perm.empty() || !q.col_scale.empty()) return {};
  if (q.rows <= 0 || q.cols <= 0 || out.rows != q.rows || out.cols != q.cols || out.data == nullptr ||
      out.row_stride < out.cols)
    return {};
  if (p.group_size < quant::kPerTensor || (p.group_size > 0 && q.cols % p.group_size != 0)) return {};
  const bool sym = p.mapping == Mapping::symmetric;
  const bool per_tensor = p.group_size == quant::kPerTensor;
  const int64_t ng = per_tensor ? 1 : q.rows * q.groups_per_row();
  if (static_cast<int64_t>(q.codes.size()) != q.rows * q.row_bytes() || static_cast<int64_t>(q.scales.size()) != ng)
    return {};
  if (!sym && static_cast<int64_t>(q.zero_points.size()) != ng) return {};

  const int64_t rows = q.rows, cols = q.cols;
  const int64_t group = p.group_size > 0 ? p.group_size : cols;
  const int64_t gpr = cols / group;
  const int32_t offset = sym ? (1 << (p.bits - 1)) : 0;
  const int64_t row_bytes = q.row_bytes();

  const int64_t brows = std::min(rows, block_rows_for(cols));
  const size_t nb = static_cast<size_t>(brows * gpr);
  std::vector<float> scale(nb);
  std::vector<int32_t> sub(nb);
  for (int64_t r0 = 0; r0 < rows; r0 += brows) {
    const int64_t nr = std::min(brows, rows - r0);
    for (int64_t i = 0; i < nr * gpr; ++i) {
      const int64_t gi = per_tensor ? 0 : r0 * gpr + i;
      scale[i] = q.scales[gi];
      sub[i] = offset + (sym ? 0 : q.zero_points[gi]);
    }
    avx512::dequantize_codes(q.codes.data() + r0 * row_bytes, row_bytes, nr, cols, group, p.bits, scale.data(),
                             sub.data(), out.data + r0 * out.row_stride, out.row_stride);
  }
  // NonFinitePolicy::propagate: the listed elements hold the code of 0; the reference writes NaN there.
  for (const int64_t idx : q.non_finite) {
    if (idx < 0 || idx >= rows * cols) continue;  // q.validate() (caller) rejects these
    out(idx / cols, idx % cols) = std::numeric_limits<float>::quiet_NaN();
  }
  return done();
}

// ---- int8 GEMM -----------------------------------------------------------------------------------

FastResult try_gemm_s8s8_s32(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b,
                             int64_t ldb, int32_t* c, int64_t ldc, GemmPath path) {
  if (m < 0 || n < 0 || k < 0)
    throw std::invalid_argument("gemm_s8s8_s32: negative size m=" + std::to_string(m) + " n=" + std::to_string(n) +
                                " k=" + std::to_string(k));
  if (m > 0 && n > 0) {
    if (c == nullptr || ldc < n)
      throw std::invalid_argument("gemm_s8s8_s32: C is null or ldc=" + std::to_string(ldc) + " < n=" +
                                  std::to_string(n));
    if (k > 0 && (a == nullptr || b == nullptr || lda < k || ldb < k))
      throw std::invalid_argument("gemm_s8s8_s32: A/B null or lda=" + std::to_string(lda) +
                                  " / ldb=" + std::to_string(ldb) + " < k=" + std::to_string(k));
  }
  bool use_amx = false;
  switch (path) {
    case GemmPath::best:
      // AMX tiles are 16 rows tall: at decode sizes (m < 16) they would idle most of their rows and the
      // B repacking AMX needs costs a full extra pass over the weights, while the VNNI small-M kernel
      // streams the unpacked weights once — so small m stays on VNNI.
      if (amx_allowed() && m >= kAmxMinRows)
        use_amx = true;
      else if (!vnni_allowed())
        return {};
      break;
    case GemmPath::vnni:
      if (!vnni_allowed()) return {};
      break;
    case GemmPath::amx:
      if (!amx_allowed()) return {};
      use_amx = true;
      break;
  }
  if (m == 0 || n == 0) return done();
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0);
    return done();
  }
  if (use_amx)
    avx512::gemm_s8s8_s32_amx(m, n, k, a, lda, b, ldb, c, ldc);
  else
    avx512::gemm_s8s8_s32_vnni(m, n, k, a, lda, b, ldb, c, ldc);
  return done();
}

namespace avx512 {

// The shared scratch buffer of the GEMM kernels (kernels_avx512.hpp), here because this file has no ISA flags.
// Size: `bytes` rounded up to a multiple of 64 plus 64 bytes of slack ((bytes + 127) & ~63).
AlignedBuffer::AlignedBuffer(int64_t bytes) {
  const size_t n = (static_cast<size_t>(bytes) + 127) & ~static_cast<size_t>(63);
  p = static_cast<uint8_t*>(std::aligned_alloc(64, n));
  if (!p) throw std::bad_alloc();
}
AlignedBuffer::~AlignedBuffer() { std::free(p); }

}  // namespace avx512

}  // namespace qeval::cpu
