// tests/eval/model/safetensors_test.cpp — HF safetensors + config.json: single and sharded fixtures, the RoPE row
// permutation (hand-checked and against RoPE itself), and malformed headers / configs / indexes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include "eval/model/checkpoint.hpp"
#include "eval/model/safetensors.hpp"
#include "quant/rng.hpp"
#include "tests/eval/model/test_util.hpp"

namespace qeval::model {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::st_fixture;

// ---- fixtures (written by scripts/testdata/make_gguf_fixtures.py; q/k permuted there with numpy) ----

void check_fixture(const std::string& dir, bool tied) {
  json doc;
  const auto expected = test::load_expected(st_fixture("tiny_llama_hf_expected.json"), &doc);
  const Checkpoint cp = load_checkpoint(st_fixture(dir));
  const json& c = doc["config"];
  EXPECT_EQ(cp.config.arch, "llama");
  EXPECT_EQ(cp.config.source, "safetensors");
  EXPECT_EQ(cp.config.n_layers, c["n_layers"]);
  EXPECT_EQ(cp.config.d_model, c["d_model"]);
  EXPECT_EQ(cp.config.n_heads, c["n_heads"]);
  EXPECT_EQ(cp.config.n_kv_heads, c["n_kv_heads"]);
  EXPECT_EQ(cp.config.d_ff, c["d_ff"]);
  EXPECT_EQ(cp.config.vocab_size, c["vocab_size"]);
  EXPECT_EQ(cp.config.n_ctx_train, c["n_ctx_train"]);
  EXPECT_EQ(cp.config.rope_theta, c["rope_theta"].get<double>());
  EXPECT_EQ(cp.config.rms_eps, c["rms_eps"].get<double>());
  EXPECT_EQ(cp.config.bos_id, 1);
  EXPECT_EQ(cp.config.eos_id, 2);
  EXPECT_EQ(cp.config.tied_embeddings, tied);
  EXPECT_EQ(cp.content_hash, "sha256:" + doc["content_hash"][dir].get<std::string>());
  EXPECT_EQ(cp.metadata.at("model_type"), "llama");
  EXPECT_EQ(cp.tensors.size(), expected.size() - (tied ? 1 : 0));
  for (const auto& [name, e] : expected) {
    SCOPED_TRACE(name);
    if (tied && name == "output.weight") {
      EXPECT_FALSE(cp.tensors.count(name));
      continue;
    }
    ASSERT_TRUE(cp.tensors.count(name));
    const TensorF32& t = cp.tensors.at(name);
    EXPECT_EQ(t.shape, e.shape);
    EXPECT_EQ(t.orig_type, e.type);
    ASSERT_EQ(t.data.size(), e.values.size());
    for (size_t i = 0; i < t.data.size(); ++i) ASSERT_TRUE(test::same_bits(t.data[i], e.values[i])) << i;  // exact
  }
}

TEST(Safetensors, SingleFileDirectory) { check_fixture("tiny_llama_hf", false); }
TEST(Safetensors, ShardedTiedDirectory) { check_fixture("tiny_llama_hf_sharded", true); }

TEST(Safetensors, PathForms) {
  const Checkpoint a = load_checkpoint(st_fixture("tiny_llama_hf/model.safetensors"));
  const Checkpoint b = load_checkpoint(st_fixture("tiny_llama_hf_sharded/model.safetensors.index.json"));
  EXPECT_EQ(a.tensors.size(), 21u);  // 2 layers × 9 + embeddings + norm + lm_head
  EXPECT_EQ(b.tensors.size(), 20u);
  EXPECT_EQ(a.tensors.at("token_embd.weight").data, b.tensors.at("token_embd.weight").data);
}

// ---- the RoPE permutation ----

TensorF32 rows_tensor(int64_t rows, int64_t cols) {
  TensorF32 t;
  t.shape = {rows, cols};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t.data.push_back(static_cast<float>(100 * r + c));
  return t;
}

std::vector<int> row_order(const TensorF32& t) {
  std::vector<int> r;
  for (int64_t i = 0; i < t.shape[0]; ++i) r.push_back(static_cast<int>(t.data[i * t.shape[1]] / 100));
  return r;
}

TEST(RopePermutation, HandCheckedCases) {
  // head_dim 4: HF (r0 r1 r2 r3) pairs (r0,r2),(r1,r3) for rotate_half → GGUF adjacent pairs (r0,r2),(r1,r3)
  TensorF32 a = rows_tensor(4, 3);
  permute_rows_hf_to_gguf(a, 1, "t", "q");
  EXPECT_EQ(row_order(a), (std::vector<int>{0, 2, 1, 3}));
  // head_dim 6
  TensorF32 b = rows_tensor(6, 1);
  permute_rows_hf_to_gguf(b, 1, "t", "q");
  EXPECT_EQ(row_order(b), (std::vector<int>{0, 3, 1, 4, 2, 5}));
  // 2 heads of 4: each head permuted on its own
  TensorF32 c = rows_tensor(8, 2);
  permute_rows_hf_to_gguf(c, 2, "t", "q");
  EXPECT_EQ(row_order(c), (std::vector<int>{0, 2, 1, 3, 4, 6, 5, 7}));
  EXPECT_EQ(c.data[1], 1.0f);  // columns move with their row
  EXPECT_EQ(c.data[3], 201.0f);
  // inverse
  permute_rows_gguf_to_hf(c, 2, "t", "q");
  EXPECT_EQ(c.data, rows_tensor(8, 2).data);
  // invalid: odd head_dim / rows not divisible
  TensorF32 d = rows_tensor(6, 1);
  EXPECT_THROW(permute_rows_hf_to_gguf(d, 2, "t", "q"), CheckpointError);  // head_dim 3
  EXPECT_THROW(permute_rows_hf_to_gguf(d, 4, "t", "q"), CheckpointError);  // 6 % 4
}

// Why the permutation is right: RoPE with HF's rotate_half on W_hf·x equals, after permuting the output rows,
// GGUF's adjacent-pair RoPE on W_gguf·x — for every position and every head, with the same frequencies
// θ^(−2i/hd) for pair i. Checked numerically (double) on a random vector.
TEST(RopePermutation, MatchesRotateHalfVersusAdjacentPairs) {
  const int hd = 8, n_head = 2, rows = hd * n_head;
  const double theta = 10000.0;
  Rng rng(seed_from_env(77));
  std::vector<double> q_hf(rows);
  for (auto& v : q_hf) v = rng.normal();
  // q as a [rows, 1] tensor so the library permutes it like a weight's rows (q = W·x row by row)
  TensorF32 t;
  t.shape = {rows, 1};
  for (double v : q_hf) t.data.push_back(static_cast<float>(v));
  permute_rows_hf_to_gguf(t, n_head, "t", "q");
  for (int pos : {0, 1, 7, 123}) {
    std::vector<double> hf_rot(rows), gg_rot(rows);
    for (int h = 0; h < n_head; ++h) {
      for (int i = 0; i < hd / 2; ++i) {
        const double ang = pos * std::pow(theta, -2.0 * i / hd), cs = std::cos(ang), sn = std::sin(ang);
        // HF rotate_half: pair (i, i + hd/2)
        const double a = q_hf[h * hd + i], b = q_hf[h * hd + i + hd / 2];
        hf_rot[h * hd + i] = a * cs - b * sn;
        hf_rot[h * hd + i + hd / 2] = b * cs + a * sn;
        // GGUF normal mode: pair (2i, 2i+1)
        const double c = t.data[h * hd + 2 * i], d = t.data[h * hd + 2 * i + 1];
        gg_rot[h * hd + 2 * i] = c * cs - d * sn;
        gg_rot[h * hd + 2 * i + 1] = d * cs + c * sn;
      }
    }
    TensorF32 hf_perm;
    hf_perm.shape = {rows, 1};
    for (double v : hf_rot) hf_perm.data.push_back(static_cast<float>(v));
    permute_rows_hf_to_gguf(hf_perm, n_head, "t", "q");
    // float32 storage of q and of the rotated values: |Δ| ≤ a few ulps of |q| ≲ 4 → 1e-5
    for (int r = 0; r < rows; ++r) EXPECT_NEAR(hf_perm.data[r], gg_rot[r], 1e-5) << "pos " << pos << " row " << r;
  }
}

// ---- malformed safetensors headers ----

std::vector<uint8_t> st_bytes(const std::string& header, size_t data_bytes, uint64_t declared = ~uint64_t{0}) {
  std::vector<uint8_t> b(8);
  const uint64_t n = declared == ~uint64_t{0} ? header.size() : declared;
  std::memcpy(b.data(), &n, 8);
  b.insert(b.end(), header.begin(), header.end());
  b.resize(b.size() + data_bytes, 0);
  return b;
}

void expect_st_error(const std::vector<uint8_t>& b, const std::string& field, const std::string& text) {
  try {
    parse_safetensors(b.data(), b.size(), "bad.safetensors");
    ADD_FAILURE() << "no error; expected '" << field << "' / '" << text << "'";
  } catch (const CheckpointError& e) {
    EXPECT_NE(e.field().find(field), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.safetensors"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsMalformed, Header) {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
  {
    const auto b = st_bytes(ok, 24);
    EXPECT_EQ(parse_safetensors(b.data(), b.size(), "x").tensors.size(), 1u);
  }
  expect_st_error({1, 2, 3}, "header.length", "8-byte header length");
  expect_st_error(st_bytes(ok, 24, 1000), "header.length", "exceeds");
  expect_st_error(st_bytes(ok, 24, ~uint64_t{0} - 1), "header.length", "exceeds");
  expect_st_error(st_bytes("[1,2]", 0), "header", "starting with '{'");
  expect_st_error(st_bytes("{\"a\":", 0), "header", "invalid JSON");
  expect_st_error(st_bytes(R"({"a":5})", 0), "header['a']", "must be an object");
  expect_st_error(st_bytes(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4), "['a'].dtype", "missing");
  expect_st_error(st_bytes(R"({"a":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", 4), "['a'].dtype",
                  "unknown dtype 'F99'");
  expect_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "['a'].shape",
                  "non-negative integer");
  expect_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4), "['a'].shape",
                  "non-negative integer");
  expect_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4),
                  "['a'].shape", "overflows");
  expect_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8), "['a'].data_offsets",
                  "pair");
  expect_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4), "['a'].data_offsets",
                  "not inside the 4-byte data section");
  expect_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), "['a'].data_offsets",
                  "not inside");
  expect_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "['a'].data_offsets",
                  "shape/size mismatch");
  expect_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           12),
                  "['b'].data_offsets", "overlaps");
  expect_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "['a'].data_offsets",
                  "hole");
  expect_st_error(st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8), "header", "trailing");
  expect_st_error(st_bytes(R"({"__metadata__":{"format":1}})", 0), "['__metadata__']['format']", "string");
  std::string deep(40, '[');
  expect_st_error(st_bytes("{\"a\":" + deep, 0), "header", "nested deeper");
}

