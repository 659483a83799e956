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
  MXFP4 = 39,
};

struct GgmlTypeTraits {
  const char* name;      // ggml's name ("Q4_K"); nullptr for an unknown id
  uint32_t block_elems;  // elements per block (1 for plain types)
  uint32_t block_bytes;  // bytes per block
  bool dequantizable;    // qeval::ref has a dequantizer for it
};

// Traits of a type id; `name == nullptr` when the id is not a known ggml type.
GgmlTypeTraits ggml_type_traits(uint32_t type_id);
inline std::string ggml_type_name(GgmlType t) {
  const GgmlTypeTraits tr = ggml_type_traits(static_cast<uint32_t>(t));
  return tr.name ? tr.name : "type#" + std::to_string(static_cast<uint32_t>(t));
}

// ---- packed block layouts (ggml-common.h), each guarded by its on-disk size ----
inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
inline constexpr int kQK8_0 = 32;
inline constexpr int kQK_K = 256;        // super-block of the k-quants
inline constexpr int kKScaleSize = 12;   // packed 6-bit scales + mins of Q4_K/Q5_K

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

}  // namespace qeval::model
