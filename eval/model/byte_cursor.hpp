// eval/model/byte_cursor.hpp — bounds-checked little-endian reads from a byte span; every read names its field.
//
// Every length is checked against the bytes that remain BEFORE anything is read or allocated, so a corrupt
// count or length can neither read out of bounds nor make the reader allocate more than the file could hold.
// Field names are passed as callables and only built when an error is thrown (the happy path reads ~10^5
// tokenizer strings and must not format 10^5 names).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "eval/model/checkpoint.hpp"

namespace qeval::model {

class ByteCursor {
 public:
  ByteCursor(const uint8_t* data, size_t size, const std::string& file) : data_(data), size_(size), file_(file) {}

  size_t pos() const { return pos_; }
  size_t size() const { return size_; }
  size_t remaining() const { return size_ - pos_; }
  const std::string& file() const { return file_; }

  template <class Field>
  [[noreturn]] void fail(const Field& field, const std::string& problem) const {
    throw CheckpointError(file_, field(), problem + " (at byte " + std::to_string(pos_) + ")");
  }

  // Returns a pointer to the next n bytes and advances; throws when fewer remain.
  template <class Field>
  const uint8_t* take(uint64_t n, const Field& field) {
    if (n > remaining()) {
      throw CheckpointError(file_, field(),
                            "needs " + std::to_string(n) + " bytes at byte " + std::to_string(pos_) + " but only " +
                                std::to_string(remaining()) + " remain (file size " + std::to_string(size_) +
                                ") — file truncated or a length/count field is corrupt");
    }
    const uint8_t* p = data_ + pos_;
    pos_ += static_cast<size_t>(n);
    return p;
  }

  template <class T, class Field>
  T read(const Field& field) {
    T v;
    std::memcpy(&v, take(sizeof(T), field), sizeof(T));  // little-endian host (checked at build time)
    return v;
  }

  // GGUF string: uint64 length + bytes (no terminator).
  template <class Field>
  std::string read_string(const Field& field) {
    const uint64_t n = read<uint64_t>(field);
    if (n > remaining()) {
      throw CheckpointError(file_, field(),
                            "string length " + std::to_string(n) + " exceeds the " + std::to_string(remaining()) +
                                " bytes left in the file (at byte " + std::to_string(pos_) +
                                ") — file truncated or length corrupt");
    }
    const uint8_t* p = take(n, field);
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }

  void seek(size_t pos) { pos_ = pos <= size_ ? pos : size_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& file_;
};

}  // namespace qeval::model
