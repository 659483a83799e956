// tests/eval/model/gguf_malformed_test.cpp — structurally broken GGUF files: each must give a CheckpointError naming
// the file and the field; never a crash or an out-of-bounds read (this suite also runs under ASan, see README).
#include <gtest/gtest.h>

#include <functional>

#include "eval/model/checkpoint.hpp"
#include "eval/model/gguf.hpp"
#include "quant/rng.hpp"
#include "tests/eval/model/test_util.hpp"

namespace qeval::model {
namespace {

using test::GgufBuilder;
using test::patch;

constexpr const char* kName = "broken.gguf";

// Loads `b` (optionally only its first `len` bytes) and expects a CheckpointError whose field contains
// `field` and whose message contains `text` and the file name.
void expect_error(const std::vector<uint8_t>& b, const std::string& field, const std::string& text,
                  size_t len = SIZE_MAX) {
  const size_t n = std::min(len, b.size());
  try {
    load_gguf_bytes(b.data(), n, kName);
    ADD_FAILURE() << "no error; expected field '" << field << "' / '" << text << "'";
  } catch (const CheckpointError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.file(), kName);
    EXPECT_NE(what.find(kName), std::string::npos) << what;
    EXPECT_NE(e.field().find(field), std::string::npos) << "field '" << e.field() << "' lacks '" << field << "': " << what;
    EXPECT_NE(what.find(text), std::string::npos) << "message lacks '" << text << "': " << what;
  }
}

std::vector<uint8_t> valid_model(GgufBuilder* g_out = nullptr) {
  GgufBuilder g = test::tiny_model_builder();
  auto b = g.build();
  if (g_out) *g_out = g;
  return b;
}

TEST(GgufMalformed, BaselineIsValid) {
  const auto b = valid_model();
  EXPECT_NO_THROW(load_gguf_bytes(b.data(), b.size(), kName));
}

// Truncation at EVERY byte of a small file (header, metadata, tensor directory, padding, data): each prefix
// either is the whole tensor data (only trailing padding lost → valid) or throws CheckpointError.
TEST(GgufMalformed, TruncatedAtEveryByte) {
  GgufBuilder g;
  const auto b = valid_model(&g);
  int errors = 0;
  for (size_t len = 0; len < b.size(); ++len) {
    if (len >= g.data_end) {
      EXPECT_NO_THROW(load_gguf_bytes(b.data(), len, kName)) << "len " << len;
      continue;
    }
    try {
      load_gguf_bytes(b.data(), len, kName);
      ADD_FAILURE() << "truncation to " << len << " of " << b.size() << " bytes was accepted";
    } catch (const CheckpointError& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find(kName), std::string::npos);
    }
  }
  EXPECT_EQ(static_cast<size_t>(errors), g.data_end);
}

// The same at each field boundary of the header, with the field we expect to be named.
TEST(GgufMalformed, TruncatedAtHeaderBoundaries) {
  GgufBuilder g;
  const auto b = valid_model(&g);
  expect_error(b, "header.magic", "empty", 0);
  expect_error(b, "header.magic", "needs 4 bytes", 3);
  expect_error(b, "header.version", "needs 4 bytes", 4);
  expect_error(b, "header.tensor_count", "needs 8 bytes", 8);
  expect_error(b, "header.kv_count", "needs 8 bytes", 16);
  expect_error(b, "header.kv_count", "cannot fit", 24);
  expect_error(b, "header.tensor_count", "cannot fit", 24 + 11 * 14 + 20);  // kv fit, tensor infos cannot
  // inside the metadata: only once the prefix is long enough for the up-front count checks (11 kvs × 14 and
  // 12 tensor infos × 33 bytes) do the field reads themselves run out of bytes
  ASSERT_GT(g.pos["kv.tokenizer.ggml.bos_token_id.key"], 24u + 12 * 33);
  expect_error(b, "kv[10].key", "needs 8 bytes", g.pos["kv.tokenizer.ggml.bos_token_id.key"] + 4);
  expect_error(b, "kv[10] 'tokenizer.ggml.bos_token_id'.value", "needs 4 bytes",
               g.pos["kv.tokenizer.ggml.bos_token_id.value"] + 2);
  expect_error(b, ".value", "needs", g.pos["kv.tokenizer.ggml.tokens.value"] + 12 + 9);
  expect_error(b, "tensor_infos[0 'token_embd.weight'].offset", "needs 8 bytes", g.pos["ti.token_embd.weight.offset"]);
  expect_error(b, "tensor_infos[11 'output.weight'].offset", "needs 8 bytes", g.pos["ti.output.weight.offset"] + 7);
  expect_error(b, ".offset", "past the end", g.pos["header.end"]);  // directory complete, no data
  expect_error(b, ".offset", "past the end", g.data_end - 1);
}

