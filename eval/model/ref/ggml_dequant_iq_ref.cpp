// eval/model/ref/ggml_dequant_iq_ref.cpp — scalar reference dequantizers of the IQ lattice, IQ4, ternary and FP4 types.
//
// Layouts: eval/model/ggml_types.hpp. The lattice grids are data (ggml_iq_grids.inc, with provenance); kSigns7 and the
// 4-bit value tables are restated below. As in ggml_dequant_ref.cpp, each value is computed exactly in double and
// rounded once: e.g. IQ2_XXS d·(0.5 + s)·0.25·grid has 11 (fp16) + 5 (0.5 + s) + 6 (grid ≤ 43) = 22 significant
// bits, IQ4_XS d·(ls − 32)·v has 11 + 6 + 7 = 24 — all within float32's 24, so gguf-py's float32 steps are exact too.
#include <cmath>
#include <cstring>

#include "eval/model/ggml_types.hpp"
#include "eval/model/ref/block_io.hpp"
#include "eval/model/ref/ggml_dequant_ref.hpp"

namespace qeval::ref {

namespace {

#include "eval/model/ref/ggml_iq_grids.inc"

using detail::half;
using detail::le16;
using detail::le32;
using detail::load_block;
using model::kQK_K;

// IQ4_NL / IQ4_XS code book (ggml-common.h kvalues_iq4nl, gguf-py IQ4_NL.kvalues).
constexpr int kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
// E2M1 values doubled (ggml kvalues_mxfp4, gguf-py MXFP4.kvalues): code 8 is −0 in E2M1 but +0 here.
constexpr int kFp4Values2[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
constexpr double kIq1Delta = 0.125;  // IQ1S_DELTA / IQ1M_DELTA

// ksigns_iq2xs: a 7-bit index i stands for 8 signs, the 8th chosen so that the number of minus signs is even:
// kSigns7(i) = i | parity(i) << 7 (e.g. 1 → 0x81, 3 → 0x03), as ggml's table lists it.
int signs7(uint32_t i) {
  i &= 0x7F;
  int parity = 0;
  for (uint32_t v = i; v; v >>= 1) parity ^= static_cast<int>(v & 1);
  return static_cast<int>(i) | parity << 7;
}
double sign_of(int signs, int j) { return (signs >> j) & 1 ? -1.0 : 1.0; }

// Byte k of a grid row (element k); IQ1_S rows hold int8 −1/0/+1.
int grid_u8(uint64_t row, int k) { return static_cast<int>((row >> (8 * k)) & 0xFF); }
int grid_i8(uint64_t row, int k) { return static_cast<int8_t>(static_cast<uint8_t>((row >> (8 * k)) & 0xFF)); }

// Eight elements y[0..7] = db · grid[j] · sign_j.
void put8(float* y, double db, uint64_t row, int signs) {
  for (int j = 0; j < 8; ++j) y[j] = static_cast<float>(db * grid_u8(row, j) * sign_of(signs, j));
}

// Eight IQ1 elements y[0..7] = dl · (grid[j] + delta).
void put8_iq1(float* y, double dl, uint64_t row, double delta) {
  for (int j = 0; j < 8; ++j) y[j] = static_cast<float>(dl * (grid_i8(row, j) + delta));
}

// Unsigned E4M3 (bias 7) halved, bit 7 ignored; 0x00 and 0x7F (E4M3's NaN) read as 0 (ggml_ue4m3_to_fp32).
// Worked number: 0x38 = exponent 7, mantissa 0 → 1.0 → 0.5.
double ue4m3_half(uint8_t x) {
  if (x == 0 || x == 0x7F) return 0.0;
  const int exp = (x >> 3) & 0x0F;
  const int man = x & 7;
  const double raw = exp == 0 ? std::ldexp(man, -9) : std::ldexp(1.0 + man / 8.0, exp - 7);
  return raw * 0.5;
}

}  // namespace

void dequantize_row_tq1_0(const uint8_t* src, float* dst, int64_t n) {
  static constexpr int kPow3[5] = {1, 3, 9, 27, 81};
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<model::BlockTQ1_0>(src, i);
    const double d = half(b.d);
    float* y = dst + i * kQK_K;
    // trit n of byte v: the fraction v/256 times 3^n, integer part of 3× the fractional byte
    const auto trit = [](uint8_t v, int p) { return ((static_cast<uint8_t>(v * p) * 3) >> 8) - 1; };
    for (int t = 0; t < 5; ++t)
      for (int m = 0; m < 32; ++m) *y++ = static_cast<float>(d * trit(b.qs[m], kPow3[t]));
    for (int t = 0; t < 5; ++t)
      for (int m = 0; m < 16; ++m) *y++ = static_cast<float>(d * trit(b.qs[32 + m], kPow3[t]));
    for (int t = 0; t < 4; ++t)
      for (int m = 0; m < 4; ++m) *y++ = static_cast<float>(d * trit(b.qh[m], kPow3[t]));
  }
}

void dequantize_row_tq2_0(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<model::BlockTQ2_0>(src, i);
    const double d = half(b.d);
    for (int e = 0; e < kQK_K; ++e) {
      const int q = (b.qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      dst[i * kQK_K + e] = static_cast<float>(d * (q - 1));
    }
  }
}

// MXFP4 in float, not double: 2^127 · 12 overflows float (→ +Inf, as in gguf-py), and converting a finite double
// beyond FLT_MAX to float would be undefined behaviour. The product is exact whenever it is representable
// (a power of two times a 4-bit integer), so float and double agree everywhere else.
void dequantize_row_mxfp4(const uint8_t* src, float* dst, int64_t n) {
  constexpr int kHalf = model::kQKMxfp4 / 2;
  for (int64_t i = 0; i < n / model::kQKMxfp4; ++i) {
    const auto b = load_block<model::BlockMxfp4>(src, i);
    const float d = std::ldexp(1.0f, static_cast<int>(b.e) - 128);  // 2^-128 (subnormal) … 2^127
    float* y = dst + i * model::kQKMxfp4;
    for (int j = 0; j < kHalf; ++j) {
      y[j] = d * static_cast<float>(kFp4Values2[b.qs[j] & 0x0F]);
      y[j + kHalf] = d * static_cast<float>(kFp4Values2[b.qs[j] >> 4]);
    }
  }
}

void dequantize_row_nvfp4(const uint8_t* src, float* dst, int64_t n) {
  constexpr int kSub = model::kQKNvfp4Sub;
  for (int64_t i = 0; i < n / model::kQKNvfp4; ++i) {
    const auto b = load_block<model::BlockNvfp4>(src, i);
    for (int s = 0; s < model::kQKNvfp4 / kSub; ++s) {
      const double d = ue4m3_half(b.d[s]);
      float* y = dst + i * model::kQKNvfp4 + s * kSub;
      for (int j = 0; j < kSub / 2; ++j) {
        const uint8_t q = b.qs[s * (kSub / 2) + j];
        y[j] = static_cast<float>(d * kFp4Values2[q & 0x0F]);
        y[j + kSub / 2] = static_cast<float>(d * kFp4Values2[q >> 4]);
      }
    }
  }
}

void dequantize_row_iq4_nl(const uint8_t* src, float* dst, int64_t n) {
  constexpr int kHalf = model::kQK4_NL / 2;
  for (int64_t i = 0; i < n / model::kQK4_NL; ++i) {
    const auto b = load_block<model::BlockIQ4_NL>(src, i);
    const double d = half(b.d);
    float* y = dst + i * model::kQK4_NL;
    for (int j = 0; j < kHalf; ++j) {
      y[j] = static_cast<float>(d * kIq4nlValues[b.qs[j] & 0x0F]);
      y[j + kHalf] = static_cast<float>(d * kIq4nlValues[b.qs[j] >> 4]);
    }
  }
}

void dequantize_row_iq4_xs(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<model::BlockIQ4_XS>(src, i);
    const double d = half(b.d);
    const uint16_t sh = le16(b.scales_h);
    for (int ib = 0; ib < kQK_K / 32; ++ib) {
      const int ls = ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F) | ((sh >> (2 * ib)) & 3) << 4;
      const double dl = d * (ls - 32);
      const uint8_t* q = b.qs + 16 * ib;
      float* y = dst + i * kQK_K + 32 * ib;
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(dl * kIq4nlValues[q[j] & 0x0F]);
        y[j + 16] = static_cast<float>(dl * kIq4nlValues[q[j] >> 4]);
      }
    }
  }
}

