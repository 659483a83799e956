// tests/eval/model/gguf_types_test.cpp — GGUF tensor types and metadata values against independent expected values.
//
// Expected fp32 values come from gguf-py (scripts/testdata/make_gguf_fixtures.py) or are computed by hand from
// the published block layouts (below). Tolerance: none — bit-exact. Each dequantized value is one correctly
// rounded operation on exact operands in both gguf-py's float32 numpy code and our double reference (see
// eval/model/ref/ggml_dequant_ref.hpp for the bit count argument), so any difference is a bug.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "eval/model/ggml_types.hpp"
#include "eval/model/gguf.hpp"
#include "eval/model/ref/ggml_dequant_ref.hpp"
#include "tests/eval/model/test_util.hpp"

namespace qeval::model {
namespace {

using test::gguf_fixture;

void expect_bit_exact(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!test::same_bits(got[i], want[i])) {
      if (++bad <= 5) ADD_FAILURE() << what << " element " << i << ": got " << got[i] << " want " << want[i];
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " elements differ";
}

TEST(GgufTypes, EveryTensorTypeMatchesGgufPy) {
  nlohmann::json doc;
  const auto expected = test::load_expected(gguf_fixture("types_expected.json"), &doc);
  const auto bytes = test::read_bytes(gguf_fixture("types.gguf"));
  const GgufFile f = parse_gguf(bytes.data(), bytes.size(), "types.gguf");
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.alignment, 32u);
  EXPECT_EQ(f.data_offset % 32, 0u);
  ASSERT_EQ(f.tensors.size(), expected.size());
  std::set<std::string> types_seen;
  for (const auto& [name, e] : expected) {
    const GgufTensorInfo* t = f.find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    const TensorF32 got = read_gguf_tensor(f, *t);
    EXPECT_EQ(got.shape, e.shape) << name << ": PyTorch order is ne reversed";
    EXPECT_EQ(got.orig_type, e.type) << name;
    expect_bit_exact(got.data, e.values, name + " (" + e.type + ")");
    types_seen.insert(e.type);
  }
  EXPECT_EQ(types_seen, (std::set<std::string>{"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K"}));
}

TEST(GgufTypes, ShapeOrderIsReversedNe) {
  const auto bytes = test::read_bytes(gguf_fixture("types.gguf"));
  const GgufFile f = parse_gguf(bytes.data(), bytes.size(), "types.gguf");
  const GgufTensorInfo* t = f.find_tensor("t.f32_3d");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne, (std::vector<uint64_t>{4, 3, 2}));  // numpy (2, 3, 4) → GGUF ne innermost first
  const TensorF32 x = read_gguf_tensor(f, *t);
  EXPECT_EQ(x.shape, (std::vector<int64_t>{2, 3, 4}));
  for (int i = 0; i < 24; ++i) EXPECT_EQ(x.data[i], static_cast<float>(i));  // row-major index = value
  const GgufTensorInfo* k = f.find_tensor("t.q4_k");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->ne, (std::vector<uint64_t>{512, 2}));
  EXPECT_EQ(k->n_bytes, 2u * 2u * 144u);  // 2 rows × 2 super-blocks × 144 bytes
}

TEST(GgufTypes, MetadataValuesOfEveryType) {
  nlohmann::json doc;
  test::load_expected(gguf_fixture("types_expected.json"), &doc);
  const auto bytes = test::read_bytes(gguf_fixture("types.gguf"));
  const GgufFile f = parse_gguf(bytes.data(), bytes.size(), "types.gguf");
  for (const auto& [key, e] : doc["kv"].items()) {
    const GgufKv* kv = f.find_kv(key);
    ASSERT_NE(kv, nullptr) << key;
    EXPECT_EQ(gguf_value_type_name(static_cast<uint32_t>(kv->type)), e["type"].get<std::string>()) << key;
    if (e["value"].is_number_float()) {
      // f32 0.15625 is exact; f64 0.1 round-trips through JSON exactly
      EXPECT_EQ(kv->value.get<double>(), e["value"].get<double>()) << key;
    } else {
      EXPECT_EQ(kv->value, e["value"]) << key << ": " << kv->value.dump();
    }
  }
  EXPECT_EQ(f.find_kv("test.arr_str")->elem_type, GgufValueType::STRING);
  EXPECT_EQ(f.find_kv("test.arr_nested")->elem_type, GgufValueType::ARRAY);
  EXPECT_EQ(f.find_kv("test.u64")->value.get<uint64_t>(), 18000000000000000000ull);
  EXPECT_EQ(f.find_kv("test.i64")->value.get<int64_t>(), -9000000000000000000ll);
  EXPECT_EQ(f.find_kv("general.architecture")->value, "qeval-test");
}

