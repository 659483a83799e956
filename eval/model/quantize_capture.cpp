// eval/model/quantize_capture.cpp — stage 2 of quantize_model: the calibration windows' hidden state pushed through
// the model block by block, and the inputs of each input group's representative recorded on the way
// (quantize_stages.hpp).
#include <ATen/ATen.h>

#include <stdexcept>

#include "eval/model/model_util.hpp"
#include "eval/model/quantize_stages.hpp"

namespace qeval::model::stages {

CaptureNeeds capture_needs(const std::vector<const LayerSlot*>& members) {
  CaptureNeeds n;
  for (const LayerSlot* s : members) {
    // A migration of a group is decided from statistics even when only some members read them.
    for (const schemes::CalibrationNeeds& c : {s->w_needs, s->a_needs}) {
      if (!c.any_statistics()) continue;
      n.any = true;
      n.hessian = n.hessian || c.hessian;
      n.rows = n.rows || c.rows;
    }
  }
  return n;
}

namespace {

// Only a MoE expert can see no calibration token (the router sent it none): its calibrated scheme has nothing to
// work from, and qeval refuses rather than quantize from an empty Hessian or switch schemes behind the user's back.
[[noreturn]] void refuse_unrouted(const std::string& layer, int64_t tokens) {
  const size_t ffn = layer.find(".ffn_"), dot = layer.rfind('.');
  const std::string pattern = ffn != std::string::npos && dot > ffn ? layer.substr(0, ffn + 5) + "*" + layer.substr(dot)
                                                                   : layer;
  throw std::invalid_argument("quantize_model: expert layer " + layer + " saw none of the " + std::to_string(tokens) +
                              " calibration tokens (the router sent it none) and its scheme reads calibration data — "
                              "use more calibration windows, or give that expert a calibration-free scheme with an "
                              "override {\"pattern\": \"" + pattern + "\", \"weight\": {\"scheme\": \"rtn\"}}");
}

}  // namespace

Calibrator::Calibrator(LlamaModel& m, const CalibrationWindows& calib, const QuantizeOptions& o,
                       std::shared_ptr<std::atomic<bool>> kv_enabled)
    : m_(m), o_(o), kv_(std::move(kv_enabled)), n_(calib.count), t_(calib.length), b_(std::max<int64_t>(1, o.batch)) {
  const int64_t D = m.config().d_model;
  if (static_cast<int64_t>(calib.tokens.size()) != n_ * t_)
    throw std::invalid_argument("quantize_model: calibration windows hold " + std::to_string(calib.tokens.size()) +
                                " tokens for " + std::to_string(n_) + " x " + std::to_string(t_));
  const double t0 = now_s();
  const at::Tensor tok = at::from_blob(const_cast<int32_t*>(calib.tokens.data()), {n_, t_}, at::kInt).to(at::kLong);
  hidden_ = at::empty({n_, t_, D}, at::kFloat);
  for (int64_t b0 = 0; b0 < n_; b0 += b_) {
    const int64_t b1 = std::min(n_, b0 + b_);
    hidden_.slice(0, b0, b1).copy_(m.embed(tok.slice(0, b0, b1)));
  }
  embed_s = now_s() - t0;
}

std::unique_ptr<CalibrationCapture> Calibrator::recorder(const std::string& layer, const CaptureNeeds& n) const {
  CaptureOptions co;
  co.layers = {layer};
  co.keep_inputs = n.rows;
  co.max_rows = o_.max_rows;
  co.hessian = n.hessian;
  co.act_stats = true;
  return std::make_unique<CalibrationCapture>(co);
}

// One pass of block l over the hidden state, the observer recording; the outputs kept in next_ when asked.
void Calibrator::run_block(int64_t l, bool keep_output) {
  for (int64_t b0 = 0; b0 < n_; b0 += b_) {
    const int64_t b1 = std::min(n_, b0 + b_);
    at::Tensor y = m_.forward_block(l, hidden_.slice(0, b0, b1));
    if (keep_output) next_.slice(0, b0, b1).copy_(y);
  }
}

std::map<std::string, schemes::Calibration> Calibrator::capture(int64_t l,
                                                                const std::map<std::string, CaptureNeeds>& reps) {
  caps_.clear();
  auto& caps = caps_;
  for (const auto& [rep, needs] : reps) caps[rep] = recorder(rep, needs);
  if (!caps.empty() || !o_.sequential) {
    const double t0 = now_s();
    if (!o_.sequential) next_ = at::empty_like(hidden_);
    if (kv_) kv_->store(o_.sequential);  // a non-sequential pass computes the fp prefix
    m_.set_observer([&caps](const LinearLayer& L, const at::Tensor& x, const at::Tensor&) {
      auto it = caps.find(L.name);
      if (it != caps.end()) it->second->record(L.name, x.data_ptr<float>(), x.size(0), x.size(1));
    });
    struct Reset {
      LlamaModel& m;
      std::shared_ptr<std::atomic<bool>> kv;
      ~Reset() {
        m.set_observer(nullptr);
        if (kv) kv->store(true);
      }
    } reset{m_, kv_};
    run_block(l, !o_.sequential);
    capture_s += now_s() - t0;
  }
  std::map<std::string, schemes::Calibration> out;
  for (auto& [rep, cap] : caps) {
    if (cap->rows_seen(rep) == 0) refuse_unrouted(rep, tokens());
    out[rep] = cap->calibration(rep);
    if (o_.on_capture) o_.on_capture(rep, out[rep]);
  }
  return out;
}

void Calibrator::propagate(int64_t l) {
  caps_.clear();  // block l is installed: its captures are no longer read
  const double t0 = now_s();
  if (o_.sequential) {
    for (int64_t b0 = 0; b0 < n_; b0 += b_) {
      const int64_t b1 = std::min(n_, b0 + b_);
      hidden_.slice(0, b0, b1).copy_(m_.forward_block(l, hidden_.slice(0, b0, b1)));
    }
  } else {
    hidden_ = next_;
  }
  propagate_s += now_s() - t0;
}

schemes::Calibration Calibrator::capture_head(const CaptureNeeds& needs) {
  const double t0 = now_s();
  const int64_t D = m_.config().d_model;
  caps_.clear();
  auto& cap = caps_["output"] = recorder("output", needs);
  for (int64_t b0 = 0; b0 < n_; b0 += b_) {
    const int64_t b1 = std::min(n_, b0 + b_);
    const at::Tensor h = m_.final_norm(hidden_.slice(0, b0, b1)).reshape({-1, D}).contiguous();
    cap->record("output", h.data_ptr<float>(), h.size(0), D);
  }
  schemes::Calibration c = cap->calibration("output");
  if (o_.on_capture) o_.on_capture("output", c);
  capture_s += now_s() - t0;
  return c;
}

}  // namespace qeval::model::stages
