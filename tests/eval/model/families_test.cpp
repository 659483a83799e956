// tests/eval/model/families_test.cpp — the family forwards (Qwen2, Mistral, Llama 3, Qwen3, Phi-3, Gemma 2/3, Mixtral, Qwen2-MoE), from safetensors and (the dense ones) from GGUF, against Hugging Face's fp32 logits.
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
// Mixture of experts (Mixtral, Qwen2-MoE): 3 more stages per layer (router product, softmax/top-k weights, the
// weighted sum over experts; Qwen2-MoE + 1 for the shared expert's sigmoid gate), K = the longest reduction the
// MoE layers actually make (d_model 64; intermediate_size feeds no layer in Qwen2-MoE). This holds only while
// routing is the same on both sides: a top-k choice decided by less than the error would flip an expert, so the
// test first checks every token's gap between its k-th and (k+1)-th router probability exceeds twice the derived
// bound on a router logit's error (max |Δp| ≤ max |Δz| for a softmax; the bound is the same S·u·√K·max|z|).
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
#include "tests/eval/model/test_util.hpp"

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
  const int64_t ff = c.is_moe() ? std::max(c.d_ff_expert, c.d_ff_shared) : c.d_ff;
  const double u = std::ldexp(1.0, -24), K = static_cast<double>(std::max({c.d_model, ff, c.head_dim(), int64_t{24}}));
  // Gemma 2: two more norms per layer and the final soft-cap (tanh' ≤ 1: soft-capping does not amplify an error).
  const double moe = c.is_moe() ? 3.0 + (c.d_ff_shared > 0 ? 1.0 : 0.0) : 0.0;
  const double per_layer = 11.0 + (c.post_norms ? 2.0 : 0.0) + moe,
               S = per_layer * static_cast<double>(c.n_layers) + 2.0 + (c.final_softcap > 0 ? 1.0 : 0.0);
  return S * u * std::sqrt(K) * ref.abs().max().item<double>();
}

// The forward of `ck` on the family's fixture ids against HF's logits in `logits`, within the derived tolerance.
void expect_checkpoint_matches_hf(const std::string& family, const Checkpoint& ck, const std::string& logits,
                                  const char* format) {
  SCOPED_TRACE(family + " " + format);
  LlamaModel m(ck);
  const at::Tensor want = hf_logits(family, logits);
  const at::Tensor got = m.forward(fixture_ids(family));
  ASSERT_EQ(got.sizes(), want.sizes());
  const double err = (got - want).abs().max().item<double>(), tol = derived_tolerance(m.config(), want);
  std::printf("[ family %-8s ] %s: max |qeval − HF| = %.3g, derived tolerance %.3g (%.0f× margin)\n", family.c_str(),
              format, err, tol, tol / err);
  EXPECT_LE(err, tol) << "max |Δlogit| " << err << " > derived tolerance " << tol;
}

void expect_matches_hf(const std::string& family) {
  expect_checkpoint_matches_hf(family, load_checkpoint(family_dir(family)), "logits.npy", "safetensors");
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
TEST(Families, Gemma3LocalGlobalRopeMatchesHf) {
  const ModelConfig c = load_checkpoint(family_dir("gemma3")).config;
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_theta_local, 1e4);
  EXPECT_TRUE(c.attn_qk_norm);
  expect_matches_hf("gemma3");
  // One base (1e6) on both layers moves HF's logits by 1.24 (manifest feature_off_effects): so must it move qeval's.
  Checkpoint one_base = load_checkpoint(family_dir("gemma3"));
  one_base.config.rope_theta_local = 0;
  LlamaModel m(one_base);
  EXPECT_GT((m.forward(fixture_ids("gemma3")) - hf_logits("gemma3")).abs().max().item<double>(), 0.1);
}

