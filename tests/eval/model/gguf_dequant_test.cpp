// tests/eval/model/gguf_dequant_test.cpp — every ggml type qeval dequantizes, bit for bit against gguf-py's dequantization.
//
// Fixture: tests/data/gguf/dequant.gguf + dequant_expected.{json,f32} (scripts/testdata/make_dequant_fixtures.py):
// random blocks per type, extreme scales included, expected values = gguf.quants.dequantize(). Tolerance: none —
// every non-NaN value must have the same 32 bits (so −0 ≠ +0), and NaN must stand exactly where gguf-py has NaN.
// NaN payload and sign are not compared: IEEE 754 leaves them open for Inf·0 and for an operation on two NaNs,
// so they describe the compiler's operand order, not the format (eval/model/ref/ggml_dequant_ref.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "eval/model/ggml_types.hpp"
#include "eval/model/gguf.hpp"
#include "eval/model/ref/ggml_dequant_ref.hpp"
#include "eval/model/sha256.hpp"
#include "tests/eval/model/test_util.hpp"

namespace qeval::model {
namespace {

using test::gguf_fixture;

struct Fixture {
  std::vector<uint8_t> bytes;
  GgufFile file;
  std::map<std::string, test::ExpectedTensor> expected;
  nlohmann::json doc;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture x;
    x.expected = test::load_expected(gguf_fixture("dequant_expected.json"), &x.doc);
    x.bytes = test::read_bytes(gguf_fixture("dequant.gguf"));
    x.file = parse_gguf(x.bytes.data(), x.bytes.size(), "dequant.gguf");
    return x;
  }();
  return f;
}

// Same bits, or both NaN. Returns the number of mismatches (the first few are reported).
size_t compare(const float* got, const std::vector<float>& want, const std::string& what, size_t* nan_matched) {
  size_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const bool ok = std::isnan(want[i]) ? std::isnan(got[i]) : test::same_bits(got[i], want[i]);
    if (std::isnan(want[i]) && ok) ++*nan_matched;
    if (!ok && ++bad <= 5) {
      uint32_t g, w;
      std::memcpy(&g, &got[i], 4);
      std::memcpy(&w, &want[i], 4);
      ADD_FAILURE() << what << " element " << i << ": got " << got[i] << " (0x"
                    << std::hex << g << ") want " << want[i] << " (0x" << w << ")" << std::dec;
    }
  }
  return bad;
}

TEST(GgufDequant, EveryTypeBitExactAgainstGgufPy) {
  const Fixture& fx = fixture();
  EXPECT_EQ(fx.doc["sha256"].get<std::string>(), sha256_hex(fx.bytes.data(), fx.bytes.size())) << "fixture and index out of step";
  std::set<std::string> types_seen;
  size_t values = 0, nans = 0;
  for (const auto& [name, e] : fx.expected) {
    const GgufTensorInfo* t = fx.file.find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    ASSERT_EQ(ggml_type_name(t->type), e.type) << name;
    const ref::DequantizeRowFn fn = ref::dequantizer(static_cast<uint32_t>(t->type));
    ASSERT_NE(fn, nullptr) << e.type;
    std::vector<float> got(e.values.size() + 1, -12345.0f);  // sentinel, and one past the end
    fn(fx.file.data + fx.file.data_offset + t->offset, got.data(), static_cast<int64_t>(e.values.size()));
    EXPECT_EQ(compare(got.data(), e.values, name, &nans), 0u) << name;
    EXPECT_EQ(got.back(), -12345.0f) << name << ": wrote past the end";
    values += e.values.size();
    types_seen.insert(e.type);
  }
  // Every type the traits call dequantizable is in the fixture (F32 is a memcpy and sits in types.gguf).
  std::set<std::string> dequantizable;
  for (uint32_t id = 0; id < kGgmlTypeIdLimit; ++id) {
    const GgmlTypeTraits tr = ggml_type_traits(id);
    if (tr.name && tr.dequantizable && id != static_cast<uint32_t>(GgmlType::F32)) dequantizable.insert(tr.name);
  }
  EXPECT_EQ(types_seen, dequantizable);
  EXPECT_GT(nans, 10000u) << "the fixture should exercise NaN propagation";
  RecordProperty("values", static_cast<int>(values));
  RecordProperty("nan_values", static_cast<int>(nans));
}