TEST(SafetensorsMalformed, UnsupportedDtypeAndNonFinite) {
  const auto b = st_bytes(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})", 4);
  const SafetensorsFile f = parse_safetensors(b.data(), b.size(), "x");
  EXPECT_THROW(read_safetensors_tensor(f, f.tensors[0]), CheckpointError);
  auto c = st_bytes(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4);
  c[c.size() - 1] = 0x7C;  // second half = 0x7C00 = +Inf
  const SafetensorsFile g = parse_safetensors(c.data(), c.size(), "x");
  EXPECT_THROW(read_safetensors_tensor(g, g.tensors[0]), CheckpointError);
}

TEST(SafetensorsMalformed, TruncatedAtEveryByte) {
  // every byte of the length + header region; in the data region (where every prefix fails the same
  // "not inside the data section" check) every 61st byte and the last one, to keep the ASan run short
  const auto b = test::read_bytes(st_fixture("tiny_llama_hf/model.safetensors"));
  uint64_t hlen;
  std::memcpy(&hlen, b.data(), 8);
  for (size_t len = 0; len < b.size(); len += (len < 8 + hlen || len + 1 == b.size()) ? 1 : 61) {
    try {
      parse_safetensors(b.data(), len, "t.safetensors");
      ADD_FAILURE() << "truncation to " << len << " accepted";
    } catch (const CheckpointError&) {
    }
  }
}

