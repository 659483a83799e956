// eval/model/sha256.hpp — SHA-256 (FIPS 180-4) for checkpoint content hashes; streaming, scalar.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace qeval::model {

class Sha256 {
 public:
  Sha256();
  void update(const uint8_t* data, size_t n);
  void update(const std::string& s) { update(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }
  std::array<uint8_t, 32> digest();  // finalizes; the object must not be updated afterwards
  std::string hex_digest();          // 64 lowercase hex digits

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(const uint8_t* data, size_t n);

}  // namespace qeval::model