// The reader returns the finite tensors bit-exactly and rejects the non-finite ones with one line naming the tensor.
TEST(GgufDequant, ReaderAcceptsEveryTypeAndRejectsNonFinite) {
  const Fixture& fx = fixture();
  size_t finite = 0, rejected = 0;
  for (const auto& [name, e] : fx.expected) {
    const GgufTensorInfo* t = fx.file.find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    if (name.size() > 7 && name.compare(name.size() - 7, 7, ".finite") == 0) {
      const TensorF32 got = read_gguf_tensor(fx.file, *t);
      EXPECT_EQ(got.shape, e.shape) << name;
      EXPECT_EQ(got.orig_type, e.type) << name;
      size_t nan_matched = 0;
      EXPECT_EQ(compare(got.data.data(), e.values, name, &nan_matched), 0u) << name;
      ++finite;
      continue;
    }
    try {
      read_gguf_tensor(fx.file, *t);
      ADD_FAILURE() << name << " holds NaN/Inf but was accepted";
    } catch (const CheckpointError& err) {
      EXPECT_EQ(err.field(), "tensor '" + name + "'");
      EXPECT_NE(std::string(err.what()).find("after dequantization (" + e.type + ")"), std::string::npos) << err.what();
      EXPECT_EQ(std::string(err.what()).find('\n'), std::string::npos) << "one line: " << err.what();
      ++rejected;
    }
  }
  EXPECT_EQ(finite, fx.doc["types"].size());
  EXPECT_GE(rejected, 20u);
}

// Block sizes: the traits table, the layout structs and gguf-py's GGML_QUANT_SIZES (recorded in the fixture as
// bits per weight) agree.
TEST(GgufDequant, TraitsMatchLayoutsAndGgufPy) {
  const std::pair<GgmlType, size_t> layouts[] = {
      {GgmlType::Q4_0, sizeof(BlockQ4_0)},       {GgmlType::Q4_1, sizeof(BlockQ4_1)},
      {GgmlType::Q5_0, sizeof(BlockQ5_0)},       {GgmlType::Q5_1, sizeof(BlockQ5_1)},
      {GgmlType::Q8_0, sizeof(BlockQ8_0)},       {GgmlType::Q2_K, sizeof(BlockQ2_K)},
      {GgmlType::Q3_K, sizeof(BlockQ3_K)},       {GgmlType::Q4_K, sizeof(BlockQ4_K)},
      {GgmlType::Q5_K, sizeof(BlockQ5_K)},       {GgmlType::Q6_K, sizeof(BlockQ6_K)},
      {GgmlType::IQ2_XXS, sizeof(BlockIQ2_XXS)}, {GgmlType::IQ2_XS, sizeof(BlockIQ2_XS)},
      {GgmlType::IQ2_S, sizeof(BlockIQ2_S)},     {GgmlType::IQ3_XXS, sizeof(BlockIQ3_XXS)},
      {GgmlType::IQ3_S, sizeof(BlockIQ3_S)},     {GgmlType::IQ1_S, sizeof(BlockIQ1_S)},
      {GgmlType::IQ1_M, sizeof(BlockIQ1_M)},     {GgmlType::IQ4_NL, sizeof(BlockIQ4_NL)},
      {GgmlType::IQ4_XS, sizeof(BlockIQ4_XS)},   {GgmlType::TQ1_0, sizeof(BlockTQ1_0)},
      {GgmlType::TQ2_0, sizeof(BlockTQ2_0)},     {GgmlType::MXFP4, sizeof(BlockMxfp4)},
      {GgmlType::NVFP4, sizeof(BlockNvfp4)},
  };
  for (const auto& [type, bytes] : layouts) {
    const GgmlTypeTraits tr = ggml_type_traits(static_cast<uint32_t>(type));
    EXPECT_EQ(tr.block_bytes, bytes) << tr.name;
    EXPECT_TRUE(tr.dequantizable) << tr.name;
    const auto& info = fixture().doc["types"][tr.name];
    ASSERT_TRUE(info.is_object()) << tr.name;
    EXPECT_EQ(info["bits_per_weight"].get<double>(), tr.block_bytes * 8.0 / tr.block_elems) << tr.name;
  }
  EXPECT_EQ(ggml_type_traits(static_cast<uint32_t>(GgmlType::Q8_1)).block_bytes, uint32_t{kBlockQ8_1Bytes});
  EXPECT_EQ(ggml_type_traits(static_cast<uint32_t>(GgmlType::Q8_K)).block_bytes, uint32_t{kBlockQ8_KBytes});
  for (GgmlType t : {GgmlType::Q8_1, GgmlType::Q8_K, GgmlType::I8, GgmlType::I32, GgmlType::F64, GgmlType::Q1_0}) {
    EXPECT_FALSE(ggml_type_traits(static_cast<uint32_t>(t)).dequantizable) << ggml_type_name(t);
    EXPECT_EQ(ref::dequantizer(static_cast<uint32_t>(t)), nullptr) << ggml_type_name(t);
  }
  EXPECT_EQ(ggml_supported_type_names(),
            "F32 F16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K IQ2_XXS IQ2_XS IQ3_XXS IQ1_S IQ4_NL IQ3_S "
            "IQ2_S IQ4_XS IQ1_M BF16 TQ1_0 TQ2_0 MXFP4 NVFP4");
}

