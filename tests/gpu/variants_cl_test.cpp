// tests/gpu/variants_cl_test.cpp — every kernel variant the tuner may choose (gpu/variants.hpp) computes exactly
// what the reference does: quantize codes/scales/zero points/sums, int32 GEMM accumulators, and the float bits of
// the W4A8/W8A8 epilogue (gpu/epilogue_ref.hpp). The GPU catalogue is run here too (on PoCL: every entry but the
// NVIDIA warp-shuffle ones, which clang type-checks for nvptx64 in qeval_gpu_kernel_syntax), plus the JSON round
// trip and the table lookup rules of gpu/tuning.hpp.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gpu/backend.hpp"
#include "gpu/epilogue_ref.hpp"
#include "gpu/tuning.hpp"
#include "quant/pack.hpp"
#include "quant/ref/gemm_ref.hpp"
#include "quant/ref/quantize_ref.hpp"
#include "tests/gpu/gpu_test_util.hpp"

namespace qeval::gpu {
namespace {

using quant::Mapping;
using quant::QuantParams;

// The catalogue to test: the device's own (on PoCL the short CPU lists; on a GPU all of them, NVIDIA's warp-
// shuffle entries included), or with QEVAL_TEST_GPU_CATALOGUE=1 the GPU catalogue minus the inline-PTX entries
// (what a non-NVIDIA GPU gets) — run that once on PoCL before a GPU run: minutes of PoCL compiling.
DeviceInfo catalogue_info(const DeviceInfo& dev) {
  const char* e = std::getenv("QEVAL_TEST_GPU_CATALOGUE");
  if (!e || std::string(e) != "1") return dev;
  DeviceInfo i = dev;
  i.type = CL_DEVICE_TYPE_GPU;
  i.vendor = "generic";
  i.platform_name = "generic";
  return i;
}

std::vector<int32_t> sums_of(const quant::QuantizedMatrix& q) {
  std::vector<int32_t> s(static_cast<size_t>(q.num_groups()), 0);
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c)
      s[static_cast<size_t>(q.group_index(r, c))] +=
          quant::packed_code_at(q.codes.data() + r * q.row_bytes(), c, q.params.bits) - (1 << (q.params.bits - 1));
  return s;
}

// One quantize_rows run with variant v against the reference (codes, scales, zero points, sums).
std::string quantize_difference(Device& d, const quant::Matrix& x, const QuantParams& p, const QuantizeVariant& v) {
  ActQuantSpec s = ActQuantSpec::from_params(p);
  s.with_sums = true;
  const DevQuantized dq = quantize_rows(d, upload(d, x.view()), s, nullptr, nullptr, &v);
  const quant::QuantizedMatrix got = download(d, dq);
  const quant::QuantizedMatrix want = ref::quantize_affine_ref(x.view(), p);
  std::vector<int32_t> sums(static_cast<size_t>(want.num_groups()));
  dq.sums.read(d.queue(), sums.data(), sums.size() * 4);
  std::string r = test::first_difference(got.codes, want.codes);
  if (r.empty()) r = test::first_difference(got.scales, want.scales);
  if (r.empty()) r = test::first_difference(got.zero_points, want.zero_points);
  if (r.empty()) r = test::first_difference(sums, sums_of(want));
  return r;
}

TEST(Variants, EveryQuantizeVariantIsExact) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  // Per token: 4096 columns (the tuned shape); grouped: 576 = 4·128 + 64 columns (a partial last group).
  const quant::Matrix tok = test::gaussian_matrix(7, 4096, seed), part = test::gaussian_matrix(5, 576, seed + 1);
  for (ShapeClass c : {ShapeClass::quantize_per_token, ShapeClass::quantize_grouped}) {
    std::vector<QuantizeVariant> vs = quantize_catalogue(c, catalogue_info(dev->info()));
    QuantizeVariant scalar = vs.front();  // the scalar-load fallback (strides not a multiple of the vector)
    scalar.vec = 1;
    vs.push_back(scalar);
    for (const QuantizeVariant& v : vs)
      for (auto [bits, m] : {std::pair<int, Mapping>{8, Mapping::asymmetric}, {4, Mapping::symmetric}}) {
        QuantParams p;
        p.bits = bits;
        p.mapping = m;
        p.group_size = c == ShapeClass::quantize_per_token ? quant::kPerRow : 128;
        p.partial_last_group = true;
        const quant::Matrix& x = c == ShapeClass::quantize_per_token ? tok : part;
        EXPECT_EQ(quantize_difference(*dev, x, p, v), "") << v.name() << " " << p.to_string() << " seed " << seed;
      }
  }
}

