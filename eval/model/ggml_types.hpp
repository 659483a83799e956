// eval/model/ggml_types.hpp — ggml tensor type ids, block sizes and the packed block layouts the GGUF reader dequantizes.
//
// Facts taken over from ggml (ggml.h `enum ggml_type`, ggml-common.h `block_q4_0` ...; the same table is
// gguf-py's GGML_QUANT_SIZES): a tensor of type T stores each row of ne[0] elements as ne[0] / block_elems
// blocks of `block_bytes` bytes, so ne[0] must be a multiple of block_elems.
// Worked number: Q4_0 packs 32 weights into 2 (fp16 scale) + 16 (nibbles) = 18 bytes → 4.5 bits/weight.
// Layout structs below use only byte arrays so that sizeof() is the on-disk size on every ABI; multi-byte
// fields are little-endian and read with memcpy (the blocks in a file are not aligned for uint16_t).
#pragma once

#include <cstdint>
#include <string>

namespace qeval::model {

// ggml type ids as stored in a GGUF tensor-info record (ggml.h). Ids 4, 5 (Q4_2/Q4_3) and 31–33
// (Q4_0_4_4 & co.) were removed from ggml and are rejected as unknown.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35,
  MXFP4 = 39, NVFP4 = 40, Q1_0 = 41, Q2_0 = 42,
};

inline constexpr uint32_t kGgmlTypeIdLimit = 43;  // GGML_TYPE_COUNT of the ggml these ids come from

struct GgmlTypeTraits {
  const char* name;      // ggml's name ("Q4_K"); nullptr for an unknown id
  uint32_t block_elems;  // elements per block (1 for plain types)
  uint32_t block_bytes;  // bytes per block
  bool dequantizable;    // qeval::ref has a dequantizer for it
};

// Traits of a type id; `name == nullptr` when the id is not a known ggml type.
GgmlTypeTraits ggml_type_traits(uint32_t type_id);
// The names of every dequantizable type, in type-id order, space-separated ("F32 F16 Q4_0 …"), for messages.
std::string ggml_supported_type_names();
inline std::string ggml_type_name(GgmlType t) {
  const GgmlTypeTraits tr = ggml_type_traits(static_cast<uint32_t>(t));
  return tr.name ? tr.name : "type#" + std::to_string(static_cast<uint32_t>(t));
}

// ---- packed block layouts (ggml-common.h), each guarded by its on-disk size ----
inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
inline constexpr int kQK5_0 = 32;
inline constexpr int kQK5_1 = 32;
inline constexpr int kQK8_0 = 32;
inline constexpr int kQK4_NL = 32;
inline constexpr int kQKMxfp4 = 32;
inline constexpr int kQKNvfp4 = 64;      // 4 sub-blocks of 16, one UE4M3 scale each
inline constexpr int kQKNvfp4Sub = 16;
inline constexpr int kQK_K = 256;        // super-block of the k-quants, IQ and TQ types
inline constexpr int kKScaleSize = 12;   // packed 6-bit scales + mins of Q4_K/Q5_K, 6-bit scales of Q3_K

// Q4_0: x = d · (q − 8), q ∈ [0, 15]; element j < 16 is the low nibble of qs[j], element j+16 the high one.
struct BlockQ4_0 {
  uint8_t d[2];              // fp16 scale
  uint8_t qs[kQK4_0 / 2];    // nibbles
};
static_assert(sizeof(BlockQ4_0) == 18, "block_q4_0 is 18 bytes");

