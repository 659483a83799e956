// tests/eval_forward/families_test.cpp — the family forwards (Qwen2, Mistral, Llama 3, Qwen3, Phi-3, Gemma 2), from safetensors and from GGUF, against Hugging Face's fp32 logits.
//
// Fixtures: tests/data/families/<family> (scripts/testdata/make_family_fixtures.py: tiny random checkpoints built by
// transformers 5.25 / torch 2.15, bf16 weights, HF's fp32 eager logits on two 24-token sequences in logits.npy).
//
// Tolerance, derived (not fitted): both sides compute the same real-valued function in fp32 from the same
// (bf16-exact) weights; they differ only by rounding. Under the standard probabilistic model of rounding
// (Higham, "Accuracy and Stability of Numerical Algorithms", §3.5: a length-K dot product errs by ~u·√K relative),
// each sequential stage of the forward contributes ≤ u·√K relative to the magnitude it carries, and the stages'
// errors add: S stages give ≤ S·u·√K relative, i.e. |Δlogit| ≤ S·u·√K·max|logit|, with
//   u = 2⁻²⁴ (fp32 unit roundoff), K = 128 (the longest reduction: intermediate_size; d_model 64, head_dim ≤ 32,
//   T = 24 are shorter), S = 11 per layer (norm, q/k/v, q/k norm or RoPE, scores, softmax, p·v, o, norm, gate/up,
//   down) × 2 layers + 2 (final norm, head) = 24 (Gemma 2: + 2 post-norms per layer + the final soft-cap = 29).
// RoPE: HF forms the angle pos·θ in fp32 (relative error u per product, ≤ 24·u·θ absolute) where qeval rounds a
// double angle once — one more u-sized stage, inside the S·u·√K budget (√K ≈ 11 > 1).
// Worked number (qwen2, max|logit| 4.26): 24 · 5.96e-8 · 11.3 · 4.26 = 6.9e-5. A feature left out moves the logits by
// 0.3 to 5.7 (manifest.json feature_off_effects), 4 000× more. The measured error is printed (QEVAL_VERBOSE-free:
// always, one line per family) so the margin is visible.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "eval/model/checkpoint.hpp"
#include "eval/model/hooks.hpp"
#include "eval/model/llama.hpp"
#include "tests/eval_model/test_util.hpp"