void dequantize_row_iq2_xxs(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<model::BlockIQ2_XXS>(src, i);
    const double d = half(b.d);
    for (int ib = 0; ib < kQK_K / 32; ++ib) {
      const uint8_t* grid_idx = b.qs + 8 * ib;          // a0: four grid indices
      const uint32_t a1 = le32(b.qs + 8 * ib + 4);      // four 7-bit sign indices + 4-bit scale
      const double db = d * (0.5 + (a1 >> 28)) * 0.25;
      for (int l = 0; l < 4; ++l) {
        put8(dst + i * kQK_K + 32 * ib + 8 * l, db, kIq2xxsGrid[grid_idx[l]], signs7(a1 >> (7 * l)));
      }
    }
  }
}

void dequantize_row_iq2_xs(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<model::BlockIQ2_XS>(src, i);
    const double d = half(b.d);
    for (int g = 0; g < kQK_K / 8; ++g) {
      const uint16_t q = le16(b.qs + 2 * g);
      const int s = (b.scales[g / 4] >> (4 * ((g / 2) % 2))) & 0x0F;  // one scale per 16 elements
      const double db = d * (0.5 + s) * 0.25;
      put8(dst + i * kQK_K + 8 * g, db, kIq2xsGrid[q & 511], signs7(q >> 9));
    }
  }
}