// Q4_1: x = d · q + m, q ∈ [0, 15]; same nibble order as Q4_0.
struct BlockQ4_1 {
  uint8_t d[2];              // fp16 scale
  uint8_t m[2];              // fp16 minimum
  uint8_t qs[kQK4_1 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20, "block_q4_1 is 20 bytes");

// Q8_0: x = d · q, q ∈ [−128, 127].
struct BlockQ8_0 {
  uint8_t d[2];              // fp16 scale
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34, "block_q8_0 is 34 bytes");

// Q4_K: 8 sub-blocks of 32; sub-block s has 6-bit scale sc[s] and 6-bit min mn[s] packed in `scales`;
// x = d·sc[s]·q − dmin·mn[s], q ∈ [0, 15]. Within each 64-element chunk c (sub-blocks 2c, 2c+1) the 32
// bytes qs[32c .. 32c+31] hold sub-block 2c in their low nibbles and sub-block 2c+1 in their high nibbles.
struct BlockQ4_K {
  uint8_t d[2];                   // fp16 super-block scale of the scales
  uint8_t dmin[2];                // fp16 super-block scale of the mins
  uint8_t scales[kKScaleSize];    // 8 × (6-bit scale, 6-bit min)
  uint8_t qs[kQK_K / 2];          // nibbles
};
static_assert(sizeof(BlockQ4_K) == 144, "block_q4_K is 144 bytes");

// Q6_K: 16 sub-blocks of 16; x = d · scales[s] · (q − 32), q ∈ [0, 63] from 4 low bits (ql) + 2 high bits (qh).
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];          // low 4 bits
  uint8_t qh[kQK_K / 4];          // high 2 bits
  int8_t scales[kQK_K / 16];      // 8-bit signed sub-block scales
  uint8_t d[2];                   // fp16 super-block scale
};
static_assert(sizeof(BlockQ6_K) == 210, "block_q6_K is 210 bytes");

// Q5_0: x = d · (q − 16), q ∈ [0, 31]: bit j of the little-endian uint32 qh is bit 4 of element j; the low
// nibbles are ordered as in Q4_0 (element j < 16: low nibble of qs[j], element j+16: its high nibble).
struct BlockQ5_0 {
  uint8_t d[2];              // fp16 scale
  uint8_t qh[4];             // 5th bits, uint32 little-endian
  uint8_t qs[kQK5_0 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22, "block_q5_0 is 22 bytes");

// Q5_1: x = d · q + m, q ∈ [0, 31]; bits as in Q5_0.
struct BlockQ5_1 {
  uint8_t d[2];              // fp16 scale
  uint8_t m[2];              // fp16 minimum
  uint8_t qh[4];
  uint8_t qs[kQK5_1 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24, "block_q5_1 is 24 bytes");

// Q2_K: 16 sub-blocks of 16; scales[s] = 4-bit scale (low nibble) | 4-bit min (high nibble);
// x = d·sc·q − dmin·mn, q ∈ [0, 3]. Element e: q = (qs[32·(e/128) + e%32] >> 2·((e%128)/32)) & 3.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint8_t d[2];                   // fp16 scale of the scales
  uint8_t dmin[2];                // fp16 scale of the mins
};
static_assert(sizeof(BlockQ2_K) == 84, "block_q2_K is 84 bytes");

// Q3_K: 16 sub-blocks of 16; x = d · (sc − 32) · q with 6-bit sc and q ∈ [−4, 3]: 2 low bits as in Q2_K, and
// 4 subtracted when bit e/32 of hmask[e%32] is 0. Scale k: low 4 bits = nibble k/8 of scales[k%8] (the low nibble
// for k < 8), high 2 bits = bits 2·(k/4)..+1 of scales[8 + k%4].
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[kKScaleSize];
  uint8_t d[2];
};
static_assert(sizeof(BlockQ3_K) == 110, "block_q3_K is 110 bytes");

// Q5_K: as Q4_K with a 5th bit per element: bit e/32 of qh[e%32]; q ∈ [0, 31].
struct BlockQ5_K {
  uint8_t d[2];
  uint8_t dmin[2];
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176, "block_q5_K is 176 bytes");

// Q8_1 and Q8_K are activation formats of ggml's dot products (gguf-py has no dequantizer); sizes only.
inline constexpr int kBlockQ8_1Bytes = 36;    // fp16 d, fp16 s, 32 int8
inline constexpr int kBlockQ8_KBytes = 292;   // float d, 256 int8, 16 int16 sums