TEST(GgufMalformed, TruncatedFileOnDisk) {
  GgufBuilder g;
  const auto b = valid_model(&g);
  test::TempDir tmp;
  for (size_t len : {size_t{0}, size_t{5}, size_t{24}, g.pos["ti.output.weight.name"], g.data_offset + 100}) {
    const std::string p = tmp.path("t" + std::to_string(len) + ".gguf");
    test::write_bytes(p, std::vector<uint8_t>(b.begin(), b.begin() + len));
    try {
      load_checkpoint(p);
      ADD_FAILURE() << "len " << len;
    } catch (const CheckpointError& e) {
      EXPECT_EQ(e.file(), p);
    }
  }
}

TEST(GgufMalformed, HeaderFields) {
  GgufBuilder g;
  const auto good = valid_model(&g);
  auto b = good;
  b[0] = 'G', b[1] = 'G', b[2] = 'M', b[3] = 'L';
  expect_error(b, "header.magic", "bad magic 'GGML'");
  for (uint32_t v : {0u, 1u, 4u, 0x03000000u}) {
    b = good;
    patch<uint32_t>(b, 4, v);
    expect_error(b, "header.version", "unsupported GGUF version " + std::to_string(v));
  }
  b = good, patch<uint32_t>(b, 4, 1);
  expect_error(b, "header.version", "obsolete");
  b = good, patch<uint32_t>(b, 4, 0x03000000u);
  expect_error(b, "header.version", "big-endian");
  b = good, patch<uint64_t>(b, 8, uint64_t{1} << 63);
  expect_error(b, "header.tensor_count", "cannot fit");
  b = good, patch<uint64_t>(b, 16, ~uint64_t{0});
  expect_error(b, "header.kv_count", "cannot fit");
}

TEST(GgufMalformed, CountsOffByOne) {
  // one more kv / tensor than present: the parser walks into the next section and must fail cleanly
  GgufBuilder g;
  const auto good = valid_model(&g);
  auto b = good;
  patch<uint64_t>(b, 16, 12);  // 11 kvs present
  EXPECT_THROW(load_gguf_bytes(b.data(), b.size(), kName), CheckpointError);
  b = good, patch<uint64_t>(b, 8, 13);  // 12 tensors present
  EXPECT_THROW(load_gguf_bytes(b.data(), b.size(), kName), CheckpointError);
  b = good, patch<uint64_t>(b, 16, 10);  // one kv fewer: its bytes are read as a tensor info
  EXPECT_THROW(load_gguf_bytes(b.data(), b.size(), kName), CheckpointError);
}

TEST(GgufMalformed, StringAndArrayLengths) {
  GgufBuilder g;
  const auto good = valid_model(&g);
  auto b = good;
  patch<uint64_t>(b, g.pos["kv.llama.block_count.key"], uint64_t{1} << 40);
  expect_error(b, "kv[1].key", "string length 1099511627776 exceeds");
  b = good, patch<uint64_t>(b, g.pos["kv.general.architecture.value"], ~uint64_t{0});
  expect_error(b, "kv[0] 'general.architecture'.value", "exceeds");
  // tokens array: [u32 elem type][u64 count][strings…]
  b = good, patch<uint64_t>(b, g.pos["kv.tokenizer.ggml.tokens.value"] + 4, uint64_t{1} << 61);
  expect_error(b, "'tokenizer.ggml.tokens'.value.count", "array of 2305843009213693952 STRING values");
  b = good, patch<uint64_t>(b, g.pos["kv.tokenizer.ggml.tokens.value"] + 12, 100000);  // first token length
  expect_error(b, "'tokenizer.ggml.tokens'.value[0]", "exceeds");
  b = good, patch<uint64_t>(b, g.pos["ti.blk.0.attn_q.weight.name"], 500000);
  expect_error(b, "tensor_infos[2].name", "exceeds");
}

TEST(GgufMalformed, ValueTypes) {
  GgufBuilder g;
  const auto good = valid_model(&g);
  auto b = good;
  patch<uint32_t>(b, g.pos["kv.llama.context_length.type"], 13);
  expect_error(b, "'llama.context_length'.type", "unknown value type id 13");
  b = good, patch<uint32_t>(b, g.pos["kv.tokenizer.ggml.tokens.value"], 77);
  expect_error(b, "'tokenizer.ggml.tokens'.value.element_type", "unknown value type id 77");
  // a u32 value re-typed as bool holding 64 → invalid bool
  b = good, patch<uint32_t>(b, g.pos["kv.llama.context_length.type"], 7);
  expect_error(b, "'llama.context_length'.value", "bool value is 64");
  // block_count stored as a float
  b = good, patch<uint32_t>(b, g.pos["kv.llama.block_count.type"], 6);
  expect_error(b, "kv 'llama.block_count'", "has type FLOAT32, expected an integer");
}