TEST(GgufTypes, NotAModelGivesClearError) {
  try {
    load_checkpoint(gguf_fixture("types.gguf"));
    FAIL() << "expected CheckpointError";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("types.gguf"), std::string::npos) << e.what();
    EXPECT_EQ(e.field(), "kv 'qeval-test.block_count'") << e.what();
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
}

TEST(GgufTypes, CustomAlignment64) {
  const auto expected = test::load_expected(gguf_fixture("align64_expected.json"));
  const auto bytes = test::read_bytes(gguf_fixture("align64.gguf"));
  const GgufFile f = parse_gguf(bytes.data(), bytes.size(), "align64.gguf");
  EXPECT_EQ(f.alignment, 64u);
  EXPECT_EQ(f.data_offset % 64, 0u);
  EXPECT_EQ(f.find_tensor("b")->offset, 64u);  // "a" is 12 bytes, padded to the 64-byte alignment
  for (const auto& [name, e] : expected) expect_bit_exact(read_gguf_tensor(f, *f.find_tensor(name)).data, e.values, name);
}

// ---- hand-built blocks, values computed by hand from the layouts in eval/model/ggml_types.hpp ----

TEST(GgufDequantRef, Fp16AndBf16Conversion) {
  EXPECT_EQ(ref::fp16_to_fp32(0x3C00), 1.0f);
  EXPECT_EQ(ref::fp16_to_fp32(0xC000), -2.0f);
  EXPECT_EQ(ref::fp16_to_fp32(0x3555), 0.333251953125f);  // 1 + 341/1024 = 1365/1024, × 2^-2
  EXPECT_EQ(ref::fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));      // smallest subnormal
  EXPECT_EQ(ref::fp16_to_fp32(0x03FF), 1023.0f * std::ldexp(1.0f, -24));  // largest subnormal
  EXPECT_EQ(ref::fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));      // smallest normal
  EXPECT_EQ(ref::fp16_to_fp32(0x7BFF), 65504.0f);                   // largest normal
  EXPECT_TRUE(std::signbit(ref::fp16_to_fp32(0x8000)));
  EXPECT_EQ(ref::fp16_to_fp32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(ref::fp16_to_fp32(0x7E00)));
  EXPECT_EQ(ref::bf16_to_fp32(0x3F80), 1.0f);
  EXPECT_EQ(ref::bf16_to_fp32(0xC0A0), -5.0f);
}

TEST(GgufDequantRef, HandBuiltQ4_0AndQ8_0) {
  BlockQ4_0 b{};
  b.d[0] = 0x00, b.d[1] = 0x38;  // fp16 0x3800 = 0.5
  for (auto& q : b.qs) q = 0x88;  // both nibbles 8 → 0
  b.qs[0] = 0x2F;                 // element 0: (15 − 8)·0.5 = 3.5; element 16: (2 − 8)·0.5 = −3
  float y[32];
  ref::dequantize_row_q4_0(reinterpret_cast<const uint8_t*>(&b), y, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], i == 0 ? 3.5f : i == 16 ? -3.0f : 0.0f) << i;

  BlockQ8_0 c{};
  c.d[0] = 0x00, c.d[1] = 0x34;  // 0.25
  c.qs[3] = -128;                // −32
  c.qs[31] = 127;                // 31.75
  ref::dequantize_row_q8_0(reinterpret_cast<const uint8_t*>(&c), y, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], i == 3 ? -32.0f : i == 31 ? 31.75f : 0.0f) << i;
}

TEST(GgufDequantRef, HandBuiltQ4_K) {
  // d = 1.0, dmin = 0.5. Sub-block 0: scale 3, min 2 (bytes 0 and 4). Sub-block 5: scale 37 = 0b10'0101,
  // min 20 = 0b01'0100: low 4 bits in byte 9 (scale low nibble 5, min high nibble 4 → 0x45), high 2 bits in the
  // top bits of byte 1 (scale: 2 → 0x80) and byte 5 (min: 1 → 0x40).
  BlockQ4_K b{};
  b.d[0] = 0x00, b.d[1] = 0x3C;
  b.dmin[0] = 0x00, b.dmin[1] = 0x38;
  b.scales[0] = 3;
  b.scales[4] = 2;
  b.scales[1] = 0x80;
  b.scales[5] = 0x40;
  b.scales[9] = 0x45;
  int sc, mn;
  ref::q4_k_scale_min(5, b.scales, &sc, &mn);
  EXPECT_EQ(sc, 37);
  EXPECT_EQ(mn, 20);
  b.qs[0] = 0x07;   // element 0 (sub-block 0, low nibble): 1·3·7 − 0.5·2 = 20
  b.qs[64] = 0xA0;  // element 160 (sub-block 5 = chunk 2's high nibbles): 1·37·10 − 0.5·20 = 360
  float y[256];
  ref::dequantize_row_q4_k(reinterpret_cast<const uint8_t*>(&b), y, 256);
  for (int i = 0; i < 256; ++i) {
    float want = 0.0f;                       // sub-blocks with scale 0 and min 0
    if (i < 32) want = i == 0 ? 20.0f : -1.0f;        // q = 0 → −dmin·2
    if (i >= 160 && i < 192) want = i == 160 ? 360.0f : -10.0f;  // q = 0 → −dmin·20
    EXPECT_EQ(y[i], want) << "element " << i;
  }
}

