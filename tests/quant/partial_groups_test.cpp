// tests/quant/partial_groups_test.cpp — QuantParams::partial_last_group: a row whose length the group size
// does not divide (SmolLM2-135M: 576 = 4·128 + 64) gets a shorter last group — only when asked for.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "quant/params_json.hpp"
#include "quant/quantize.hpp"
#include "tests/quant/quant_test_util.hpp"

namespace qeval::quant {
namespace {

QuantParams g128_partial(Mapping m) {
  QuantParams p;
  p.bits = 4;
  p.group_size = 128;
  p.mapping = m;
  p.partial_last_group = true;
  return p;
}

// Each group, including the 64-element tail, must be quantized exactly as that slice alone with one group per
// row: an independent path through the per-row code (same formula, range from the slice only).
TEST(PartialGroups, EveryGroupEqualsItsSliceQuantizedAlone) {
  const uint64_t seed = test::quant_seed();
  const Matrix x = test::gaussian(3, 576, seed);
  for (Mapping m : {Mapping::symmetric, Mapping::asymmetric})
    for (Backend b : {Backend::ref, Backend::best}) {
      const QuantParams p = g128_partial(m);
      ASSERT_EQ(p.groups_per_row(576), 5);
      const QuantizedMatrix q = quantize_affine(x.view(), p, b);
      ASSERT_EQ(q.scales.size(), 15u);
      Matrix y(3, 576, test::sentinel());
      dequantize(q, y.mut(), b);
      for (int64_t j = 0; j < 5; ++j) {
        const int64_t c0 = j * 128, n = j < 4 ? 128 : 64;
        QuantParams row = p;
        row.group_size = kPerRow;
        row.partial_last_group = false;
        const MatrixView slice(x.data.data() + c0, 3, n, 576);
        const QuantizedMatrix qs = quantize_affine(slice, row, Backend::ref);
        Matrix ys(3, n);
        dequantize(qs, ys.mut(), Backend::ref);
        for (int64_t r = 0; r < 3; ++r) {
          EXPECT_EQ(q.scales[static_cast<size_t>(q.group_index(r, c0))], qs.scales[static_cast<size_t>(r)])
              << "group " << j << " row " << r << " seed " << seed;
          for (int64_t c = 0; c < n; ++c) ASSERT_EQ(y(r, c0 + c), ys(r, c)) << j << "," << r << "," << c;
        }
      }
    }
}

TEST(PartialGroups, RejectedUnlessAskedForWithTheFixInTheMessage) {
  QuantParams p = g128_partial(Mapping::symmetric);
  p.partial_last_group = false;
  const Matrix x = test::gaussian(2, 576, test::quant_seed());
  try {
    quantize_affine(x.view(), p);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("128"), std::string::npos) << msg;
    EXPECT_NE(msg.find("576"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--partial-groups"), std::string::npos) << msg;
  }
}

// Storage: 5 groups per 576-wide row, each with an fp16 scale (and a 4-bit zero point when asymmetric):
// bits/weight = 4 + 5·16/576 (sym) and 4 + 5·(16+4)/576 (asym), the convention of QuantizedMatrix.
TEST(PartialGroups, BitsPerWeightCountsTheShortGroup) {
  const Matrix x = test::gaussian(2, 576, test::quant_seed());
  EXPECT_DOUBLE_EQ(quantize_affine(x.view(), g128_partial(Mapping::symmetric)).bits_per_weight(), 4.0 + 5.0 * 16 / 576);
  EXPECT_DOUBLE_EQ(quantize_affine(x.view(), g128_partial(Mapping::asymmetric)).bits_per_weight(),
                   4.0 + 5.0 * 20 / 576);
}

TEST(PartialGroups, JsonRoundTripAndLabel) {
  const QuantParams p = g128_partial(Mapping::asymmetric);
  nlohmann::json j = p;
  EXPECT_EQ(j.at("partial_last_group"), true);
  EXPECT_EQ(j.get<QuantParams>(), p);
  EXPECT_NE(p.to_string().find("g128+tail"), std::string::npos) << p.to_string();
  j["partial_last_group"] = "yes";
  EXPECT_THROW(j.get<QuantParams>(), std::invalid_argument);
}

// Code books too: NF4 with blocks of 64 over 100 columns → blocks of 64 and 36, each scaled by its own absmax,
// so each block's largest magnitude is reproduced (NF4 has ±1 in its table).
TEST(PartialGroups, CodeBookFormatsUseTheShortBlocksOwnAbsmax) {
  const Matrix x = test::gaussian(4, 100, test::quant_seed());
  QuantParams p;
  p.bits = 4;
  p.group_size = 64;
  p.partial_last_group = true;
  const QuantizedMatrix q = quantize_float_format(x.view(), Format::nf4, p);
  ASSERT_EQ(q.scales.size(), 8u);
  Matrix y(4, 100);
  dequantize(q, y.mut());
  for (int64_t r = 0; r < 4; ++r) {
    float amax = 0, ymax = 0;
    for (int64_t c = 64; c < 100; ++c) {
      amax = std::fmax(amax, std::fabs(x(r, c)));
      ymax = std::fmax(ymax, std::fabs(y(r, c)));
    }
    EXPECT_NEAR(ymax, amax, 2 * amax * 1.2e-7f) << "row " << r;
  }
}

}  // namespace
}  // namespace qeval::quant
