// gpu/tuner_bench.hpp — one shape class as the tuner measures it (internal to gpu/tuner.cpp): its inputs on the
// device, its candidate variants (the safe default first), the exactness check of a candidate, and its timing.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gpu/device.hpp"
#include "gpu/variants.hpp"

namespace qeval::gpu {

class ClassBench {
 public:
  virtual ~ClassBench() = default;
  virtual size_t size() const = 0;                     // number of candidates
  virtual std::string name(size_t i) const = 0;        // the variant's name
  virtual nlohmann::json variant(size_t i) const = 0;  // its table entry (gpu/variants.hpp to_json)
  // "" when candidate i reproduces the reference exactly on the class's shapes, else what differed. Throws
  // (ClError, std::invalid_argument) when it cannot be built or launched.
  virtual std::string verify(size_t i) = 0;
  // Median kernel seconds of candidate i on the timed shape over `reps` runs (after a warm-up run).
  virtual double seconds(size_t i, int reps) = 0;
  virtual double figure(double seconds) const = 0;  // GB/s or TOPS of the timed shape
  virtual const char* unit() const = 0;             // "GB/s" or "TOPS"
  virtual const char* baseline() const = 0;         // "copy" or "dot4_peak"
  virtual nlohmann::json shape() const = 0;         // the timed shape, e.g. {"M": 4096, "N": 4096, "K": 4096}
};

// The bench of class c on device d; `large`: GPU-sized shapes (4096³ GEMM, 16384×4096 quantize, 128 MiB of
// decode weights), else shapes a CPU device measures in seconds.
std::unique_ptr<ClassBench> make_class_bench(ShapeClass c, Device& d, bool large);

}  // namespace qeval::gpu