// The lattice fixtures use every grid row at least once (so a wrong table entry cannot hide). Indices are read with
// the layouts of ggml_types.hpp, which the bit-exact test above has just confirmed against gguf-py.
int grid_index(GgmlType type, const uint8_t* b, int g) {
  const auto u16 = [&](int off) { return b[off] | b[off + 1] << 8; };
  switch (type) {
    case GgmlType::IQ2_XXS: return b[2 + 8 * (g / 4) + g % 4];
    case GgmlType::IQ2_XS: return u16(2 + 2 * g) & 511;
    case GgmlType::IQ2_S: return b[2 + g] | ((b[66 + g / 4] >> (2 * (g % 4))) & 3) << 8;
    case GgmlType::IQ3_XXS: return b[2 + g];
    case GgmlType::IQ3_S: return b[2 + g] | ((b[66 + g / 8] >> (g % 8)) & 1) << 8;
    case GgmlType::IQ1_S: return b[2 + g] | ((u16(34 + 2 * (g / 4)) >> (3 * (g % 4))) & 7) << 8;
    case GgmlType::IQ1_M: return b[g] | ((b[32 + g / 2] >> (4 * (g % 2))) & 7) << 8;
    default: return -1;
  }
}

TEST(GgufDequant, LatticeFixturesUseEveryGridRow) {
  const Fixture& fx = fixture();
  const struct { GgmlType type; int rows, groups; } kGrids[] = {
      {GgmlType::IQ2_XXS, 256, 32}, {GgmlType::IQ2_XS, 512, 32}, {GgmlType::IQ2_S, 1024, 32},
      {GgmlType::IQ3_XXS, 256, 64}, {GgmlType::IQ3_S, 512, 64},  {GgmlType::IQ1_S, 2048, 32},
      {GgmlType::IQ1_M, 2048, 32}};
  for (const auto& g : kGrids) {
    const std::string name = ggml_type_name(g.type) + ".finite";
    const GgufTensorInfo* t = fx.file.find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    const uint32_t bb = ggml_type_traits(static_cast<uint32_t>(g.type)).block_bytes;
    std::set<int> used;
    for (uint64_t blk = 0; blk < t->n_bytes / bb; ++blk) {
      const uint8_t* b = fx.file.data + fx.file.data_offset + t->offset + blk * bb;
      for (int k = 0; k < g.groups; ++k) used.insert(grid_index(g.type, b, k));
    }
    EXPECT_EQ(used.size(), static_cast<size_t>(g.rows)) << name;
  }
}

// Hand-computed values (from the layout comments in ggml_types.hpp), independent of gguf-py.
TEST(GgufDequant, HandBuiltMxfp4Tq1Iq4nl) {
  BlockMxfp4 m{};
  m.e = 255;       // 2^127
  m.qs[0] = 0x71;  // element 0: code 1 → 1·2^127; element 16: code 7 → 12·2^127 → +Inf in float
  m.qs[1] = 0x09;  // element 1: code 9 → −1 · 2^127
  float y[32];
  ref::dequantize_row_mxfp4(reinterpret_cast<const uint8_t*>(&m), y, 32);
  EXPECT_EQ(y[0], std::ldexp(1.0f, 127));
  EXPECT_EQ(y[1], -std::ldexp(1.0f, 127));
  EXPECT_TRUE(std::isinf(y[16]) && y[16] > 0);
  m.e = 0;  // 2^-128, a float subnormal: code 3 → 3·2^-128
  m.qs[0] = 0x03;
  ref::dequantize_row_mxfp4(reinterpret_cast<const uint8_t*>(&m), y, 32);
  EXPECT_EQ(y[0], 3.0f * std::ldexp(1.0f, -128));

  // TQ1_0: the quantizer stores 5 trits t as byte ceil(Σ t_n·3^(4−n) · 256 / 243); trits (2, 0, 1, 1, 2)
  // → 2·81 + 0·27 + 1·9 + 1·3 + 2 = 176 → ceil(176·256/243) = 186; decoding gives t − 1 = (1, −1, 0, 0, 1).
  BlockTQ1_0 t{};
  t.d[0] = 0x00, t.d[1] = 0x3C;  // 1.0
  t.qs[0] = 186;
  float z[256];
  ref::dequantize_row_tq1_0(reinterpret_cast<const uint8_t*>(&t), z, 256);
  const float want[5] = {1, -1, 0, 0, 1};
  for (int n = 0; n < 5; ++n) EXPECT_EQ(z[32 * n], want[n]) << "trit " << n;

  BlockIQ4_NL q{};
  q.d[0] = 0x00, q.d[1] = 0x38;  // 0.5
  q.qs[0] = 0xF0;                // element 0: code 0 → −127·0.5; element 16: code 15 → 113·0.5
  ref::dequantize_row_iq4_nl(reinterpret_cast<const uint8_t*>(&q), y, 32);
  EXPECT_EQ(y[0], -63.5f);
  EXPECT_EQ(y[16], 56.5f);
  EXPECT_EQ(y[1], -63.5f);
}

}  // namespace
}  // namespace qeval::model
