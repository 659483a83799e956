// schemes/static_act/static_act.cpp — static activation quantization: scales calibrated once per layer from captured
// inputs (min/max, percentile or MSE search — quant's RangeMethod machinery via choose_group_params), frozen in
// Calibration::frozen_scales / frozen_zero_points, then applied to every later activation. Values outside the
// calibrated range clip to the grid's ends (the price of not looking at the data at run time; the clipped
// fraction per layer is reported by run_stats()).
//
// Granularity (option granularity):
//   tensor   one scale (and zero point) for the whole activation — the deployable kind (one multiplier);
//   channel  one per input feature (column). quantize() then stores the TRANSPOSE [features, tokens] (a channel is
//            a row, so QuantizedMatrix's per-row groups hold the per-channel parameters, zero points included);
//            this scheme's dequantize() transposes back into the [tokens, features] output.
// QuantParams.group_size must be −1: static parameters are never per token (the token count changes per call).
//
// Protocol: eval/ calls calibrate(calib) once per layer with the captured inputs and keeps the returned
// Calibration; fake_quantize(x, out, &kept) runs at every forward. calibrate() needs the captured rows, except
// for symmetric minmax, which only needs act_absmax.
#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/quantize.hpp"
#include "schemes/common/calib_common.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {
namespace {

// GroupParams from a frozen scale and zero point, as group_params_from_range() defines inv_scale (1/scale, 0 when
// the scale is 0 or its reciprocal overflows).
quant::GroupParams frozen_params(float scale, int32_t zp) {
  quant::GroupParams g;
  g.scale = scale;
  g.zero_point = zp;
  g.inv_scale = scale > 0.0f ? 1.0f / scale : 0.0f;
  if (!std::isfinite(g.inv_scale)) g.inv_scale = 0.0f;
  return g;
}

class StaticAct final : public Scheme {
 public:
  explicit StaticAct(const SchemeConfig& cfg) : Scheme(cfg) {
    const std::string id = cfg.scheme;
    cfg.options.check_known(id, {"granularity"});
    per_channel_ = cfg.options.get_string(id, "granularity", "tensor", {"tensor", "channel"}) == "channel";
    if (cfg.params.group_size != quant::kPerTensor)
      throw std::invalid_argument("scheme 'static_act': group size " + std::to_string(cfg.params.group_size) +
                                  " — static activation parameters are frozen per tensor or per channel, never per "
                                  "token or per group of a token; use group size -1 and granularity=tensor|channel "
                                  "(dynamic_per_token quantizes per token)");
    if (cfg.params.non_finite != quant::NonFinitePolicy::error)
      throw std::invalid_argument("scheme 'static_act': non_finite=propagate is not supported; use non_finite=error");
  }
  SchemeTraits traits() const override {
    SchemeTraits t;
    t.target = Target::activation;
    t.activation = ActivationQuant::frozen;
    t.activation_per_feature = per_channel_;
    t.calibrates_once = true;
    t.calibration.act_absmax = true;
    // Symmetric min/max needs only max|x|, taken over every calibration token (exact); every other range
    // method (percentile, MSE, asymmetric min/max) reads the values: a bounded sample of rows.
    t.calibration.rows = !(params().mapping == quant::Mapping::symmetric && params().range == quant::RangeMethod::minmax);
    return t;
  }

  Calibration calibrate(Calibration c) const override {
    const quant::QuantParams& p = params();
    if (!calib::has_inputs(c)) {
      // Symmetric minmax needs only max|x|; every other method needs the values themselves.
      if (c.act_absmax.empty() || p.mapping != quant::Mapping::symmetric || p.range != quant::RangeMethod::minmax)
        calib::missing_calibration(name(), &c,
                                   "the captured input rows (act_absmax alone suffices only for symmetric minmax)");
      const int64_t in = static_cast<int64_t>(c.act_absmax.size());
      c.frozen_scales.clear();
      c.frozen_zero_points.clear();
      double all = 0.0;
      for (float a : c.act_absmax) all = std::max(all, static_cast<double>(a));
      auto from = [&](double a) {
        const float v = static_cast<float>(a);
        return quant::choose_group_params(std::vector<float>{-v, v}.data(), 2, p);
      };
      for (int64_t j = 0; j < (per_channel_ ? in : 1); ++j) {
        const quant::GroupParams g = from(per_channel_ ? c.act_absmax[static_cast<size_t>(j)] : all);
        c.frozen_scales.push_back(g.scale);
        c.frozen_zero_points.push_back(g.zero_point);
      }
      return c;
    }
    quant::check_finite(c.inputs, quant::NonFinitePolicy::error, "static_act calibration input");
    const int64_t n = c.inputs.rows, in = c.inputs.cols;
    c.frozen_scales.clear();
    c.frozen_zero_points.clear();
    std::vector<float> buf;
    if (!per_channel_) {
      buf.resize(static_cast<size_t>(n * in));
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < in; ++j) buf[static_cast<size_t>(r * in + j)] = c.inputs(r, j);
      const quant::GroupParams g = quant::choose_group_params(buf.data(), n * in, p);
      c.frozen_scales.push_back(g.scale);
      c.frozen_zero_points.push_back(g.zero_point);
    } else {
      buf.resize(static_cast<size_t>(n));
      for (int64_t j = 0; j < in; ++j) {
        for (int64_t r = 0; r < n; ++r) buf[static_cast<size_t>(r)] = c.inputs(r, j);
        const quant::GroupParams g = quant::choose_group_params(buf.data(), n, p);
        c.frozen_scales.push_back(g.scale);
        c.frozen_zero_points.push_back(g.zero_point);
      }
    }
    return c;
  }

