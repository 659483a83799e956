// eval/model/fingerprint.cpp — XXH64 chaining over the parts of a quantized layer (see fingerprint.hpp).
#include "eval/model/fingerprint.hpp"

#include <xxhash.h>

#include <cstdio>

namespace qeval::model {

Fingerprint& Fingerprint::add(const void* data, size_t bytes) {
  h_ = XXH64(data, bytes, h_);
  return *this;
}

Fingerprint& Fingerprint::add(const quant::QuantizedMatrix& q) {
  const quant::QuantParams& p = q.params;
  for (int64_t v : {static_cast<int64_t>(q.format), static_cast<int64_t>(p.bits), p.group_size,
                    static_cast<int64_t>(p.mapping), static_cast<int64_t>(p.partial_last_group), q.rows, q.cols})
    add_int(v);
  return add(q.codes).add(q.scales).add(q.zero_points).add(q.perm).add(q.col_scale).add(q.non_finite);
}

std::string Fingerprint::hex() const {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
  return buf;
}

}  // namespace qeval::model