// TQ1_0 (ternary, 1.6875 bits/weight): x = d · (t − 1), t ∈ {0, 1, 2}. A byte b holds 5 trits (4 in qh) as
// the fraction b/256 ≈ Σ t_n 3^−(n+1): trit n = ((uint8_t)(b · 3^n) · 3) >> 8. Element order: n-major within each
// byte group: qs[0..31] for n = 0..4 (160), qs[32..47] for n = 0..4 (80), qh[0..3] for n = 0..3 (16).
struct BlockTQ1_0 {
  uint8_t qs[(kQK_K - 4 * kQK_K / 64) / 5];   // 48
  uint8_t qh[kQK_K / 64];                     // 4
  uint8_t d[2];
};
static_assert(sizeof(BlockTQ1_0) == 54, "block_tq1_0 is 54 bytes");

// TQ2_0: x = d · (q − 1), q ∈ [0, 3] (3 does not occur in quantizer output) packed as in Q2_K.
struct BlockTQ2_0 {
  uint8_t qs[kQK_K / 4];
  uint8_t d[2];
};
static_assert(sizeof(BlockTQ2_0) == 66, "block_tq2_0 is 66 bytes");

// MXFP4 (OCP microscaling): x = 2^(e−128) · v2[q] where v2 = 2·E2M1 = {0, 1, 2, 3, 4, 6, 8, 12, 0, −1, …, −12}
// (ggml keeps doubled E2M1 values and halves the E8M0 scale 2^(e−127)); e = 255 is read as 2^127, not NaN.
// Nibble order as in Q4_0.
struct BlockMxfp4 {
  uint8_t e;                  // E8M0 exponent
  uint8_t qs[kQKMxfp4 / 2];
};
static_assert(sizeof(BlockMxfp4) == 17, "block_mxfp4 is 17 bytes");

// NVFP4: 4 sub-blocks of 16, x = s[k] · v2[q] with s = UE4M3(d[k]) / 2 (bit 7 of d[k] ignored; 0x00 and 0x7F
// read as 0); sub-block k: low nibbles of qs[8k..8k+7] are elements 16k..16k+7, high nibbles 16k+8..16k+15.
struct BlockNvfp4 {
  uint8_t d[kQKNvfp4 / kQKNvfp4Sub];
  uint8_t qs[kQKNvfp4 / 2];
};
static_assert(sizeof(BlockNvfp4) == 36, "block_nvfp4 is 36 bytes");

// IQ4_NL: x = d · kIq4nlValues[q], q ∈ [0, 15]; nibble order as in Q4_0.
struct BlockIQ4_NL {
  uint8_t d[2];
  uint8_t qs[kQK4_NL / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18, "block_iq4_nl is 18 bytes");

// IQ4_XS: 8 sub-blocks of 32, x = d · (ls − 32) · kIq4nlValues[q]; ls = 4 bits (nibble ib%2 of scales_l[ib/2])
// | 2 bits (bits 2·ib..+1 of the little-endian uint16 scales_h) << 4. Sub-block ib: low nibbles of
// qs[16ib..16ib+15] are its first 16 elements, the high nibbles its last 16.
struct BlockIQ4_XS {
  uint8_t d[2];
  uint8_t scales_h[2];
  uint8_t scales_l[kQK_K / 64];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockIQ4_XS) == 136, "block_iq4_xs is 136 bytes");

// IQ2_XXS: 8 sub-blocks of 32, each two little-endian uint32 (a0, a1): the 4 bytes of a0 index kIq2xxsGrid
// (8 values each), a1 bits 7l..7l+6 select kSigns7[·] for group l (bit j set → element j negative), a1 >> 28 is
// the 4-bit scale: x = d · (0.5 + s) · 0.25 · grid · sign.
struct BlockIQ2_XXS {
  uint8_t d[2];
  uint8_t qs[kQK_K / 8 * 2];
};
static_assert(sizeof(BlockIQ2_XXS) == 66, "block_iq2_xxs is 66 bytes");

