// schemes/fp4/fp4.cpp — FP4 weights with a per-group absmax scale, in one of two code books that
// must never be mixed up (the Intel Extension for Transformers bug of seed article 002): the OCP
// e2m1 values (codebook=e2m1, default) and bitsandbytes' fp4 table (codebook=bnb).
#include "quant/quantize.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {
namespace {

class Fp4 final : public Scheme {
 public:
  explicit Fp4(const SchemeConfig& cfg) : Scheme(cfg) {
    cfg.options.check_known(cfg.scheme, {"codebook"});
    format_ = cfg.options.get_string(cfg.scheme, "codebook", "e2m1", {"e2m1", "bnb"}) == "bnb"
                  ? quant::Format::fp4_bnb
                  : quant::Format::fp4_e2m1;
    require_code_book_params(cfg, 4);
  }
  SchemeTraits traits() const override {
    SchemeTraits t;
    t.codes = format_;
    return t;
  }
  quant::QuantizedMatrix quantize(quant::MatrixView w, const Calibration*) const override {
    return quant::quantize_float_format(w, format_, params());
  }

 private:
  quant::Format format_ = quant::Format::fp4_e2m1;
};

}  // namespace

std::unique_ptr<Scheme> make_scheme_fp4(const SchemeConfig& cfg) { return std::make_unique<Fp4>(cfg); }

}  // namespace qeval::schemes
