// eval/model/fingerprint.hpp — content hashes of what a quantization produced, so the CI gate can say exactly which
// layers' quantized weights changed between two runs (docs/regression-gate.md, "Fingerprints").
//
// A layer's fingerprint is XXH64, chained in this order over little-endian bytes:
//   format, bits, group size, mapping, partial-last-group flag, rows, cols (each as int64);
//   the packed codes; the scales (fp32); the zero points; the permutation (GPTQ act-order); the column scales
//   (AWQ / SmoothQuant unfolded); the indices of non-finite elements;
//   then, when present, the activation parameters a static activation scheme froze at calibration (scales, zero
//   points), and the layer's migration factors s with whether they were folded (AWQ, SmoothQuant).
// Equal fingerprints mean bit-identical quantized layers; any changed code, scale or zero point changes it (with
// probability 1 − 2⁻⁶⁴ per comparison). The model fingerprint chains (layer name, layer fingerprint) in forward
// order, so it also changes when a layer is added, dropped or renamed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quant/matrix.hpp"

namespace qeval::model {

class Fingerprint {
 public:
  explicit Fingerprint(uint64_t seed = 0) : h_(seed) {}
  Fingerprint& add(const void* data, size_t bytes);
  Fingerprint& add_int(int64_t v) { return add(&v, sizeof v); }
  template <typename T>
  Fingerprint& add(const std::vector<T>& v) {
    add_int(static_cast<int64_t>(v.size()));  // so [a][b] and [ab] differ
    return add(v.data(), v.size() * sizeof(T));
  }
  Fingerprint& add(const quant::QuantizedMatrix& q);
  uint64_t value() const { return h_; }
  std::string hex() const;  // 16 lower-case hex digits

 private:
  uint64_t h_;
};

}  // namespace qeval::model
