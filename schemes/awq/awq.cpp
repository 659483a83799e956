// schemes/awq/awq.cpp — AWQ: activation-aware scale search and per-group clipping search (see awq.hpp).
#include "schemes/awq/awq.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "quant/quantize.hpp"
#include "schemes/common/calib_common.hpp"

namespace qeval::schemes {

namespace {

using calib::MatD;

// The reference's floor on a^α before normalization: keeps s finite for channels that are never active.
constexpr double kMinScale = 1e-4;

std::vector<float> scales_for_alpha(const std::vector<double>& a, double alpha) {
  std::vector<double> s(a.size());
  double mx = 0.0, mn = std::numeric_limits<double>::infinity();
  for (size_t j = 0; j < a.size(); ++j) {
    s[j] = std::max(std::pow(a[j], alpha), kMinScale);
    mx = std::max(mx, s[j]);
    mn = std::min(mn, s[j]);
  }
  // Worked number: s ∈ [0.01, 100] → divided by sqrt(100·0.01) = 1, i.e. already straddling 1.
  const double norm = std::sqrt(mx * mn);
  std::vector<float> out(a.size());
  for (size_t j = 0; j < a.size(); ++j) out[j] = static_cast<float>(s[j] / norm);
  return out;
}

// W·diag(s) as a float matrix.
quant::Matrix scaled(quant::MatrixView w, const std::vector<float>& s) {
  quant::Matrix m(w.rows, w.cols);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) m(r, c) = w(r, c) * s[static_cast<size_t>(c)];
  return m;
}

}  // namespace

std::vector<float> awq_search_scales(const std::string& scheme, const Calibration& c,
                                     const std::vector<quant::MatrixView>& weights, const quant::QuantParams& p,
                                     const AwqOptions& o, AwqScaleInfo* info) {
  if (weights.empty()) throw std::invalid_argument(calib::who(scheme, &c) + "no weights to search scales for");
  const int64_t in = weights[0].cols;
  for (const auto& w : weights) {
    if (w.cols != in)
      throw std::invalid_argument(calib::who(scheme, &c) + "the layers sharing one input must have the same " +
                                  "number of input features; got " + std::to_string(in) + " and " +
                                  std::to_string(w.cols));
    p.validate_for_row_length(w.cols);
    quant::check_finite(w, quant::NonFinitePolicy::error, "awq weight");
  }
  const std::vector<double> a = calib::act_absmean(scheme, c, in);
  const calib::OutputError metric(scheme, c, in);

  std::vector<double> alphas;
  if (o.alpha >= 0.0) {
    alphas.push_back(o.alpha);
  } else {
    for (int64_t k = 0; k <= o.grid; ++k) alphas.push_back(static_cast<double>(k) / static_cast<double>(o.grid));
  }
  std::vector<double> losses;
  double best = std::numeric_limits<double>::infinity();
  size_t best_k = 0;
  std::vector<float> best_s;
  for (size_t k = 0; k < alphas.size(); ++k) {
    const std::vector<float> s = scales_for_alpha(a, alphas[k]);
    double loss = 0.0;
    for (const auto& w : weights) {
      quant::Matrix ws = scaled(w, s);
      quant::fake_quantize_affine(ws.view(), p, ws.mut());
      MatD e(w.rows, in);
      for (int64_t r = 0; r < w.rows; ++r)
        for (int64_t j = 0; j < in; ++j)
          e(r, j) = static_cast<double>(w(r, j)) - static_cast<double>(ws(r, j) / s[static_cast<size_t>(j)]);
      loss += metric(e);
    }
    losses.push_back(loss);
    if (loss < best) {  // strict: ties keep the smaller α
      best = loss;
      best_k = k;
      best_s = s;
    }
  }
  if (info) {
    info->alphas = alphas;
    info->losses = losses;
    info->best_alpha = alphas[best_k];
  }
  return best_s;
}

