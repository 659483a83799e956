// tests/quant/layouts_test.cpp — quant/layouts.h: block sizes and offsets, and the same tables in C99 and C++.
#include <gtest/gtest.h>

#include <cstddef>

#include "quant/float_formats.hpp"
#include "quant/layouts.h"

extern "C" {
int qeval_test_c99_sizeof_q4(void);
int qeval_test_c99_sizeof_q8(void);
int qeval_test_c99_offsetof_q4_qs(void);
int qeval_test_c99_offsetof_q8_qs(void);
float qeval_test_c99_table(int which, int i);
}

namespace qeval::quant {
namespace {

TEST(Layouts, BlockStructsHaveNoPadding) {
  EXPECT_EQ(sizeof(qeval_block_q4_32), 18u);
  EXPECT_EQ(sizeof(qeval_block_q8_32), 34u);
  EXPECT_EQ(offsetof(qeval_block_q4_32, d), 0u);
  EXPECT_EQ(offsetof(qeval_block_q4_32, qs), 2u);
  EXPECT_EQ(offsetof(qeval_block_q8_32, qs), 2u);
  // The C99 translation unit (compiled with -std=c99 -pedantic-errors) sees the same layout.
  EXPECT_EQ(qeval_test_c99_sizeof_q4(), 18);
  EXPECT_EQ(qeval_test_c99_sizeof_q8(), 34);
  EXPECT_EQ(qeval_test_c99_offsetof_q4_qs(), 2);
  EXPECT_EQ(qeval_test_c99_offsetof_q8_qs(), 2);
}

TEST(Layouts, TablesAreTheSameInCAndCxx) {
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(qeval_test_c99_table(0, i), fp4_e2m1_decode(static_cast<uint8_t>(i))) << i;
    EXPECT_EQ(qeval_test_c99_table(1, i), fp4_bnb_decode(static_cast<uint8_t>(i))) << i;
    EXPECT_EQ(qeval_test_c99_table(2, i), nf4_decode(static_cast<uint8_t>(i))) << i;
  }
  EXPECT_EQ(qeval_nf4_values[QEVAL_NF4_ZERO_CODE], 0.0f);
  EXPECT_EQ(QEVAL_FP8_E4M3_MAX, 448.0f);
  EXPECT_EQ(QEVAL_FP8_E5M2_MAX, 57344.0f);
}

// The q4 block stores its 32 codes with the planar rule (element i: nibble i&1 of byte i/2, low first),
// so a planar row of 32 int4 codes and a block's qs[] are the same 16 bytes.
TEST(Layouts, Q4BlockUsesThePlanarNibbleOrder) {
  qeval_block_q4_32 b{};
  b.d = float_to_half_bits(0.5f);
  for (int i = 0; i < 32; ++i) b.qs[i / 2] = static_cast<uint8_t>(b.qs[i / 2] | ((i % 16) << ((i & 1) * 4)));
  EXPECT_EQ(b.qs[0], 0x10);  // elements 0 (low) and 1 (high)
  EXPECT_EQ(b.qs[7], 0xFE);  // elements 14, 15
  EXPECT_EQ(half_bits_to_float(b.d), 0.5f);
}

}  // namespace
}  // namespace qeval::quant
