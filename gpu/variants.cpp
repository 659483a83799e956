// gpu/variants.cpp — kernel variant names, build defines, JSON round trip, device fit and the tuner's catalogue.
#include "gpu/variants.hpp"

#include <stdexcept>

namespace qeval::gpu {

namespace {

bool pow2(int v) { return v > 0 && (v & (v - 1)) == 0; }

std::string d(const char* name, int v) { return std::string(" -D") + name + "=" + std::to_string(v); }

// An integer field of a table entry, which must be one of `allowed`.
int field(const nlohmann::json& j, const char* key, std::initializer_list<int> allowed) {
  if (!j.contains(key) || !j[key].is_number_integer())
    throw std::invalid_argument(std::string("kernel variant: missing or non-integer field '") + key + "' in " + j.dump());
  const int v = j[key].get<int>();
  for (int a : allowed)
    if (v == a) return v;
  throw std::invalid_argument(std::string("kernel variant: field '") + key + "' = " + std::to_string(v) +
                              " is not a value the kernels take, in " + j.dump());
}

bool reduce_field(const nlohmann::json& j) {
  const std::string r = j.value("reduce", "tree");
  if (r != "tree" && r != "shfl")
    throw std::invalid_argument("kernel variant: 'reduce' must be \"tree\" or \"shfl\", in " + j.dump());
  return r == "shfl";
}

}  // namespace

const char* to_string(ShapeClass c) {
  switch (c) {
    case ShapeClass::quantize_per_token: return "quantize_per_token";
    case ShapeClass::quantize_grouped: return "quantize_grouped";
    case ShapeClass::gemm_prefill: return "gemm_prefill";
    case ShapeClass::matmul_w4a8: return "matmul_w4a8";
    case ShapeClass::gemm_decode_m1: return "gemm_decode_m1";
    case ShapeClass::gemm_decode_m16: return "gemm_decode_m16";
  }
  return "?";
}

ShapeClass parse_shape_class(const std::string& s) {
  std::string names;
  for (ShapeClass c : kAllShapeClasses) {
    if (s == to_string(c)) return c;
    names += std::string(names.empty() ? "" : ", ") + to_string(c);
  }
  throw std::invalid_argument("unknown shape class '" + s + "'; expected one of " + names);
}

// ---- names and defines ------------------------------------------------------------------------------------

std::string QuantizeVariant::name() const {
  return "quantize_v" + std::to_string(vec) + "_wg" + std::to_string(lws) + "_t" + std::to_string(tps) +
         (shfl ? "_shfl" : "_tree");
}
std::string QuantizeVariant::defines() const {
  return "-DQEVAL_VEC=" + std::to_string(vec) + (shfl ? " -DQEVAL_NV_SHFL=1" : "");
}
bool QuantizeVariant::operator==(const QuantizeVariant& o) const {
  return vec == o.vec && lws == o.lws && tps == o.tps && shfl == o.shfl;
}

size_t TiledVariant::local_bytes() const { return 2u * static_cast<size_t>(bk / 4) * ((bm + 4) + (bn + 4)) * 4u; }
std::string TiledVariant::name() const {
  return "tiled_" + std::to_string(bm) + "x" + std::to_string(bn) + "_r" + std::to_string(tm) + "x" +
         std::to_string(tn) + "_k" + std::to_string(bk);
}
std::string TiledVariant::defines() const {
  return (d("QEVAL_BM", bm) + d("QEVAL_BN", bn) + d("QEVAL_TM", tm) + d("QEVAL_TN", tn) + d("QEVAL_BK", bk)).substr(1);
}
bool TiledVariant::operator==(const TiledVariant& o) const {
  return bm == o.bm && bn == o.bn && tm == o.tm && tn == o.tn && bk == o.bk;
}

size_t DecodeVariant::local_bytes() const {
  const size_t a = stage_a ? static_cast<size_t>(mmax) * 4u * tpc * j : 1u;  // words
  const size_t red = shfl ? 1u : static_cast<size_t>(wg) * mmax;
  return 4u * (a > red ? a : red);
}
std::string DecodeVariant::name() const {
  return "decode_wg" + std::to_string(wg) + "_l" + std::to_string(tpc) + "_j" + std::to_string(j) + "_r" +
         std::to_string(rpt) + "_m" + std::to_string(mmax) + (stage_a ? "_lds" : "_direct") +
         (shfl ? "_shfl" : "_tree");
}
std::string DecodeVariant::defines() const {
  return (d("QEVAL_DEC_WG", wg) + d("QEVAL_DEC_TPC", tpc) + d("QEVAL_DEC_J", j) + d("QEVAL_DEC_RPT", rpt) +
          d("QEVAL_DEC_MMAX", mmax) + d("QEVAL_DEC_STAGE_A", stage_a ? 1 : 0))
             .substr(1) +
         (shfl ? " -DQEVAL_NV_SHFL=1" : "");
}
bool DecodeVariant::operator==(const DecodeVariant& o) const {
  return wg == o.wg && tpc == o.tpc && j == o.j && rpt == o.rpt && mmax == o.mmax && stage_a == o.stage_a &&
         shfl == o.shfl;
}

bool GemmVariant::operator==(const GemmVariant& o) const {
  return kind == o.kind && (kind == Kind::tiled ? tiled == o.tiled : decode == o.decode);
}
GemmVariant GemmVariant::of(const TiledVariant& t) {
  GemmVariant g;
  g.kind = Kind::tiled;
  g.tiled = t;
  return g;
}
GemmVariant GemmVariant::of(const DecodeVariant& dv) {
  GemmVariant g;
  g.kind = Kind::decode;
  g.decode = dv;
  return g;
}

// ---- JSON -------------------------------------------------------------------------------------------------

nlohmann::json to_json(const QuantizeVariant& v) {
  return {{"kernel", "quantize"}, {"vec", v.vec}, {"wg", v.lws}, {"tps", v.tps}, {"reduce", v.shfl ? "shfl" : "tree"}};
}

nlohmann::json to_json(const GemmVariant& v) {
  if (v.kind == GemmVariant::Kind::tiled) {
    const TiledVariant& t = v.tiled;
    return {{"kernel", "tiled"}, {"bm", t.bm}, {"bn", t.bn}, {"tm", t.tm}, {"tn", t.tn}, {"bk", t.bk}};
  }
  const DecodeVariant& x = v.decode;
  return {{"kernel", "decode"}, {"wg", x.wg},           {"tpc", x.tpc},
          {"j", x.j},           {"rpt", x.rpt},         {"mmax", x.mmax},
          {"stage_a", x.stage_a}, {"reduce", x.shfl ? "shfl" : "tree"}};
}

QuantizeVariant quantize_variant_from_json(const nlohmann::json& j) {
  if (!j.is_object() || j.value("kernel", "") != "quantize")
    throw std::invalid_argument("kernel variant: expected {\"kernel\": \"quantize\", ...}, got " + j.dump());
  QuantizeVariant v;
  v.vec = field(j, "vec", {1, 4, 8});
  v.lws = field(j, "wg", {32, 64, 128, 256, 512, 1024});
  v.tps = field(j, "tps", {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024});
  v.shfl = reduce_field(j);
  if (v.tps > v.lws) throw std::invalid_argument("kernel variant: tps > wg in " + j.dump());
  return v;
}

GemmVariant gemm_variant_from_json(const nlohmann::json& j) {
  const std::string k = j.is_object() ? j.value("kernel", "") : "";
  if (k == "tiled") {
    TiledVariant t;
    t.bm = field(j, "bm", {32, 64, 128, 256});
    t.bn = field(j, "bn", {32, 64, 128, 256});
    t.tm = field(j, "tm", {4, 8, 16});
    t.tn = field(j, "tn", {4, 8, 16});
    t.bk = field(j, "bk", {32, 64});
    if (t.bm % t.tm || t.bn % t.tn) throw std::invalid_argument("kernel variant: tile not divisible in " + j.dump());
    return GemmVariant::of(t);
  }
  if (k == "decode") {
    DecodeVariant x;
    x.wg = field(j, "wg", {32, 64, 128, 256, 512});
    x.tpc = field(j, "tpc", {1, 2, 4, 8, 16, 32, 64});
    x.j = field(j, "j", {1, 2, 4, 8, 16});
    x.rpt = field(j, "rpt", {1, 2, 4});
    x.mmax = field(j, "mmax", {1, 2, 4, 8, 16});
    if (!j.contains("stage_a") || !j["stage_a"].is_boolean())
      throw std::invalid_argument("kernel variant: missing boolean 'stage_a' in " + j.dump());
    x.stage_a = j["stage_a"].get<bool>();
    x.shfl = reduce_field(j);
    if (x.wg % x.tpc) throw std::invalid_argument("kernel variant: tpc does not divide wg in " + j.dump());
    return GemmVariant::of(x);
  }
  throw std::invalid_argument("kernel variant: expected \"kernel\": \"tiled\" or \"decode\", got " + j.dump());
}

// ---- what a device can run --------------------------------------------------------------------------------

std::string variant_unfit(const QuantizeVariant& v, const DeviceInfo& info) {
  if (static_cast<size_t>(v.lws) > info.max_work_group) return "work-group size above the device's maximum";
  if (!pow2(v.tps) || v.tps > v.lws) return "tps must be a power of two ≤ the work-group size";
  if (v.shfl && !info.is_nvidia()) return "warp shuffles are NVIDIA inline PTX";
  if (v.shfl && v.lws % 32) return "shuffle reductions need whole warps";
  return "";
}

std::string variant_unfit(const GemmVariant& v, const DeviceInfo& info) {
  if (v.kind == GemmVariant::Kind::tiled) {
    const TiledVariant& t = v.tiled;
    if (static_cast<size_t>(t.threads()) > info.max_work_group) return "work-group size above the device's maximum";
    if (t.local_bytes() > info.local_mem_bytes) return "local memory above the device's";
    return "";
  }
  const DecodeVariant& x = v.decode;
  if (static_cast<size_t>(x.wg) > info.max_work_group) return "work-group size above the device's maximum";
  if (x.local_bytes() > info.local_mem_bytes) return "local memory above the device's";
  if (x.shfl && (!info.is_nvidia() || x.tpc > 32 || x.wg % 32)) return "warp shuffles: NVIDIA, tpc ≤ 32";
  return "";
}

}  // namespace qeval::gpu