namespace {

// Shrink ratios r_i = 1 − i/clip_grid for i < max_shrink·clip_grid. Worked number: grid 20, max_shrink 0.5
// → 10 ratios 1.00, 0.95, ..., 0.55 (the reference's range(int(0.5·20))).
std::vector<double> shrink_ratios(const AwqOptions& o) {
  std::vector<double> ratios;
  const int64_t n_r =
      std::max<int64_t>(1, static_cast<int64_t>(std::floor(o.max_shrink * static_cast<double>(o.clip_grid) + 1e-9)));
  for (int64_t i = 0; i < n_r; ++i) ratios.push_back(1.0 - static_cast<double>(i) / static_cast<double>(o.clip_grid));
  return ratios;
}

// Every row's candidate params for columns [c0, c0 + n) with the range clipped to r·max|x|, and the
// quantization error of those columns in e [rows, n].
void clipped_candidates(const quant::Matrix& ws, int64_t c0, int64_t n, double r, const quant::QuantParams& p,
                        std::vector<quant::GroupParams>& cand, MatD& e) {
  const int qmin = p.qmin(), qmax = p.qmax();
  for (int64_t row = 0; row < ws.rows; ++row) {
    const float* x = ws.data.data() + row * ws.cols + c0;
    float mn = x[0], mx = x[0];
    for (int64_t k = 1; k < n; ++k) {
      mn = std::min(mn, x[k]);
      mx = std::max(mx, x[k]);
    }
    const double amax = std::max(std::fabs(static_cast<double>(mn)), std::fabs(static_cast<double>(mx)));
    const float lim = static_cast<float>(r * amax);
    quant::GroupParams& gp = cand[static_cast<size_t>(row)];
    gp = quant::group_params_from_range(std::max(mn, -lim), std::min(mx, lim), p.bits, p.mapping);
    for (int64_t k = 0; k < n; ++k)
      e(row, k) = static_cast<double>(x[k]) -
                  static_cast<double>(quant::dequantize_one(quant::quantize_one(x[k], gp, qmin, qmax, p.rounding), gp));
  }
}

// The per-group clip search: for each column group, each row keeps the shrink ratio with the smallest
// output error (ties keep the larger ratio), then its codes are computed with the chosen params.
quant::QuantizedMatrix clip_search_quantize(const quant::Matrix& ws, const calib::OutputError& metric,
                                            const quant::QuantParams& p, const AwqOptions& o) {
  const int64_t in = ws.cols, rows = ws.rows;
  const int qmin = p.qmin(), qmax = p.qmax();
  const std::vector<double> ratios = shrink_ratios(o);
  const int64_t glen = p.group_size > 0 ? p.group_size : in;
  const int64_t per_row = p.groups_per_row(in);  // the last group may be partial
  std::vector<quant::GroupParams> groups(static_cast<size_t>(rows * per_row));
  std::vector<int32_t> codes(static_cast<size_t>(rows * in));
  MatD e;
  std::vector<quant::GroupParams> cand(static_cast<size_t>(rows));
  std::vector<double> best(static_cast<size_t>(rows));
  for (int64_t g = 0; g < per_row; ++g) {
    const int64_t c0 = g * glen;
    const int64_t n = p.group_extent(in, g);
    e.resize(rows, n);
    std::fill(best.begin(), best.end(), std::numeric_limits<double>::infinity());
    for (double r : ratios) {
      clipped_candidates(ws, c0, n, r, p, cand, e);
      const Eigen::VectorXd err = metric.group_rows(e, c0);
      for (int64_t row = 0; row < rows; ++row)
        if (err(row) < best[static_cast<size_t>(row)]) {  // strict: ties keep the larger r
          best[static_cast<size_t>(row)] = err(row);
          groups[static_cast<size_t>(row * per_row + g)] = cand[static_cast<size_t>(row)];
        }
    }
    for (int64_t row = 0; row < rows; ++row) {
      const quant::GroupParams& gp = groups[static_cast<size_t>(row * per_row + g)];
      for (int64_t k = 0; k < n; ++k)
        codes[static_cast<size_t>(row * in + c0 + k)] = quant::quantize_one(ws(row, c0 + k), gp, qmin, qmax, p.rounding);
    }
  }
  return calib::pack_affine(p, rows, in, codes.data(), groups);
}

}  // namespace

