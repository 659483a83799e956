// gpu/ops_gemm.cpp — the T0/T1 int8 GEMM launches (gemm_tiled.cl, gemm_decode.cl): which kernel variant a call
// runs (explicit option, tile configuration, tuning table, safe default) and its launch geometry.
#include <algorithm>
#include <stdexcept>

#include "gpu/ops.hpp"
#include "gpu/ops_internal.hpp"
#include "gpu/tuning.hpp"

namespace qeval::gpu {

using detail::ceil_div;
using detail::Epi;
using detail::launch;

namespace {

// The largest of the three historical tiles that still gives every compute unit two work-groups.
TiledVariant auto_tile(const DeviceInfo& info, int64_t M, int64_t N) {
  const int64_t cus = std::max<uint32_t>(1, info.compute_units);
  if (ceil_div(M, 128) * ceil_div(N, 128) >= 2 * cus) return tile_large();
  if (ceil_div(M, 64) * ceil_div(N, 64) >= 2 * cus || M > 32) return tile_medium();
  return tile_small();
}

// Why variant v cannot serve this call ("" = it can): the decode kernel takes int8 weights, M ≤ MMAX and one
// K segment; the tiled kernel folds the epilogue at stage ends, so segments must be multiples of BK.
std::string cannot_serve(const GemmVariant& v, int64_t M, int w_bits, int64_t seg, int64_t nseg) {
  if (v.kind == GemmVariant::Kind::decode) {
    if (w_bits != 8) return "the decode kernel takes int8 weights";
    if (M > v.decode.mmax) return "M = " + std::to_string(M) + " > MMAX = " + std::to_string(v.decode.mmax);
    if (nseg != 1) return "the decode kernel's epilogue takes one K segment";
    return "";
  }
  if (nseg > 1 && seg % v.tiled.bk != 0)
    return "K segments of " + std::to_string(seg) + " are not multiples of BK = " + std::to_string(v.tiled.bk);
  return "";
}

// The safe default (no table): the decode kernel on GPUs for int8 weights, M ≤ 16, one segment (on PoCL the
// small tile measured 5-10x faster, reports/perf/opencl_pocl.md); else the automatic tile.
GemmVariant default_variant(Device& d, const GemmOptions& o, int64_t M, int64_t N, int w_bits, int64_t nseg) {
  const bool gpu = (d.info().type & CL_DEVICE_TYPE_GPU) != 0;
  if (gpu && w_bits == 8 && M <= kDecodeMaxRows && nseg == 1) return default_decode_variant(o.decode_tpc);
  return GemmVariant::of(auto_tile(d.info(), M, N));
}

// The tuned variant for the call's class when it can serve the call; a prefill tile only when the grid still
// gives every compute unit two work-groups (the table was tuned on 4096³).
std::optional<GemmVariant> tuned_variant(Device& d, int64_t M, int64_t N, int w_bits, int64_t seg, int64_t nseg) {
  const std::optional<ShapeClass> c = gemm_shape_class(M, w_bits);
  if (!c) return std::nullopt;
  const std::optional<GemmVariant> v = d.tuning().gemm_for(*c);
  if (!v || !cannot_serve(*v, M, w_bits, seg, nseg).empty()) return std::nullopt;
  if (v->kind == GemmVariant::Kind::tiled && (*c == ShapeClass::gemm_prefill || *c == ShapeClass::matmul_w4a8)) {
    const int64_t cus = std::max<uint32_t>(1, d.info().compute_units);
    if (ceil_div(M, v->tiled.bm) * ceil_div(N, v->tiled.bn) < 2 * cus) return std::nullopt;
  }
  return v;
}

std::string dot4(Device& d, Tier t, const GemmOptions& o) { return o.portable_dot4 ? "" : d.dot4_option(t); }

// The arguments both kernels share, in their order.
void set_gemm_args(cl_kernel k, cl_uint& i, int64_t M, int64_t N, int64_t K, cl_mem A, int64_t lda, uint32_t a_xor,
                   cl_mem W, int64_t ldw, uint32_t w_xor, cl_mem C, int64_t ldc, const Epi* epi) {
  for (int64_t v : {M, N, K}) set_arg(k, i++, static_cast<int>(v));
  set_arg(k, i++, A);
  set_arg(k, i++, static_cast<int>(lda));
  set_arg(k, i++, a_xor);
  set_arg(k, i++, W);
  set_arg(k, i++, static_cast<int>(ldw));
  set_arg(k, i++, w_xor);
  // load_s8_16's alignment mode: 16-byte rows (128-bit loads), 4-byte rows (words), else bytes.
  set_arg(k, i++, (lda % 16 == 0 && ldw % 16 == 0) ? 2 : ((lda % 4 == 0 && ldw % 4 == 0) ? 1 : 0));
  set_arg(k, i++, epi ? static_cast<cl_mem>(nullptr) : C);
  set_arg(k, i++, static_cast<int>(ldc));
  set_arg(k, i++, epi ? C : static_cast<cl_mem>(nullptr));
  set_arg(k, i++, static_cast<int>(ldc));
  (epi ? *epi : Epi()).set(k, i);
}

}  // namespace

std::optional<ShapeClass> gemm_shape_class(int64_t M, int w_bits) {
  if (M >= 64) return w_bits == 4 ? ShapeClass::matmul_w4a8 : ShapeClass::gemm_prefill;
  if (w_bits != 8) return std::nullopt;
  if (M == 1) return ShapeClass::gemm_decode_m1;
  if (M <= kDecodeMaxRows) return ShapeClass::gemm_decode_m16;
  return std::nullopt;
}

GemmVariant gemm_variant_for(Device& d, const GemmOptions& o, int64_t M, int64_t N, int w_bits, int64_t seg,
                             int64_t nseg) {
  if (o.variant) {
    const std::string why = cannot_serve(*o.variant, M, w_bits, seg, nseg);
    if (!why.empty()) throw std::invalid_argument("gemm: variant " + o.variant->name() + " cannot serve the call: " + why);
    const std::string unfit = variant_unfit(*o.variant, d.info());
    if (!unfit.empty()) throw std::invalid_argument("gemm: variant " + o.variant->name() + ": " + unfit);
    return *o.variant;
  }
  switch (o.tile) {
    case TileConfig::large: return GemmVariant::of(tile_large());
    case TileConfig::medium: return GemmVariant::of(tile_medium());
    case TileConfig::small: return GemmVariant::of(tile_small());
    case TileConfig::decode:
      if (w_bits == 8 && M <= kDecodeMaxRows && nseg == 1) return default_decode_variant(o.decode_tpc);
      return GemmVariant::of(auto_tile(d.info(), M, N));  // e.g. grouped epilogues: the tiled kernel
    case TileConfig::automatic: break;
  }
  if (std::optional<GemmVariant> t = tuned_variant(d, M, N, w_bits, seg, nseg)) return *t;
  return default_variant(d, o, M, N, w_bits, nseg);
}

namespace detail {

void run_tiled(Device& d, const GemmOptions& o, int64_t M, int64_t N, int64_t K, cl_mem A, int64_t lda,
               uint32_t a_xor, cl_mem W, int64_t ldw, uint32_t w_xor, int w_bits, cl_mem C, int64_t ldc,
               const Epi* epi, Event* ev) {
  const int64_t seg = epi ? epi->seg : K, nseg = epi ? epi->nseg : 1;
  const GemmVariant v = gemm_variant_for(d, o, M, N, w_bits, seg, nseg);
  const std::string common = std::string(" -DQEVAL_EPI=") + (epi ? "1" : "0") + " " + dot4(d, o.tier, o);
  cl_uint i = 0;
  if (v.kind == GemmVariant::Kind::decode) {
    const DecodeVariant& x = v.decode;
    cl_kernel k = d.kernel("gemm_decode.cl", x.defines() + common, "gemm_decode");
    set_gemm_args(k, i, M, N, K, A, lda, a_xor, W, ldw, w_xor, C, ldc, epi);
    launch(d, k, static_cast<size_t>(ceil_div(N, x.rows_per_group())) * static_cast<size_t>(x.wg), 1,
           static_cast<size_t>(x.wg), 1, ev, "gemm_decode");
    return;
  }
  const TiledVariant& t = v.tiled;
  cl_kernel k = d.kernel("gemm_tiled.cl", t.defines() + " -DQEVAL_W_BITS=" + std::to_string(w_bits) + common,
                         "gemm_tiled");
  set_gemm_args(k, i, M, N, K, A, lda, a_xor, W, ldw, w_xor, C, ldc, epi);
  const size_t nt = static_cast<size_t>(t.threads());
  launch(d, k, static_cast<size_t>(ceil_div(N, t.bn)) * nt, static_cast<size_t>(ceil_div(M, t.bm)), nt, 1, ev,
         "gemm_tiled");
}

}  // namespace detail

}  // namespace qeval::gpu