// One int8 GEMM with variant v against ref::gemm_s8s8_s32_ref.
std::string gemm_difference(Device& d, int64_t M, int64_t N, int64_t K, const GemmVariant& v, uint64_t seed) {
  const std::vector<int8_t> A = test::random_s8(static_cast<size_t>(M * K), seed);
  const std::vector<int8_t> W = test::random_s8(static_cast<size_t>(N * K), seed ^ 0xB);
  std::vector<int32_t> want(static_cast<size_t>(M * N)), got(want.size(), 0x5EED5EED);
  ref::gemm_s8s8_s32_ref(M, N, K, A.data(), K, W.data(), K, want.data(), N);
  GemmOptions o;
  o.variant = v;
  gemm_s8s8_s32_cl(d, M, N, K, A.data(), K, W.data(), K, got.data(), N, o);
  return test::first_difference(got, want);
}

TEST(Variants, EveryGemmVariantIsExact) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  for (ShapeClass c : {ShapeClass::gemm_prefill, ShapeClass::gemm_decode_m1, ShapeClass::gemm_decode_m16})
    for (const GemmVariant& v : gemm_catalogue(c, catalogue_info(dev->info()))) {
      const bool dec = v.kind == GemmVariant::Kind::decode;
      // Ragged: M, N off every tile, K = 4144 (a tail of 48 after 64-byte stages), and a short K.
      const int64_t M = dec ? v.decode.mmax : 130;
      for (auto [N, K] : {std::pair<int64_t, int64_t>{300, 4144}, {33, 100}})
        EXPECT_EQ(gemm_difference(*dev, M, N, K, v, seed + static_cast<uint64_t>(M + N + K)), "")
            << v.name() << " M " << M << " N " << N << " K " << K << " seed " << seed;
      if (dec && v.decode.mmax > 1) {
        EXPECT_EQ(gemm_difference(*dev, 3, 300, 4144, v, seed), "") << v.name() << " M 3 < MMAX";
      }
    }
}

quant::QuantizedMatrix quantized(int64_t rows, int64_t cols, int bits, int64_t g, Mapping m, uint64_t seed) {
  QuantParams p;
  p.bits = bits;
  p.group_size = g;
  p.mapping = m;
  return ref::quantize_affine_ref(test::gaussian_matrix(rows, cols, seed).view(), p);
}

// W4A8 (int4 g128 weights) and W8A8 through variant v: the float bits of gpu/epilogue_ref.hpp.
std::string epilogue_difference(Device& d, const GemmVariant& v, int wbits, Mapping am, Mapping wm, uint64_t seed) {
  const int64_t M = v.kind == GemmVariant::Kind::decode ? v.decode.mmax : 70, N = 72, K = 512;
  const quant::QuantizedMatrix a = quantized(M, K, 8, quant::kPerRow, am, seed);
  const quant::QuantizedMatrix w = quantized(N, K, wbits, wbits == 4 ? 128 : quant::kPerRow, wm, seed + 1);
  GemmOptions o;
  o.variant = v;
  const quant::Matrix y = matmul_quantized_cl(d, a, w, o);
  const EpilogueRef want(a, w);
  std::vector<float> w_flat(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) w_flat[static_cast<size_t>(m * N + n)] = want.at(m, n);
  return test::first_difference(y.data, w_flat);
}

TEST(Variants, EpilogueBitsAreTheSameForEveryVariant) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  for (ShapeClass c : {ShapeClass::matmul_w4a8, ShapeClass::gemm_decode_m16})
    for (const GemmVariant& v : gemm_catalogue(c, catalogue_info(dev->info())))
      for (auto [am, wm] : {std::pair<Mapping, Mapping>{Mapping::symmetric, Mapping::symmetric},
                            {Mapping::asymmetric, Mapping::asymmetric}}) {
        const int wbits = c == ShapeClass::matmul_w4a8 ? 4 : 8;
        EXPECT_EQ(epilogue_difference(*dev, v, wbits, am, wm, seed), "")
            << v.name() << " W" << wbits << "A8 " << quant::to_string(am) << " x " << quant::to_string(wm);
      }
}

