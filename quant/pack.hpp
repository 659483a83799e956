// quant/pack.hpp — packing storage codes into the planar LSB-first bit stream of quant/layouts.h, and back.
//
// Element c of a row occupies bits [c·b, c·b + b) of the row's bytes, least significant bit first; a row
// is ceil(n·b/8) bytes and its unused high bits are 0. Worked example (b = 4): {1, 15, 8} → {0xF1, 0x08};
// (b = 3): {5, 3, 7} → bits 101|011|111 from bit 0 → byte0 = 0b11_011_101 = 0xDD, byte1 = 0b0000000_1.
#pragma once

#include <cstdint>

namespace qeval::quant {

// Bytes of n codes of `bits` bits: ceil(n·bits / 8).
inline int64_t packed_bytes(int64_t n, int bits) { return (n * bits + 7) / 8; }

// Packs codes[0, n) (each < 2^bits) into out[0, packed_bytes(n, bits)); the pad bits of the last byte are
// written as 0. Throws std::invalid_argument for bits outside 1..8, n < 0, or a code ≥ 2^bits (naming
// its index and value). Fast paths for 8, 4 and 2 bits; any other width uses the generic bit stream.
void pack_codes(const uint8_t* codes, int64_t n, int bits, uint8_t* out);

// Unpacks n codes of `bits` bits from packed[0, packed_bytes(n, bits)) into out[0, n).
// Reads no byte past packed_bytes(n, bits). Throws std::invalid_argument for bits outside 1..8 or n < 0.
void unpack_codes(const uint8_t* packed, int64_t n, int bits, uint8_t* out);

// One code: element c of a packed row.
inline uint8_t packed_code_at(const uint8_t* packed, int64_t c, int bits) {
  const int64_t bit = c * bits;
  const int64_t byte = bit >> 3;
  const int shift = static_cast<int>(bit & 7);
  unsigned v = packed[byte] >> shift;
  if (shift + bits > 8) v |= static_cast<unsigned>(packed[byte + 1]) << (8 - shift);
  return static_cast<uint8_t>(v & ((1u << bits) - 1u));
}

}  // namespace qeval::quant
