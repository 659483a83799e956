// tests/eval/model/backend/backend_test.cpp — the model path's one backend seam (eval/model/backend/linear_backend.hpp):
// every quantized layer goes through it, and only those; an unsupported scheme/backend pair fails at plan time; the
// ref backend's products are LibTorch's, in either summation order.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>

#include "eval/model/backend/linear_backend.hpp"
#include "eval/model/backend/ref_backend.hpp"
#include "tests/eval/model/fixtures.hpp"

namespace qeval::model {
namespace {

// Wraps ref and counts what the model asks of it; optionally refuses layers with an activation scheme.
class CountingBackend final : public LinearBackend {
 public:
  explicit CountingBackend(bool refuse_activations = false) : refuse_(refuse_activations) {}
  std::string name() const override { return "counting"; }
  Support supports(const schemes::SchemeTraits* w, const schemes::SchemeTraits* a) const override {
    if (refuse_ && a) return {false, "no kernel for quantized activations"};
    return ref_->supports(w, a);
  }
  std::shared_ptr<const PreparedLinear> prepare(const QuantizedLinear& layer) const override {
    std::lock_guard<std::mutex> lock(mu_);
    ++prepared[layer.layer];
    if (layer.weight_scheme) {
      EXPECT_NE(layer.codes, nullptr) << layer.layer << ": a weight scheme's codes";
    }
    return ref_->prepare(layer);
  }
  void linear(const PreparedLinear& p, quant::MatrixView x, quant::MutableMatrixView y,
              const LinearCall& call) const override {
    ++calls;
    ref_->linear(p, x, y, call);
  }
  mutable std::map<std::string, int> prepared;
  mutable std::atomic<int> calls{0};

 private:
  bool refuse_;
  std::shared_ptr<const LinearBackend> ref_ = make_linear_backend("ref");
  mutable std::mutex mu_;
};

at::Tensor randn(int64_t r, int64_t c, uint64_t seed) {
  Rng rng(seed);
  at::Tensor t = at::empty({r, c}, at::kFloat);
  for (int64_t i = 0; i < r * c; ++i) t.data_ptr<float>()[i] = static_cast<float>(rng.normal());
  return t;
}

TEST(RefBackend, ProductsAreLibTorchsInEitherOrder) {
  for (int64_t in : {24, 64, 100}) {
    const at::Tensor x = randn(7, in, 1), w = randn(5, in, 2);
    at::Tensor y = at::empty({7, 5}, at::kFloat);
    matmul_t_out(y, x, w, Reassociation::native);
    EXPECT_TRUE(at::equal(y, at::mm(x, w.t()))) << in;
    EXPECT_TRUE(at::equal(matmul_t(x, w, Reassociation::native), at::mm(x, w.t()))) << in;
    // split_k: two halves cut at ⌊in/2⌋ rounded down to a multiple of 16 (none below 32 columns).
    const int64_t h = in < 32 ? in : (in / 2) / 16 * 16;
    at::Tensor want = at::mm(x.slice(1, 0, h), w.slice(1, 0, h).t());
    if (h < in) want.add_(at::mm(x.slice(1, h, in), w.slice(1, h, in).t()));
    matmul_t_out(y, x, w, Reassociation::split_k);
    EXPECT_TRUE(at::equal(y, want)) << in;
    EXPECT_TRUE(at::equal(matmul_t(x, w, Reassociation::split_k), want)) << in;
  }
}

TEST(BackendRegistry, NamesAndErrors) {
  EXPECT_EQ(make_linear_backend("ref")->name(), "ref");
  const auto names = linear_backend_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "ref"), names.end());
  try {
    make_linear_backend("cuda");
    FAIL() << "no error for an unknown backend";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'cuda'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("ref"), std::string::npos) << e.what();
  }
}

// A plan with weights, activations, a whole-linear scheme and an fp layer: every quantized layer is prepared once and
// called once per forward through the seam; the fp head never is; and the logits equal the default backend's.
TEST(Seam, EveryQuantizedLayerAndOnlyThoseGoThroughTheBackend) {
  const Checkpoint ck = load_checkpoint(kTiny);
  QuantPlan plan;
  plan.weight = cfg("rtn", 4, 32);
  LayerOverride act;
  act.pattern = "blk.*.ffn_*";
  act.activation = cfg("dynamic_per_token", 8, 0, {{"threshold", "0"}});
  LayerOverride lin;
  lin.pattern = "blk.1.ffn_down";
  lin.weight = cfg("llm_int8", 8, 0);
  lin.skip_activation = true;
  plan.overrides = {act, lin, skip("output")};
  auto counting = std::make_shared<CountingBackend>();
  LlamaModel m(ck), ref(ck);
  m.set_backend(counting);
  const QuantizedModel qm = quantize_model(m, plan, nullptr, quiet());
  const QuantizedModel qr = quantize_model(ref, plan, nullptr, quiet());
  EXPECT_EQ(m.backend().name(), "counting");
  EXPECT_EQ(counting->prepared.size(), qm.layers.size());
  for (const auto& l : qm.layers) EXPECT_EQ(counting->prepared[l.layer], 1) << l.layer;
  EXPECT_EQ(counting->prepared.count("output"), 0u);
  const at::Tensor t = toks(2, 24, 101, 9);
  const at::Tensor y = m.forward(t);
  EXPECT_EQ(counting->calls.load(), static_cast<int>(qm.layers.size()));
  EXPECT_TRUE(at::equal(y, ref.forward(t)));
  EXPECT_EQ(qm.fingerprint_json(), qr.fingerprint_json());
}

TEST(Seam, AnUnsupportedPairFailsAtPlanTimeNamingItAndWhoRunsIt) {
  LlamaModel m(mha_config(), 51);
  auto refusing = std::make_shared<CountingBackend>(/*refuse_activations=*/true);
  m.set_backend(refusing);
  QuantPlan plan;
  plan.weight = cfg("rtn", 4, 32);
  LayerOverride act;
  act.pattern = "blk.1.attn_q";
  act.activation = cfg("dynamic_per_token", 8, 0);
  plan.overrides = {act};
  try {
    quantize_model(m, plan, nullptr, quiet());
    FAIL() << "no error for an unsupported pair";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    for (const char* part : {"backend 'counting'", "blk.1.attn_q", "dynamic_per_token", "no kernel for quantized",
                             "backends that run it: ref"})
      EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' missing in: " << msg;
  }
  EXPECT_TRUE(refusing->prepared.empty()) << "nothing quantized before the error";
  EXPECT_THROW(m.apply_plan(plan), std::invalid_argument);
  EXPECT_TRUE(refusing->prepared.empty());
}

TEST(Seam, TheBackendIsChosenBeforeQuantizing) {
  LlamaModel m(mha_config(), 52);
  EXPECT_THROW(m.set_backend(nullptr), std::invalid_argument);
  QuantPlan plan;
  plan.weight = cfg("rtn", 8, 0);
  m.apply_plan(plan);
  EXPECT_THROW(m.set_backend(make_linear_backend("ref")), std::invalid_argument);
  m.clear_plan();
  EXPECT_NO_THROW(m.set_backend(make_linear_backend("ref")));
  // A layer without quantization has no backend form.
  c10::InferenceMode im;
  EXPECT_THROW(m.quantized_product(m.linear_layer("output"), randn(2, 64, 3)), std::invalid_argument);
}

}  // namespace
}  // namespace qeval::model
