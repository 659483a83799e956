// eval/model/quantize_install.cpp — stage 4 of quantize_model: one layer quantized with its calibration and handed
// to the model's backend, with its record and fingerprint (quantize_stages.hpp).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "eval/model/fingerprint.hpp"
#include "eval/model/model_util.hpp"
#include "eval/model/quantize_stages.hpp"

namespace qeval::model::stages {

namespace {

// A Calibration without the parts that point into a capture (inputs) or are large (Hessian): what a linear scheme or
// an activation scheme keeps for every later forward.
schemes::Calibration stripped(schemes::Calibration c) {
  c.inputs = quant::MatrixView();
  c.hessian.clear();
  c.hessian.shrink_to_fit();
  return c;
}

// The weight side: quantize once, dequantize into `effective`; returns the stored codes.
quant::QuantizedMatrix quantize_weight(const LayerSlot& s, const schemes::Calibration& c, LayerQuantInfo& info) {
  LinearLayer& L = *s.layer;
  info.role = s.role == Role::weight ? "weight" : "linear";
  c10::InferenceMode g(false);
  at::NoGradGuard ng;
  const at::Tensor w = fp32_of(L.weight.detach()).contiguous();  // file precision: this layer's fp32, for now only
  quant::QuantizedMatrix q = s.ws->quantize(view_of(w), &c);
  at::Tensor eff = at::empty_like(w);
  s.ws->dequantize(q, mutable_view_of(eff));
  // Storage: the codes' bits/weight, plus 16 bits per column when the scheme stores col_scale (16/rows per weight).
  info.bits_per_weight = q.bits_per_weight() + (q.col_scale.empty() ? 0.0 : 16.0 / static_cast<double>(q.rows));
  info.weight_sqnr_db = sqnr_db(w, eff);
  L.effective = eff;
  L.bits_per_weight = info.bits_per_weight;
  L.weight_sqnr_db = info.weight_sqnr_db;
  if (s.role == Role::weight) {
    L.weight_scheme = s.ws;
  } else {
    L.linear_scheme = s.ws;
    L.linear_calib = std::make_shared<const schemes::Calibration>(stripped(c));
  }
  return q;
}

// A calibrated activation scheme: calibrate() once on the input as the layer sees it at run time — X·diag(1/s) after
// a fold — from statistics over every token, plus the row sample only when its traits ask for rows.
std::shared_ptr<const schemes::Calibration> calibrate_activation(const LayerSlot& s, schemes::Calibration rc,
                                                                 const std::vector<float>* runtime_inv_s) {
  rc.migration_scales.clear();
  rc.migration_folded = false;
  if (!s.a_needs.rows) rc.inputs = quant::MatrixView();
  quant::Matrix scaled;
  if (runtime_inv_s) {
    const std::vector<float>& inv = *runtime_inv_s;
    for (size_t j = 0; j < rc.act_absmax.size(); ++j) rc.act_absmax[j] *= inv[j];
    for (size_t j = 0; j < rc.act_absmean.size(); ++j) rc.act_absmean[j] *= inv[j];
    rc.hessian.clear();
    if (rc.inputs.data) {
      scaled = quant::Matrix(rc.inputs.rows, rc.inputs.cols);
      for (int64_t r = 0; r < rc.inputs.rows; ++r)
        for (int64_t j = 0; j < rc.inputs.cols; ++j) scaled(r, j) = rc.inputs(r, j) * inv[static_cast<size_t>(j)];
      rc.inputs = scaled.view();
    }
  }
  return std::make_shared<const schemes::Calibration>(stripped(s.as->calibrate(rc)));
}

}  // namespace

bool compact_weights() {
  const char* v = std::getenv("QEVAL_QUANT_WEIGHTS");
  const std::string s = v ? v : "";
  if (s.empty() || s == "codes") return true;
  if (s == "fp32") return false;
  throw std::invalid_argument("QEVAL_QUANT_WEIGHTS=" + s + ": unknown (use codes — quantized layers held as their "
                              "codes, dequantized at use, the default — or fp32 — a dequantized fp32 copy per layer)");
}

schemes::Calibration layer_calibration(const std::string& layer, const schemes::Calibration* captured,
                                       const Migration* mig) {
  schemes::Calibration c = captured ? *captured : schemes::Calibration{};
  c.layer_name = layer;
  if (mig) {
    c.migration_scales = mig->s;
    c.migration_folded = mig->folded;
  }
  return c;
}

LayerQuantInfo install_layer(LlamaModel& m, const LayerSlot& s, const schemes::Calibration& c,
                             const std::vector<float>* runtime_inv_s, const Migration* mig) {
  const double t0 = now_s();
  LinearLayer& L = *s.layer;
  LayerQuantInfo info;
  info.layer = s.name;
  info.rows = L.out_features();
  info.cols = L.in_features();
  info.role = "act";
  if (s.ws) info.scheme = s.ws->config().label();
  if (s.as) info.act_scheme = s.as->config().label();
  if (mig) {
    info.migration = mig->folded ? "folded into " + mig->producer : "unfolded";
    info.migration_scales = mig->s;
  }
  Fingerprint fp;  // what this layer stores, in fingerprint.hpp's order
  std::optional<quant::QuantizedMatrix> q;
  if (s.ws) {
    q = quantize_weight(s, c, info);
    fp.add(*q);
  }
  if (s.as && s.a_needs.any_statistics()) {
    L.act_calib = calibrate_activation(s, c, runtime_inv_s);
    fp.add(L.act_calib->frozen_scales).add(L.act_calib->frozen_zero_points);
  }
  if (s.as) L.act_scheme = s.as;
  if (mig) fp.add(mig->s).add_int(mig->folded ? 1 : 0);
  if (s.ws || L.act_calib) info.fingerprint = fp.hex();
  if (q && s.role == Role::weight && compact_weights()) {  // held as codes: prepare_linear releases `effective`
    L.codes = std::make_shared<const quant::QuantizedMatrix>(std::move(*q));
    m.prepare_linear(L, L.codes.get());
  } else {
    m.prepare_linear(L, q ? &*q : nullptr);
  }
  info.seconds = now_s() - t0;
  return info;
}

}  // namespace qeval::model::stages
