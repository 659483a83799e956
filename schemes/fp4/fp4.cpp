// schemes/fp4/fp4.cpp — FP4 weights with a per-group absmax scale, in one of two code books that
// must never be mixed up (the Intel Extension for Transformers bug of seed article 002): the OCP
// e2m1 values (codebook=e2m1, default) and bitsandbytes' fp4 table (codebook=bnb).
#include "schemes/common/code_book.hpp"

namespace qeval::schemes {

std::unique_ptr<Scheme> make_scheme_fp4(const SchemeConfig& cfg) {
  return std::make_unique<CodeBookScheme>(cfg, 4, "codebook", std::vector<CodeBookChoice>{
      {"e2m1", quant::Format::fp4_e2m1},
      {"bnb", quant::Format::fp4_bnb}});
}

}  // namespace qeval::schemes