namespace qeval::model {
namespace {

std::string family_dir(const std::string& f) { return test::data_dir() + "/families/" + f; }

const nlohmann::json& manifest() {
  static const nlohmann::json m = test::read_json(test::data_dir() + "/families/manifest.json");
  return m;
}

// HF's logits [2, 24, V] from logits.npy (or another file of the family's directory).
at::Tensor hf_logits(const std::string& family, const std::string& file = "logits.npy") {
  const std::vector<uint8_t> b = test::read_bytes(family_dir(family) + "/" + file);
  size_t off = 0;
  const std::vector<int64_t> shape = test::npy_f32_shape(b, &off);
  EXPECT_EQ(shape.size(), 3u) << family;
  at::Tensor t = at::empty(shape, at::kFloat);
  EXPECT_EQ(b.size() - off, static_cast<size_t>(t.numel()) * 4) << family;
  std::memcpy(t.data_ptr<float>(), b.data() + off, static_cast<size_t>(t.numel()) * 4);
  return t;
}

at::Tensor fixture_ids(const std::string& family) {
  std::vector<int64_t> flat;
  for (const auto& seq : manifest()["families"][family]["ids"])
    for (const auto& id : seq) flat.push_back(id.get<int64_t>());
  return at::tensor(flat, at::kLong).view({2, -1});
}

// The derived bound above: S·u·√K·max|logit|.
double derived_tolerance(const ModelConfig& c, const at::Tensor& ref) {
  const double u = std::ldexp(1.0, -24), K = static_cast<double>(std::max({c.d_model, c.d_ff, c.head_dim(), int64_t{24}}));
  // Gemma 2: two more norms per layer and the final soft-cap (tanh' ≤ 1: soft-capping does not amplify an error).
  const double per_layer = 11.0 + (c.post_norms ? 2.0 : 0.0), S = per_layer * static_cast<double>(c.n_layers) + 2.0 +
                                                                   (c.final_softcap > 0 ? 1.0 : 0.0);
  return S * u * std::sqrt(K) * ref.abs().max().item<double>();
}

void expect_matches_hf(const std::string& family) {
  SCOPED_TRACE(family);
  const Checkpoint ck = load_checkpoint(family_dir(family));
  LlamaModel m(ck);
  const at::Tensor want = hf_logits(family);
  const at::Tensor got = m.forward(fixture_ids(family));
  ASSERT_EQ(got.sizes(), want.sizes());
  const double err = (got - want).abs().max().item<double>(), tol = derived_tolerance(m.config(), want);
  std::printf("[ family %-8s ] max |qeval − HF| = %.3g, derived tolerance %.3g (%.0f× margin)\n", family.c_str(), err,
              tol, tol / err);
  EXPECT_LE(err, tol) << "max |Δlogit| " << err << " > derived tolerance " << tol;
}

TEST(Families, Qwen2QkvBiasMatchesHf) { expect_matches_hf("qwen2"); }
TEST(Families, MistralSlidingWindowMatchesHf) {
  EXPECT_EQ(load_checkpoint(family_dir("mistral")).config.sliding_window, 8);
  expect_matches_hf("mistral");
}
TEST(Families, Llama3RopeScalingMatchesHf) {
  EXPECT_EQ(load_checkpoint(family_dir("llama3")).config.rope_scaling, "llama3");
  expect_matches_hf("llama3");
}
TEST(Families, Qwen3QkNormMatchesHf) { expect_matches_hf("qwen3"); }
TEST(Families, Phi3FusedQkvAndGateUpMatchesHf) { expect_matches_hf("phi3"); }
TEST(Families, Gemma2MatchesHf) { expect_matches_hf("gemma2"); }

// transformers before 5 wrote rope_theta + rope_scaling ({"rope_type" | "type": "llama3", …}); both layouts give the
// same config and therefore bit-identical logits.
TEST(Families, Llama3OlderRopeLayoutGivesTheSameLogits) {
  test::TempDir tmp;
  const std::string dir = tmp.path();
  std::filesystem::copy_file(family_dir("llama3") + "/model.safetensors", dir + "/model.safetensors");
  nlohmann::json cfg = test::read_json(family_dir("llama3") + "/config.json");
  nlohmann::json rp = cfg["rope_parameters"];
  cfg.erase("rope_parameters");
  cfg["rope_theta"] = rp["rope_theta"];
  rp.erase("rope_theta");
  rp.erase("rope_type");
  rp["type"] = "llama3";  // the oldest spelling
  cfg["rope_scaling"] = rp;
  std::ofstream(dir + "/config.json") << cfg.dump();
  LlamaModel a(load_checkpoint(family_dir("llama3"))), b(load_checkpoint(dir));
  EXPECT_EQ(b.config().rope_theta, 500000.0);
  EXPECT_TRUE(at::equal(a.forward(fixture_ids("llama3")), b.forward(fixture_ids("llama3"))));
}

// A config field that disagrees with the weights names the field; an unknown architecture names the supported list.
TEST(Families, BadConfigNamesTheField) {
  const auto expect_error = [](const std::function<void(nlohmann::json&)>& edit, const std::string& family,
                               const std::string& want) {
    test::TempDir tmp;
    std::filesystem::copy_file(family_dir(family) + "/model.safetensors", tmp.path() + "/model.safetensors");
    nlohmann::json cfg = test::read_json(family_dir(family) + "/config.json");
    edit(cfg);
    std::ofstream(tmp.path() + "/config.json") << cfg.dump();
    try {
      LlamaModel m(load_checkpoint(tmp.path()));
      ADD_FAILURE() << "no error; wanted " << want;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect_error([](nlohmann::json& c) { c["head_dim"] = 16; }, "qwen3", "head_dim");
  expect_error([](nlohmann::json& c) { c["num_key_value_heads"] = 4; }, "qwen2", "num_key_value_heads");
  expect_error([](nlohmann::json& c) { c["intermediate_size"] = 96; }, "mistral", "intermediate_size");
  expect_error([](nlohmann::json& c) { c["architectures"] = {"Gemma3ForCausalLM"}; }, "qwen2",
               "supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Phi3ForCausalLM, "
               "Gemma2ForCausalLM");
  expect_error([](nlohmann::json& c) { c["hidden_activation"] = "gelu"; }, "gemma2", "hidden_activation");
  expect_error([](nlohmann::json& c) { c["architectures"] = {"LlamaForCausalLM"}; }, "qwen2", "attention_bias");
  expect_error([](nlohmann::json& c) { c["rope_parameters"]["rope_type"] = "yarn"; }, "llama3", "rope_parameters");
  expect_error([](nlohmann::json& c) { c["layer_types"] = {"full_attention"}; }, "qwen2", "layer_types");
  expect_error([](nlohmann::json& c) { c["num_key_value_heads"] = 1; }, "phi3",
               "qkv_proj.weight': 128 rows, the config makes 96 = (num_attention_heads + 2·num_key_value_heads)·head_dim");
  expect_error([](nlohmann::json& c) { c["rope_parameters"]["partial_rotary_factor"] = 0.5; }, "phi3",
               "partial rotary embedding 0.5 is not supported");
}

// The families' GGUFs, written by llama.cpp's converter from the same checkpoints (tests/data/families/README.md):
// the GGUF path (its keys, Phi-3's fused tensors split, the NEOX q/k rows permuted, Gemma's norms stored as 1 + w,
// Llama 3.1's rope_freqs) must give HF's logits within the same derived tolerance — the weights are the same bf16
// values, so only rounding differs. rope_freqs holds the Llama 3 divisors as float32: θ/f then errs by u relative,
// one more u-sized RoPE stage, inside the budget as argued above. Mistral's GGUF has no sliding-window key (the
// converter writes none), so it is full attention: HF's logits with sliding_window = None on the same weights.
void expect_gguf_matches_hf(const std::string& family, const std::string& logits = "logits.npy") {
  SCOPED_TRACE(family);
  const Checkpoint ck = load_checkpoint(family_dir(family) + "/model.gguf");
  EXPECT_EQ(ck.config.source, "gguf");
  LlamaModel m(ck);
  const at::Tensor want = hf_logits(family, logits);
  const at::Tensor got = m.forward(fixture_ids(family));
  ASSERT_EQ(got.sizes(), want.sizes());
  const double err = (got - want).abs().max().item<double>(), tol = derived_tolerance(m.config(), want);
  std::printf("[ family %-8s ] GGUF: max |qeval − HF| = %.3g, derived tolerance %.3g (%.0f× margin)\n", family.c_str(),
              err, tol, tol / err);
  EXPECT_LE(err, tol) << "max |Δlogit| " << err << " > derived tolerance " << tol;
}

TEST(FamiliesGguf, Qwen2BiasesAndNeoxRows) { expect_gguf_matches_hf("qwen2"); }
TEST(FamiliesGguf, Qwen3HeadDimAndQkNorm) {
  EXPECT_EQ(load_checkpoint(family_dir("qwen3") + "/model.gguf").config.head_dim(), 32);
  expect_gguf_matches_hf("qwen3");
}
TEST(FamiliesGguf, Phi3FusedTensorsSplit) { expect_gguf_matches_hf("phi3"); }
TEST(FamiliesGguf, Gemma2SoftCapsWindowAndNorms) {
  const ModelConfig c = load_checkpoint(family_dir("gemma2") + "/model.gguf").config;
  EXPECT_EQ(c.sliding_window, 8);
  EXPECT_EQ(c.layer_sliding, (std::vector<bool>{true, false}));
  expect_gguf_matches_hf("gemma2");
}
TEST(FamiliesGguf, Llama3RopeFreqs) {
  EXPECT_EQ(load_checkpoint(family_dir("llama3") + "/model.gguf").config.rope_scaling, "freq_factors");
  expect_gguf_matches_hf("llama3");
}
TEST(FamiliesGguf, MistralWithoutWindowKey) { expect_gguf_matches_hf("mistral", "logits_no_sliding_window.npy"); }

// The GGUF and the safetensors path of a family give the same model: the same canonical tensors, bit for bit.
TEST(FamiliesGguf, BothFormatsLoadTheSameTensors) {
  for (const char* f : {"qwen2", "qwen3", "phi3", "gemma2"}) {
    SCOPED_TRACE(f);
    const Checkpoint st = load_checkpoint(family_dir(f)), gg = load_checkpoint(family_dir(f) + "/model.gguf");
    for (const auto& [name, t] : st.tensors) {
      ASSERT_EQ(gg.tensors.count(name), 1u) << name;
      EXPECT_EQ(gg.tensors.at(name).shape, t.shape) << name;
      EXPECT_TRUE(gg.tensors.at(name).data == t.data) << name;
    }
  }
}

// The quantization hooks on a family with biases: 4-bit RTN on every linear layer of Qwen2. The quantized forward
// must equal, to the fp32 tolerance above, the fp forward of a checkpoint whose weights ARE the dequantized ones
// (fake quantization = dequantize, then the fp32 product; the biases stay fp and are added after it).
TEST(Families, RtnPlanOnQwen2IsTheForwardOfTheDequantizedWeights) {
  const Checkpoint ck = load_checkpoint(family_dir("qwen2"));
  LlamaModel q(ck);
  QuantPlan plan;
  plan.weight = schemes::default_config("rtn");
  plan.weight->params.bits = 4;
  plan.weight->params.group_size = 32;
  q.apply_plan(plan);
  Checkpoint deq = ck;
  for (const std::string& name : q.linear_names()) {
    const LinearLayer& l = q.linear_layer(name);
    ASSERT_LT(l.bits_per_weight, 5.0) << name;
    EXPECT_GT(l.weight_sqnr_db, 15.0) << name;  // 4-bit g32 on Gaussian weights: ≈ 20 dB (DESIGN.md: 18.6 at g128)
    const at::Tensor e = l.effective.contiguous();
    TensorF32& t = deq.tensors[name + ".weight"];
    t.data.assign(e.data_ptr<float>(), e.data_ptr<float>() + e.numel());
  }
  LlamaModel d(deq);
  const at::Tensor ids = fixture_ids("qwen2"), a = q.forward(ids), b = d.forward(ids);
  const double tol = derived_tolerance(q.config(), b);
  EXPECT_LE((a - b).abs().max().item<double>(), tol);
  LlamaModel fp(ck);
  EXPECT_GT((a - fp.forward(ids)).abs().max().item<double>(), 100 * tol) << "the plan did not change the logits";
}

}  // namespace
}  // namespace qeval::model