TEST(SafetensorsMalformed, RandomHeaderCorruption) {
  const uint64_t seed = seed_from_env(0x5afe);
  Rng rng(seed);
  const auto good = test::read_bytes(st_fixture("tiny_llama_hf/model.safetensors"));
  uint64_t hlen;
  std::memcpy(&hlen, good.data(), 8);
  for (int iter = 0; iter < 3000; ++iter) {
    auto b = good;
    const size_t at = static_cast<size_t>(rng.below(8 + hlen));
    b[at] = static_cast<uint8_t>(rng.below(256));
    try {
      const SafetensorsFile f = parse_safetensors(b.data(), b.size(), "x");
      for (const auto& e : f.tensors) read_safetensors_tensor(f, e);
    } catch (const CheckpointError&) {
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << " iter " << iter << " byte " << at << ": " << e.what();
    }
  }
}

// ---- config.json, index and name mapping ----

class HfDir {
 public:
  HfDir() {
    fs::copy(st_fixture("tiny_llama_hf"), tmp_.path("m"));
    fs::copy(st_fixture("tiny_llama_hf_sharded"), tmp_.path("s"));
  }
  std::string single() const { return tmp_.path("m"); }
  std::string sharded() const { return tmp_.path("s"); }
  void edit_json(const std::string& path, const std::function<void(json&)>& f) const {
    json j = test::read_json(path);
    f(j);
    std::ofstream(path) << j.dump();
  }

