// tests/quant/float_formats_test.cpp — FP4 (OCP e2m1 and bitsandbytes books), NF4, FP8 e4m3/e5m2, fp16 codecs and
// the per-group code-book quantizer: published values, round trips, ties, saturation, the ITREX book mix-up.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "quant/float_formats.hpp"
#include "quant/layouts.h"
#include "quant/pack.hpp"
#include "quant/quantize.hpp"
#include "quant_test_util.hpp"

namespace qeval::quant {
namespace {

const Format kBooks[] = {Format::fp4_e2m1, Format::fp4_bnb, Format::nf4, Format::fp8_e4m3, Format::fp8_e5m2};

// ---- published tables -------------------------------------------------------------------------

// E2M1 from its bit fields (OCP MX v1.0): S EE M, bias 1; E = 0 → subnormal M·0.5; else 2^(E−1)·(1 + M/2).
TEST(Fp4E2m1, ValuesFromBitFields) {
  for (int u = 0; u < 16; ++u) {
    const int s = u >> 3, e = (u >> 1) & 3, m = u & 1;
    const double mag = e == 0 ? 0.5 * m : std::ldexp(1.0 + 0.5 * m, e - 1);
    const float v = fp4_e2m1_decode(static_cast<uint8_t>(u));
    EXPECT_EQ(v, static_cast<float>(s ? -mag : mag)) << "code " << u;
    EXPECT_EQ(std::signbit(v), s == 1) << "code " << u;
  }
  EXPECT_EQ(format_max(Format::fp4_e2m1), 6.0f);
}

// bitsandbytes get_4bit_type("fp4"): [0, 0.0625, 8, 12, 4, 6, 2, 3, −0, −0.0625, −8, −12, −4, −6, −2, −3] / 12.
TEST(Fp4Bnb, ValuesAreThePublishedTable) {
  const double data[16] = {0, 0.0625, 8, 12, 4, 6, 2, 3, -0.0, -0.0625, -8, -12, -4, -6, -2, -3};
  for (int u = 0; u < 16; ++u) {
    EXPECT_EQ(fp4_bnb_decode(static_cast<uint8_t>(u)), static_cast<float>(data[u] / 12.0)) << "code " << u;
    EXPECT_EQ(std::signbit(fp4_bnb_decode(static_cast<uint8_t>(u))), u >= 8) << "code " << u;
  }
  EXPECT_EQ(format_max(Format::fp4_bnb), 1.0f);
}

// QLoRA Appendix E / bitsandbytes get_4bit_type("nf4").
TEST(Nf4, ValuesAreThePublishedTable) {
  const double nf4[16] = {-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                          -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                          0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                          0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0};
  for (int u = 0; u < 16; ++u) EXPECT_EQ(static_cast<double>(nf4_decode(static_cast<uint8_t>(u))), nf4[u]) << u;
}

// ---- round trips and the two FP4 books --------------------------------------------------------

// Each 4-bit book: every one of its 16 codes decodes and re-encodes to itself through its own encoder,
// and survives the 4-bit packer (two codes per byte, low nibble first).
TEST(Fp4Books, EveryCodeRoundTripsThroughItsOwnCodec) {
  for (Format f : {Format::fp4_e2m1, Format::fp4_bnb, Format::nf4}) {
    std::vector<uint8_t> codes(16);
    for (int u = 0; u < 16; ++u) {
      const float v = decode_code(f, static_cast<uint8_t>(u));
      codes[static_cast<size_t>(u)] = encode_code(f, v);
      EXPECT_EQ(codes[static_cast<size_t>(u)], u) << to_string(f) << " value " << v;
    }
    std::vector<uint8_t> packed(8), back(16);
    pack_codes(codes.data(), 16, 4, packed.data());
    unpack_codes(packed.data(), 16, 4, back.data());
    EXPECT_EQ(back, codes) << to_string(f);
    EXPECT_EQ(packed[1], (3 << 4) | 2);  // codes 2, 3 share byte 1: low nibble first
  }
}

// Where the books agree and where they do not, relative to each book's maximum (from the published
// tables): codes 0, 4, 5 (and 8, 12, 13) mean 0, 1/3, 1/2 of the max in both; every other code differs.
// Code 3 is the bnb maximum (12/12) but only 1.5/6 = 1/4 of the e2m1 maximum; code 7 the reverse.
TEST(Fp4Books, DifferWhereThePublishedTablesDiffer) {
  for (int u = 0; u < 16; ++u) {
    const double e = fp4_e2m1_decode(static_cast<uint8_t>(u)) / 6.0;
    const double b = fp4_bnb_decode(static_cast<uint8_t>(u)) / 1.0;
    const bool same = (u & 7) == 0 || (u & 7) == 4 || (u & 7) == 5;
    if (same)
      EXPECT_NEAR(e, b, 1e-7) << "code " << u;
    else
      EXPECT_GT(std::fabs(e - b), 0.04) << "code " << u;
  }
  EXPECT_EQ(fp4_bnb_decode(3), 1.0f);
  EXPECT_EQ(fp4_e2m1_decode(3), 1.5f);
  EXPECT_EQ(fp4_e2m1_decode(7), 6.0f);
  EXPECT_EQ(fp4_bnb_decode(7), 0.25f);
  EXPECT_EQ(fp4_e2m1_encode(6.0f), 7);
  EXPECT_EQ(fp4_bnb_encode(1.0f), 3);
}

// The seeds' ITREX bug (fp4_e2m1 vs fp4_e2m1_bnb confused by a type check): quantize with one book and
// dequantize with the other and the weights are wrong. A correct 4-bit book on N(0,1), g64, gives
// 18–21 dB (int4 sym g64 gives ≈ 19.4); the swapped decode must be far below (< 5 dB).
TEST(Fp4Books, MixingTheBooksGivesWrongWeights) {
  const uint64_t seed = test::quant_seed();
  const Matrix x = test::gaussian(64, 256, seed);
  QuantParams p;
  p.bits = 4;
  p.group_size = 64;
  for (auto [enc, dec] : {std::pair{Format::fp4_bnb, Format::fp4_e2m1}, std::pair{Format::fp4_e2m1, Format::fp4_bnb}}) {
    QuantizedMatrix q = quantize_float_format(x.view(), enc, p);
    EXPECT_EQ(q.format, enc);
    Matrix right(x.rows, x.cols), wrong(x.rows, x.cols);
    dequantize(q, right.mut());
    q.format = dec;  // the mix-up
    dequantize(q, wrong.mut());
    EXPECT_GT(test::sqnr_db(x, right), 15.0) << to_string(enc) << " seed " << seed;
    EXPECT_LT(test::sqnr_db(x, wrong), 5.0) << to_string(enc) << " decoded as " << to_string(dec) << " seed " << seed;
  }
}

// ---- ties and saturation of the 4-bit books -----------------------------------------------------

TEST(Fp4Books, TiesAndSaturation) {
  // e2m1: ties to the even code (round-half-even on the mantissa).
  EXPECT_EQ(fp4_e2m1_encode(0.25f), 0);
  EXPECT_EQ(fp4_e2m1_encode(0.75f), 2);
  EXPECT_EQ(fp4_e2m1_encode(1.25f), 2);
  EXPECT_EQ(fp4_e2m1_encode(1.75f), 4);
  EXPECT_EQ(fp4_e2m1_encode(2.5f), 4);
  EXPECT_EQ(fp4_e2m1_encode(3.5f), 6);
  EXPECT_EQ(fp4_e2m1_encode(5.0f), 6);
  EXPECT_EQ(fp4_e2m1_encode(-5.0f), 8 + 6);
  EXPECT_EQ(fp4_e2m1_encode(std::nextafter(5.0f, 6.0f)), 7);
  EXPECT_EQ(fp4_e2m1_encode(100.0f), 7);   // saturate
  EXPECT_EQ(fp4_e2m1_encode(-1e30f), 15);  // saturate
  EXPECT_EQ(fp4_e2m1_encode(-0.0f), 8);    // sign of zero kept
  // bnb and nf4: ties to the smaller magnitude. Half of a float is exact, so these are exact ties.
  EXPECT_EQ(fp4_bnb_encode(fp4_bnb_decode(1) / 2), 0);
  EXPECT_EQ(fp4_bnb_encode(std::nextafter(fp4_bnb_decode(1) / 2, 1.0f)), 1);
  EXPECT_EQ(fp4_bnb_encode(3.0f), 3);
  EXPECT_EQ(fp4_bnb_encode(-3.0f), 11);
  EXPECT_EQ(nf4_encode(nf4_decode(8) / 2), 7);
  EXPECT_EQ(nf4_encode(nf4_decode(6) / 2), 7);
  EXPECT_EQ(nf4_encode(std::nextafter(nf4_decode(8) / 2, 1.0f)), 8);
  EXPECT_EQ(nf4_encode(2.0f), 15);
  EXPECT_EQ(nf4_encode(-2.0f), 0);
  EXPECT_EQ(nf4_encode(1e30f), 15);  // huge values: every distance is the same double — saturate first
  EXPECT_EQ(nf4_encode(-FLT_MAX), 0);
  EXPECT_EQ(fp4_bnb_encode(FLT_MAX), 3);
  EXPECT_EQ(fp4_e2m1_encode(1e30f), 7);
  EXPECT_EQ(nf4_encode(std::numeric_limits<float>::quiet_NaN()), QEVAL_NF4_ZERO_CODE);
}

// ---- FP8 ------------------------------------------------------------------------------------

TEST(Fp8, HandComputedValues) {
  EXPECT_EQ(fp8_e4m3_decode(0x7E), 448.0f);                  // S.1111.110 = 1.75·2^8
  EXPECT_EQ(fp8_e4m3_decode(0xFE), -448.0f);
  EXPECT_EQ(fp8_e4m3_decode(0x01), std::ldexp(1.0f, -9));    // smallest subnormal 2^−6·2^−3
  EXPECT_EQ(fp8_e4m3_decode(0x07), 7 * std::ldexp(1.0f, -9)); // largest subnormal
  EXPECT_EQ(fp8_e4m3_decode(0x08), std::ldexp(1.0f, -6));    // smallest normal
  EXPECT_EQ(fp8_e4m3_decode(0x38), 1.0f);                    // exponent field 7 = bias
  EXPECT_EQ(fp8_e4m3_decode(0x3C), 1.5f);
  EXPECT_TRUE(std::isnan(fp8_e4m3_decode(0x7F)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_decode(0xFF)));
  EXPECT_EQ(fp8_e4m3_decode(0x78), 256.0f);                  // S.1111.000 is a number in e4m3
  EXPECT_TRUE(std::signbit(fp8_e4m3_decode(0x80)));
  EXPECT_EQ(fp8_e5m2_decode(0x7B), 57344.0f);                // S.11110.11 = 1.75·2^15
  EXPECT_EQ(fp8_e5m2_decode(0x01), std::ldexp(1.0f, -16));
  EXPECT_EQ(fp8_e5m2_decode(0x04), std::ldexp(1.0f, -14));
  EXPECT_EQ(fp8_e5m2_decode(0x3C), 1.0f);
  EXPECT_EQ(fp8_e5m2_decode(0x7C), INFINITY);
  EXPECT_EQ(fp8_e5m2_decode(0xFC), -INFINITY);
  for (uint8_t u : {0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF}) EXPECT_TRUE(std::isnan(fp8_e5m2_decode(u))) << int(u);
}

// All 256 codes: decode, re-encode → the same code, except NaN codes (which re-encode to the canonical
// NaN). NaN counts: e4m3 2 (S.1111.111), e5m2 6 (S.11111.{01,10,11}). Positive codes decode strictly
// increasing up to the max (so the format has no duplicate values besides ±0).
TEST(Fp8, ExhaustiveRoundTrip) {
  for (Format f : {Format::fp8_e4m3, Format::fp8_e5m2}) {
    int nans = 0;
    float prev = -1.0f;
    const int max_code = f == Format::fp8_e4m3 ? 0x7E : 0x7B;
    for (int u = 0; u < 256; ++u) {
      const float v = decode_code(f, static_cast<uint8_t>(u));
      if (std::isnan(v)) {
        ++nans;
        EXPECT_TRUE(std::isnan(decode_code(f, encode_code(f, v))));
        continue;
      }
      EXPECT_EQ(encode_code(f, v), u) << to_string(f) << " code " << u << " value " << v;
      if (u <= max_code) {
        EXPECT_GT(v, prev) << to_string(f) << " code " << u;
        prev = v;
      }
    }
    EXPECT_EQ(nans, f == Format::fp8_e4m3 ? 2 : 6) << to_string(f);
  }
}

TEST(Fp8, SaturationAndSpecials) {
  EXPECT_EQ(fp8_e4m3_encode(448.0f), 0x7E);
  EXPECT_EQ(fp8_e4m3_encode(449.0f), 0x7E);
  EXPECT_EQ(fp8_e4m3_encode(464.0f), 0x7E);  // would be the midpoint to 480 (not a value): saturate
  EXPECT_EQ(fp8_e4m3_encode(1e10f), 0x7E);
  EXPECT_EQ(fp8_e4m3_encode(-1e10f), 0xFE);
  EXPECT_EQ(fp8_e4m3_encode(FLT_MAX), 0x7E);
  EXPECT_EQ(fp8_e4m3_encode(INFINITY), 0x7E);  // no Inf in e4m3
  EXPECT_EQ(fp8_e4m3_encode(-INFINITY), 0xFE);
  EXPECT_EQ(fp8_e4m3_encode(NAN) & 0x7F, 0x7F);
  EXPECT_EQ(fp8_e5m2_encode(57344.0f), 0x7B);
  EXPECT_EQ(fp8_e5m2_encode(60000.0f), 0x7B);
  EXPECT_EQ(fp8_e5m2_encode(-1e30f), 0xFB);
  EXPECT_EQ(fp8_e5m2_encode(INFINITY), 0x7C);
  EXPECT_EQ(fp8_e5m2_encode(-INFINITY), 0xFC);
  EXPECT_TRUE(std::isnan(fp8_e5m2_decode(fp8_e5m2_encode(NAN))));
  // Underflow: below half the smallest subnormal → ±0.
  EXPECT_EQ(fp8_e4m3_encode(std::ldexp(1.0f, -11)), 0x00);
  EXPECT_EQ(fp8_e4m3_encode(-std::ldexp(1.0f, -11)), 0x80);
  EXPECT_EQ(fp8_e5m2_encode(1e-30f), 0x00);
}

// Round to nearest even at exact midpoints (normal, subnormal, across a binade, at the top).
TEST(Fp8, RoundHalfToEvenAtMidpoints) {
  EXPECT_EQ(fp8_e4m3_encode(1.0625f), 0x38);  // between 1 (m=0) and 1.125 (m=1) → 1
  EXPECT_EQ(fp8_e4m3_encode(1.1875f), 0x3A);  // between 1.125 (m=1) and 1.25 (m=2) → 1.25
  EXPECT_EQ(fp8_e4m3_encode(std::nextafter(1.0625f, 2.0f)), 0x39);
  EXPECT_EQ(fp8_e4m3_encode(std::nextafter(1.1875f, 0.0f)), 0x39);
  EXPECT_EQ(fp8_e4m3_encode(1.9375f), 0x40);  // between 1.875 (m=7) and 2 → carries into the next binade
  EXPECT_EQ(fp8_e4m3_encode(432.0f), 0x7E);   // between 416 (m=5) and 448 (m=6) → 448
  EXPECT_EQ(fp8_e4m3_encode(std::ldexp(1.0f, -10)), 0x00);      // half the smallest subnormal → 0 (even)
  EXPECT_EQ(fp8_e4m3_encode(3 * std::ldexp(1.0f, -10)), 0x02);  // between 2^−9 (m=1) and 2^−8 (m=2)
  EXPECT_EQ(fp8_e4m3_encode(15 * std::ldexp(1.0f, -10)), 0x08); // between 7·2^−9 and 2^−6: carries to normal
  EXPECT_EQ(fp8_e5m2_encode(1.125f), 0x3C);   // between 1 and 1.25 → 1
  EXPECT_EQ(fp8_e5m2_encode(1.375f), 0x3E);   // between 1.25 and 1.5 → 1.5
  EXPECT_EQ(fp8_e5m2_encode(-1.375f), 0xBE);
}

// Property: on random floats across the whole range, the encoder returns a nearest representable value
// (brute force over all 256 decodes), and on an exact tie the code with the even mantissa.
TEST(Fp8, EncodeIsNearestByBruteForce) {
  const uint64_t seed = test::quant_seed();
  Rng rng(seed);
  for (Format f : {Format::fp8_e4m3, Format::fp8_e5m2}) {
    const double maxv = format_max(f);
    std::vector<double> vals(256);
    for (int u = 0; u < 256; ++u) vals[static_cast<size_t>(u)] = decode_code(f, static_cast<uint8_t>(u));
    for (int i = 0; i < 20000; ++i) {
      // Log-uniform magnitudes from below the subnormals to past the max.
      const double mag = std::exp2(rng.uniform(-20.0, std::log2(maxv) + 1.0));
      const float x = static_cast<float>(rng.uniform() < 0.5 ? -mag : mag);
      const uint8_t u = encode_code(f, x);
      const double got = decode_code(f, u);
      const double target = std::fabs(x) > maxv ? std::copysign(maxv, x) : x;  // saturation
      double best = INFINITY;
      for (double v : vals)
        if (std::isfinite(v)) best = std::min(best, std::fabs(v - target));
      ASSERT_EQ(std::fabs(got - target), best) << to_string(f) << " x " << x << " seed " << seed;
    }
  }
}

// ---- fp16 (block scales) ------------------------------------------------------------------------

TEST(Half, ExhaustiveRoundTripAndRounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float v = half_bits_to_float(static_cast<uint16_t>(h));
    if (std::isnan(v)) {
      EXPECT_TRUE(std::isnan(half_bits_to_float(float_to_half_bits(v))));
      continue;
    }
    ASSERT_EQ(float_to_half_bits(v), h) << "half 0x" << std::hex << h;
  }
  EXPECT_EQ(half_bits_to_float(0x3C00), 1.0f);
  EXPECT_EQ(half_bits_to_float(0x7BFF), 65504.0f);
  EXPECT_EQ(half_bits_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(float_to_half_bits(65519.0f), 0x7BFF);
  EXPECT_EQ(float_to_half_bits(65520.0f), 0x7C00);              // midpoint to 65536 → even → Inf
  EXPECT_EQ(float_to_half_bits(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie → even
  EXPECT_EQ(float_to_half_bits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie → even
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.0f, -25)), 0x0000);  // half the smallest subnormal → 0
  EXPECT_EQ(float_to_half_bits(-0.0f), 0x8000);
}

// ---- the per-group code-book quantizer ----------------------------------------------------------

// scale = max|x| / format_max; every code is a nearest code of x·(1/scale) (brute force over the book);
// sentinel-filled padded output fully written; padded input rows not read.
TEST(QuantizeFloatFormat, ScaleAndNearestCodes) {
  const uint64_t seed = test::quant_seed();
  for (Format f : kBooks) {
    const int bits = format_bits(f);
    for (int64_t g : {int64_t{32}, kPerRow, kPerTensor}) {
      const test::PaddedMatrix x = test::gaussian_padded(4, 96, seed + bits, 3.0);
      QuantParams p;
      p.bits = bits;
      p.group_size = g;
      const QuantizedMatrix q = quantize_float_format(x.view(), f, p);
      EXPECT_TRUE(q.zero_points.empty());
      test::PaddedOut out(4, 96);
      dequantize(q, out.mut());
      ASSERT_EQ(out.unwritten(), 0);
      ASSERT_EQ(out.padding_clobbered(), 0);
      std::vector<float> book;
      for (int u = 0; u < (1 << bits); ++u) book.push_back(decode_code(f, static_cast<uint8_t>(u)));
      std::vector<double> amax(static_cast<size_t>(q.num_groups()), 0.0);
      for (int64_t r = 0; r < 4; ++r)
        for (int64_t c = 0; c < 96; ++c) {
          double& a = amax[static_cast<size_t>(q.group_index(r, c))];
          a = std::max(a, std::fabs(static_cast<double>(x.at(r, c))));
        }
      for (size_t gi = 0; gi < amax.size(); ++gi)
        ASSERT_FLOAT_EQ(q.scales[gi], static_cast<float>(amax[gi] / format_max(f))) << to_string(f) << " group " << gi;
      std::vector<uint8_t> u(96);
      for (int64_t r = 0; r < 4; ++r) {
        unpack_row(q, r, u.data());
        for (int64_t c = 0; c < 96; ++c) {
          const float s = q.scales[static_cast<size_t>(q.group_index(r, c))];
          const float y = x.at(r, c) * (1.0f / s);  // what the encoder saw
          const double yt = std::fabs(y) > format_max(f) ? std::copysign(format_max(f), y) : y;
          double best = INFINITY;
          for (float v : book)
            if (std::isfinite(v)) best = std::min(best, std::fabs(double(v) - yt));
          ASSERT_EQ(std::fabs(double(book[u[static_cast<size_t>(c)]]) - yt), best)
              << to_string(f) << " g " << g << " at (" << r << ", " << c << ") seed " << seed;
          ASSERT_EQ(out.at(r, c), s * book[u[static_cast<size_t>(c)]]);
        }
      }
    }
  }
}

TEST(QuantizeFloatFormat, AllZeroGroupHasScaleZero) {
  Matrix x(2, 64, 0.0f);
  for (int64_t c = 32; c < 64; ++c) x(1, c) = -0.0f;
  for (Format f : kBooks) {
    QuantParams p;
    p.bits = format_bits(f);
    p.group_size = 32;
    const QuantizedMatrix q = quantize_float_format(x.view(), f, p);
    for (float s : q.scales) EXPECT_EQ(s, 0.0f) << to_string(f);
    std::vector<uint8_t> u(64);
    unpack_row(q, 1, u.data());
    for (uint8_t c : u) EXPECT_EQ(c, f == Format::nf4 ? QEVAL_NF4_ZERO_CODE : 0) << to_string(f);
    Matrix out(2, 64, 1.0f);
    dequantize(q, out.mut());
    for (float v : out.data) EXPECT_EQ(v, 0.0f) << to_string(f);
  }
}

TEST(QuantizeFloatFormat, FltMaxAndNonFinite) {
  Matrix x(1, 8);
  const float vals[8] = {FLT_MAX, -FLT_MAX, 1.0f, 0.0f, -3.0f, FLT_MAX / 2, 1e-30f, 7.0f};
  for (int c = 0; c < 8; ++c) x(0, c) = vals[c];
  for (Format f : kBooks) {
    QuantParams p;
    p.bits = format_bits(f);
    p.group_size = kPerRow;
    const QuantizedMatrix q = quantize_float_format(x.view(), f, p);
    Matrix out(1, 8);
    dequantize(q, out.mut());
    for (int c = 0; c < 8; ++c) EXPECT_TRUE(std::isfinite(out(0, c))) << to_string(f) << " col " << c;
    EXPECT_NEAR(out(0, 0), FLT_MAX, FLT_MAX * 1e-6) << to_string(f);  // the max is a code: x̂ ≈ x
    // NaN policy, both ways.
    Matrix y = x;
    y(0, 2) = NAN;
    try {
      quantize_float_format(y.view(), f, p);
      ADD_FAILURE() << "no NonFiniteError";
    } catch (const NonFiniteError& e) {
      EXPECT_NE(std::string(e.what()).find("(row 0, col 2)"), std::string::npos) << e.what();
    }
    p.non_finite = NonFinitePolicy::propagate;
    y(0, 0) = -INFINITY;  // the range ignores it
    const QuantizedMatrix qp = quantize_float_format(y.view(), f, p);
    EXPECT_EQ(qp.non_finite, (std::vector<int64_t>{0, 2}));
    EXPECT_FLOAT_EQ(qp.scales[0], static_cast<float>(static_cast<double>(FLT_MAX) / format_max(f)));  // −FLT_MAX
    Matrix outp(1, 8);
    dequantize(qp, outp.mut());
    EXPECT_TRUE(std::isnan(outp(0, 0)));
    EXPECT_TRUE(std::isnan(outp(0, 2)));
    EXPECT_TRUE(std::isfinite(outp(0, 1)));
  }
}

TEST(QuantizeFloatFormat, RejectsMismatchedParams) {
  const Matrix x = test::gaussian(2, 64, 1);
  auto msg = [&](Format f, QuantParams p) {
    try {
      quantize_float_format(x.view(), f, p);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  QuantParams p;  // bits 4
  EXPECT_NE(msg(Format::fp8_e4m3, p).find("8-bit codes but params.bits = 4"), std::string::npos);
  p.bits = 8;
  EXPECT_NE(msg(Format::nf4, p).find("4-bit codes"), std::string::npos);
  p.bits = 4;
  p.mapping = Mapping::asymmetric;
  EXPECT_NE(msg(Format::fp4_e2m1, p).find("symmetric"), std::string::npos);
  p.mapping = Mapping::symmetric;
  p.rounding = Rounding::toward_zero;
  EXPECT_NE(msg(Format::fp4_bnb, p).find("nearest_even"), std::string::npos);
  p.rounding = Rounding::nearest_even;
  EXPECT_NE(msg(Format::int_affine, p).find("quantize_affine"), std::string::npos);
  p.group_size = 48;
  EXPECT_NE(msg(Format::nf4, p).find("row length 64"), std::string::npos);
}

// Clipping for code books: clip_ratio shrinks the absmax; percentile and mse pick a scale ≤ the absmax.
TEST(QuantizeFloatFormat, RangeMethods) {
  const uint64_t seed = test::quant_seed();
  const Matrix x = test::gaussian(4, 128, seed);
  QuantParams p;
  p.bits = 4;
  p.group_size = kPerRow;
  const QuantizedMatrix full = quantize_float_format(x.view(), Format::nf4, p);
  p.clip_ratio = 0.5;
  const QuantizedMatrix half = quantize_float_format(x.view(), Format::nf4, p);
  for (size_t i = 0; i < full.scales.size(); ++i) EXPECT_FLOAT_EQ(half.scales[i], full.scales[i] * 0.5f);
  p.clip_ratio = 1.0;
  for (RangeMethod r : {RangeMethod::percentile, RangeMethod::mse}) {
    p.range = r;
    p.clip_percentile = 99.0;
    const QuantizedMatrix q = quantize_float_format(x.view(), Format::fp4_e2m1, p);
    for (size_t i = 0; i < q.scales.size(); ++i) EXPECT_LE(q.scales[i], full.scales[i] / 6.0f * 1.0000001f);  // nf4 max 1, e2m1 max 6
  }
}

}  // namespace
}  // namespace qeval::quant
