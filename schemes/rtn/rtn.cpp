// schemes/rtn/rtn.cpp — round-to-nearest integer weight quantization: sym/asym, per-tensor, per-channel
// or grouped along the innermost axis; the baseline every other weight scheme is compared with.
#include "quant/quantize.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {
namespace {

class Rtn final : public Scheme {
 public:
  explicit Rtn(const SchemeConfig& cfg) : Scheme(cfg) { cfg.options.check_known(cfg.scheme, {}); }
  SchemeTraits traits() const override {  // weight target, no calibration, int_affine codes
    SchemeTraits t;
    t.plain_affine = true;
    return t;
  }
  quant::QuantizedMatrix quantize(quant::MatrixView w, const Calibration*) const override {
    return quant::quantize_affine(w, params());
  }
};

}  // namespace

std::unique_ptr<Scheme> make_scheme_rtn(const SchemeConfig& cfg) { return std::make_unique<Rtn>(cfg); }

}  // namespace qeval::schemes
