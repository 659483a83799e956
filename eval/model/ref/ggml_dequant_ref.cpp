// eval/model/ref/ggml_dequant_ref.cpp — scalar reference dequantizers for F16/BF16/Q8_0/Q4_0/Q4_1/Q4_K/Q6_K blocks.
//
// Block layouts are ggml's (ggml-common.h), restated in eval/model/ggml_types.hpp; the formulas follow the
// layout comments there. Values are computed in double and rounded once (exact, see the header).
#include "eval/model/ref/ggml_dequant_ref.hpp"

#include <cmath>
#include <cstring>

#include "eval/model/ggml_types.hpp"

namespace qeval::ref {

using qeval::model::BlockQ4_0;
using qeval::model::BlockQ4_1;
using qeval::model::BlockQ4_K;
using qeval::model::BlockQ6_K;
using qeval::model::BlockQ8_0;
using qeval::model::kQK_K;

namespace {

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
double half(const uint8_t* p) { return static_cast<double>(fp16_to_fp32(le16(p))); }

template <class Block>
Block load_block(const uint8_t* src, int64_t i) {
  Block b;
  std::memcpy(&b, src + i * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
  return b;
}

}  // namespace

float fp16_to_fp32(uint16_t h) {
  // binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Worked number: 0x3C00 → 2^0·1.0 = 1.0;
  // 0x0001 → 2^-14·(1/1024) = 2^-24 (smallest subnormal).
  const uint32_t sign = (h >> 15) & 1u;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t man = h & 0x3FFu;
  double mag;
  if (exp == 0) {
    mag = std::ldexp(static_cast<double>(man), -24);          // subnormal (or zero): man · 2^-24
  } else if (exp == 31) {
    if (man != 0) return sign ? -std::nanf("") : std::nanf("");
    mag = HUGE_VAL;
  } else {
    mag = std::ldexp(static_cast<double>(man | 0x400u), static_cast<int>(exp) - 25);  // 1.man · 2^(exp−15)
  }
  return static_cast<float>(sign ? -mag : mag);
}

float bf16_to_fp32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

void dequantize_row_f32(const uint8_t* src, float* dst, int64_t n) {
  // Little-endian on disk; the build targets little-endian hosts only (checked in gguf.cpp).
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void dequantize_row_f16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(le16(src + 2 * i));
}

void dequantize_row_bf16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(le16(src + 2 * i));
}

void dequantize_row_q8_0(const uint8_t* src, float* dst, int64_t n) {
  const int64_t nb = n / model::kQK8_0;
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ8_0>(src, i);
    const double d = half(b.d);
    for (int j = 0; j < model::kQK8_0; ++j) dst[i * model::kQK8_0 + j] = static_cast<float>(d * b.qs[j]);
  }
}

void dequantize_row_q4_0(const uint8_t* src, float* dst, int64_t n) {
  constexpr int kHalf = model::kQK4_0 / 2;
  const int64_t nb = n / model::kQK4_0;
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ4_0>(src, i);
    const double d = half(b.d);
    float* y = dst + i * model::kQK4_0;
    for (int j = 0; j < kHalf; ++j) {
      y[j] = static_cast<float>(d * ((b.qs[j] & 0x0F) - 8));
      y[j + kHalf] = static_cast<float>(d * ((b.qs[j] >> 4) - 8));
    }
  }
}

void dequantize_row_q4_1(const uint8_t* src, float* dst, int64_t n) {
  constexpr int kHalf = model::kQK4_1 / 2;
  const int64_t nb = n / model::kQK4_1;
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ4_1>(src, i);
    const double d = half(b.d);
    const double m = half(b.m);
    float* y = dst + i * model::kQK4_1;
    for (int j = 0; j < kHalf; ++j) {
      y[j] = static_cast<float>(d * (b.qs[j] & 0x0F) + m);
      y[j + kHalf] = static_cast<float>(d * (b.qs[j] >> 4) + m);
    }
  }
}

// Packing of the 8 (scale, min) pairs of a Q4_K block into 12 bytes q[0..11] (ggml get_scale_min_k4):
//   sub-blocks 0–3: scale = q[j] & 63,                     min = q[j+4] & 63
//   sub-blocks 4–7: scale = (q[j+4] & 15) | (q[j−4] >> 6) << 4, min = (q[j+4] >> 4) | (q[j] >> 6) << 4
// i.e. bytes 0–7 carry the 6-bit values of sub-blocks 0–3 plus, in their top 2 bits, the high bits of
// sub-blocks 4–7, whose low 4 bits sit in the nibbles of bytes 8–11.
void q4_k_scale_min(int j, const uint8_t* q, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void dequantize_row_q4_k(const uint8_t* src, float* dst, int64_t n) {
  const int64_t nb = n / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ4_K>(src, i);
    const double d = half(b.d);
    const double dmin = half(b.dmin);
    float* y = dst + i * kQK_K;
    for (int c = 0; c < kQK_K / 64; ++c) {  // 4 chunks of 64 = 2 sub-blocks each
      int sc_lo, mn_lo, sc_hi, mn_hi;
      q4_k_scale_min(2 * c, b.scales, &sc_lo, &mn_lo);
      q4_k_scale_min(2 * c + 1, b.scales, &sc_hi, &mn_hi);
      const uint8_t* q = b.qs + 32 * c;
      for (int l = 0; l < 32; ++l) {
        y[64 * c + l] = static_cast<float>(d * sc_lo * (q[l] & 0x0F) - dmin * mn_lo);
        y[64 * c + 32 + l] = static_cast<float>(d * sc_hi * (q[l] >> 4) - dmin * mn_hi);
      }
    }
  }
}

// Q6_K: the 256 elements are two halves of 128. In half h, with ql' = ql + 64h, qh' = qh + 32h,
// sc' = scales + 8h and l ∈ [0, 32):
//   y[128h + l     ] = d·sc'[l/16    ]·((ql'[l]    & 15) | ((qh'[l] >> 0) & 3) << 4) − 32)
//   y[128h + l + 32] = d·sc'[l/16 + 2]·((ql'[l+32] & 15) | ((qh'[l] >> 2) & 3) << 4) − 32)
//   y[128h + l + 64] = d·sc'[l/16 + 4]·((ql'[l]    >> 4) | ((qh'[l] >> 4) & 3) << 4) − 32)
//   y[128h + l + 96] = d·sc'[l/16 + 6]·((ql'[l+32] >> 4) | ((qh'[l] >> 6) & 3) << 4) − 32)
// so scales[s] covers elements 16s .. 16s+15.
void dequantize_row_q6_k(const uint8_t* src, float* dst, int64_t n) {
  const int64_t nb = n / kQK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ6_K>(src, i);
    const double d = half(b.d);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b.ql + 64 * h;
      const uint8_t* qh = b.qh + 32 * h;
      const int8_t* sc = b.scales + 8 * h;
      float* y = dst + i * kQK_K + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int s = l / 16;
        const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = static_cast<float>(d * sc[s] * q1);
        y[l + 32] = static_cast<float>(d * sc[s + 2] * q2);
        y[l + 64] = static_cast<float>(d * sc[s + 4] * q3);
        y[l + 96] = static_cast<float>(d * sc[s + 6] * q4);
      }
    }
  }
}

}  // namespace qeval::ref