// IQ2_XS: 32 little-endian uint16 q (9-bit kIq2xsGrid index | 7-bit sign index << 9), one per 8 elements;
// 16 4-bit scales (nibble k%2 of scales[k/2]), one per 16 elements: x = d · (0.5 + s) · 0.25 · grid · sign.
struct BlockIQ2_XS {
  uint8_t d[2];
  uint8_t qs[kQK_K / 8 * 2];
  uint8_t scales[kQK_K / 32];
};
static_assert(sizeof(BlockIQ2_XS) == 74, "block_iq2_xs is 74 bytes");

// IQ2_S: group g (8 elements) uses kIq2sGrid[qs[g] | ((qh[g/4] >> 2·(g%4)) & 3) << 8] and the 8 sign bits of
// signs[g]; scales as IQ2_XS.
struct BlockIQ2_S {
  uint8_t d[2];
  uint8_t qs[kQK_K / 8];
  uint8_t signs[kQK_K / 8];
  uint8_t qh[kQK_K / 32];
  uint8_t scales[kQK_K / 32];
};
static_assert(sizeof(BlockIQ2_S) == 82, "block_iq2_s is 82 bytes");

// IQ3_XXS: 64 bytes of kIq3xxsGrid indices (4 values each), then 8 little-endian uint32 (one per 32 elements):
// bits 7l..7l+6 → kSigns7 for group l (8 elements = 2 grid rows), bits 28..31 the scale:
// x = d · (0.5 + s) · 0.5 · grid · sign.
struct BlockIQ3_XXS {
  uint8_t d[2];
  uint8_t qs[3 * kQK_K / 8];
};
static_assert(sizeof(BlockIQ3_XXS) == 98, "block_iq3_xxs is 98 bytes");

// IQ3_S: row r (4 elements) uses kIq3sGrid[qs[r] | ((qh[r/8] >> r%8) & 1) << 8]; element e is negative when bit
// e%8 of signs[e/8] is set; 8 4-bit scales (nibble k%2 of scales[k/2]), one per 32: x = d · (1 + 2s) · grid · sign.
struct BlockIQ3_S {
  uint8_t d[2];
  uint8_t qs[kQK_K / 4];
  uint8_t qh[kQK_K / 32];
  uint8_t signs[kQK_K / 8];
  uint8_t scales[kQK_K / 64];
};
static_assert(sizeof(BlockIQ3_S) == 110, "block_iq3_s is 110 bytes");

// IQ1_S: sub-block ib (32 elements) has the little-endian uint16 qh[ib]: group l uses
// kIq1sGrid[qs[4ib + l] | ((qh >> 3l) & 7) << 8] (values −1, 0, 1), bits 12..14 the scale, bit 15 the sign of
// the shift: x = d · (2s + 1) · (grid + (bit15 ? −0.125 : 0.125)).
struct BlockIQ1_S {
  uint8_t d[2];
  uint8_t qs[kQK_K / 8];
  uint8_t qh[kQK_K / 32 * 2];
};
static_assert(sizeof(BlockIQ1_S) == 50, "block_iq1_s is 50 bytes");

// IQ1_M: no separate scale field — the fp16 d is the top nibbles of the 4 little-endian uint16 words w of
// `scales` (w0 >> 12 | (w1 >> 8 & 0xF0) | (w2 >> 4 & 0xF00) | (w3 & 0xF000)). Group g (8 elements): grid index
// qs[g] | (nibble g%2 of qh[g/2] & 7) << 8, shift sign = bit 3 of that nibble; 3-bit scale k = g/2 (16 elements)
// at bits 3·(k%4) of w[k/4]: x = d · (2s + 1) · (grid ± 0.125).
struct BlockIQ1_M {
  uint8_t qs[kQK_K / 8];
  uint8_t qh[kQK_K / 16];
  uint8_t scales[kQK_K / 32];
};
static_assert(sizeof(BlockIQ1_M) == 56, "block_iq1_m is 56 bytes");

}  // namespace qeval::model
