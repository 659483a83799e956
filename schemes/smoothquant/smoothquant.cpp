// schemes/smoothquant/smoothquant.cpp — SmoothQuant: migration factors (fixed or searched α) and W8A8 (see .hpp).
#include "schemes/smoothquant/smoothquant.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "quant/quantize.hpp"
#include "schemes/common/calib_common.hpp"

namespace qeval::schemes {

namespace {

// The reference implementation's floor on max|W_j| and on s (keeps dead channels finite).
constexpr double kFloor = 1e-5;

quant::Matrix migrated(quant::MatrixView m, const std::vector<float>& s, bool divide) {
  quant::Matrix out(m.rows, m.cols);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c)
      out(r, c) = divide ? m(r, c) / s[static_cast<size_t>(c)] : m(r, c) * s[static_cast<size_t>(c)];
  return out;
}

}  // namespace

quant::QuantParams smoothquant_act_params(const quant::QuantParams& p, ActGranularity act) {
  quant::QuantParams a;
  a.bits = p.bits;
  a.mapping = p.mapping;
  a.rounding = p.rounding;
  a.range = quant::RangeMethod::minmax;
  a.group_size = act == ActGranularity::per_token ? quant::kPerRow : quant::kPerTensor;
  return a;
}

std::vector<float> smoothquant_scales(const std::vector<double>& amax, const std::vector<quant::MatrixView>& weights,
                                      double alpha) {
  const size_t in = amax.size();
  std::vector<double> wmax(in, 0.0);
  for (const auto& w : weights)
    for (int64_t r = 0; r < w.rows; ++r)
      for (size_t j = 0; j < in; ++j) wmax[j] = std::max(wmax[j], std::fabs(static_cast<double>(w(r, static_cast<int64_t>(j)))));
  std::vector<float> s(in);
  for (size_t j = 0; j < in; ++j) {
    // Worked number: max|X_j| = 64, max|W_j| = 0.25, α = 0.5 → s = 8 / 0.5 = 16: X_j shrinks to max 4 and
    // W_j grows to max 4 — both sides end with the same range, the point of α = 0.5.
    const double v = std::pow(amax[j], alpha) / std::pow(std::max(wmax[j], kFloor), 1.0 - alpha);
    s[j] = static_cast<float>(std::max(v, kFloor));
  }
  return s;
}

void w8a8_matmul(quant::MatrixView x, quant::MatrixView w, const quant::QuantParams& wp, const quant::QuantParams& ap,
                 quant::MutableMatrixView y) {
  if (x.cols != w.cols || y.rows != x.rows || y.cols != w.rows)
    throw std::invalid_argument("w8a8_matmul: x is " + std::to_string(x.rows) + " x " + std::to_string(x.cols) +
                                ", w is " + std::to_string(w.rows) + " x " + std::to_string(w.cols) + ", y is " +
                                std::to_string(y.rows) + " x " + std::to_string(y.cols) + " (need y = x·wᵀ)");
  quant::Matrix xq(x.rows, x.cols), wq(w.rows, w.cols);
  quant::fake_quantize_affine(x, ap, xq.mut());
  quant::fake_quantize_affine(w, wp, wq.mut());
  const Eigen::Map<const calib::MatF> xm(xq.data.data(), x.rows, x.cols), wm(wq.data.data(), w.rows, w.cols);
  const calib::MatF ym = xm * wm.transpose();
  for (int64_t r = 0; r < y.rows; ++r)
    for (int64_t c = 0; c < y.cols; ++c) y(r, c) = ym(r, c);
}

std::vector<float> smoothquant_search(const std::string& scheme, const Calibration& c,
                                      const std::vector<quant::MatrixView>& weights, const quant::QuantParams& p,
                                      const SmoothQuantOptions& o, SmoothQuantInfo* info) {
  if (weights.empty()) throw std::invalid_argument(calib::who(scheme, &c) + "no weights to compute scales for");
  const int64_t in = weights[0].cols;
  for (const auto& w : weights) {
    if (w.cols != in)
      throw std::invalid_argument(calib::who(scheme, &c) + "the layers sharing one input must have the same " +
                                  "number of input features; got " + std::to_string(in) + " and " +
                                  std::to_string(w.cols));
    quant::check_finite(w, quant::NonFinitePolicy::error, "smoothquant weight");
  }
  const std::vector<double> amax = calib::act_absmax(scheme, c, in);
  if (!o.alpha_search) {
    if (info) info->alpha = o.alpha;
    return smoothquant_scales(amax, weights, o.alpha);
  }
  if (!calib::has_inputs(c))
    calib::missing_calibration(scheme, &c,
                               "alpha_search measures the W8A8 output error, so it needs the captured input rows, "
                               "not only their statistics");
  const quant::QuantParams ap = smoothquant_act_params(p, o.act);
  // The tokens scored: all, or search_tokens of them evenly strided (rows ⌊i·n/k⌋).
  const int64_t n = c.inputs.rows, k_rows = std::min(n, o.search_tokens);
  quant::Matrix sub(k_rows, in);
  for (int64_t i = 0; i < k_rows; ++i)
    for (int64_t j = 0; j < in; ++j) sub(i, j) = c.inputs(i * n / k_rows, j);
  const quant::MatrixView xin = sub.view();
  // The full-precision outputs, once.
  const calib::MatF xf = calib::to_matf(xin);
  std::vector<calib::MatF> ref;
  for (const auto& w : weights) ref.push_back(xf * calib::to_matf(w).transpose());
  double best = std::numeric_limits<double>::infinity();
  std::vector<float> best_s;
  std::vector<double> alphas, losses;
  for (int64_t k = 0; k <= o.grid; ++k) {
    const double alpha = static_cast<double>(k) / static_cast<double>(o.grid);
    const std::vector<float> s = smoothquant_scales(amax, weights, alpha);
    const quant::Matrix xs = migrated(xin, s, true);
    double loss = 0.0;
    for (size_t l = 0; l < weights.size(); ++l) {
      const quant::Matrix ws = migrated(weights[l], s, false);
      quant::Matrix y(xin.rows, weights[l].rows);
      w8a8_matmul(xs.view(), ws.view(), p, ap, y.mut());
      const Eigen::Map<const calib::MatF> ym(y.data.data(), y.rows, y.cols);
      loss += (ym - ref[l]).cast<double>().squaredNorm();
    }
    alphas.push_back(alpha);
    losses.push_back(loss);
    if (loss < best) {  // strict: ties keep the smaller α
      best = loss;
      best_s = s;
      if (info) info->alpha = alpha;
    }
  }
  if (info) {
    info->alphas = alphas;
    info->losses = losses;
  }
  return best_s;
}

