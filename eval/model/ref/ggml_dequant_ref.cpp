// eval/model/ref/ggml_dequant_ref.cpp — scalar reference dequantizers of the plain, legacy (Q4_0 … Q8_0) and k-quant types.
//
// Block layouts are ggml's (ggml-common.h), restated in eval/model/ggml_types.hpp; the formulas follow the
// layout comments there. Values are computed in double and rounded once (exact, see the header).
#include "eval/model/ref/ggml_dequant_ref.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#include "eval/model/ggml_types.hpp"
#include "eval/model/ref/block_io.hpp"

namespace qeval::ref {

using qeval::model::BlockQ4_0;
using qeval::model::BlockQ4_1;
using qeval::model::BlockQ4_K;
using qeval::model::BlockQ6_K;
using qeval::model::BlockQ2_K;
using qeval::model::BlockQ3_K;
using qeval::model::BlockQ5_0;
using qeval::model::BlockQ5_1;
using qeval::model::BlockQ5_K;
using qeval::model::BlockQ8_0;
using qeval::model::kQK_K;

using detail::half;
using detail::le16;
using detail::load_block;

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
    if (man != 0) {  // NaN: sign and payload kept, quiet bit set (what x86's F16C conversion returns)
      const uint32_t bits = sign << 31 | 0x7FC00000u | man << 13;
      float f;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
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
  // A table of fp16_to_fp32 over all 65536 codes (256 KiB, built once): the same values, without the per-value
  // ldexp that made loading an F16 model cost seconds per GB (issue 15).
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = fp16_to_fp32(static_cast<uint16_t>(h));
    return t;
  }();
  for (int64_t i = 0; i < n; ++i) dst[i] = table[le16(src + 2 * i)];
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

// Q5_0 / Q5_1: element j's 5th bit is bit j of the uint32 qh; the low nibbles are ordered as in Q4_0.
void dequantize_row_q5_0(const uint8_t* src, float* dst, int64_t n) {
  constexpr int kHalf = model::kQK5_0 / 2;
  for (int64_t i = 0; i < n / model::kQK5_0; ++i) {
    const auto b = load_block<BlockQ5_0>(src, i);
    const double d = half(b.d);
    const uint32_t qh = detail::le32(b.qh);
    float* y = dst + i * model::kQK5_0;
    for (int j = 0; j < kHalf; ++j) {
      const int q0 = (b.qs[j] & 0x0F) | static_cast<int>((qh >> j) & 1) << 4;
      const int q1 = (b.qs[j] >> 4) | static_cast<int>((qh >> (j + kHalf)) & 1) << 4;
      y[j] = static_cast<float>(d * (q0 - 16));
      y[j + kHalf] = static_cast<float>(d * (q1 - 16));
    }
  }
}

void dequantize_row_q5_1(const uint8_t* src, float* dst, int64_t n) {
  constexpr int kHalf = model::kQK5_1 / 2;
  for (int64_t i = 0; i < n / model::kQK5_1; ++i) {
    const auto b = load_block<BlockQ5_1>(src, i);
    const double d = half(b.d);
    const double m = half(b.m);
    const uint32_t qh = detail::le32(b.qh);
    float* y = dst + i * model::kQK5_1;
    for (int j = 0; j < kHalf; ++j) {
      const int q0 = (b.qs[j] & 0x0F) | static_cast<int>((qh >> j) & 1) << 4;
      const int q1 = (b.qs[j] >> 4) | static_cast<int>((qh >> (j + kHalf)) & 1) << 4;
      y[j] = static_cast<float>(d * q0 + m);
      y[j + kHalf] = static_cast<float>(d * q1 + m);
    }
  }
}

namespace {

// 2-bit field of element e ∈ [0, 256) in the Q2_K / Q3_K / TQ2_0 packing: each half of 128 elements uses 32
// bytes, and element e takes bits 2·((e%128)/32) of byte 32·(e/128) + e%32.
int crumb_k(const uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3; }

// The 16 signed 6-bit scales (value − 32) of a Q3_K block (layout in ggml_types.hpp).
void q3_k_scales(const uint8_t* s, int out[16]) {
  for (int k = 0; k < 16; ++k) {
    const int lo = (s[k % 8] >> (4 * (k / 8))) & 0x0F;
    const int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
    out[k] = (lo | hi << 4) - 32;
  }
}

}  // namespace

void dequantize_row_q2_k(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<BlockQ2_K>(src, i);
    const double d = half(b.d);
    const double dmin = half(b.dmin);
    float* y = dst + i * kQK_K;
    for (int e = 0; e < kQK_K; ++e) {
      const uint8_t sc = b.scales[e / 16];
      y[e] = static_cast<float>(d * (sc & 0x0F) * crumb_k(b.qs, e) - dmin * (sc >> 4));
    }
  }
}

