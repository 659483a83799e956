// gpu/catalogue.cpp — the kernel variants the tuner tries per shape class (gpu/variants.hpp), and the defaults.
//
// Why these: on a bandwidth-bound kernel (quantize, decode GEMM) the variants trade threads per row against
// bytes in flight per thread (wide uint4/float8 loads, J loads before use, RPT rows per lane) and barrier-free
// reductions (NVIDIA warp shuffles); on the dp4a-bound prefill GEMM they trade register-tile size (operand
// loads per dp4a: 8×8 → 16 words per 64 dp4a, 8×16 → 24 per 128) against occupancy, and stage depth BK
// (barriers per dp4a). A GPU gets the whole list (each entry that its limits allow); a CPU device (PoCL, in
// CI) a short one, so the CI tuning run stays within seconds.
#include <algorithm>

#include "gpu/variants.hpp"

namespace qeval::gpu {

QuantizeVariant default_quantize_variant() { return QuantizeVariant{}; }
TiledVariant tile_large() { return TiledVariant{128, 128, 8, 8, 32}; }
TiledVariant tile_medium() { return TiledVariant{64, 64, 4, 4, 32}; }
TiledVariant tile_small() { return TiledVariant{32, 64, 4, 4, 32}; }

GemmVariant default_decode_variant(int tpc) {
  DecodeVariant x;
  x.tpc = tpc == 32 ? 32 : 16;
  x.j = tpc == 32 ? 4 : 8;
  return GemmVariant::of(x);
}

namespace {

bool is_gpu(const DeviceInfo& info) { return (info.type & CL_DEVICE_TYPE_GPU) != 0; }

template <class V>
void add_fit(std::vector<V>& out, const V& v, const DeviceInfo& info) {
  if (!variant_unfit(v, info).empty()) return;
  if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
}

// Per token (4096 columns, vec 4 → 1024 vectors): 256, 128 or 64 threads per row (4, 8, 16 vectors each).
// Grouped (g128 → 32 vectors of 4, 16 of 8): 32 down to 2 threads per group, 8..128 groups per work-group.
// Entries {vec, work-group, threads per segment}, the likelier winners first (the budget may stop the list).
std::vector<QuantizeVariant> quantize_list(ShapeClass c, bool gpu, bool nvidia) {
  struct P {
    int vec, tps, lws;
  };
  const bool token = c == ShapeClass::quantize_per_token;
  std::vector<P> ps;
  if (!gpu)
    ps = token ? std::vector<P>{{4, 64, 256}, {8, 64, 256}} : std::vector<P>{{4, 4, 256}, {8, 4, 256}};
  else if (token)
    ps = {{4, 256, 256}, {8, 128, 256}, {4, 128, 256}, {8, 64, 256}, {4, 64, 256},
          {8, 64, 128},  {4, 64, 128},  {8, 256, 256}, {4, 256, 512}};
  else
    ps = {{4, 8, 256}, {8, 4, 256},  {4, 4, 256},  {8, 2, 256}, {4, 16, 256},
          {8, 8, 256}, {4, 32, 256}, {8, 16, 256}, {4, 8, 128}, {4, 2, 256}};
  std::vector<QuantizeVariant> v;
  for (bool shfl : {true, false}) {
    if (shfl && !(gpu && nvidia)) continue;
    for (const P& p : ps) v.push_back(QuantizeVariant{p.vec, p.lws, p.tps, shfl});
  }
  return v;
}

std::vector<TiledVariant> prefill_tiles(bool gpu) {
  if (!gpu) return {tile_large(), tile_medium(), TiledVariant{128, 128, 8, 8, 64}};
  return {tile_large(),
          TiledVariant{128, 128, 8, 8, 64},
          TiledVariant{128, 256, 8, 16, 32},
          TiledVariant{256, 128, 16, 8, 32},
          TiledVariant{128, 128, 8, 16, 32},
          TiledVariant{128, 128, 16, 8, 32},
          TiledVariant{128, 128, 8, 16, 64},
          TiledVariant{64, 128, 8, 8, 64},
          TiledVariant{128, 64, 8, 8, 64},
          tile_medium()};
}

std::vector<DecodeVariant> decode_list(ShapeClass c, bool gpu, bool nvidia) {
  std::vector<DecodeVariant> v;
  const int mmax = c == ShapeClass::gemm_decode_m1 ? 1 : 16;
  // {wg, tpc, j, rpt, stage_a}: streaming depth (j·rpt 16-byte loads in flight per lane) × rows per lane.
  struct P {
    int wg, tpc, j, rpt;
    bool stage;
  };
  std::vector<P> ps;
  if (mmax == 1)
    ps = {{256, 16, 8, 1, false}, {256, 16, 4, 2, false}, {256, 8, 8, 1, false}, {256, 8, 4, 2, false},
          {256, 32, 4, 1, false}, {256, 16, 4, 4, false}, {128, 16, 8, 1, false}, {256, 16, 8, 1, true}};
  else
    ps = {{256, 16, 4, 2, true}, {256, 16, 2, 4, true}, {256, 32, 4, 1, true}, {256, 32, 2, 2, true},
          {128, 16, 4, 2, true}, {256, 16, 4, 2, false}, {256, 8, 4, 2, true}};
  if (!gpu) ps.resize(2);
  for (bool shfl : {false, true}) {
    if (shfl && !nvidia) continue;
    for (const P& p : ps) {
      DecodeVariant x;
      x.wg = p.wg;
      x.tpc = p.tpc;
      x.j = p.j;
      x.rpt = p.rpt;
      x.mmax = mmax;
      x.stage_a = p.stage;
      x.shfl = shfl;
      v.push_back(x);
    }
  }
  return v;
}

}  // namespace

std::vector<QuantizeVariant> quantize_catalogue(ShapeClass c, const DeviceInfo& info) {
  std::vector<QuantizeVariant> out;
  add_fit(out, default_quantize_variant(), info);
  if (c != ShapeClass::quantize_per_token && c != ShapeClass::quantize_grouped) return out;
  for (const QuantizeVariant& v : quantize_list(c, is_gpu(info), info.is_nvidia())) add_fit(out, v, info);
  return out;
}

std::vector<GemmVariant> gemm_catalogue(ShapeClass c, const DeviceInfo& info) {
  std::vector<GemmVariant> out;
  const bool gpu = is_gpu(info);
  if (c == ShapeClass::gemm_prefill || c == ShapeClass::matmul_w4a8) {
    for (const TiledVariant& t : prefill_tiles(gpu)) add_fit(out, GemmVariant::of(t), info);
    return out;
  }
  if (c != ShapeClass::gemm_decode_m1 && c != ShapeClass::gemm_decode_m16) return out;
  // The default first (decode kernel on GPUs, the small tile elsewhere: gpu/ops.cpp use_decode), then the
  // tiled kernel's small tiles and the decode variants of the class.
  if (gpu) add_fit(out, default_decode_variant(16), info);
  add_fit(out, GemmVariant::of(tile_small()), info);
  add_fit(out, GemmVariant::of(tile_medium()), info);
  for (const DecodeVariant& x : decode_list(c, gpu, info.is_nvidia())) add_fit(out, GemmVariant::of(x), info);
  if (!gpu) add_fit(out, default_decode_variant(16), info);
  return out;
}

}  // namespace qeval::gpu
