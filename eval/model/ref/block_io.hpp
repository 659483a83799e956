// eval/model/ref/block_io.hpp — little-endian field reads shared by the reference dequantizers (internal header).
#pragma once

#include <cstdint>
#include <cstring>

#include "eval/model/ref/ggml_dequant_ref.hpp"

namespace qeval::ref::detail {

inline uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
// An fp16 field as double (exact: every binary16 value, ±Inf and NaN are doubles).
inline double half(const uint8_t* p) { return static_cast<double>(fp16_to_fp32(le16(p))); }

// Block i of `src` copied into a layout struct (the file's blocks need not be aligned).
template <class Block>
Block load_block(const uint8_t* src, int64_t i) {
  Block b;
  std::memcpy(&b, src + i * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
  return b;
}

}  // namespace qeval::ref::detail
