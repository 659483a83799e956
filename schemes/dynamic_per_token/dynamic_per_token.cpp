// schemes/dynamic_per_token/dynamic_per_token.cpp — dynamic activation quantization with OpenVINO's
// semantics (seed article 000): activations are quantized right before the MatMul, per token by
// default or in groups along the innermost axis, and only when the token count exceeds a threshold
// (default 64, so single-token decode steps run unquantized).
//
// Group size: the qeval convention (QuantParams::group_size: 0 = one group per token, N = groups of
// N) applies; the OpenVINO knob `dynamic_quantization_group_size` is also accepted verbatim as the
// option ov_group_size, where 0 DISABLES dynamic quantization (activations pass through in full
// precision), "per_token" (OpenVINO's UINT64_MAX) means one group per token and N means groups of N.
// When both are given, ov_group_size wins.
#include <cstring>
#include <limits>
#include <string>

#include "quant/quantize.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {
namespace {

class DynamicPerToken final : public Scheme {
 public:
  static constexpr int64_t kDefaultThreshold = 64;  // OpenVINO GPU plugin: quantize when tokens > 64

  explicit DynamicPerToken(const SchemeConfig& cfg) : Scheme(cfg) {
    cfg.options.check_known(cfg.scheme, {"threshold", "ov_group_size"});
    threshold_ = cfg.options.get_int(cfg.scheme, "threshold", kDefaultThreshold);
    if (threshold_ < 0)
      throw std::invalid_argument("scheme 'dynamic_per_token': threshold=" + std::to_string(threshold_) +
                                  " must be >= 0 (tokens; quantization applies when tokens > threshold)");
    effective_ = cfg.params;
    if (cfg.params.group_size == quant::kPerTensor)
      throw std::invalid_argument(
          "scheme 'dynamic_per_token': group size -1 (per tensor) is not a per-token scheme; use 0 (per token) "
          "or a group size along the innermost axis");
    if (cfg.options.has("ov_group_size")) {
      const std::string v = cfg.options.get_string(cfg.scheme, "ov_group_size", "per_token");
      if (v == "per_token") {
        effective_.group_size = quant::kPerRow;
      } else {
        const int64_t g = cfg.options.get_int(cfg.scheme, "ov_group_size", 0);
        if (g < 0)
          throw std::invalid_argument("scheme 'dynamic_per_token': ov_group_size=" + v +
                                      " must be 0 (disable), per_token, or a positive group size");
        if (g == 0) enabled_ = false;
        effective_.group_size = g == 0 ? quant::kPerRow : g;
      }
    }
    effective_.validate();
  }

  SchemeTraits traits() const override {
    SchemeTraits t;
    t.target = Target::activation;
    t.activation = ActivationQuant::dynamic;
    t.activation_passthrough_rows = enabled_ ? threshold_ : std::numeric_limits<int64_t>::max();
    return t;
  }

  // True when a batch of `tokens` rows is quantized (OpenVINO: only above the threshold).
  bool applies_to(int64_t tokens) const { return enabled_ && tokens > threshold_; }

  quant::QuantizedMatrix quantize(quant::MatrixView x, const Calibration*) const override {
    return quant::quantize_affine(x, effective_);
  }

  void fake_quantize(quant::MatrixView in, quant::MutableMatrixView out, const Calibration*) const override {
    if (!applies_to(in.rows)) {  // below the threshold (decode) or disabled: full precision
      if (out.data != in.data || out.row_stride != in.row_stride)
        for (int64_t r = 0; r < in.rows; ++r)
          std::memmove(out.row(r), in.row(r), static_cast<size_t>(in.cols) * sizeof(float));
      return;
    }
    quant::fake_quantize_affine(in, effective_, out);
  }

 private:
  int64_t threshold_ = kDefaultThreshold;
  bool enabled_ = true;
  quant::QuantParams effective_;
};

}  // namespace

std::unique_ptr<Scheme> make_scheme_dynamic_per_token(const SchemeConfig& cfg) {
  return std::make_unique<DynamicPerToken>(cfg);
}

}  // namespace qeval::schemes