void dequantize_row_iq2_s(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<model::BlockIQ2_S>(src, i);
    const double d = half(b.d);
    for (int g = 0; g < kQK_K / 8; ++g) {
      const int idx = b.qs[g] | ((b.qh[g / 4] >> (2 * (g % 4))) & 3) << 8;
      const int s = (b.scales[g / 4] >> (4 * ((g / 2) % 2))) & 0x0F;
      const double db = d * (0.5 + s) * 0.25;
      put8(dst + i * kQK_K + 8 * g, db, kIq2sGrid[idx], b.signs[g]);
    }
  }
}

void dequantize_row_iq3_xxs(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<model::BlockIQ3_XXS>(src, i);
    const double d = half(b.d);
    for (int ib = 0; ib < kQK_K / 32; ++ib) {
      const uint32_t aux = le32(b.qs + kQK_K / 4 + 4 * ib);
      const double db = d * (0.5 + (aux >> 28)) * 0.5;
      for (int l = 0; l < 4; ++l) {
        const int signs = signs7(aux >> (7 * l));
        const uint8_t* q = b.qs + 8 * ib + 2 * l;  // two 4-value grid rows per 8 elements
        const uint64_t row = kIq3xxsGrid[q[0]] | static_cast<uint64_t>(kIq3xxsGrid[q[1]]) << 32;
        put8(dst + i * kQK_K + 32 * ib + 8 * l, db, row, signs);
      }
    }
  }
}

void dequantize_row_iq3_s(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<model::BlockIQ3_S>(src, i);
    const double d = half(b.d);
    for (int g = 0; g < kQK_K / 8; ++g) {  // 8 elements = grid rows 2g and 2g+1
      const int s = (b.scales[g / 8] >> (4 * ((g / 4) % 2))) & 0x0F;  // one scale per 32 elements
      const double db = d * (1 + 2 * s);
      uint64_t row = 0;
      for (int h = 0; h < 2; ++h) {
        const int r = 2 * g + h;
        const int idx = b.qs[r] | ((b.qh[r / 8] >> (r % 8)) & 1) << 8;
        row |= static_cast<uint64_t>(kIq3sGrid[idx]) << (32 * h);
      }
      put8(dst + i * kQK_K + 8 * g, db, row, b.signs[g]);
    }
  }
}

void dequantize_row_iq1_s(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<model::BlockIQ1_S>(src, i);
    const double d = half(b.d);
    for (int ib = 0; ib < kQK_K / 32; ++ib) {
      const uint16_t qh = le16(b.qh + 2 * ib);
      const double dl = d * (2 * ((qh >> 12) & 7) + 1);
      const double delta = qh & 0x8000 ? -kIq1Delta : kIq1Delta;
      for (int l = 0; l < 4; ++l) {
        const int idx = b.qs[4 * ib + l] | ((qh >> (3 * l)) & 7) << 8;
        put8_iq1(dst + i * kQK_K + 32 * ib + 8 * l, dl, kIq1sGrid[idx], delta);
      }
    }
  }
}

void dequantize_row_iq1_m(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<model::BlockIQ1_M>(src, i);
    uint16_t w[4];
    for (int k = 0; k < 4; ++k) w[k] = le16(b.scales + 2 * k);
    const uint16_t dbits = static_cast<uint16_t>((w[0] >> 12) | ((w[1] >> 8) & 0x00F0) | ((w[2] >> 4) & 0x0F00) |
                                                 (w[3] & 0xF000));
    const double d = static_cast<double>(fp16_to_fp32(dbits));
    for (int g = 0; g < kQK_K / 8; ++g) {
      const int k = g / 2;  // 3-bit scale per 16 elements
      const double dl = d * (2 * ((w[k / 4] >> (3 * (k % 4))) & 7) + 1);
      const int nib = (b.qh[g / 2] >> (4 * (g % 2))) & 0x0F;
      const int idx = b.qs[g] | (nib & 7) << 8;
      put8_iq1(dst + i * kQK_K + 8 * g, dl, kIq1sGrid[idx], nib & 8 ? -kIq1Delta : kIq1Delta);
    }
  }
}

}  // namespace qeval::ref
