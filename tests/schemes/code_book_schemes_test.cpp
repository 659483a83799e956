// tests/schemes/code_book_schemes_test.cpp — fp4 (both code books), nf4 and fp8 schemes: option
// handling, and that each scheme's output lies on its own code book times the group scale.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "quant/quantize.hpp"
#include "quant/rng.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {
namespace {

constexpr uint64_t kSeed = 0xc0deb00c;

quant::Matrix gaussian(int64_t rows, int64_t cols) {
  Rng rng(kSeed);
  quant::Matrix m(rows, cols);
  for (auto& v : m.data) v = static_cast<float>(rng.normal());
  return m;
}

std::unique_ptr<Scheme> make(const std::string& id, std::map<std::string, std::string> opts = {}) {
  SchemeConfig cfg = default_config(id);
  cfg.options = Options(std::move(opts));
  return make_scheme(cfg);
}

// A 4-bit code book has 16 codes; per group, the dequantized values divided by the group scale take
// at most 16 distinct values, and the e2m1 and bnb books give different sets (the ITREX mix-up).
TEST(Fp4Scheme, EachCodeBookGivesItsOwnLevels) {
  const quant::Matrix x = gaussian(4, 64);  // one group of 64 per row (default group size)
  std::set<float> levels[2];
  int i = 0;
  for (const char* book : {"e2m1", "bnb"}) {
    auto s = make("fp4", {{"codebook", book}});
    const quant::QuantizedMatrix q = s->quantize(x.view(), nullptr);
    EXPECT_EQ(q.format, std::string(book) == "bnb" ? quant::Format::fp4_bnb : quant::Format::fp4_e2m1);
    quant::Matrix y(4, 64);
    s->dequantize(q, y.mut());
    for (int64_t c = 0; c < 64; ++c) levels[i].insert(y(0, c) / q.scales[0]);
    EXPECT_LE(levels[i].size(), 16u);
    ++i;
  }
  EXPECT_NE(levels[0], levels[1]);
}

TEST(CodeBookSchemes, RejectWrongBitsMappingAndOptions) {
  SchemeConfig a = default_config("fp4");
  a.params.bits = 8;
  EXPECT_THROW(make_scheme(a), std::invalid_argument);
  SchemeConfig b = default_config("nf4");
  b.params.mapping = quant::Mapping::asymmetric;
  EXPECT_THROW(make_scheme(b), std::invalid_argument);
  EXPECT_THROW(make("fp4", {{"codebook", "e3m0"}}), std::invalid_argument);
  EXPECT_THROW(make("fp8", {{"format", "e3m4"}}), std::invalid_argument);
  SchemeConfig c = default_config("fp8");
  c.params.bits = 4;
  EXPECT_THROW(make_scheme(c), std::invalid_argument);
}

// e5m2 trades mantissa for range: on N(0,1) per-row scaled data e4m3 (3 mantissa bits) is more
// accurate than e5m2 (2 mantissa bits): relative step 2^-3 vs 2^-2, i.e. ≈ 6 dB apart; we require 3 dB.
TEST(Fp8Scheme, E4m3BeatsE5m2OnGaussianData) {
  const quant::Matrix x = gaussian(32, 256);
  auto err = [&](const char* fmt) {
    auto s = make("fp8", {{"format", fmt}});
    quant::Matrix y(32, 256);
    s->fake_quantize(x.view(), y.mut(), nullptr);
    double sig = 0, e = 0;
    for (size_t i = 0; i < x.data.size(); ++i) {
      sig += double(x.data[i]) * x.data[i];
      e += (double(x.data[i]) - y.data[i]) * (double(x.data[i]) - y.data[i]);
    }
    return 10 * std::log10(sig / e);
  };
  EXPECT_GT(err("e4m3") - err("e5m2"), 3.0);
}

}  // namespace
}  // namespace qeval::schemes
