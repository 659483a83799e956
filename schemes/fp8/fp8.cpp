// schemes/fp8/fp8.cpp — FP8 weights (OCP e4m3, max 448, or e5m2, max 57344) with a per-group absmax
// scale that maps the group's largest magnitude to the format's largest finite value; saturating.
#include "schemes/common/code_book.hpp"

namespace qeval::schemes {

std::unique_ptr<Scheme> make_scheme_fp8(const SchemeConfig& cfg) {
  return std::make_unique<CodeBookScheme>(cfg, 8, "format", std::vector<CodeBookChoice>{
      {"e4m3", quant::Format::fp8_e4m3},
      {"e5m2", quant::Format::fp8_e5m2}});
}

}  // namespace qeval::schemes