 private:
  test::TempDir tmp_;
};

void expect_load_error(const std::string& path, const std::string& field, const std::string& text) {
  try {
    load_checkpoint(path);
    ADD_FAILURE() << "no error for " << path << "; expected '" << field << "' / '" << text << "'";
  } catch (const CheckpointError& e) {
    EXPECT_NE(e.field().find(field), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(SafetensorsConfig, Errors) {
  const std::vector<std::tuple<std::string, std::function<void(json&)>, std::string, std::string>> cases = {
      {"arch", [](json& j) { j["architectures"] = {"Gemma3ForConditionalGeneration"}, j["model_type"] = "gemma3"; },
       "architectures",
       "'Gemma3ForConditionalGeneration' (model_type \"gemma3\") is not supported — supported: LlamaForCausalLM"},
      {"model_type", [](json& j) { j.erase("architectures"), j["model_type"] = 5; }, "architectures", "model_type 5"},
      {"hidden", [](json& j) { j.erase("hidden_size"); }, "config['hidden_size']", "required key is missing"},
      {"heads", [](json& j) { j["num_attention_heads"] = "2"; }, "config['num_attention_heads']", "must be an integer"},
      {"eps", [](json& j) { j.erase("rms_norm_eps"); }, "config['rms_norm_eps']", "missing"},
      {"scaling", [](json& j) { j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 8.0}}; }, "rope_scaling",
       "RoPE type 'yarn' is not supported"},
      {"llama3 fields", [](json& j) { j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}}; },
       "config['rope_scaling']['low_freq_factor']", "required key is missing"},
      {"bias", [](json& j) { j["attention_bias"] = true; }, "attention_bias", "promises the bias blk.0.attn_q.bias"},
      {"act", [](json& j) { j["hidden_act"] = "gelu"; }, "hidden_act", "silu only"},
      {"head_dim", [](json& j) { j["head_dim"] = 4; }, "tensor 'blk.0.attn_q.weight'",
       "expected [8, 16] = [num_attention_heads·head_dim, hidden_size]"},
      {"vocab", [](json& j) { j["vocab_size"] = 25; }, "tensor 'token_embd.weight'", "expected [25, 16]"},
      {"layers", [](json& j) { j["num_hidden_layers"] = 1; }, "tensor 'model.layers.1", "layer 1"},
      {"untied", [](json& j) { j["tie_word_embeddings"] = false; }, "tensor 'output.weight'", "required tensor is missing"},
  };
  for (const auto& [name, edit, field, text] : cases) {
    SCOPED_TRACE(name);
    HfDir d;
    // the sharded fixture is tied (no lm_head) — the "untied" case needs it; the others use the single file
    const std::string dir = name == "untied" ? d.sharded() : d.single();
    d.edit_json(dir + "/config.json", edit);
    expect_load_error(dir, field, text);
  }
  HfDir d;
  fs::remove(d.single() + "/config.json");
  expect_load_error(d.single(), "config.json", "file not found");
  std::ofstream(d.single() + "/config.json") << "{not json";
  expect_load_error(d.single(), "config.json", "invalid JSON");
}