TEST(GgufDequantRef, HandBuiltQ6_K) {
  // d = 0.25; scales[0] = 2 (elements 0–15), scales[2] = −3 (32–47), scales[13] = 5 (208–223), others 0.
  // With ql = qh = 0 every q is −32, so the default value of element i is 0.25·scales[i/16]·(−32).
  BlockQ6_K b{};
  b.d[0] = 0x00, b.d[1] = 0x34;
  b.scales[0] = 2;
  b.scales[2] = -3;
  b.scales[13] = 5;
  b.ql[0] = 0x05;   // element 0: low nibble 5, qh[0] bits 0–1 = 2 → q = 5 + 32 − 32 = 5 → 0.25·2·5 = 2.5
  b.qh[0] = 0x02;
  b.ql[32] = 0x01;  // element 32: low nibble 1, qh[0] bits 2–3 = 0 → q = −31 → 0.25·(−3)·(−31) = 23.25
  b.ql[80] = 0xF0;  // element 208 = half 1, l = 16, third quarter: ql[64+16] high nibble 15,
  b.qh[48] = 0x30;  //   qh[32+16] bits 4–5 = 3 → q = 63 − 32 = 31 → 0.25·5·31 = 38.75
  float y[256];
  ref::dequantize_row_q6_k(reinterpret_cast<const uint8_t*>(&b), y, 256);
  const int8_t scales[16] = {2, 0, -3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0};
  for (int i = 0; i < 256; ++i) {
    float want = 0.25f * scales[i / 16] * -32.0f;
    if (i == 0) want = 2.5f;
    if (i == 32) want = 23.25f;
    if (i == 208) want = 38.75f;
    EXPECT_EQ(y[i], want) << "element " << i;
  }
}

TEST(GgufDequantRef, HandBuiltQ4_1) {
  BlockQ4_1 b{};
  b.d[0] = 0x00, b.d[1] = 0x38;  // 0.5
  b.m[0] = 0x00, b.m[1] = 0xBC;  // −1.0
  b.qs[1] = 0xF3;                // element 1: 3·0.5 − 1 = 0.5; element 17: 15·0.5 − 1 = 6.5
  float y[32];
  ref::dequantize_row_q4_1(reinterpret_cast<const uint8_t*>(&b), y, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], i == 1 ? 0.5f : i == 17 ? 6.5f : -1.0f) << i;
}

TEST(GgmlTypes, TraitsTable) {
  // bytes per block from ggml-common.h; bits/weight: Q4_0 4.5, Q4_1 5.0, Q8_0 8.5, Q4_K 4.5, Q6_K 6.5625
  EXPECT_EQ(ggml_type_traits(2).block_bytes * 8.0 / ggml_type_traits(2).block_elems, 4.5);
  EXPECT_EQ(ggml_type_traits(3).block_bytes * 8.0 / ggml_type_traits(3).block_elems, 5.0);
  EXPECT_EQ(ggml_type_traits(8).block_bytes * 8.0 / ggml_type_traits(8).block_elems, 8.5);
  EXPECT_EQ(ggml_type_traits(12).block_bytes * 8.0 / ggml_type_traits(12).block_elems, 4.5);
  EXPECT_EQ(ggml_type_traits(14).block_bytes * 8.0 / ggml_type_traits(14).block_elems, 6.5625);
  EXPECT_EQ(ggml_type_traits(4).name, nullptr);   // removed Q4_2
  EXPECT_EQ(ggml_type_traits(31).name, nullptr);  // removed Q4_0_4_4
  EXPECT_EQ(ggml_type_traits(1000).name, nullptr);
  EXPECT_STREQ(ggml_type_traits(30).name, "BF16");
}

}  // namespace
}  // namespace qeval::model
