// schemes/common/code_book.cpp — CodeBookScheme: option → table, traits,
// quantize through quant::quantize_float_format.
#include "schemes/common/code_book.hpp"

#include "quant/quantize.hpp"

namespace qeval::schemes {

namespace {

quant::Format chosen_format(const SchemeConfig& cfg, const std::string& option,
                            const std::vector<CodeBookChoice>& choices) {
  if (option.empty()) {
    cfg.options.check_known(cfg.scheme, {});
    return choices.front().format;
  }
  cfg.options.check_known(cfg.scheme, {option});
  std::vector<std::string> names;
  for (const auto& c : choices) names.push_back(c.name);
  const std::string picked = cfg.options.get_string(cfg.scheme, option, names.front(), names);
  for (const auto& c : choices)
    if (c.name == picked) return c.format;
  return choices.front().format;  // unreachable: get_string accepts only the listed names
}

}  // namespace

CodeBookScheme::CodeBookScheme(const SchemeConfig& cfg, int format_bits, const std::string& option,
                               const std::vector<CodeBookChoice>& choices)
    : Scheme(cfg), format_(chosen_format(cfg, option, choices)) {
  require_code_book_params(cfg, format_bits);
}

SchemeTraits CodeBookScheme::traits() const {
  SchemeTraits t;
  t.codes = format_;
  return t;
}

quant::QuantizedMatrix CodeBookScheme::quantize(quant::MatrixView w, const Calibration*) const {
  return quant::quantize_float_format(w, format_, params());
}

}  // namespace qeval::schemes