void dequantize_row_q3_k(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<BlockQ3_K>(src, i);
    const double d = half(b.d);
    int sc[16];
    q3_k_scales(b.scales, sc);
    float* y = dst + i * kQK_K;
    for (int e = 0; e < kQK_K; ++e) {
      const int high = (b.hmask[e % 32] >> (e / 32)) & 1;
      const int q = crumb_k(b.qs, e) - (high ? 0 : 4);
      y[e] = static_cast<float>(d * sc[e / 16] * q);
    }
  }
}

// Q5_K: Q4_K's scales and nibble order plus bit e/32 of qh[e%32] as bit 4.
void dequantize_row_q5_k(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const auto b = load_block<BlockQ5_K>(src, i);
    const double d = half(b.d);
    const double dmin = half(b.dmin);
    float* y = dst + i * kQK_K;
    for (int s = 0; s < kQK_K / 32; ++s) {
      int sc, mn;
      q4_k_scale_min(s, b.scales, &sc, &mn);
      const uint8_t* q = b.qs + 32 * (s / 2);
      for (int l = 0; l < 32; ++l) {
        const int lo = s % 2 == 0 ? (q[l] & 0x0F) : (q[l] >> 4);
        const int v = lo | ((b.qh[l] >> s) & 1) << 4;
        y[32 * s + l] = static_cast<float>(d * sc * v - dmin * mn);
      }
    }
  }
}

DequantizeRowFn dequantizer(uint32_t id) {
  using model::GgmlType;
  switch (static_cast<GgmlType>(id)) {
    case GgmlType::F32: return dequantize_row_f32;
    case GgmlType::F16: return dequantize_row_f16;
    case GgmlType::BF16: return dequantize_row_bf16;
    case GgmlType::Q4_0: return dequantize_row_q4_0;
    case GgmlType::Q4_1: return dequantize_row_q4_1;
    case GgmlType::Q5_0: return dequantize_row_q5_0;
    case GgmlType::Q5_1: return dequantize_row_q5_1;
    case GgmlType::Q8_0: return dequantize_row_q8_0;
    case GgmlType::Q2_K: return dequantize_row_q2_k;
    case GgmlType::Q3_K: return dequantize_row_q3_k;
    case GgmlType::Q4_K: return dequantize_row_q4_k;
    case GgmlType::Q5_K: return dequantize_row_q5_k;
    case GgmlType::Q6_K: return dequantize_row_q6_k;
    case GgmlType::IQ2_XXS: return dequantize_row_iq2_xxs;
    case GgmlType::IQ2_XS: return dequantize_row_iq2_xs;
    case GgmlType::IQ2_S: return dequantize_row_iq2_s;
    case GgmlType::IQ3_XXS: return dequantize_row_iq3_xxs;
    case GgmlType::IQ3_S: return dequantize_row_iq3_s;
    case GgmlType::IQ1_S: return dequantize_row_iq1_s;
    case GgmlType::IQ1_M: return dequantize_row_iq1_m;
    case GgmlType::IQ4_NL: return dequantize_row_iq4_nl;
    case GgmlType::IQ4_XS: return dequantize_row_iq4_xs;
    case GgmlType::TQ1_0: return dequantize_row_tq1_0;
    case GgmlType::TQ2_0: return dequantize_row_tq2_0;
    case GgmlType::MXFP4: return dequantize_row_mxfp4;
    case GgmlType::NVFP4: return dequantize_row_nvfp4;
    default: return nullptr;
  }
}

}  // namespace qeval::ref