namespace {

class SmoothQuant final : public Scheme {
 public:
  explicit SmoothQuant(const SchemeConfig& cfg) : Scheme(cfg) {
    const std::string id = cfg.scheme;
    cfg.options.check_known(id, {"alpha", "alpha_search", "grid", "search_tokens", "act"});
    opt_.alpha = calib::unit_interval(id, cfg.options, "alpha", 0.5);
    opt_.alpha_search = cfg.options.get_bool(id, "alpha_search", false);
    opt_.grid = calib::positive_int(id, cfg.options, "grid", 20);
    opt_.search_tokens = calib::positive_int(id, cfg.options, "search_tokens", 2048);
    opt_.act = cfg.options.get_string(id, "act", "per_token", {"per_token", "per_tensor"}) == "per_token"
                   ? ActGranularity::per_token
                   : ActGranularity::per_tensor;
    if (cfg.params.non_finite != quant::NonFinitePolicy::error)
      throw std::invalid_argument("scheme 'smoothquant': non_finite=propagate is not supported; use non_finite=error");
    act_ = smoothquant_act_params(cfg.params, opt_.act);
  }
  SchemeTraits traits() const override {
    SchemeTraits t;
    t.target = Target::linear;
    t.calibration.act_absmax = true;            // s_j = max|X_j|^α / max|W_j|^(1−α)
    t.calibration.rows = opt_.alpha_search;     // the α search scores the W8A8 output error on captured rows
    t.migrates = true;
    t.activation = ActivationQuant::dynamic;    // per-token (or per-tensor) activations at every call
    return t;
  }

  std::vector<float> input_channel_scales(const Calibration& c,
                                          const std::vector<quant::MatrixView>& weights) const override {
    return smoothquant_search(name(), c, weights, params(), opt_);
  }

  // The weight side: Q_w(W·diag(s)), with col_scale = s unless eval/ folded s already.
  quant::QuantizedMatrix quantize(quant::MatrixView w, const Calibration* c) const override {
    const Calibration& cal = calib::require(name(), c, "per-feature max|x| (act_absmax) or the captured inputs");
    bool folded = false;
    const std::vector<float> s = scales(w, cal, folded);
    if (folded) return quant::quantize_affine(w, params());
    const quant::Matrix ws = migrated(w, s, false);
    quant::QuantizedMatrix q = quant::quantize_affine(ws.view(), params());
    q.col_scale = s;
    q.validate();
    return q;
  }

  // Y = Q_a(X·diag(1/s))·Q_w(W·diag(s))ᵀ. When eval/ folded s, x and w arrive migrated already.
  bool linear(quant::MatrixView x, quant::MatrixView w, quant::MutableMatrixView y,
              const Calibration* c) const override {
    const Calibration& cal = calib::require(name(), c, "per-feature max|x| (act_absmax) or the captured inputs");
    quant::check_finite(x, quant::NonFinitePolicy::error, "smoothquant input");
    bool folded = false;
    const std::vector<float> s = scales(w, cal, folded);
    if (folded) {
      w8a8_matmul(x, w, params(), act_, y);
    } else {
      const quant::Matrix xs = migrated(x, s, true), ws = migrated(w, s, false);
      w8a8_matmul(xs.view(), ws.view(), params(), act_, y);
    }
    return true;
  }

 private:
  // The layer's s: as eval/ decided it (migration_scales), else computed for this layer alone (eval/ should
  // compute it once per input group with input_channel_scales(); otherwise every call recomputes it).
  std::vector<float> scales(quant::MatrixView w, const Calibration& c, bool& folded) const {
    if (c.migration_scales.empty()) {
      folded = false;
      return smoothquant_search(name(), c, {w}, params(), opt_);
    }
    calib::check_migration_scales(name(), c, c.migration_scales, w.cols);
    folded = c.migration_folded;
    return c.migration_scales;
  }

  SmoothQuantOptions opt_;
  quant::QuantParams act_;
};

}  // namespace

std::unique_ptr<Scheme> make_scheme_smoothquant(const SchemeConfig& cfg) {
  return std::make_unique<SmoothQuant>(cfg);
}

}  // namespace qeval::schemes