TEST(Variants, JsonRoundTripAndClearErrors) {
  DeviceInfo info;
  info.type = CL_DEVICE_TYPE_GPU;
  info.vendor = "NVIDIA Corporation";
  info.max_work_group = 1024;
  info.local_mem_bytes = 48 * 1024;
  for (ShapeClass c : kAllShapeClasses) {
    for (const QuantizeVariant& v : quantize_catalogue(c, info)) EXPECT_EQ(quantize_variant_from_json(to_json(v)), v);
    for (const GemmVariant& v : gemm_catalogue(c, info)) EXPECT_EQ(gemm_variant_from_json(to_json(v)), v);
    EXPECT_EQ(parse_shape_class(to_string(c)), c);
  }
  EXPECT_GT(gemm_catalogue(ShapeClass::gemm_prefill, info).size(), 5u);
  EXPECT_THROW(parse_shape_class("gemm_huge"), std::invalid_argument);
  EXPECT_THROW(gemm_variant_from_json({{"kernel", "tiled"}, {"bm", 100}}), std::invalid_argument);
  EXPECT_THROW(quantize_variant_from_json({{"kernel", "gemm"}}), std::invalid_argument);
  // Too much local memory for the device: left out of the catalogue, named when asked.
  const GemmVariant big = GemmVariant::of(TiledVariant{256, 256, 16, 16, 64});
  EXPECT_NE(variant_unfit(big, info), "");
}

nlohmann::json table_for(const DeviceInfo& info, const GemmVariant& prefill) {
  return {{"schema", kTuningSchema},
          {"device", info.name},
          {"driver", info.driver_version},
          {"classes", {{"gemm_prefill", {{"variant", to_json(prefill)}, {"verified", true}}}}}};
}

TEST(Tuning, TableLookupCorruptFilesAndUnfitEntries) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const DeviceInfo& info = dev->info();
  const GemmVariant medium = GemmVariant::of(tile_medium());
  std::ostringstream warn;
  const TuningTable t = parse_tuning_table(table_for(info, medium), "t.json", info, warn);
  ASSERT_TRUE(t.gemm_for(ShapeClass::gemm_prefill).has_value());
  EXPECT_EQ(*t.gemm_for(ShapeClass::gemm_prefill), medium);
  EXPECT_FALSE(t.gemm_for(ShapeClass::gemm_decode_m1).has_value());
  // Another device's table, a wrong schema: errors naming the problem.
  nlohmann::json other = table_for(info, medium);
  other["device"] = "some other device";
  EXPECT_THROW(parse_tuning_table(other, "o.json", info, warn), std::invalid_argument);
  EXPECT_THROW(parse_tuning_table(nlohmann::json{{"schema", "x"}}, "x.json", info, warn), std::invalid_argument);
  // An unverified entry is dropped with a warning naming the file.
  nlohmann::json unverified = table_for(info, medium);
  unverified["classes"]["gemm_prefill"]["verified"] = false;
  std::ostringstream w2;
  EXPECT_FALSE(parse_tuning_table(unverified, "u.json", info, w2).gemm_for(ShapeClass::gemm_prefill));
  EXPECT_NE(w2.str().find("u.json"), std::string::npos) << w2.str();
  // A corrupt file through $QEVAL_CL_TUNING: safe defaults and a warning naming it.
  const std::string path = ::testing::TempDir() + "qeval_corrupt_table.json";
  { std::ofstream(path) << "{ not json"; }
  setenv("QEVAL_CL_TUNING", path.c_str(), 1);
  std::ostringstream w3;
  EXPECT_TRUE(load_tuning_table(info, w3).empty());
  unsetenv("QEVAL_CL_TUNING");
  EXPECT_NE(w3.str().find(path), std::string::npos) << w3.str();
}

TEST(Tuning, TheBackendRunsTheTablesVariant) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  Device d(dev->info());
  std::ostringstream warn;
  d.set_tuning(parse_tuning_table(table_for(d.info(), GemmVariant::of(tile_medium())), "t.json", d.info(), warn));
  GemmOptions o;
  const int64_t big = 64 * std::max<int64_t>(2, 2 * d.info().compute_units);  // enough work-groups for the tile
  EXPECT_EQ(gemm_variant_for(d, o, big, 64, 8, 4096, 1), GemmVariant::of(tile_medium()));
  EXPECT_NE(gemm_variant_for(d, o, 16, 64, 8, 4096, 1), GemmVariant::of(tile_medium()));  // another class
  EXPECT_EQ(gemm_difference(d, 130, 300, 200, GemmVariant::of(tile_medium()), test::gpu_seed()), "");
}

