// schemes/nf4/nf4.cpp — NormalFloat4 weights (QLoRA): the 16 quantiles of N(0,1) normalized to [−1, 1]
// with an exact zero, scaled per block by the block's absmax (bitsandbytes uses blocks of 64).
#include "schemes/common/code_book.hpp"

namespace qeval::schemes {

std::unique_ptr<Scheme> make_scheme_nf4(const SchemeConfig& cfg) {
  return std::make_unique<CodeBookScheme>(cfg, 4, "", std::vector<CodeBookChoice>{
      {"nf4", quant::Format::nf4}});
}

}  // namespace qeval::schemes
