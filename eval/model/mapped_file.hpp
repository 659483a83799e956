// eval/model/mapped_file.hpp — a read-only memory map of a whole file (RAII), with errors that name the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qeval::model {

class MappedFile {
 public:
  // Maps `path` read-only (PROT_READ, MAP_PRIVATE). Throws CheckpointError naming the file when it cannot be
  // opened, is not a regular file, or cannot be mapped. An empty file maps to size() == 0, data() == nullptr.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace qeval::model