// Run by the CTest qeval_tune_pocl (tests/gpu/tune_test.sh) after `qeval tune --budget <few s> --out F`, with
// QEVAL_TUNE_TABLE_UNDER_TEST=F: the table has an entry per class, every chosen variant was verified, and the
// backend, pointed at the file by $QEVAL_CL_TUNING, runs exactly those variants — and they are exact.
TEST(Tuning, AWrittenTableIsPickedUpAndVerified) {
  const char* path = std::getenv("QEVAL_TUNE_TABLE_UNDER_TEST");
  if (!path || !*path) GTEST_SKIP() << "run by the CTest qeval_tune_pocl after `qeval tune` wrote a table";
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  std::ifstream f(path);
  ASSERT_TRUE(f) << path;
  const nlohmann::json j = nlohmann::json::parse(f);
  ASSERT_EQ(j["classes"].size(), std::size(kAllShapeClasses)) << j.dump(1);
  for (const auto& [name, e] : j["classes"].items()) {
    EXPECT_TRUE(e.value("verified", false)) << name;
    for (const auto& t : e["tried"])
      EXPECT_TRUE(t["status"] != "verified" || t.contains("figure")) << name << " " << t.dump();
  }
  setenv("QEVAL_CL_TUNING", path, 1);
  Device d(dev->info());  // a fresh device reads the table through the lookup of gpu/tuning.hpp
  const TuningTable& t = d.tuning();
  unsetenv("QEVAL_CL_TUNING");
  EXPECT_EQ(t.source, path);
  const auto& cls = j["classes"];
  for (ShapeClass c : {ShapeClass::quantize_per_token, ShapeClass::quantize_grouped}) {
    ASSERT_TRUE(t.quantize_for(c)) << to_string(c);
    EXPECT_EQ(*t.quantize_for(c), quantize_variant_from_json(cls[to_string(c)]["variant"]));
    ActQuantSpec s;
    s.group_size = c == ShapeClass::quantize_per_token ? quant::kPerRow : 128;
    const DevMatrix x = alloc_matrix(d, 4, 4096);
    EXPECT_EQ(quantize_variant_for(d, x, s), *t.quantize_for(c)) << to_string(c);
    QuantParams p;
    p.bits = 4;
    p.group_size = s.group_size;
    EXPECT_EQ(quantize_difference(d, test::gaussian_matrix(5, 4096, 1), p, *t.quantize_for(c)), "");
  }
  const struct {
    ShapeClass c;
    int64_t M;
    int w_bits;
  } gemms[] = {{ShapeClass::gemm_decode_m1, 1, 8}, {ShapeClass::gemm_decode_m16, 16, 8}};
  for (const auto& g : gemms) {
    ASSERT_TRUE(t.gemm_for(g.c)) << to_string(g.c);
    EXPECT_EQ(*t.gemm_for(g.c), gemm_variant_from_json(cls[to_string(g.c)]["variant"]));
    EXPECT_EQ(gemm_variant_for(d, GemmOptions{}, g.M, 2048, g.w_bits, 2048, 1), *t.gemm_for(g.c)) << to_string(g.c);
    EXPECT_EQ(gemm_difference(d, g.M, 300, 4144, *t.gemm_for(g.c), test::gpu_seed()), "") << to_string(g.c);
  }
  for (ShapeClass c : {ShapeClass::gemm_prefill, ShapeClass::matmul_w4a8}) {
    ASSERT_TRUE(t.gemm_for(c)) << to_string(c);
    const int64_t big = 512 * std::max<int64_t>(2, d.info().compute_units);  // enough work-groups for any tile
    EXPECT_EQ(gemm_variant_for(d, GemmOptions{}, big, big, c == ShapeClass::matmul_w4a8 ? 4 : 8, 128, 4),
              *t.gemm_for(c))
        << to_string(c);
  }
  EXPECT_EQ(gemm_difference(d, 130, 300, 4144, *t.gemm_for(ShapeClass::gemm_prefill), test::gpu_seed()), "");
  EXPECT_EQ(epilogue_difference(d, *t.gemm_for(ShapeClass::matmul_w4a8), 4, Mapping::symmetric, Mapping::symmetric,
                                test::gpu_seed()),
            "");
}

}  // namespace
}  // namespace qeval::gpu
