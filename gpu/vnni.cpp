// gpu/vnni.cpp — host-side VNNI packing (the statement of quant/layouts.h §4 in C++).
#include "gpu/vnni.hpp"

#include <stdexcept>
#include <string>

#include "quant/layouts.h"

namespace qeval::gpu {

int64_t vnni_words(int64_t N, int64_t K, int sg) {
  const int64_t kb = (K + QEVAL_VNNI_KBLOCK - 1) / QEVAL_VNNI_KBLOCK;
  return ((N + sg - 1) / sg) * kb * 8 * sg;
}

std::vector<uint32_t> pack_vnni_host(const int8_t* W, int64_t N, int64_t K, int64_t ldw, int sg) {
  if (sg != 8 && sg != 16) throw std::invalid_argument("pack_vnni_host: subgroup size must be 8 or 16, got " + std::to_string(sg));
  if (N < 0 || K < 0 || ldw < K) throw std::invalid_argument("pack_vnni_host: bad shape or stride");
  const int64_t KB = (K + QEVAL_VNNI_KBLOCK - 1) / QEVAL_VNNI_KBLOCK;
  const int64_t T = (N + sg - 1) / sg;
  std::vector<uint32_t> out(static_cast<size_t>(vnni_words(N, K, sg)), 0u);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t kb = 0; kb < KB; ++kb)
      for (int64_t j = 0; j < 8; ++j)
        for (int64_t l = 0; l < sg; ++l) {
          const int64_t n = t * sg + l;
          uint32_t w = 0;
          for (int64_t i = 0; i < 4; ++i) {
            const int64_t k = kb * 32 + 4 * j + i;
            if (n < N && k < K) w |= static_cast<uint32_t>(static_cast<uint8_t>(W[n * ldw + k])) << (8 * i);
          }
          out[static_cast<size_t>(QEVAL_VNNI_WORD_INDEX(t, kb, j, l, KB, sg))] = w;
        }
  return out;
}

}  // namespace qeval::gpu