// Gemma 3 before transformers 5: rope_theta (global) + rope_local_base_freq (sliding), no per-type rope_parameters;
// the same config, bit-identical logits.
TEST(Families, Gemma3OlderRopeLayoutGivesTheSameLogits) {
  test::TempDir tmp;
  std::filesystem::copy_file(family_dir("gemma3") + "/model.safetensors", tmp.path() + "/model.safetensors");
  nlohmann::json cfg = test::read_json(family_dir("gemma3") + "/config.json");
  cfg["rope_theta"] = cfg["rope_parameters"]["full_attention"]["rope_theta"];
  cfg["rope_local_base_freq"] = cfg["rope_parameters"]["sliding_attention"]["rope_theta"];
  cfg.erase("rope_parameters");
  std::ofstream(tmp.path() + "/config.json") << cfg.dump();
  LlamaModel a(load_checkpoint(family_dir("gemma3"))), b(load_checkpoint(tmp.path()));
  EXPECT_EQ(b.config().rope_theta_local, 1e4);
  EXPECT_TRUE(at::equal(a.forward(fixture_ids("gemma3")), b.forward(fixture_ids("gemma3"))));
  // Real Gemma 3 checkpoints scale the global base linearly (factor 8): read from the older rope_scaling too.
  cfg["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  std::ofstream(tmp.path() + "/config.json") << cfg.dump();
  const ModelConfig c = load_checkpoint(tmp.path()).config;
  EXPECT_EQ(c.rope_scaling, "linear");
  EXPECT_EQ(c.rope_factor, 8.0);
}

// The smallest router margin p_k − p_(k+1) (k = top-k, p the router's softmax) over the fixture's tokens and layers,
// from each layer's FFN input: the inputs captured at every expert's gate, which together cover every token. Also
// the router logits' max |z|: a logit errs by at most the derived bound on it (softmax moves p by ≤ max |Δz|).
std::pair<double, double> min_router_margin(LlamaModel& m, const Checkpoint& ck, const at::Tensor& ids) {
  double margin = 1.0, zmax = 0.0;
  const int64_t k = m.config().n_experts_used;
  CaptureOptions o;
  o.layers = {"blk.*.ffn_gate.*"};
  o.hessian = false;
  CalibrationCapture cap(o);
  m.set_capture(&cap);
  m.forward(ids);
  m.set_capture(nullptr);
  for (const std::string& name : cap.layers()) {
    const std::string block = name.substr(0, name.find(".ffn_gate"));
    const TensorF32& r = ck.tensors.at(block + ".ffn_gate_inp.weight");
    const at::Tensor router = at::from_blob(const_cast<float*>(r.data.data()), {r.shape[0], r.shape[1]}, at::kFloat);
    const schemes::Calibration c = cap.calibration(name);
    const at::Tensor x = at::from_blob(const_cast<float*>(c.inputs.data), {c.inputs.rows, c.inputs.cols}, at::kFloat);
    const at::Tensor z = at::matmul(x, router.t());
    const at::Tensor top = std::get<0>(at::topk(at::softmax(z, -1), k + 1, -1));
    margin = std::min(margin, (top.select(1, k - 1) - top.select(1, k)).min().item<double>());
    zmax = std::max(zmax, z.abs().max().item<double>());
  }
  return {margin, zmax};
}

// HF's per-expert token counts on the fixture ids (manifest expert_usage_per_layer, counted by the fixture script
// from transformers' router) equal qeval's: the rows each expert's gate layer saw. They sum to 48 tokens × top-k.
void expect_hf_routing(const std::string& family) {
  const Checkpoint ck = load_checkpoint(family_dir(family));
  LlamaModel m(ck);
  const at::Tensor ids = fixture_ids(family);
  const auto [margin, zmax] = min_router_margin(m, ck, ids);
  const double z_tol = derived_tolerance(m.config(), at::full({1}, zmax));
  std::printf("[ family %-8s ] smallest router margin %.3g, router logit error bound %.3g\n", family.c_str(), margin,
              z_tol);
  EXPECT_GT(margin, 2 * z_tol) << "routing too close to a tie to compare with HF";
  CaptureOptions o;
  o.layers = {"blk.*.ffn_gate.*"};
  o.hessian = false;
  CalibrationCapture cap(o);
  m.set_capture(&cap);
  m.forward(ids);
  const auto& usage = manifest()["families"][family]["measured"]["expert_usage_per_layer"];
  ASSERT_EQ(usage.size(), static_cast<size_t>(m.config().n_layers));
  for (int64_t l = 0; l < m.config().n_layers; ++l) {
    int64_t sum = 0;
    for (int64_t e = 0; e < m.config().n_experts; ++e) {
      const std::string name = "blk." + std::to_string(l) + ".ffn_gate." + std::to_string(e);
      EXPECT_EQ(cap.rows_seen(name), usage[static_cast<size_t>(l)][static_cast<size_t>(e)].get<int64_t>()) << name;
      sum += cap.rows_seen(name);
    }
    EXPECT_EQ(sum, ids.numel() * m.config().n_experts_used) << "layer " << l;
  }
}

TEST(Families, MixtralTop2MatchesHf) {
  const ModelConfig c = load_checkpoint(family_dir("mixtral")).config;
  EXPECT_EQ(c.n_experts, 4);
  EXPECT_EQ(c.n_experts_used, 2);
  EXPECT_TRUE(c.expert_norm_topk);
  expect_hf_routing("mixtral");
  expect_matches_hf("mixtral");
}

TEST(Families, Qwen2MoeSharedExpertMatchesHf) {
  const ModelConfig c = load_checkpoint(family_dir("qwen2moe")).config;
  EXPECT_EQ(c.d_ff_shared, 64);
  EXPECT_FALSE(c.expert_norm_topk);
  expect_hf_routing("qwen2moe");
  expect_matches_hf("qwen2moe");
}

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
  expect_error([](nlohmann::json& c) { c["architectures"] = {"Gemma3ForConditionalGeneration"}; }, "qwen2",
               "supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Phi3ForCausalLM, "
               "Gemma2ForCausalLM, Gemma3ForCausalLM, MixtralForCausalLM, Qwen2MoeForCausalLM");
  expect_error([](nlohmann::json& c) { c["rope_parameters"]["sliding_attention"]["rope_type"] = "linear"; }, "gemma3",
               "config['rope_parameters']['sliding_attention']['rope_type']");
  expect_error([](nlohmann::json& c) { c["hidden_activation"] = "gelu"; }, "gemma2", "hidden_activation");
  expect_error([](nlohmann::json& c) { c["architectures"] = {"LlamaForCausalLM"}; }, "qwen2", "attention_bias");
  expect_error([](nlohmann::json& c) { c["rope_parameters"]["rope_type"] = "yarn"; }, "llama3", "rope_parameters");
  expect_error([](nlohmann::json& c) { c["layer_types"] = {"full_attention"}; }, "qwen2", "layer_types");
  expect_error([](nlohmann::json& c) { c["num_key_value_heads"] = 1; }, "phi3",
               "qkv_proj.weight': 128 rows, the config makes 96 = (num_attention_heads + 2·num_key_value_heads)·head_dim");
  expect_error([](nlohmann::json& c) { c["rope_parameters"]["partial_rotary_factor"] = 0.5; }, "phi3",
               "partial rotary embedding 0.5 is not supported");
  // Mixture of experts: an expert count that disagrees with the weights names the field, either way.
  expect_error([](nlohmann::json& c) { c["num_local_experts"] = 3; }, "mixtral",
               "config['num_local_experts']: 3 experts, but the weights hold model.layers.0.block_sparse_moe.experts.3");
  expect_error([](nlohmann::json& c) { c["num_local_experts"] = 5; }, "mixtral",
               "expected [5, 64] = [num_local_experts, hidden_size]");
  expect_error([](nlohmann::json& c) { c["num_experts"] = 2; }, "qwen2moe", "config['num_experts']: 2 experts");
  expect_error([](nlohmann::json& c) { c["num_experts_per_tok"] = 5; }, "mixtral", "num_experts_per_tok");
  expect_error([](nlohmann::json& c) { c["moe_intermediate_size"] = 16; }, "qwen2moe", "moe_intermediate_size");
  expect_error([](nlohmann::json& c) { c["shared_expert_intermediate_size"] = 32; }, "qwen2moe",
               "shared_expert_intermediate_size");
  expect_error([](nlohmann::json& c) { c["mlp_only_layers"] = {0}; }, "qwen2moe", "mlp_only_layers");
}