TEST(GgufMalformed, NestedArraysTooDeep) {
  GgufBuilder g = test::tiny_model_builder();
  // 9 levels of [ARRAY, count 1] then an empty u8 array
  std::vector<uint8_t> v;
  for (int i = 0; i < 9; ++i) GgufBuilder::append(v, GgufBuilder::le(uint32_t{9})), GgufBuilder::append(v, GgufBuilder::le(uint64_t{1}));
  GgufBuilder::append(v, GgufBuilder::le(uint32_t{0}));
  GgufBuilder::append(v, GgufBuilder::le(uint64_t{0}));
  g.kv_raw("test.deep", 9, v);
  expect_error(g.build(), "'test.deep'.value", "nested deeper than 8");
  // 7 levels are fine
  GgufBuilder h = test::tiny_model_builder();
  std::vector<uint8_t> w;
  for (int i = 0; i < 7; ++i) GgufBuilder::append(w, GgufBuilder::le(uint32_t{9})), GgufBuilder::append(w, GgufBuilder::le(uint64_t{1}));
  GgufBuilder::append(w, GgufBuilder::le(uint32_t{0}));
  GgufBuilder::append(w, GgufBuilder::le(uint64_t{0}));
  h.kv_raw("test.deep", 9, w);
  const auto ok = h.build();
  EXPECT_NO_THROW(load_gguf_bytes(ok.data(), ok.size(), kName));
}

TEST(GgufMalformed, DuplicatesAndEmptyNames) {
  GgufBuilder g = test::tiny_model_builder();
  g.kv_u32("llama.block_count", 1);
  expect_error(g.build(), "'llama.block_count'", "duplicate key");
  GgufBuilder h = test::tiny_model_builder();
  h.tensor_f32("blk.0.ffn_up.weight", {16, 8}, std::vector<float>(128, 0.f));
  expect_error(h.build(), "tensor_infos[12 'blk.0.ffn_up.weight'].name", "duplicate tensor name");
  GgufBuilder k = test::tiny_model_builder();
  k.kv_u32("", 1);
  expect_error(k.build(), "kv[11].key", "empty key");
}

TEST(GgufMalformed, TensorDims) {
  GgufBuilder g;
  const auto good = valid_model(&g);
  const std::string q = "ti.blk.0.attn_q.weight.";
  const std::string qf = "tensor_infos[2 'blk.0.attn_q.weight']";
  for (uint32_t nd : {0u, 5u, 0xFFFFFFFFu}) {
    auto b = good;
    patch<uint32_t>(b, g.pos[q + "n_dims"], nd);
    expect_error(b, qf + ".n_dims", "n_dims is " + std::to_string(nd));
  }
  auto b = good;
  patch<uint64_t>(b, g.pos[q + "ne"], uint64_t{1} << 63);
  expect_error(b, qf + ".ne", "exceeds INT64_MAX");
  b = good, patch<uint64_t>(b, g.pos[q + "ne"], uint64_t{1} << 61);  // × ne[1] = 8 → 2^64
  expect_error(b, qf + ".ne", "overflows int64");
  b = good, patch<uint64_t>(b, g.pos[q + "ne"], 4);  // [8, 4] instead of [8, 8]: data no longer matches shape
  expect_error(b, "tensor 'blk.0.attn_q.weight'", "does not match the config, expected [8, 8]");
  b = good, patch<uint64_t>(b, g.pos[q + "ne"], 0);
  expect_error(b, "tensor 'blk.0.attn_q.weight'", "shape [8, 0] does not match");
}

TEST(GgufMalformed, TensorTypes) {
  GgufBuilder g;
  const auto good = valid_model(&g);
  const std::string q = "ti.blk.0.attn_q.weight.type";
  for (uint32_t t : {4u, 5u, 31u, 99u, 0xFFFFFFFFu}) {
    auto b = good;
    patch<uint32_t>(b, g.pos[q], t);
    expect_error(b, "tensor_infos[2 'blk.0.attn_q.weight'].type", "unknown ggml type id " + std::to_string(t));
  }
  // Q4_0 on ne[0] = 8: not a multiple of the 32-element block
  auto b = good;
  patch<uint32_t>(b, g.pos[q], 2);
  expect_error(b, ".ne", "not a multiple of the Q4_0 block size 32");
  // F32 → F16 halves the byte size: still consistent on disk, loads (as a different but valid tensor)
  b = good, patch<uint32_t>(b, g.pos[q], 1);
  EXPECT_NO_THROW(load_gguf_bytes(b.data(), b.size(), kName));
}

