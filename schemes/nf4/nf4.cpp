// schemes/nf4/nf4.cpp — NormalFloat4 weights (QLoRA): the 16 quantiles of N(0,1) normalized to [−1, 1]
// with an exact zero, scaled per block by the block's absmax (bitsandbytes uses blocks of 64).
#include "quant/quantize.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {
namespace {

class Nf4 final : public Scheme {
 public:
  explicit Nf4(const SchemeConfig& cfg) : Scheme(cfg) {
    cfg.options.check_known(cfg.scheme, {});
    require_code_book_params(cfg, 4);
  }
  SchemeTraits traits() const override {
    SchemeTraits t;
    t.codes = quant::Format::nf4;
    return t;
  }
  quant::QuantizedMatrix quantize(quant::MatrixView w, const Calibration*) const override {
    return quant::quantize_float_format(w, quant::Format::nf4, params());
  }
};

}  // namespace

std::unique_ptr<Scheme> make_scheme_nf4(const SchemeConfig& cfg) { return std::make_unique<Nf4>(cfg); }

}  // namespace qeval::schemes