// The families' GGUFs, written by llama.cpp's converter from the same checkpoints (tests/data/families/README.md):
// the GGUF path (its keys, Phi-3's fused tensors split, the NEOX q/k rows permuted, Gemma's norms stored as 1 + w,
// Llama 3.1's rope_freqs) must give HF's logits within the same derived tolerance — the weights are the same bf16
// values, so only rounding differs. rope_freqs holds the Llama 3 divisors as float32: θ/f then errs by u relative,
// one more u-sized RoPE stage, inside the budget as argued above. Mistral's GGUF has no sliding-window key (the
// converter writes none), so it is full attention: HF's logits with sliding_window = None on the same weights.
void expect_gguf_matches_hf(const std::string& family, const std::string& logits = "logits.npy") {
  const Checkpoint ck = load_checkpoint(family_dir(family) + "/model.gguf");
  EXPECT_EQ(ck.config.source, "gguf");
  expect_checkpoint_matches_hf(family, ck, logits, "GGUF");
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

// Every canonical tensor of `st` is in `gg`, with the same shape and values, bit for bit.
void expect_same_tensors(const Checkpoint& st, const Checkpoint& gg) {
  for (const auto& [name, t] : st.tensors) {
    ASSERT_EQ(gg.tensors.count(name), 1u) << name;
    EXPECT_EQ(gg.tensors.at(name).shape, t.shape) << name;
    EXPECT_TRUE(gg.tensors.at(name).data == t.data) << name;
  }
}

// Gemma 3's GGUF: q/k norms and every norm as 1 + w, NEOX rows, rope.freq_base 1e6 (global) and
// rope.freq_base_swa 1e4 (local), window 8. The converter writes no sliding_window_pattern, so the file means
// llama.cpp's default pattern 6 — layer i slides when i mod 6 < 5, both layers here — and the forward that follows
// it matches HF's logits with both layers sliding on the same weights (logits_both_sliding.npy), not logits.npy.
TEST(FamiliesGguf, Gemma3LocalRopeBaseAndPattern) {
  const Checkpoint gg = load_checkpoint(family_dir("gemma3") + "/model.gguf");
  EXPECT_EQ(gg.config.rope_theta, 1e6);
  EXPECT_EQ(gg.config.rope_theta_local, 1e4);
  EXPECT_EQ(gg.config.sliding_window, 8);
  EXPECT_EQ(gg.config.layer_sliding, (std::vector<bool>{true, true}));
  EXPECT_TRUE(gg.config.attn_qk_norm);
  expect_same_tensors(load_checkpoint(family_dir("gemma3")), gg);
  expect_gguf_matches_hf("gemma3", "logits_both_sliding.npy");
}

// The GGUF and the safetensors path of a family give the same model: the same canonical tensors, bit for bit.
TEST(FamiliesGguf, BothFormatsLoadTheSameTensors) {
  for (const char* f : {"qwen2", "qwen3", "phi3", "gemma2"}) {
    SCOPED_TRACE(f);
    expect_same_tensors(load_checkpoint(family_dir(f)), load_checkpoint(family_dir(f) + "/model.gguf"));
  }
}

// Mixtral's GGUF is architecture 'llama' with llama.expert_count 4, expert_used_count 2 and the experts stacked
// as blk.N.ffn_{gate,up,down}_exps [4, rows, cols]: split per expert, they are the safetensors path's per-expert
// layers (same names, same bf16 values), and the logits are HF's within the families' tolerance.
TEST(FamiliesGguf, MixtralStackedExpertsSplit) {
  const Checkpoint gg = load_checkpoint(family_dir("mixtral") + "/model.gguf");
  EXPECT_EQ(gg.config.n_experts, 4);
  EXPECT_EQ(gg.config.n_experts_used, 2);
  EXPECT_TRUE(gg.config.expert_norm_topk);  // llama.cpp's llama graph renormalises the top-k, as HF's Mixtral
  EXPECT_EQ(gg.tensors.count("blk.0.ffn_gate_exps.weight"), 0u);
  expect_same_tensors(load_checkpoint(family_dir("mixtral")), gg);
  expect_gguf_matches_hf("mixtral");
}

// A quantized stack dequantizes expert by expert: the converter's Q8_0 of the same Mixtral (model-q8_0.gguf) gives,
// for every expert matrix, the bf16 GGUF's values within Q8_0's error. Q8_0 (gguf-py's quantize, as ggml's
// quantize_row_q8_0_ref): per block of 32 consecutive values of a row, d = amax/127, q = round(x/d), d stored as
// fp16. |x − q·fp16(d)| ≤ |x − q·d| + |q|·|d − fp16(d)| ≤ d/2 + 127·d·2⁻¹¹ (fp16 rounds to nearest, relative error
// ≤ 2⁻¹¹ for d in fp16's normal range; these weights have amax ≈ 0.3, d ≈ 2.4e-3 ≫ 6.1e-5). fp32 arithmetic in
// x·(1/d) adds ≤ 2 ulps of |q| ≤ 127, i.e. ≤ 2⁻¹⁶·d: the bound below is d·(0.5 + 127·2⁻¹¹ + 2⁻¹⁶).
TEST(FamiliesGguf, MixtralQ8ExpertsDequantizePerExpert) {
  const Checkpoint q8 = load_checkpoint(family_dir("mixtral") + "/model-q8_0.gguf");
  const Checkpoint bf = load_checkpoint(family_dir("mixtral") + "/model.gguf");
  int checked = 0;
  double worst = 0;  // largest error as a fraction of its block's bound
  for (int64_t i = 0; i < q8.config.n_layers; ++i)
    for (int64_t e = 0; e < q8.config.n_experts; ++e)
      for (const char* m : {"ffn_gate", "ffn_up", "ffn_down"}) {
        const std::string name = "blk." + std::to_string(i) + "." + m + "." + std::to_string(e) + ".weight";
        const TensorF32 &q = q8.tensors.at(name), &w = bf.tensors.at(name);
        ASSERT_EQ(q.orig_type, "Q8_0") << name;
        ASSERT_EQ(q.shape, w.shape) << name;
        for (size_t b = 0; b < w.data.size(); b += 32) {
          float amax = 0;
          for (size_t k = b; k < b + 32; ++k) amax = std::max(amax, std::fabs(w.data[k]));
          const double bound = amax / 127.0 * (0.5 + 127.0 / 2048 + 1.0 / 65536);
          for (size_t k = b; k < b + 32; ++k) {
            const double err = std::fabs(static_cast<double>(q.data[k]) - w.data[k]);
            ASSERT_LE(err, bound) << name << " element " << k;
            worst = std::max(worst, err / bound);
          }
        }
        ++checked;
      }
  EXPECT_EQ(checked, 2 * 4 * 3);
  EXPECT_GT(worst, 0.5);  // the file is really quantized: some error reaches past half its bound
  std::printf("[ family mixtral  ] Q8_0 experts: largest error %.3g of its block's derived bound\n", worst);
}

// Qwen2-MoE's GGUF (qwen2moe): NEOX q/k rows with biases, expert_feed_forward_length 32, the shared expert
// (expert_shared_feed_forward_length 64, ffn_gate_inp_shexp [1, 64]); the converter writes no norm_topk_prob and
// llama.cpp's qwen2moe graph does not renormalise — the fixture's norm_topk_prob is false, so HF's logits apply.
TEST(FamiliesGguf, Qwen2MoeSharedExpert) {
  const Checkpoint gg = load_checkpoint(family_dir("qwen2moe") + "/model.gguf");
  EXPECT_EQ(gg.config.d_ff_expert, 32);
  EXPECT_EQ(gg.config.d_ff_shared, 64);
  EXPECT_FALSE(gg.config.expert_norm_topk);
  expect_same_tensors(load_checkpoint(family_dir("qwen2moe")), gg);
  expect_gguf_matches_hf("qwen2moe");
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
    const at::Tensor e = l.effective_weight().contiguous();
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