TEST(SafetensorsConfig, TiedCheckpointWithLmHeadDropsIt) {
  HfDir d;
  d.edit_json(d.single() + "/config.json", [](json& j) { j["tie_word_embeddings"] = true; });
  const Checkpoint cp = load_checkpoint(d.single());
  EXPECT_TRUE(cp.config.tied_embeddings);
  EXPECT_FALSE(cp.tensors.count("output.weight"));
}

TEST(SafetensorsIndex, Errors) {
  const std::string idx = "/model.safetensors.index.json";
  {
    HfDir d;
    d.edit_json(d.sharded() + idx, [](json& j) { j["weight_map"]["model.norm.weight"] = "../evil.safetensors"; });
    expect_load_error(d.sharded(), "weight_map['model.norm.weight']", "plain *.safetensors file name");
  }
  {
    HfDir d;
    d.edit_json(d.sharded() + idx, [](json& j) { j["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors"; });
    expect_load_error(d.sharded(), "tensor 'model.norm.weight'", "listed in the index under shard");
  }
  {
    HfDir d;
    d.edit_json(d.sharded() + idx, [](json& j) { j["weight_map"].erase("model.norm.weight"); });
    expect_load_error(d.sharded(), "tensor 'model.norm.weight'", "not listed");
  }
  {
    HfDir d;
    d.edit_json(d.sharded() + idx, [](json& j) { j["weight_map"]["model.extra.weight"] = "model-00002-of-00002.safetensors"; });
    expect_load_error(d.sharded(), "weight_map['model.extra.weight']", "missing from shard");
  }
  {
    HfDir d;
    fs::remove(d.sharded() + "/model-00002-of-00002.safetensors");
    expect_load_error(d.sharded(), "file", "cannot open");
  }
  {
    HfDir d;
    d.edit_json(d.sharded() + idx, [](json& j) { j.erase("weight_map"); });
    expect_load_error(d.sharded(), "weight_map", "missing");
  }
}

TEST(SafetensorsNames, Mapping) {
  EXPECT_EQ(hf_to_canonical("model.embed_tokens.weight", "f")->canonical, "token_embd.weight");
  const auto q = hf_to_canonical("model.layers.12.self_attn.q_proj.weight", "f");
  EXPECT_EQ(q->canonical, "blk.12.attn_q.weight");
  EXPECT_EQ(q->permute, RopePermute::q);
  EXPECT_EQ(q->layer, 12);
  EXPECT_EQ(hf_to_canonical("model.layers.0.self_attn.k_proj.weight", "f")->permute, RopePermute::k);
  EXPECT_EQ(hf_to_canonical("model.layers.3.post_attention_layernorm.weight", "f")->canonical, "blk.3.ffn_norm.weight");
  EXPECT_EQ(hf_to_canonical("lm_head.weight", "f")->canonical, "output.weight");
  EXPECT_FALSE(hf_to_canonical("model.layers.0.self_attn.rotary_emb.inv_freq", "f").has_value());
  EXPECT_EQ(hf_to_canonical("model.layers.2.self_attn.q_proj.bias", "f")->canonical, "blk.2.attn_q.bias");
  EXPECT_EQ(hf_to_canonical("model.layers.2.self_attn.k_norm.weight", "f")->permute, RopePermute::head);
  for (const char* bad : {"model.layers.0.self_attn.q_norm.bias", "model.layers.x.mlp.up_proj.weight",
                          "model.layers.01.mlp.up_proj.weight", "model.layers.99999999999.mlp.up_proj.weight",
                          "transformer.h.0.attn.c_attn.weight", "model.layers.0"}) {
    EXPECT_THROW(hf_to_canonical(bad, "f"), CheckpointError) << bad;
  }
  for (const char* c : {"token_embd.weight", "blk.7.attn_output.weight", "blk.0.ffn_norm.weight", "output.weight"}) {
    EXPECT_EQ(hf_to_canonical(canonical_to_hf(c, "f"), "f")->canonical, c);
  }
  EXPECT_THROW(canonical_to_hf("rope_freqs.weight", "f"), CheckpointError);
  EXPECT_EQ(canonical_to_hf("blk.0.attn_q.bias", "f"), "model.layers.0.self_attn.q_proj.bias");
  EXPECT_THROW(canonical_to_hf("blk.0.attn_q_norm.bias", "f"), CheckpointError);
}

}  // namespace
}  // namespace qeval::model