quant::QuantizedMatrix awq_quantize(const std::string& scheme, quant::MatrixView w, const Calibration& c,
                                    const quant::QuantParams& p, const AwqOptions& o, std::vector<float> s,
                                    bool folded) {
  p.validate();
  p.validate_for_row_length(w.cols);
  const int64_t in = w.cols;
  quant::check_finite(w, quant::NonFinitePolicy::error, "awq weight");
  if (s.empty()) {
    s = awq_search_scales(scheme, c, {w}, p, o);
    folded = false;
  }
  calib::check_migration_scales(scheme, c, s, in);
  const quant::Matrix ws = folded ? calib::copy(w) : scaled(w, s);
  quant::QuantizedMatrix out;
  // Per tensor is one range over everything: a per-group clip search has nothing to pick per group.
  if (!o.clip || p.group_size == quant::kPerTensor) {
    out = quant::quantize_affine(ws.view(), p);
  } else {
    std::vector<double> inv_s(static_cast<size_t>(in));
    for (int64_t j = 0; j < in; ++j) inv_s[static_cast<size_t>(j)] = 1.0 / static_cast<double>(s[static_cast<size_t>(j)]);
    const calib::OutputError metric(scheme, c, in, inv_s);
    out = clip_search_quantize(ws, metric, p, o);
  }
  if (!folded) out.col_scale = s;
  out.validate();
  return out;
}

namespace {

class Awq final : public Scheme {
 public:
  explicit Awq(const SchemeConfig& cfg) : Scheme(cfg) {
    const std::string id = cfg.scheme;
    cfg.options.check_known(id, {"grid", "alpha", "clip", "clip_grid", "max_shrink"});
    opt_.grid = calib::positive_int(id, cfg.options, "grid", 20);
    if (cfg.options.has("alpha")) opt_.alpha = calib::unit_interval(id, cfg.options, "alpha", 0.0);
    opt_.clip = cfg.options.get_bool(id, "clip", true);
    opt_.clip_grid = calib::positive_int(id, cfg.options, "clip_grid", 20);
    opt_.max_shrink = cfg.options.get_double(id, "max_shrink", 0.5);
    if (!(opt_.max_shrink > 0.0 && opt_.max_shrink < 1.0))
      throw std::invalid_argument("scheme 'awq': option max_shrink=" + cfg.options.items().at("max_shrink") +
                                  " must be in (0, 1) (the largest fraction of max|w| the clip search removes; "
                                  "default 0.5)");
    if (opt_.clip && (cfg.params.range != quant::RangeMethod::minmax || cfg.params.clip_ratio != 1.0))
      throw std::invalid_argument("scheme 'awq': the clip search chooses each group's range itself; use range "
                                  "minmax with clip_ratio 1, or clip=false to use range '" +
                                  std::string(quant::to_string(cfg.params.range)) + "'");
    if (cfg.params.non_finite != quant::NonFinitePolicy::error)
      throw std::invalid_argument("scheme 'awq': non_finite=propagate is not supported; use non_finite=error");
  }
  SchemeTraits traits() const override {
    SchemeTraits t;
    t.calibration.act_absmean = true;  // a_j = mean|x_j| of the scale search
    t.calibration.hessian = true;      // the Gram matrix its output-error metric scores candidates with
    t.migrates = true;
    // llm-awq's auto_clip skips the query and key projections ("q_", "k_" in the layer name).
    for (const char* pat : {"blk.*.attn_q", "blk.*.attn_k"}) {
      ReferenceOverride o;
      o.pattern = pat;
      o.options.set("clip", "false");
      o.why = "llm-awq runs no clip search for the query and key projections";
      t.reference_overrides.push_back(o);
    }
    return t;
  }

  std::vector<float> input_channel_scales(const Calibration& c,
                                          const std::vector<quant::MatrixView>& weights) const override {
    return awq_search_scales(name(), c, weights, params(), opt_);
  }

  quant::QuantizedMatrix quantize(quant::MatrixView w, const Calibration* c) const override {
    const Calibration& cal = calib::require(name(), c, "the layer's captured inputs (or mean|x| and the Hessian)");
    return awq_quantize(name(), w, cal, params(), opt_, cal.migration_scales, cal.migration_folded);
  }

 private:
  AwqOptions opt_;
};

}  // namespace

std::unique_ptr<Scheme> make_scheme_awq(const SchemeConfig& cfg) { return std::make_unique<Awq>(cfg); }

}  // namespace qeval::schemes
