// schemes/common/code_book.hpp — the one body of the code-book weight schemes
// (fp4, nf4, fp8): a fixed table of values per element, a per-group absmax
// scale, one option that picks the table.
#pragma once

#include <string>
#include <vector>

#include "schemes/scheme.hpp"

namespace qeval::schemes {

struct CodeBookChoice {
  std::string name;  // the option value, e.g. "e2m1"
  quant::Format format;
};

// option: the scheme option that picks the code book (empty when the scheme has
// one table: choices then has one entry and the scheme accepts no option); the
// first choice is the default. format_bits: the code width, which the scheme's
// QuantParams must agree with (require_code_book_params).
class CodeBookScheme : public Scheme {
 public:
  CodeBookScheme(const SchemeConfig& cfg, int format_bits, const std::string& option,
                 const std::vector<CodeBookChoice>& choices);
  SchemeTraits traits() const override;
  quant::QuantizedMatrix quantize(quant::MatrixView w, const Calibration*) const override;

 private:
  quant::Format format_;
};

}  // namespace qeval::schemes