TEST(GgufMalformed, UnsupportedButKnownTypeIsClear) {
  GgufBuilder g;
  g.kv_str("general.architecture", "qeval-test");
  g.tensor("q8k", {256}, 15, std::vector<uint8_t>(292, 0));  // Q8_K: 256 elements in 292 bytes (activations only)
  const auto b = g.build();
  const GgufFile f = parse_gguf(b.data(), b.size(), kName);
  try {
    read_gguf_tensor(f, f.tensors[0]);
    FAIL();
  } catch (const CheckpointError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.field(), "tensor 'q8k'.type");
    EXPECT_NE(what.find("Q8_K is not supported"), std::string::npos) << what;
    EXPECT_NE(what.find("(supported: F32 F16 Q4_0 Q4_1 Q5_0"), std::string::npos) << what;
    EXPECT_NE(what.find(" IQ1_M BF16 TQ1_0 TQ2_0 MXFP4 NVFP4)"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST(GgufMalformed, Offsets) {
  GgufBuilder g;
  const auto good = valid_model(&g);
  const std::string v = "ti.blk.0.attn_v.weight.offset";
  const std::string vf = "tensor_infos[4 'blk.0.attn_v.weight'].offset";
  uint64_t off;
  std::memcpy(&off, good.data() + g.pos[v], 8);
  auto b = good;
  patch<uint64_t>(b, g.pos[v], off + 4);
  expect_error(b, vf, "not a multiple of the alignment 32 (misaligned)");
  b = good, patch<uint64_t>(b, g.pos[v], uint64_t{1} << 40);
  expect_error(b, vf, "ends past the end of the file");
  b = good, patch<uint64_t>(b, g.pos[v], ~uint64_t{0} - 31);  // aligned, offset + size overflows uint64
  expect_error(b, vf, "past the end of the file");
  uint64_t k_off;
  std::memcpy(&k_off, good.data() + g.pos["ti.blk.0.attn_k.weight.offset"], 8);
  b = good, patch<uint64_t>(b, g.pos[v], k_off);  // attn_v on top of attn_k
  expect_error(b, "offset", "overlaps tensor");

  // an overlap hidden behind a zero-size tensor between the two in offset order
  GgufBuilder h;
  h.kv_str("general.architecture", "qeval-test");
  h.tensor("a", {16}, 0, std::vector<uint8_t>(64, 0));           // [0, 64)
  h.tensor("z", {0}, 0, {}, uint64_t{32});                         // empty, at 32
  h.tensor("b", {8}, 0, std::vector<uint8_t>(32, 0), uint64_t{32});  // [32, 64) inside "a"
  const auto hb = h.build();
  try {
    parse_gguf(hb.data(), hb.size(), kName);
    ADD_FAILURE() << "overlap not detected";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("overlaps tensor 'a'"), std::string::npos) << e.what();
  }
}

TEST(GgufMalformed, Alignment) {
  for (uint32_t a : {0u, 3u, 48u, 0x80000000u}) {
    GgufBuilder g = test::tiny_model_builder();
    g.kv_u32("general.alignment", a);
    expect_error(g.build(), "kv 'general.alignment'", "alignment " + std::to_string(a) + " is not a power of two");
  }
  GgufBuilder g = test::tiny_model_builder();
  g.kv_str("general.alignment", "32");
  expect_error(g.build(), "kv 'general.alignment'", "has type STRING, expected UINT32");
  // valid alignment 64 but the data laid out for 32 → misaligned offsets
  GgufBuilder h = test::tiny_model_builder();
  h.kv_u32("general.alignment", 64);
  expect_error(h.build(), "offset", "misaligned");
  GgufBuilder k = test::tiny_model_builder();
  k.kv_u32("general.alignment", 64);
  k.alignment = 64;
  const auto ok = k.build();
  EXPECT_NO_THROW(load_gguf_bytes(ok.data(), ok.size(), kName));
}

TEST(GgufMalformed, MissingTensorsAndKeys) {
  GgufBuilder g = test::tiny_model_builder();
  g.remove_tensor("blk.0.ffn_up.weight");
  g.remove_tensor("blk.0.ffn_gate.weight");  // 10 tensors < the 9·1 + 2 a 1-block model needs
  expect_error(g.build(), "config.n_layers", "tensors missing");
  GgufBuilder h = test::tiny_model_builder();
  h.remove_tensor("blk.0.ffn_up.weight");
  expect_error(h.build(), "tensor 'blk.0.ffn_up.weight'", "required tensor is missing");
  for (const char* key : {"general.architecture", "llama.block_count", "llama.embedding_length",
                          "llama.attention.head_count", "llama.feed_forward_length", "llama.context_length",
                          "llama.attention.layer_norm_rms_epsilon"}) {
    GgufBuilder k = test::tiny_model_builder();
    ASSERT_TRUE(k.remove_kv(key));
    expect_error(k.build(), std::string("kv '") + key + "'", "required metadata key is missing");
  }
  GgufBuilder t = test::tiny_model_builder(/*tied=*/true);  // no output.weight → tied, valid
  const auto tb = t.build();
  EXPECT_TRUE(load_gguf_bytes(tb.data(), tb.size(), kName).config.tied_embeddings);
}

TEST(GgufMalformed, ConfigValues) {
  const auto with = [](const std::function<void(GgufBuilder&)>& f) {
    GgufBuilder g = test::tiny_model_builder();
    f(g);
    return g.build();
  };
  expect_error(with([](GgufBuilder& g) { g.remove_kv("llama.block_count"), g.kv_u32("llama.block_count", 0); }),
               "kv 'llama.block_count'", "must be positive");
  expect_error(with([](GgufBuilder& g) { g.remove_kv("llama.block_count"), g.kv_u32("llama.block_count", 1u << 31); }),
               "config.n_layers", "block count corrupt");
  expect_error(with([](GgufBuilder& g) { g.remove_kv("llama.attention.head_count"), g.kv_u32("llama.attention.head_count", 3); }),
               "config.n_heads", "not a multiple of n_heads 3");
  expect_error(with([](GgufBuilder& g) {
                 g.remove_kv("llama.attention.head_count_kv"), g.kv_u32("llama.attention.head_count_kv", 3);
               }),
               "config.n_kv_heads", "does not divide");
  expect_error(with([](GgufBuilder& g) { g.remove_kv("llama.embedding_length"), g.kv_i32("llama.embedding_length", -8); }),
               "kv 'llama.embedding_length'", "negative");
  expect_error(with([](GgufBuilder& g) { g.kv_str("llama.rope.scaling.type", "linear"); }), "rope.scaling.type",
               "not supported");
  // GGUF strings are not UTF-8-validated; the error message must still be built without throwing
  expect_error(with([](GgufBuilder& g) { g.kv_str("llama.rope.scaling.type", "\xff\xfe"); }), "rope.scaling.type",
               "not supported");
  expect_error(with([](GgufBuilder& g) { g.kv_u32("llama.rope.dimension_count", 2); }), "rope.dimension_count",
               "partial rotary");
  // tokenizer list of 7 tokens vs 6 embedding rows
  expect_error(with([](GgufBuilder& g) {
                 g.remove_kv("tokenizer.ggml.tokens"), g.kv_str_array("tokenizer.ggml.tokens", {"a", "b", "c", "d", "e", "f", "g"});
               }),
               "tensor 'token_embd.weight'", "expected [7, 8]");
  expect_error(with([](GgufBuilder& g) { g.remove_kv("general.architecture"), g.kv_u32("general.architecture", 1); }),
               "kv 'general.architecture'", "expected STRING");
}

// A tensor no layer reads loads (it is kept) but is named on stderr, one line each; a clean file prints nothing.
TEST(GgufMalformed, UnusedTensorIsNamed) {
  GgufBuilder g = test::tiny_model_builder();
  g.tensor_f32("blk.0.attn_q_norm.weight", {4}, std::vector<float>(4, 0.5f));  // Qwen3's, in a Llama
  g.tensor_f32("extra.weight", {2}, {1.0f, 2.0f});
  const auto b = g.build();
  testing::internal::CaptureStderr();
  const Checkpoint cp = load_gguf_bytes(b.data(), b.size(), kName);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 2) << err;
  EXPECT_NE(err.find("broken.gguf: tensor 'blk.0.attn_q_norm.weight' is not read by any layer"), std::string::npos) << err;
  EXPECT_NE(err.find("tensor 'extra.weight' is not read"), std::string::npos) << err;
  EXPECT_EQ(cp.tensors.count("blk.0.attn_q_norm.weight"), 1u);
  const GgufFile f = parse_gguf(b.data(), b.size(), kName);
  EXPECT_EQ(gguf_unused_tensors(f, cp.config), (std::vector<std::string>{"blk.0.attn_q_norm.weight", "extra.weight"}));

  const auto clean = valid_model();
  testing::internal::CaptureStderr();
  load_gguf_bytes(clean.data(), clean.size(), kName);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

// Llama 3.1's RoPE scaling arrives as a rope_freqs tensor (head_dim / 2 divisors of θ_i), not a key: it is read
// into the config, silently; a wrong length or a value that is not positive and finite is refused by name.
TEST(GgufMalformed, RopeFreqsAreReadOrRefused) {
  GgufBuilder g = test::tiny_model_builder();  // d_model 8, 2 heads: head_dim 4, two frequencies
  g.tensor_f32("rope_freqs.weight", {2}, {1.0f, 8.0f});
  const auto b = g.build();
  testing::internal::CaptureStderr();
  const Checkpoint cp = load_gguf_bytes(b.data(), b.size(), kName);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(cp.config.rope_scaling, "freq_factors");
  EXPECT_EQ(cp.config.rope_freq_factors, (std::vector<float>{1.0f, 8.0f}));
  GgufBuilder three = test::tiny_model_builder();
  three.tensor_f32("rope_freqs.weight", {3}, {1.0f, 8.0f, 8.0f});
  expect_error(three.build(), "tensor 'rope_freqs.weight'", "has 3 values, expected head_dim / 2 = 2");
  GgufBuilder zero = test::tiny_model_builder();
  zero.tensor_f32("rope_freqs.weight", {2}, {1.0f, 0.0f});
  expect_error(zero.build(), "tensor 'rope_freqs.weight'", "not positive and finite");
}

// The tiny Llama with its FFN as 2 experts, top-1, stacked as llama.cpp's converter writes Mixtral:
// ffn_gate_inp [2, 8], ffn_{gate,up}_exps [2, 16, 8], ffn_down_exps [2, 8, 16] (expert 0's values first).
GgufBuilder tiny_moe_builder() {
  GgufBuilder g = test::tiny_model_builder();
  for (const char* t : {"blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight"}) g.remove_tensor(t);
  g.kv_u32("llama.expert_count", 2);
  g.kv_u32("llama.expert_used_count", 1);
  std::vector<float> v(2 * 16 * 8);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 11) / 8.0f - 0.5f;
  g.tensor_f32("blk.0.ffn_gate_inp.weight", {2, 8}, std::vector<float>(v.begin(), v.begin() + 16));
  g.tensor_f32("blk.0.ffn_gate_exps.weight", {2, 16, 8}, v);
  g.tensor_f32("blk.0.ffn_up_exps.weight", {2, 16, 8}, v);
  g.tensor_f32("blk.0.ffn_down_exps.weight", {2, 8, 16}, v);
  return g;
}

// A MoE GGUF: the stacks split per expert (expert e = the e-th [rows, cols] block of the stack, no stderr
// warning); an expert count that disagrees with a stack names the key and both shapes, and the routing keys
// (top-k above the count, another gating function, a scale) are refused by name.
TEST(GgufMalformed, MoeKeysAgainstStackedExperts) {
  const auto good = tiny_moe_builder().build();
  testing::internal::CaptureStderr();
  const Checkpoint cp = load_gguf_bytes(good.data(), good.size(), kName);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  ASSERT_EQ(cp.tensors.at("blk.0.ffn_down.1.weight").shape, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(cp.tensors.at("blk.0.ffn_down.1.weight").data[0], static_cast<float>(128 % 11) / 8.0f - 0.5f);
  const auto with = [](const std::function<void(GgufBuilder&)>& f) {
    GgufBuilder g = tiny_moe_builder();
    f(g);
    return g.build();
  };
  expect_error(with([](GgufBuilder& g) { g.remove_kv("llama.expert_count"), g.kv_u32("llama.expert_count", 3); }),
               "kv 'llama.expert_count'",
               "3 experts, but tensor 'blk.0.ffn_gate_exps.weight' has shape [2, 16, 8] (expected [3, rows, cols])");
  expect_error(with([](GgufBuilder& g) {
                 g.remove_tensor("blk.0.ffn_up_exps.weight");
                 g.tensor_f32("blk.0.ffn_up_exps.weight", {32, 8}, std::vector<float>(256, 0.0f));
               }),
               "kv 'llama.expert_count'", "has shape [32, 8]");
  expect_error(with([](GgufBuilder& g) { g.remove_kv("llama.expert_used_count"), g.kv_u32("llama.expert_used_count", 3); }),
               "kv 'llama.expert_used_count'", "3 exceeds llama.expert_count 2");
  expect_error(with([](GgufBuilder& g) { g.remove_kv("llama.expert_used_count"); }), "kv 'llama.expert_used_count'",
               "required metadata key is missing");
  expect_error(with([](GgufBuilder& g) { g.kv_u32("llama.expert_gating_func", 2); }), "kv 'llama.expert_gating_func'",
               "only softmax gating");
  expect_error(with([](GgufBuilder& g) { g.kv_f32("llama.expert_weights_scale", 2.5f); }),
               "kv 'llama.expert_weights_scale'", "only 1");
  expect_error(with([](GgufBuilder& g) { g.remove_tensor("blk.0.ffn_down_exps.weight"); }), "llama.expert_count",
               "lack expert 0");
}

// The tiny model as a Gemma 3 GGUF: its q/k norms and post-norms added, window 4 unless `window` is 0.
GgufBuilder tiny_gemma3_builder(uint32_t window = 4) {
  GgufBuilder g = test::tiny_model_builder(true, "gemma3");
  for (const char* n : {"attn_q_norm", "attn_k_norm"}) g.tensor_f32(std::string("blk.0.") + n + ".weight", {4}, {1, 1, 1, 1});
  for (const char* n : {"post_attention_norm", "post_ffw_norm"})
    g.tensor_f32(std::string("blk.0.") + n + ".weight", {8}, std::vector<float>(8, 1.0f));
  if (window > 0) g.kv_u32("gemma3.attention.sliding_window", window);
  return g;
}

// Gemma 3's keys: with a window, layer 0 slides (pattern 6 by default, or the file's) on rope.freq_base_swa
// (10000 unless given); a linear rope.scaling is read for its global layers; a bad value names its key.
TEST(GgufMalformed, Gemma3Keys) {
  const auto load = [](GgufBuilder g) {
    const auto b = g.build();
    return load_gguf_bytes(b.data(), b.size(), kName).config;
  };
  ModelConfig c = load(tiny_gemma3_builder());
  EXPECT_EQ(c.layer_sliding, (std::vector<bool>{true}));
  EXPECT_EQ(c.rope_theta_local, 10000.0);
  EXPECT_TRUE(c.attn_qk_norm && c.post_norms);
  c = load(tiny_gemma3_builder(0));
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_EQ(c.rope_theta_local, 0.0);  // no window: one base for every layer, as llama.cpp
  GgufBuilder g = tiny_gemma3_builder();
  g.kv_u32("gemma3.attention.sliding_window_pattern", 1);  // i mod 1 < 0 never: every layer global
  EXPECT_EQ(load(g).layer_sliding, (std::vector<bool>{false}));
  g = tiny_gemma3_builder();
  g.kv_str("gemma3.rope.scaling.type", "linear");
  g.kv_f32("gemma3.rope.scaling.factor", 8.0f);
  c = load(g);
  EXPECT_EQ(c.rope_scaling, "linear");
  EXPECT_EQ(c.rope_factor, 8.0);
  g = tiny_gemma3_builder();
  g.kv_str("gemma3.rope.scaling.type", "linear");
  expect_error(g.build(), "kv 'gemma3.rope.scaling.factor'", "required metadata key is missing");
  g = tiny_gemma3_builder();
  g.kv_f32("gemma3.rope.freq_base_swa", 0.0f);
  expect_error(g.build(), "kv 'gemma3.rope.freq_base_swa'", "must be positive");
  g = tiny_gemma3_builder();
  g.kv_str("gemma3.rope.scaling.type", "yarn");
  expect_error(g.build(), "kv 'gemma3.rope.scaling.type'", "not supported (none; linear on gemma3)");
}

// The fuzz seeds of the MoE and Gemma 3 GGUF paths (scripts/testdata/make_fuzz_seeds.py) are valid files, so a
// fuzzing run starts inside the expert split and the Gemma 3 keys rather than at the first refusal.
TEST(GgufMalformed, FamilyFuzzSeedsLoad) {
  const std::string dir = std::string(QEVAL_SOURCE_DIR) + "/tests/fuzz/corpus/fuzz_gguf/";
  EXPECT_EQ(load_gguf(dir + "seed_tiny_mixtral.gguf").config.n_experts, 2);
  EXPECT_EQ(load_gguf(dir + "seed_tiny_qwen2moe.gguf").tensors.count("blk.0.ffn_down.1.weight"), 1u);
  EXPECT_EQ(load_gguf(dir + "seed_tiny_gemma3.gguf").config.rope_theta_local, 10000.0);
}

TEST(GgufMalformed, NonFiniteWeights) {
  GgufBuilder g;
  auto b = valid_model(&g);
  patch<float>(b, g.pos["data.blk.0.ffn_gate.weight"] + 4 * 5, std::numeric_limits<float>::quiet_NaN());
  expect_error(b, "tensor 'blk.0.ffn_gate.weight'", "element 5 is");
}

// Random corruption of 1–4 bytes anywhere in the header region (and a few in the data): the loader must either
// succeed or throw CheckpointError — any other exception, crash or sanitizer report fails the test.
TEST(GgufMalformed, RandomByteCorruption) {
  const uint64_t seed = seed_from_env(0x6767'7566);
  Rng rng(seed);
  GgufBuilder g;
  const auto good = valid_model(&g);
  int ok = 0, rejected = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    auto b = good;
    const int n = 1 + static_cast<int>(rng.below(4));
    std::string where;
    for (int k = 0; k < n; ++k) {
      const size_t limit = iter % 8 == 0 ? b.size() : g.data_offset;
      const size_t at = static_cast<size_t>(rng.below(limit));
      b[at] = static_cast<uint8_t>(rng.below(256));
      where += std::to_string(at) + " ";
    }
    try {
      load_gguf_bytes(b.data(), b.size(), kName);
      ++ok;
    } catch (const CheckpointError&) {
      ++rejected;
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << " iter " << iter << " bytes " << where << ": non-CheckpointError " << e.what();
    }
  }
  EXPECT_GT(rejected, 1000) << "seed " << seed;
  RecordProperty("accepted", ok);
  RecordProperty("rejected", rejected);
}

// ---- the every-type fixture (tests/data/gguf/dequant.gguf: 25 tensor types, finite and non-finite blocks) ----

// Parses `n` bytes and dequantizes every tensor; returns how many tensors were rejected (non-finite values).
// Anything but CheckpointError escapes and fails the calling test.
int load_every_tensor(const uint8_t* data, size_t n) {
  const GgufFile f = parse_gguf(data, n, kName);
  int rejected = 0;
  for (const auto& t : f.tensors) {
    try {
      (void)read_gguf_tensor(f, t);
    } catch (const CheckpointError& e) {
      EXPECT_EQ(e.file(), kName);
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      ++rejected;
    }
  }
  return rejected;
}

TEST(GgufMalformed, EveryTypeFileTruncated) {
  const auto b = test::read_bytes(test::gguf_fixture("dequant.gguf"));
  const GgufFile full = parse_gguf(b.data(), b.size(), kName);
  uint64_t data_end = full.data_offset;
  for (const auto& t : full.tensors) data_end = std::max(data_end, full.data_offset + t.offset + t.n_bytes);
  ASSERT_GT(data_end, full.data_offset + 60000);  // the fixture's tensors: ~68 KB of blocks
  std::vector<size_t> lens;
  for (size_t len = 0; len < full.data_offset; ++len) lens.push_back(len);  // every byte of header and directory
  for (size_t k = 0; k < 500; ++k) lens.push_back(full.data_offset + (data_end - full.data_offset) * k / 500);
  lens.push_back(data_end - 1);
  for (size_t len : lens) {
    try {
      load_every_tensor(b.data(), len);
      ADD_FAILURE() << "truncation to " << len << " of " << b.size() << " bytes was accepted";
    } catch (const CheckpointError& e) {
      EXPECT_EQ(e.file(), kName);
      EXPECT_FALSE(e.field().empty());
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(load_every_tensor(b.data(), data_end), static_cast<int>(std::count_if(
      full.tensors.begin(), full.tensors.end(), [](const GgufTensorInfo& t) { return t.name.find(".nonfinite") != std::string::npos; })));
}

// Random corruption of 1–4 bytes, mostly in the tensor directory (type ids, dims, offsets of 25 types), some in
// the blocks: load or CheckpointError, nothing else (this suite also runs under ASan/UBSan, see README).
TEST(GgufMalformed, EveryTypeFileRandomCorruption) {
  const uint64_t seed = seed_from_env(0x6465'7175);
  Rng rng(seed);
  const auto good = test::read_bytes(test::gguf_fixture("dequant.gguf"));
  const size_t data_offset = parse_gguf(good.data(), good.size(), kName).data_offset;
  int ok = 0, rejected = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    auto b = good;
    const int n = 1 + static_cast<int>(rng.below(4));
    std::string where;
    for (int k = 0; k < n; ++k) {
      const size_t limit = iter % 4 == 0 ? b.size() : data_offset;
      const size_t at = static_cast<size_t>(rng.below(limit));
      b[at] = static_cast<uint8_t>(rng.below(256));
      where += std::to_string(at) + " ";
    }
    try {
      load_every_tensor(b.data(), b.size());
      ++ok;
    } catch (const CheckpointError&) {
      ++rejected;
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << " iter " << iter << " bytes " << where << ": non-CheckpointError " << e.what();
    }
  }
  EXPECT_GT(rejected, 300) << "seed " << seed;
  EXPECT_GT(ok, 100) << "seed " << seed;
  RecordProperty("accepted", ok);
  RecordProperty("rejected", rejected);
}

// Every type id written over one tensor's type: an unknown id, a size that no longer fits (overlap, past the end,
// ne[0] not a multiple of the block) or a known type without a dequantizer is named; nothing crashes.
TEST(GgufMalformed, EveryTypeIdOverATensor) {
  const auto good = test::read_bytes(test::gguf_fixture("dequant.gguf"));
  const GgufFile f = parse_gguf(good.data(), good.size(), kName);
  const GgufTensorInfo& t = *f.find_tensor("Q4_K.finite");
  // the type field sits right after the dims, 12 bytes before the end of the tensor info (type u32 + offset u64)
  size_t type_pos = 0;
  for (size_t p = 0; p + t.name.size() <= f.data_offset; ++p) {
    if (std::memcmp(good.data() + p, t.name.data(), t.name.size()) == 0) {
      type_pos = p + t.name.size() + 4 + 8 * t.ne.size();
      break;
    }
  }
  ASSERT_NE(type_pos, 0u);
  uint32_t was;
  std::memcpy(&was, good.data() + type_pos, 4);
  ASSERT_EQ(was, static_cast<uint32_t>(GgmlType::Q4_K));
  int unsupported = 0;
  for (uint32_t id = 0; id < kGgmlTypeIdLimit + 2; ++id) {
    auto b = good;
    patch<uint32_t>(b, type_pos, id);
    try {
      const GgufFile g = parse_gguf(b.data(), b.size(), kName);
      (void)read_gguf_tensor(g, *g.find_tensor("Q4_K.finite"));
    } catch (const CheckpointError& e) {
      const std::string what = e.what();
      const GgmlTypeTraits tr = ggml_type_traits(id);
      if (!tr.name) {
        EXPECT_NE(what.find("unknown ggml type id " + std::to_string(id)), std::string::npos) << what;
      }
      EXPECT_NE(what.find("Q4_K.finite"), std::string::npos) << what;  // in the field, or as the overlapped tensor
      if (e.field() == "tensor 'Q4_K.finite'.type") {  // it fits, but has no dequantizer (Q1_0, Q2_0 here)
        EXPECT_TRUE(tr.name && !tr.dequantizable) << what;
        EXPECT_NE(what.find("(supported: F32 F16"), std::string::npos) << what;
        ++unsupported;
      }
    }
  }
  EXPECT_GE(unsupported, 2);
}

}  // namespace
}  // namespace qeval::model
