// tests/schemes/dynamic_per_token_test.cpp — OpenVINO semantics of dynamic activation quantization:
// token threshold, per-token scales, grouping along the innermost axis, and the ov_group_size knob.
#include <gtest/gtest.h>

#include <cmath>

#include "quant/quantize.hpp"
#include "quant/rng.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {
namespace {

constexpr uint64_t kSeed = 0xd7a;

quant::Matrix activations(int64_t tokens, int64_t features, uint64_t seed) {
  Rng rng(seed);
  quant::Matrix m(tokens, features);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t f = 0; f < features; ++f)
      m(t, f) = static_cast<float>(rng.normal() * (1.0 + t));  // every token a different scale
  return m;
}

std::unique_ptr<Scheme> dpt(std::map<std::string, std::string> opts = {}, int64_t group = 0) {
  SchemeConfig cfg = default_config("dynamic_per_token");
  cfg.params.group_size = group;
  cfg.options = Options(std::move(opts));
  return make_scheme(cfg);
}

// OpenVINO quantizes only when tokens > threshold (64): 64 tokens pass through bit for bit, 65 do not.
TEST(DynamicPerToken, AppliesOnlyAboveTheTokenThreshold) {
  auto s = dpt();
  for (int64_t tokens : {1, 16, 64, 65, 128}) {
    const quant::Matrix x = activations(tokens, 128, kSeed);
    quant::Matrix y(tokens, 128);
    s->fake_quantize(x.view(), y.mut(), nullptr);
    const bool unchanged = (x.data == y.data);
    EXPECT_EQ(unchanged, tokens <= 64) << "tokens " << tokens;
  }
  auto s0 = dpt({{"threshold", "0"}});
  const quant::Matrix x = activations(1, 128, kSeed);
  quant::Matrix y(1, 128);
  s0->fake_quantize(x.view(), y.mut(), nullptr);
  EXPECT_NE(x.data, y.data) << "threshold 0 must quantize a single token";
}

// Per token: each token's own absmax maps to code 127, so every token's max |x| is reproduced exactly
// (127·(amax/127) rounds back to amax within one float rounding, ≤ 0.5 ulp·2 — we allow 2 ulp) and
// a token 100× larger than another does not degrade the small one.
TEST(DynamicPerToken, PerTokenScalesFollowEachToken) {
  auto s = dpt();
  const quant::Matrix x = activations(100, 256, kSeed);
  quant::Matrix y(100, 256);
  s->fake_quantize(x.view(), y.mut(), nullptr);
  for (int64_t t = 0; t < x.rows; ++t) {
    float amax = 0, ymax = 0;
    for (int64_t f = 0; f < x.cols; ++f) {
      amax = std::fmax(amax, std::fabs(x(t, f)));
      ymax = std::fmax(ymax, std::fabs(y(t, f)));
    }
    EXPECT_NEAR(ymax, amax, 2 * amax * std::numeric_limits<float>::epsilon()) << "token " << t;
    // Unclipped elements are within half a step: s = amax/127.
    for (int64_t f = 0; f < x.cols; ++f)
      ASSERT_LE(std::fabs(x(t, f) - y(t, f)), (amax / 127.0f) / 2 * (1 + 1e-4)) << t << "," << f;
  }
}

// Grouping along the innermost axis equals quantizing with that group size.
TEST(DynamicPerToken, GroupsAlongTheInnermostAxis) {
  const quant::Matrix x = activations(80, 256, kSeed);
  quant::QuantParams p;
  p.bits = 8;
  p.group_size = 32;
  quant::Matrix want(80, 256), got(80, 256), via_ov(80, 256);
  quant::fake_quantize_affine(x.view(), p, want.mut(), quant::Backend::ref);
  dpt({}, 32)->fake_quantize(x.view(), got.mut(), nullptr);
  dpt({{"ov_group_size", "32"}})->fake_quantize(x.view(), via_ov.mut(), nullptr);
  EXPECT_EQ(want.data, got.data);
  EXPECT_EQ(want.data, via_ov.data);
}

// OpenVINO's dynamic_quantization_group_size = 0 disables dynamic quantization.
TEST(DynamicPerToken, OvGroupSizeZeroDisables) {
  const quant::Matrix x = activations(128, 64, kSeed);
  quant::Matrix y(128, 64);
  dpt({{"ov_group_size", "0"}})->fake_quantize(x.view(), y.mut(), nullptr);
  EXPECT_EQ(x.data, y.data);
  quant::Matrix z(128, 64);
  dpt({{"ov_group_size", "per_token"}})->fake_quantize(x.view(), z.mut(), nullptr);
  EXPECT_NE(x.data, z.data);
}

TEST(DynamicPerToken, RejectsBadOptions) {
  EXPECT_THROW(dpt({{"threshold", "-1"}}), std::invalid_argument);
  EXPECT_THROW(dpt({{"ov_group_size", "-4"}}), std::invalid_argument);
  EXPECT_THROW(dpt({{"ov_group_size", "lots"}}), std::invalid_argument);
  EXPECT_THROW(dpt({}, quant::kPerTensor), std::invalid_argument);
}

// In-place use (out aliases in), as the model hooks do.
TEST(DynamicPerToken, InPlaceEqualsOutOfPlace) {
  quant::Matrix x = activations(96, 128, kSeed);
  quant::Matrix y(96, 128);
  auto s = dpt();
  s->fake_quantize(x.view(), y.mut(), nullptr);
  s->fake_quantize(x.view(), x.mut(), nullptr);
  EXPECT_EQ(x.data, y.data);
}

}  // namespace
}  // namespace qeval::schemes
