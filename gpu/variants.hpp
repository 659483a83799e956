// gpu/variants.hpp — the tunable kernel variants of the OpenCL backend (compile-time parameters of quantize.cl,
// gemm_tiled.cl and gemm_decode.cl), the shape classes they are tuned for, and the catalogue the tuner tries.
//
// A variant changes how a kernel is laid out on the device (work-group shape, register tile, vector width,
// rows per work-group, loads in flight, local-memory staging, reduction), never what it computes: integer
// codes and int32 accumulators are the same for every variant, and the float epilogue performs the same
// operations per element, so its bits are the same too (tests/gpu/variants_cl_test.cpp checks every
// catalogue entry against the reference). The tuner (gpu/tuner.hpp) times the catalogue of each class on a
// device and writes the fastest verified variant per class into a table (gpu/tuning.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gpu/device.hpp"

namespace qeval::gpu {

// The shape classes a table holds one variant for, and which calls use it (gpu/ops.cpp).
enum class ShapeClass : uint8_t {
  quantize_per_token,  // quantize_rows with one group per row (per token)
  quantize_grouped,    // quantize_rows with groups along the row (tuned on int4 g128)
  gemm_prefill,        // int8 GEMM / W8A8, int8 weights, M ≥ 64 (tuned on 4096³)
  matmul_w4a8,         // W4A8 (int4 weights, epilogue), M ≥ 64 (tuned on 4096³, g128)
  gemm_decode_m1,      // int8 weights, M = 1
  gemm_decode_m16,     // int8 weights, 2 ≤ M ≤ 16
};
inline constexpr ShapeClass kAllShapeClasses[] = {ShapeClass::quantize_per_token, ShapeClass::quantize_grouped,
                                                  ShapeClass::gemm_prefill,       ShapeClass::matmul_w4a8,
                                                  ShapeClass::gemm_decode_m1,     ShapeClass::gemm_decode_m16};
const char* to_string(ShapeClass c);            // "quantize_per_token", ...
ShapeClass parse_shape_class(const std::string& s);  // throws std::invalid_argument listing the names

// quantize.cl quantize_codes: VEC elements per load (1, 4, 8), LWS work-items per work-group, at most TPS
// threads per segment (fewer threads → more elements per thread and shorter reductions), reduction by local
// tree or NVIDIA warp shuffles.
struct QuantizeVariant {
  int vec = 4;
  int lws = 256;
  int tps = 256;
  bool shfl = false;
  std::string name() const;     // "quantize_v4_wg256_t256_tree"
  std::string defines() const;  // -DQEVAL_VEC=... (-DQEVAL_NV_SHFL=1)
  bool operator==(const QuantizeVariant& o) const;
};

// gemm_tiled.cl: BM×BN outputs per work-group, TM×TN per work-item, K stages of BK bytes.
struct TiledVariant {
  int bm = 128, bn = 128, tm = 8, tn = 8, bk = 32;
  int threads() const { return (bm / tm) * (bn / tn); }
  size_t local_bytes() const;   // the double-buffered A and B tiles
  std::string name() const;     // "tiled_128x128_r8x8_k32"
  std::string defines() const;  // -DQEVAL_BM=... -DQEVAL_BK=...
  bool operator==(const TiledVariant& o) const;
};

// gemm_decode.cl: WG work-items, TPC lanes per weight row, J 16-byte loads per lane per K chunk, RPT weight
// rows per lane, up to MMAX activation rows, A staged in local memory or read through the cache, lane sums by
// local tree or NVIDIA warp shuffles.
struct DecodeVariant {
  int wg = 256, tpc = 16, j = 8, rpt = 1, mmax = 16;
  bool stage_a = true;
  bool shfl = false;
  int rows_per_group() const { return wg / tpc * rpt; }
  size_t local_bytes() const;
  std::string name() const;     // "decode_wg256_l16_j8_r1_m16_lds_tree"
  std::string defines() const;
  bool operator==(const DecodeVariant& o) const;
};

// A GEMM variant: one of the two kernels.
struct GemmVariant {
  enum class Kind : uint8_t { tiled, decode };
  Kind kind = Kind::tiled;
  TiledVariant tiled;
  DecodeVariant decode;
  std::string name() const { return kind == Kind::tiled ? tiled.name() : decode.name(); }
  bool operator==(const GemmVariant& o) const;
  bool operator!=(const GemmVariant& o) const { return !(*this == o); }
  static GemmVariant of(const TiledVariant& t);
  static GemmVariant of(const DecodeVariant& d);
};

// JSON round trip (the tuning table): {"kernel": "tiled", "bm": 128, ...}. The parsers throw
// std::invalid_argument naming the field for a malformed or out-of-range entry.
nlohmann::json to_json(const QuantizeVariant& v);
nlohmann::json to_json(const GemmVariant& v);
QuantizeVariant quantize_variant_from_json(const nlohmann::json& j);
GemmVariant gemm_variant_from_json(const nlohmann::json& j);

// Why a variant cannot run on this device ("" = it can): work-group size, local memory, NVIDIA-only shuffles.
std::string variant_unfit(const QuantizeVariant& v, const DeviceInfo& info);
std::string variant_unfit(const GemmVariant& v, const DeviceInfo& info);

// The variants the tuner tries for a class on a device, the safe default first (what the backend runs
// without a table), then the rest; variants the device cannot run are left out.
std::vector<QuantizeVariant> quantize_catalogue(ShapeClass c, const DeviceInfo& info);
std::vector<GemmVariant> gemm_catalogue(ShapeClass c, const DeviceInfo& info);

// The safe defaults (no table): the kernels' historical choices.
QuantizeVariant default_quantize_variant();
GemmVariant default_decode_variant(int tpc = 16);  // gemm_decode.cl as run without a table
TiledVariant tile_large();                         // 128×128, 8×8, k32
TiledVariant tile_medium();                        // 64×64, 4×4
TiledVariant tile_small();                         // 32×64, 4×4

}  // namespace qeval::gpu
