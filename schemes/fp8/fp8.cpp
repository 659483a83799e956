// schemes/fp8/fp8.cpp — FP8 weights (OCP e4m3, max 448, or e5m2, max 57344) with a per-group absmax
// scale that maps the group's largest magnitude to the format's largest finite value; saturating.
#include "quant/quantize.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {
namespace {

class Fp8 final : public Scheme {
 public:
  explicit Fp8(const SchemeConfig& cfg) : Scheme(cfg) {
    cfg.options.check_known(cfg.scheme, {"format"});
    format_ = cfg.options.get_string(cfg.scheme, "format", "e4m3", {"e4m3", "e5m2"}) == "e5m2"
                  ? quant::Format::fp8_e5m2
                  : quant::Format::fp8_e4m3;
    require_code_book_params(cfg, 8);
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
  quant::Format format_ = quant::Format::fp8_e4m3;
};

}  // namespace

std::unique_ptr<Scheme> make_scheme_fp8(const SchemeConfig& cfg) { return std::make_unique<Fp8>(cfg); }

}  // namespace qeval::schemes