  quant::QuantizedMatrix quantize(quant::MatrixView x, const Calibration* c) const override {
    const Calibration& cal = calib::require(name(), c, "scales frozen by calibrate() from the captured inputs");
    const std::vector<quant::GroupParams> g = frozen(cal, x.cols);
    quant::check_finite(x, quant::NonFinitePolicy::error, "static_act input");
    const quant::QuantParams& p = params();
    const int qmin = p.qmin(), qmax = p.qmax();
    int64_t clipped = 0;
    // Codes of the matrix as stored: x itself (per tensor) or xᵀ (per channel: row j = feature j).
    const quant::Matrix stored = per_channel_ ? calib::transpose(x) : calib::copy(x);
    std::vector<int32_t> q(static_cast<size_t>(stored.rows * stored.cols));
    for (int64_t r = 0; r < stored.rows; ++r)
      for (int64_t k = 0; k < stored.cols; ++k) {
        const quant::GroupParams& gp = g[static_cast<size_t>(per_channel_ ? r : 0)];
        const float v = stored(r, k);
        const int32_t code = quant::quantize_one(v, gp, qmin, qmax, p.rounding);
        q[static_cast<size_t>(r * stored.cols + k)] = code;
        // Clipped: the value lies beyond the grid end it was clamped to by more than half a step.
        const float xhat = quant::dequantize_one(code, gp);
        if ((code == qmin || code == qmax) && std::fabs(v - xhat) > 0.5f * gp.scale * (1.0f + 1e-4f)) ++clipped;
      }
    quant::QuantParams sp = p;
    sp.group_size = per_channel_ ? quant::kPerRow : quant::kPerTensor;
    quant::QuantizedMatrix out = calib::pack_affine(sp, stored.rows, stored.cols, q.data(), g);
    out.validate();
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& s = stats_[cal.layer_name];
      s["calls"] += 1;
      s["values"] += static_cast<double>(x.size());
      s["clipped"] += static_cast<double>(clipped);
      s["clipped_fraction"] = s["values"] > 0 ? s["clipped"] / s["values"] : 0.0;
    }
    return out;
  }

  void dequantize(const quant::QuantizedMatrix& q, quant::MutableMatrixView out) const override {
    if (!per_channel_) {
      quant::dequantize(q, out);
      return;
    }
    calib::dequantize_transposed(name(), "granularity=channel", q, out);
  }

  // Per layer: calls, values, clipped (values beyond the calibrated range by more than half a step) and
  // clipped_fraction.
  std::map<std::string, std::map<std::string, double>> run_stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  std::vector<quant::GroupParams> frozen(const Calibration& c, int64_t in) const {
    const size_t want = per_channel_ ? static_cast<size_t>(in) : 1;
    if (c.frozen_scales.empty())
      throw std::invalid_argument(calib::who(name(), &c) + "no frozen scales: call calibrate() once per layer with "
                                  "the captured inputs and pass its result (run with calibration (--calib ...))");
    if (c.frozen_scales.size() != want || c.frozen_zero_points.size() != want)
      throw std::invalid_argument(calib::who(name(), &c) + "the frozen parameters hold " +
                                  std::to_string(c.frozen_scales.size()) + " scales and " +
                                  std::to_string(c.frozen_zero_points.size()) + " zero points, expected " +
                                  std::to_string(want) + (per_channel_ ? " (one per input feature)" : " (per tensor)") +
                                  "; calibrate this layer with this scheme");
    std::vector<quant::GroupParams> g;
    for (size_t i = 0; i < want; ++i) g.push_back(frozen_params(c.frozen_scales[i], c.frozen_zero_points[i]));
    return g;
  }

  bool per_channel_ = false;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::map<std::string, double>> stats_;
};

}  // namespace

std::unique_ptr<Scheme> make_scheme_static_act(const SchemeConfig& cfg) { return std::make_unique<StaticAct>(cfg); }

}  // namespace qeval::schemes
