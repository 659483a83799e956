// tests/quant/pack_test.cpp — planar LSB-first packing (quant/pack.hpp, quant/layouts.h): bytes, round trips, tails.
#include <gtest/gtest.h>

#include <vector>

#include "quant/layouts.h"
#include "quant/pack.hpp"
#include "quant/rng.hpp"
#include "quant_test_util.hpp"

namespace qeval::quant {
namespace {

// An independent bit-by-bit statement of the layouts.h rule: bit j of element c is bit (c·b + j) mod 8
// of byte (c·b + j) / 8. The packers use byte/nibble fast paths and an accumulator, not this loop.
std::vector<uint8_t> pack_by_rule(const std::vector<uint8_t>& codes, int bits) {
  std::vector<uint8_t> out(static_cast<size_t>(packed_bytes(static_cast<int64_t>(codes.size()), bits)), 0);
  for (size_t c = 0; c < codes.size(); ++c)
    for (int j = 0; j < bits; ++j) {
      const size_t bit = c * static_cast<size_t>(bits) + static_cast<size_t>(j);
      if ((codes[c] >> j) & 1) out[bit / 8] = static_cast<uint8_t>(out[bit / 8] | (1u << (bit % 8)));
    }
  return out;
}

std::vector<uint8_t> random_codes(int64_t n, int bits, Rng& rng) {
  std::vector<uint8_t> v(static_cast<size_t>(n));
  for (auto& c : v) c = static_cast<uint8_t>(rng.below(uint64_t{1} << bits));
  return v;
}

TEST(Pack, WorkedExamples) {
  // int4: element 2k is the low nibble of byte k (layouts.h): {1, 15, 8} → {0xF1, 0x08}.
  {
    const std::vector<uint8_t> c = {1, 15, 8};
    std::vector<uint8_t> out(2, 0xAA);
    pack_codes(c.data(), 3, 4, out.data());
    EXPECT_EQ(out, (std::vector<uint8_t>{0xF1, 0x08}));
  }
  // int3: {5, 3, 7} → 101 | 011 | 111 from bit 0 → 0xDD, 0x01.
  {
    const std::vector<uint8_t> c = {5, 3, 7};
    std::vector<uint8_t> out(2, 0xAA);
    pack_codes(c.data(), 3, 3, out.data());
    EXPECT_EQ(out, (std::vector<uint8_t>{0xDD, 0x01}));
  }
  // int2: {1, 2, 3, 0, 3} → 0b00'11'10'01 = 0x39, then 0x03.
  {
    const std::vector<uint8_t> c = {1, 2, 3, 0, 3};
    std::vector<uint8_t> out(2, 0xAA);
    pack_codes(c.data(), 5, 2, out.data());
    EXPECT_EQ(out, (std::vector<uint8_t>{0x39, 0x03}));
  }
  EXPECT_EQ(QEVAL_ROW_BYTES(3, 3), 2);
  EXPECT_EQ(QEVAL_ROW_BYTES(4096, 4), 2048);
  EXPECT_EQ(packed_bytes(11, 3), 5);  // 33 bits
}

// Every width 1..8, every length 0..70 (covers all tails of int3: n·3 mod 8 takes every value), random
// codes: the packer matches the bit rule, pad bits are 0, and unpacking restores the codes. The buffers
// have exactly packed_bytes() bytes so ASan catches a read or write past the end.
TEST(Pack, RoundTripEveryWidthAndTail) {
  const uint64_t seed = test::quant_seed();
  Rng rng(seed);
  for (int bits = 1; bits <= 8; ++bits) {
    for (int64_t n = 0; n <= 70; ++n) {
      const std::vector<uint8_t> codes = random_codes(n, bits, rng);
      const int64_t nb = packed_bytes(n, bits);
      std::vector<uint8_t> packed(static_cast<size_t>(nb));
      pack_codes(codes.data(), n, bits, packed.data());
      ASSERT_EQ(packed, pack_by_rule(codes, bits)) << "bits " << bits << " n " << n << " seed " << seed;
      std::vector<uint8_t> back(static_cast<size_t>(n), 0xEE);
      unpack_codes(packed.data(), n, bits, back.data());
      ASSERT_EQ(back, codes) << "bits " << bits << " n " << n << " seed " << seed;
      for (int64_t c = 0; c < n; ++c)
        ASSERT_EQ(packed_code_at(packed.data(), c, bits), codes[static_cast<size_t>(c)])
            << "bits " << bits << " n " << n << " c " << c << " seed " << seed;
    }
  }
}

// int3 explicitly, all-ones codes: every tail length sets exactly n·3 bits, pad bits stay 0.
TEST(Pack, Int3AllOnesTails) {
  for (int64_t n = 1; n <= 24; ++n) {
    const std::vector<uint8_t> codes(static_cast<size_t>(n), 7);
    std::vector<uint8_t> packed(static_cast<size_t>(packed_bytes(n, 3)));
    pack_codes(codes.data(), n, 3, packed.data());
    int64_t ones = 0;
    for (uint8_t b : packed) ones += __builtin_popcount(b);
    EXPECT_EQ(ones, 3 * n) << "n " << n;
    const int used_in_last = static_cast<int>((3 * n) % 8);
    if (used_in_last != 0) {
      EXPECT_EQ(packed.back() >> used_in_last, 0) << "pad bits not zero, n " << n;
    }
  }
}

TEST(Pack, RejectsBadArguments) {
  const std::vector<uint8_t> c = {3, 4};
  std::vector<uint8_t> out(4);
  try {
    pack_codes(c.data(), 2, 2, out.data());
    FAIL() << "code 4 does not fit in 2 bits";
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("code 4 at index 1"), std::string::npos) << m;
  }
  EXPECT_THROW(pack_codes(c.data(), 2, 0, out.data()), std::invalid_argument);
  EXPECT_THROW(pack_codes(c.data(), 2, 9, out.data()), std::invalid_argument);
  EXPECT_THROW(unpack_codes(out.data(), -1, 4, out.data()), std::invalid_argument);
  const std::vector<uint8_t> big = {16};
  EXPECT_THROW(pack_codes(big.data(), 1, 4, out.data()), std::invalid_argument);
  const std::vector<uint8_t> big3 = {1, 1, 8};
  EXPECT_THROW(pack_codes(big3.data(), 3, 3, out.data()), std::invalid_argument);
}

}  // namespace
}  // namespace qeval::quant
