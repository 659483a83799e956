// gpu/ops.cpp — argument checks, launch geometry and host-side glue of the OpenCL kernels (gpu/ops.hpp).
#include "gpu/ops.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "gpu/ops_internal.hpp"
#include "quant/quantize.hpp"
#include "quant/ref/gemm_ref.hpp"
#include "quant/ref/quantize_ref.hpp"
#include "quant/rng.hpp"

namespace qeval::gpu {

using quant::Format;
using quant::Mapping;
using quant::QuantizedMatrix;
using quant::QuantParams;

using detail::ceil_div;
using detail::check_int;
using detail::launch;
using detail::next_pow2;
using detail::opt;
using detail::round_up;
using detail::Epi;
using detail::run_tiled;

namespace {

int fmt_id(Format f) { return static_cast<int>(f); }  // common.cl's QEVAL_FMT_* follow the enum order

void require_tier(Device& d, Tier t) {
  const TierState& s = d.tier(t);
  if (!s.supported)
    throw std::invalid_argument(std::string("OpenCL tier ") + to_string(t) + " is not available on " +
                                d.info().label() + ": " + s.detail + "; use T0 (or Device::best_tier())");
  if (s.probed && !s.passed)
    throw std::runtime_error(std::string("OpenCL tier ") + to_string(t) + " is disabled on " + d.info().label() +
                             ": " + s.detail);
}

}  // namespace

// ---- data movement ----------------------------------------------------------------------------------

DevMatrix upload(Device& d, quant::MatrixView x) {
  ref::check_view(x, "upload");
  DevMatrix m;
  m.rows = x.rows;
  m.cols = x.cols;
  m.ld = x.cols;
  m.type = ElemType::f32;
  m.buf = Buffer(d.context(), static_cast<size_t>(x.rows * x.cols) * sizeof(float));
  if (x.row_stride == x.cols) {
    m.buf.write(d.queue(), x.data, static_cast<size_t>(x.size()) * sizeof(float));
  } else {
    for (int64_t r = 0; r < x.rows; ++r)
      m.buf.write(d.queue(), x.row(r), static_cast<size_t>(x.cols) * sizeof(float),
                  static_cast<size_t>(r * x.cols) * sizeof(float));
  }
  return m;
}

DevMatrix upload_f16(Device& d, const uint16_t* x, int64_t rows, int64_t cols, int64_t ld) {
  if (rows < 0 || cols < 0 || ld < cols || (rows * cols > 0 && !x))
    throw std::invalid_argument("upload_f16: bad shape, stride or null data");
  DevMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.ld = cols;
  m.type = ElemType::f16;
  m.buf = Buffer(d.context(), static_cast<size_t>(rows * cols) * 2);
  for (int64_t r = 0; r < rows; ++r)
    m.buf.write(d.queue(), x + r * ld, static_cast<size_t>(cols) * 2, static_cast<size_t>(r * cols) * 2);
  return m;
}

DevMatrix alloc_matrix(Device& d, int64_t rows, int64_t cols, ElemType t) {
  DevMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.ld = cols;
  m.type = t;
  m.buf = Buffer(d.context(), static_cast<size_t>(rows * cols) * (t == ElemType::f32 ? 4 : 2));
  return m;
}

quant::Matrix download(Device& d, const DevMatrix& m) {
  if (m.type != ElemType::f32) throw std::invalid_argument("download: only float32 matrices");
  quant::Matrix out(m.rows, m.cols);
  for (int64_t r = 0; r < m.rows; ++r)
    m.buf.read(d.queue(), out.data.data() + r * m.cols, static_cast<size_t>(m.cols) * 4,
               static_cast<size_t>(r * m.ld) * 4);
  return out;
}

DevQuantized upload(Device& d, const QuantizedMatrix& q) {
  q.validate();
  DevQuantized o;
  o.format = q.format;
  o.params = q.params;
  o.rows = q.rows;
  o.cols = q.cols;
  o.row_bytes = q.row_bytes();
  if (q.params.group_size == quant::kPerTensor) {
    o.glen = q.cols;
    o.gpr = 0;
  } else {
    o.gpr = q.groups_per_row();
    o.glen = q.params.group_length(q.cols);
  }
  auto put = [&](const void* p, size_t n) {
    Buffer b(d.context(), n);
    b.write(d.queue(), p, n);
    return b;
  };
  o.codes = put(q.codes.data(), q.codes.size());
  o.scales = put(q.scales.data(), q.scales.size() * sizeof(float));
  if (!q.zero_points.empty()) o.zps = put(q.zero_points.data(), q.zero_points.size() * sizeof(int32_t));
  if (!q.perm.empty()) o.perm = put(q.perm.data(), q.perm.size() * sizeof(int32_t));
  if (!q.col_scale.empty()) o.col_scale = put(q.col_scale.data(), q.col_scale.size() * sizeof(float));
  if (!q.non_finite.empty()) o.non_finite = put(q.non_finite.data(), q.non_finite.size() * sizeof(int64_t));
  o.n_non_finite = static_cast<int64_t>(q.non_finite.size());
  return o;
}

QuantizedMatrix download(Device& d, const DevQuantized& q) {
  QuantizedMatrix o;
  o.format = q.format;
  o.params = q.params;
  o.rows = q.rows;
  o.cols = q.cols;
  o.codes.resize(static_cast<size_t>(q.rows * q.row_bytes));
  q.codes.read(d.queue(), o.codes.data(), o.codes.size());
  o.scales.resize(static_cast<size_t>(o.num_groups()));
  q.scales.read(d.queue(), o.scales.data(), o.scales.size() * sizeof(float));
  if (q.zps) {
    o.zero_points.resize(o.scales.size());
    q.zps.read(d.queue(), o.zero_points.data(), o.zero_points.size() * sizeof(int32_t));
  }
  if (q.perm) {
    o.perm.resize(static_cast<size_t>(q.cols));
    q.perm.read(d.queue(), o.perm.data(), o.perm.size() * sizeof(int32_t));
  }
  if (q.col_scale) {
    o.col_scale.resize(static_cast<size_t>(q.cols));
    q.col_scale.read(d.queue(), o.col_scale.data(), o.col_scale.size() * sizeof(float));
  }
  if (q.n_non_finite > 0) {
    o.non_finite.resize(static_cast<size_t>(q.n_non_finite));
    q.non_finite.read(d.queue(), o.non_finite.data(), o.non_finite.size() * sizeof(int64_t));
  }
  return o;
}

// ---- dynamic quantization ---------------------------------------------------------------------------


ActQuantSpec ActQuantSpec::from_params(const QuantParams& p) {
  p.validate();
  if (p.range != quant::RangeMethod::minmax)
    throw std::invalid_argument(std::string("OpenCL quantization supports range=minmax only, got ") +
                                quant::to_string(p.range) + "; quantize on the CPU (quant::quantize_affine)");
  if (p.group_size == quant::kPerTensor)
    throw std::invalid_argument(
        "OpenCL quantization works per row or per group along the row (group_size >= 0); group_size = -1 "
        "(per tensor) needs a global reduction — quantize on the CPU");
  ActQuantSpec s;
  s.bits = p.bits;
  s.group_size = p.group_size;
  s.mapping = p.mapping;
  s.rounding = p.rounding;
  s.clip_ratio = p.clip_ratio;
  s.non_finite = p.non_finite;
  s.partial_last_group = p.partial_last_group;
  return s;
}

QuantParams ActQuantSpec::to_params() const {
  QuantParams p;
  p.bits = bits;
  p.group_size = group_size;
  p.mapping = mapping;
  p.rounding = rounding;
  p.range = quant::RangeMethod::minmax;
  p.clip_ratio = clip_ratio;
  p.non_finite = non_finite;
  p.partial_last_group = partial_last_group;
  return p;
}

// ---- dequantize -------------------------------------------------------------------------------------

void dequantize(Device& d, const DevQuantized& q, const Buffer& out, int64_t ld) {
  if (ld < q.cols) throw std::invalid_argument("dequantize: ld " + std::to_string(ld) + " < cols " + std::to_string(q.cols));
  if (out.bytes() < static_cast<size_t>(q.rows * ld) * 4 && q.rows * q.cols > 0)
    throw std::invalid_argument("dequantize: output buffer holds " + std::to_string(out.bytes()) + " bytes, needs " +
                                std::to_string(q.rows * ld * 4));
  check_int(q.rows * ld, "rows × ld");
  if (q.col_scale && !d.info().correctly_rounded_div)
    throw std::invalid_argument("dequantize: col_scale needs correctly rounded float division, which " +
                                d.info().name + " does not report; dequantize on the CPU");
  const std::string opts;  // the correctly rounded division comes with every program (Device::base_options)
  auto lk = d.lock();
  const bool sym = q.params.mapping == Mapping::symmetric;
  cl_kernel k = d.kernel("dequantize.cl", opts, "dequantize_rows");
  set_args(k, q.codes, static_cast<int>(q.rows), static_cast<int>(q.cols), static_cast<int>(q.row_bytes),
           fmt_id(q.format), q.params.bits, sym ? 1 : 0, q.scales, opt(q.zps), static_cast<int>(q.glen),
           static_cast<int>(q.gpr), opt(q.perm), opt(q.col_scale), out, static_cast<int>(ld));
  launch(d, k, round_up(q.cols, 64), static_cast<size_t>(q.rows), 64, 1, nullptr, "dequantize_rows");
  if (q.n_non_finite > 0) {
    cl_kernel kn = d.kernel("dequantize.cl", opts, "scatter_nan");
    set_args(kn, q.non_finite, static_cast<int>(q.n_non_finite), static_cast<int>(q.cols), opt(q.perm), out,
             static_cast<int>(ld));
    launch(d, kn, round_up(q.n_non_finite, 64), 1, 64, 1, nullptr, "scatter_nan");
  }
}

// ---- int8 GEMM --------------------------------------------------------------------------------------

namespace {

// Subgroups per work-group in gemm_vnni: 4; the emulation keeps work-groups at 32 work-items (PoCL's kernel
// compiler takes minutes on the 64-wide barrier-laden emulation, seconds on 32).
int wg_subgroups(Tier t, int sg) { return t == Tier::t3_emulated ? 32 / sg : 4; }

// The VNNI-packed copy of W (storage codes; bits 8 or 4) for subgroup size sg, packed on the device.
Buffer pack_vnni_device(Device& d, cl_mem W, int64_t N, int64_t K, int64_t ldw, int bits, uint32_t w_xor, int sg) {
  const int64_t KB = ceil_div(K, 32);
  const int64_t words = ceil_div(N, sg) * KB * 8 * sg;
  Buffer out(d.context(), static_cast<size_t>(words) * 4);
  cl_kernel k = d.kernel("quantize.cl", "", "pack_vnni");
  set_args(k, W, static_cast<int>(N), static_cast<int>(K), static_cast<int>(ldw), bits, w_xor, sg,
           static_cast<int>(KB), out);
  launch(d, k, round_up(words, 64), 1, 64, 1, nullptr, "pack_vnni");
  return out;
}

void run_vnni(Device& d, Tier t, int64_t M, int64_t N, int64_t K, cl_mem A, int64_t lda, uint32_t a_xor,
              const Buffer& Wp, int sg, cl_mem C, int64_t ldc, const Epi* epi, Event* ev) {
  const int mode = t == Tier::t3 ? 3 : (t == Tier::t2 ? 2 : 1);
  std::string opts = "-DQEVAL_SG=" + std::to_string(sg) + " -DQEVAL_SG_MODE=" + std::to_string(mode) +
                     " -DQEVAL_WG_SG=" + std::to_string(wg_subgroups(t, sg)) + " -DQEVAL_EPI=" + (epi ? "1" : "0");
  // T2's dot4 comes from T1 when the device also has the integer dot product.
  if (t == Tier::t2 && d.info().has_extension("cl_khr_integer_dot_product")) opts += " -DQEVAL_DOT4_KHR=1";
  cl_kernel k = d.kernel("gemm_subgroup.cl", opts, "gemm_vnni");
  const int64_t KB = ceil_div(K, 32);
  cl_uint i = 0;
  set_arg(k, i++, static_cast<int>(M));
  set_arg(k, i++, static_cast<int>(N));
  set_arg(k, i++, static_cast<int>(K));
  set_arg(k, i++, A);
  set_arg(k, i++, static_cast<int>(lda));
  set_arg(k, i++, a_xor);
  set_arg(k, i++, Wp.get());
  set_arg(k, i++, static_cast<int>(KB));
  set_arg(k, i++, epi ? static_cast<cl_mem>(nullptr) : C);
  set_arg(k, i++, static_cast<int>(ldc));
  set_arg(k, i++, epi ? C : static_cast<cl_mem>(nullptr));
  set_arg(k, i++, static_cast<int>(ldc));
  (epi ? *epi : Epi()).set(k, i);
  const int64_t ntiles = ceil_div(N, sg);
  const int wgs = wg_subgroups(t, sg);
  const size_t wg = static_cast<size_t>(sg * wgs);
  launch(d, k, static_cast<size_t>(ceil_div(ntiles, wgs)) * wg, static_cast<size_t>(ceil_div(M, 8)), wg, 1,
         ev, "gemm_vnni");
}

void check_gemm_shape(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldw, int64_t ldc) {
  if (M < 0 || N < 0 || K < 0) throw std::invalid_argument("gemm: negative shape");
  if (lda < K || ldw < K || ldc < N)
    throw std::invalid_argument("gemm: a stride is below its row length (lda " + std::to_string(lda) + ", ldw " +
                                std::to_string(ldw) + " vs K " + std::to_string(K) + "; ldc " + std::to_string(ldc) +
                                " vs N " + std::to_string(N) + ")");
  check_int(M * lda, "M × lda");
  check_int(N * ldw, "N × ldw");
  check_int(M * ldc, "M × ldc");
}

}  // namespace

void gemm_s8s8_s32(Device& d, int64_t M, int64_t N, int64_t K, const Buffer& A, int64_t lda, const Buffer& W,
                   int64_t ldw, const Buffer& C, int64_t ldc, const GemmOptions& o, uint8_t a_xor, uint8_t w_xor,
                   Event* ev) {
  check_gemm_shape(M, N, K, lda, ldw, ldc);
  require_tier(d, o.tier);
  if (M == 0 || N == 0) return;
  auto lk = d.lock();
  const uint32_t ax = 0x01010101u * a_xor, wx = 0x01010101u * w_xor;
  if (o.tier == Tier::t0 || o.tier == Tier::t1) {
    if (o.tile == TileConfig::decode && M > kDecodeMaxRows)
      throw std::invalid_argument("gemm: the decode kernel takes M <= 16 rows, got " + std::to_string(M));
    run_tiled(d, o, M, N, K, A.get(), lda, ax, W.get(), ldw, wx, 8, C.get(), ldc, nullptr, ev);
  } else {
    const int sg = d.subgroup_size(o.tier);
    Buffer wp = pack_vnni_device(d, W.get(), N, K, ldw, 8, wx, sg);
    run_vnni(d, o.tier, M, N, K, A.get(), lda, ax, wp, sg, C.get(), ldc, nullptr, ev);
  }
}

namespace {

// Σ(u − off) over segments of `seg` of every row of a code matrix (common.cl epilogue's ΣA / ΣW).
Buffer segment_sums(Device& d, const DevQuantized& q, int64_t seg, int64_t nseg) {
  Buffer out(d.context(), static_cast<size_t>(q.rows * nseg) * 4);
  cl_kernel k = d.kernel("quantize.cl", "", "segment_sums");
  const int off = 1 << (q.params.bits - 1);
  set_args(k, q.codes, static_cast<int>(q.rows), static_cast<int>(q.cols), static_cast<int>(q.row_bytes),
           q.params.bits, off, static_cast<int>(seg), static_cast<int>(nseg), out);
  launch(d, k, round_up(nseg, 16), round_up(q.rows, 16), 16, 16, nullptr, "segment_sums");
  return out;
}

}  // namespace

// The epilogue's K segment: the shorter of the two group lengths. Every segment must lie inside one group of each
// side: the longer group is a multiple of the shorter, or it is the whole row (per token / per channel against groups
// with a partial last one, e.g. K = 129, g32: 5 segments); and it must be a multiple of 32 (the kernels' K step) or
// the whole row.
int64_t quantized_segment_length(int64_t a_glen, int64_t w_glen, int64_t K) {
  const int64_t seg = std::min(a_glen, w_glen), longer = std::max(a_glen, w_glen);
  if (longer % seg != 0 && longer != K)
    throw std::invalid_argument("matmul_quantized: activation group " + std::to_string(a_glen) + " and weight group " +
                                std::to_string(w_glen) + " must divide one another (or one of them be the whole row)");
  if (seg % 32 != 0 && seg != K)
    throw std::invalid_argument("matmul_quantized: the K segment (shorter group length) " + std::to_string(seg) +
                                " must be a multiple of 32 or the whole row (" + std::to_string(K) +
                                "); use groups of 32, 64, 128, ...");
  return seg;
}

namespace {

// What matmul_quantized runs on: int8 activations × int8/int4 weights without the float-only extras.
void check_quantized_operands(const DevQuantized& a, const DevQuantized& w, int64_t ldy) {
  if (a.format != Format::int_affine || a.params.bits != 8)
    throw std::invalid_argument("matmul_quantized: activations must be int8 (int_affine, bits 8), got " +
                                std::string(quant::to_string(a.format)) + " " + std::to_string(a.params.bits) + "-bit");
  if (w.format != Format::int_affine || (w.params.bits != 8 && w.params.bits != 4))
    throw std::invalid_argument("matmul_quantized: weights must be int_affine with 8 or 4 bits (W8A8 / W4A8), got " +
                                std::string(quant::to_string(w.format)) + " " + std::to_string(w.params.bits) +
                                "-bit; use matmul_a16 for other formats");
  if (w.perm || w.col_scale || w.n_non_finite > 0)
    throw std::invalid_argument(
        "matmul_quantized: weights with perm / col_scale / non-finite elements need dequantize() + matmul_f32");
  if (a.n_non_finite > 0)
    throw std::invalid_argument("matmul_quantized: activations held NaN/Inf (propagate policy); the int8 GEMM "
                                "cannot carry NaN — use NonFinitePolicy::error or the float path");
  if (a.cols != w.cols)
    throw std::invalid_argument("matmul_quantized: activations have K = " + std::to_string(a.cols) +
                                " columns but the weights " + std::to_string(w.cols));
  if (ldy < w.rows) throw std::invalid_argument("matmul_quantized: ldy < N");
}

// The epilogue's parameters: both sides' scales/zero points, the K segment and the ΣA / ΣW sums an asymmetric other
// side needs (ΣW is cached with the weights; a ΣA computed here is kept alive in *sum_a_tmp).
Epi quantized_epilogue(Device& d, const DevQuantized& a, DevQuantized& w, Buffer* sum_a_tmp) {
  const int64_t K = a.cols;
  // A group longer than the row (K = 31 with g32: one partial group) is the whole row.
  const int64_t a_glen = a.gpr == 0 ? K : std::min(a.glen, K);
  const int64_t w_glen = w.gpr == 0 ? K : std::min(w.glen, K);
  const int64_t seg = quantized_segment_length(a_glen, w_glen, K);
  const int64_t nseg = ceil_div(K, seg);
  const bool a_asym = a.params.mapping == Mapping::asymmetric;
  const bool w_asym = w.params.mapping == Mapping::asymmetric;
  Epi e;
  e.sa = a.scales.get();
  e.za = a_asym ? a.zps.get() : nullptr;
  e.a_glen = static_cast<int>(a_glen);
  e.a_gpr = static_cast<int>(a.gpr);
  e.sw = w.scales.get();
  e.zw = w_asym ? w.zps.get() : nullptr;
  e.w_glen = static_cast<int>(w_glen);
  e.w_gpr = static_cast<int>(w.gpr);
  e.seg = static_cast<int>(seg);
  e.nseg = static_cast<int>(nseg);
  e.za_off = 128;
  e.zw_off = 1 << (w.params.bits - 1);
  if (w_asym) {  // ΣA per segment
    if (a.sums && a_glen == seg) {
      e.sum_a = a.sums.get();
    } else {
      *sum_a_tmp = segment_sums(d, a, seg, nseg);
      e.sum_a = sum_a_tmp->get();
    }
  }
  if (a_asym) {  // ΣW per segment, kept with the weights
    auto it = w.seg_sums.find(seg);
    if (it == w.seg_sums.end()) it = w.seg_sums.emplace(seg, segment_sums(d, w, seg, nseg)).first;
    e.sum_w = it->second.get();
  }
  return e;
}

}  // namespace

void matmul_quantized(Device& d, const DevQuantized& a, DevQuantized& w, const Buffer& Y, int64_t ldy,
                      const GemmOptions& o, Event* ev) {
  check_quantized_operands(a, w, ldy);
  require_tier(d, o.tier);
  const int64_t M = a.rows, N = w.rows, K = a.cols;
  if (M == 0 || N == 0) return;
  check_int(M * a.row_bytes, "M × row bytes");
  check_int(N * w.row_bytes, "N × row bytes");
  check_int(M * ldy, "M × ldy");
  auto lk = d.lock();

  Buffer sum_a_tmp;
  const Epi e = quantized_epilogue(d, a, w, &sum_a_tmp);
  const int wb = w.params.bits;
  if (o.tier == Tier::t0 || o.tier == Tier::t1) {
    run_tiled(d, o, M, N, K, a.codes.get(), a.row_bytes, 0x80808080u, w.codes.get(), w.row_bytes,
              wb == 8 ? 0x80808080u : 0u, wb, Y.get(), ldy, &e, ev);
  } else {
    const int sg = d.subgroup_size(o.tier);
    auto it = w.vnni.find(sg);
    if (it == w.vnni.end())
      it = w.vnni.emplace(sg, pack_vnni_device(d, w.codes.get(), N, K, w.row_bytes, wb, 0x80u, sg)).first;
    run_vnni(d, o.tier, M, N, K, a.codes.get(), a.row_bytes, 0x80808080u, it->second, sg, Y.get(), ldy, &e, ev);
  }
}

// ---- float-activation matmuls ---------------------------------------------------------------------------

namespace {

void run_a16(Device& d, const DevMatrix& x, cl_mem W, int64_t ldw, int fmt, int bits, int sym, cl_mem scales,
             cl_mem zps, int64_t glen, int64_t gpr, int64_t N, const Buffer& Y, int64_t ldy, Event* ev) {
  const std::string opts = std::string("-DQEVAL_IN_HALF=") + (x.type == ElemType::f16 ? "1" : "0");
  cl_kernel k = d.kernel("matmul_a16.cl", opts, "matmul_a16");
  set_args(k, static_cast<int>(x.rows), static_cast<int>(N), static_cast<int>(x.cols), x.buf, static_cast<int>(x.ld),
           W, static_cast<int>(ldw), fmt, bits, sym, scales, zps, static_cast<int>(glen), static_cast<int>(gpr), Y,
           static_cast<int>(ldy));
  launch(d, k, static_cast<size_t>(ceil_div(N, 64)) * 256, static_cast<size_t>(ceil_div(x.rows, 64)), 256, 1, ev,
         "matmul_a16");
}

}  // namespace

void matmul_a16(Device& d, const DevMatrix& x, const DevQuantized& w, const Buffer& Y, int64_t ldy, Event* ev) {
  if (x.cols != w.cols)
    throw std::invalid_argument("matmul_a16: X has K = " + std::to_string(x.cols) + " but W has " +
                                std::to_string(w.cols) + " columns");
  if (w.perm || w.col_scale || w.n_non_finite > 0)
    throw std::invalid_argument("matmul_a16: weights with perm / col_scale / NaN need dequantize() + matmul_f32");
  if (ldy < w.rows) throw std::invalid_argument("matmul_a16: ldy < N");
  check_int(x.rows * x.ld, "M × ldx");
  check_int(w.rows * w.row_bytes, "N × row_bytes");
  if (x.rows == 0 || w.rows == 0) return;
  auto lk = d.lock();
  run_a16(d, x, w.codes.get(), w.row_bytes, fmt_id(w.format), w.params.bits,
          w.params.mapping == Mapping::symmetric ? 1 : 0, w.scales.get(), opt(w.zps), w.glen, w.gpr, w.rows, Y, ldy,
          ev);
}

void matmul_f32(Device& d, const DevMatrix& x, const DevMatrix& w, const Buffer& Y, int64_t ldy) {
  if (w.type != ElemType::f32) throw std::invalid_argument("matmul_f32: W must be float32");
  if (x.cols != w.cols) throw std::invalid_argument("matmul_f32: K mismatch");
  if (x.rows == 0 || w.rows == 0) return;
  auto lk = d.lock();
  constexpr int kFmtF32 = 6;  // matmul_a16.cl QEVAL_FMT_F32
  run_a16(d, x, w.buf.get(), w.ld, kFmtF32, 32, 0, nullptr, nullptr, 1, 1, w.rows, Y, ldy, nullptr);
}

void outlier_accumulate(Device& d, const DevMatrix& x, const DevMatrix& w, const Buffer& cols, int64_t n_cols,
                        const Buffer& Y, int64_t ldy) {
  if (w.type != ElemType::f32 || x.cols != w.cols)
    throw std::invalid_argument("outlier_accumulate: W must be float32 with as many columns as X (" +
                                std::to_string(x.cols) + "), got " + std::to_string(w.cols));
  if (n_cols < 0 || n_cols > x.cols || (n_cols > 0 && cols.bytes() < static_cast<size_t>(n_cols) * 4))
    throw std::invalid_argument("outlier_accumulate: " + std::to_string(n_cols) + " outlier columns for K = " +
                                std::to_string(x.cols) + " (or a column buffer too small)");
  if (ldy < w.rows) throw std::invalid_argument("outlier_accumulate: ldy < N");
  check_int(x.rows * ldy, "M × ldy");
  if (n_cols == 0 || x.rows == 0 || w.rows == 0) return;
  auto lk = d.lock();
  const std::string xo = std::string("-DQEVAL_IN_HALF=") + (x.type == ElemType::f16 ? "1" : "0");
  cl_kernel k = d.kernel("matmul_a16.cl", xo, "outlier_accumulate");
  set_args(k, static_cast<int>(x.rows), static_cast<int>(w.rows), x.buf, static_cast<int>(x.ld), w.buf,
           static_cast<int>(w.ld), cols, static_cast<int>(n_cols), Y, static_cast<int>(ldy));
  launch(d, k, round_up(w.rows, 64), static_cast<size_t>(x.rows), 64, 1, nullptr, "outlier_accumulate");
}

// ---- known-answer probes ----------------------------------------------------------------------------

std::string probe_tier(Device& d, Tier t) {
  Rng rng(0x9e3779b97f4a7c15ull);  // fixed: a probe is a known answer, not a random test
  // Two shapes: ragged (M 9, N 20, K 100: every tail path, unaligned rows) and aligned (16, 24, 96).
  const int64_t shapes[2][3] = {{9, 20, 100}, {16, 24, 96}};
  // T0/T1 have two kernels (tiled, and decode for M <= 16): probe both.
  std::vector<TileConfig> tiles{TileConfig::small};
  if (t == Tier::t0 || t == Tier::t1) tiles.push_back(TileConfig::decode);
  for (const auto& sh : shapes)
    for (TileConfig tc : tiles) {
      const int64_t M = sh[0], N = sh[1], K = sh[2];
      std::vector<int8_t> A(static_cast<size_t>(M * K)), W(static_cast<size_t>(N * K));
      for (auto& v : A) v = static_cast<int8_t>(static_cast<int>(rng.below(256)) - 128);
      for (auto& v : W) v = static_cast<int8_t>(static_cast<int>(rng.below(256)) - 128);
      std::vector<int32_t> want(static_cast<size_t>(M * N)), got(want.size(), 0x5A5A5A5A);
      ref::gemm_s8s8_s32_ref(M, N, K, A.data(), K, W.data(), K, want.data(), N);
      Buffer bA(d.context(), A.size()), bW(d.context(), W.size()), bC(d.context(), got.size() * 4);
      bA.write(d.queue(), A.data(), A.size());
      bW.write(d.queue(), W.data(), W.size());
      bC.write(d.queue(), got.data(), got.size() * 4);
      GemmOptions o;
      o.tier = t;
      o.tile = tc;
      gemm_s8s8_s32(d, M, N, K, bA, K, bW, K, bC, N, o);
      bC.read(d.queue(), got.data(), got.size() * 4);
      for (size_t i = 0; i < got.size(); ++i)
        if (got[i] != want[i])
          return std::string(tc == TileConfig::decode ? "decode " : "") + "GEMM " + std::to_string(M) + "x" +
                 std::to_string(N) + "x" + std::to_string(K) + ": C[" + std::to_string(i / static_cast<size_t>(N)) +
                 "][" + std::to_string(i % static_cast<size_t>(N)) + "] = " + std::to_string(got[i]) +
                 ", expected " + std::to_string(want[i]);
    }
  if (t == Tier::t0) {  // the quantize kernel runs on every device: check it once, against the reference
    quant::Matrix x(5, 96);
    for (auto& v : x.data) v = static_cast<float>(rng.normal());
    for (int asym = 0; asym < 2; ++asym) {
      ActQuantSpec s;
      s.bits = 8;
      s.group_size = 32;
      s.mapping = asym ? Mapping::asymmetric : Mapping::symmetric;
      const QuantizedMatrix want = ref::quantize_affine_ref(x.view(), s.to_params());
      const QuantizedMatrix got = download(d, quantize_rows(d, upload(d, x.view()), s));
      if (got.codes != want.codes || got.scales != want.scales || got.zero_points != want.zero_points)
        return std::string("quantize (int8 ") + (asym ? "asym" : "sym") + " g32) differs from ref::quantize_affine_ref";
    }
  }
  return "";
}

}  // namespace qeval::gpu
