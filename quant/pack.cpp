// quant/pack.cpp — int2/3/4/8 (and any 1..8-bit) code packing into the LSB-first planar bit stream.
#include "quant/pack.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

namespace qeval::quant {

namespace {

void check_args(int64_t n, int bits, const char* who) {
  if (bits < 1 || bits > 8)
    throw std::invalid_argument(std::string(who) + ": bits = " + std::to_string(bits) +
                                " is not supported; accepted: 1..8");
  if (n < 0) throw std::invalid_argument(std::string(who) + ": negative element count " + std::to_string(n));
}

[[noreturn]] void bad_code(int64_t i, unsigned code, int bits) {
  throw std::invalid_argument("pack_codes: code " + std::to_string(code) + " at index " + std::to_string(i) +
                              " does not fit in " + std::to_string(bits) + " bits (max " +
                              std::to_string((1u << bits) - 1u) + ")");
}

}  // namespace

void pack_codes(const uint8_t* codes, int64_t n, int bits, uint8_t* out) {
  check_args(n, bits, "pack_codes");
  const unsigned limit = 1u << bits;
  const int64_t nbytes = packed_bytes(n, bits);
  if (bits == 8) {
    if (n > 0) std::memcpy(out, codes, static_cast<size_t>(n));  // (memcpy with a null pointer is UB even for 0)
    return;
  }
  if (bits == 4) {
    for (int64_t k = 0; k < nbytes; ++k) {
      const int64_t i = 2 * k;
      const unsigned lo = codes[i];
      const unsigned hi = (i + 1 < n) ? codes[i + 1] : 0u;
      if (lo >= limit) bad_code(i, lo, bits);
      if (hi >= limit) bad_code(i + 1, hi, bits);
      out[k] = static_cast<uint8_t>(lo | (hi << 4));  // element 2k: low nibble
    }
    return;
  }
  if (bits == 2) {
    for (int64_t k = 0; k < nbytes; ++k) {
      unsigned b = 0;
      for (int j = 0; j < 4; ++j) {
        const int64_t i = 4 * k + j;
        if (i >= n) break;
        if (codes[i] >= limit) bad_code(i, codes[i], bits);
        b |= static_cast<unsigned>(codes[i]) << (2 * j);
      }
      out[k] = static_cast<uint8_t>(b);
    }
    return;
  }
  // Generic: shift codes into a bit accumulator, emit whole bytes from its low end.
  uint32_t acc = 0;
  int nacc = 0;  // valid bits in acc (< 8 between elements)
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (codes[i] >= limit) bad_code(i, codes[i], bits);
    acc |= static_cast<uint32_t>(codes[i]) << nacc;
    nacc += bits;
    while (nacc >= 8) {
      out[k++] = static_cast<uint8_t>(acc & 0xFFu);
      acc >>= 8;
      nacc -= 8;
    }
  }
  if (nacc > 0) out[k++] = static_cast<uint8_t>(acc & 0xFFu);  // pad bits are 0
}

void unpack_codes(const uint8_t* packed, int64_t n, int bits, uint8_t* out) {
  check_args(n, bits, "unpack_codes");
  if (bits == 8) {
    if (n > 0) std::memcpy(out, packed, static_cast<size_t>(n));
    return;
  }
  if (bits == 4) {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>((packed[i >> 1] >> ((i & 1) * 4)) & 0xFu);
    return;
  }
  if (bits == 2) {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>((packed[i >> 2] >> ((i & 3) * 2)) & 0x3u);
    return;
  }
  const uint32_t mask = (1u << bits) - 1u;
  uint32_t acc = 0;
  int nacc = 0;
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    while (nacc < bits) {  // only reads the bytes that hold bits of element i
      acc |= static_cast<uint32_t>(packed[k++]) << nacc;
      nacc += 8;
    }
    out[i] = static_cast<uint8_t>(acc & mask);
    acc >>= bits;
    nacc -= bits;
  }
}

}  // namespace qeval::quant
