// schemes/gptq/gptq.cpp — GPTQ: Hessian-based error feedback with lazy blocks, act-order and grouped scales.
// The algorithm and its storage rules are described in schemes/gptq/gptq.hpp.
#include "schemes/gptq/gptq.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "quant/quantize.hpp"
#include "schemes/common/calib_common.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {

namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("scheme 'gptq': " + what); }

}  // namespace

namespace gptq {

void validate(quant::MatrixView w, const Eigen::MatrixXd& h, const quant::QuantParams& p, const GptqOptions& o) {
  p.validate();
  p.validate_for_row_length(w.cols);
  if (p.non_finite != quant::NonFinitePolicy::error)
    bad("non_finite=propagate is not supported: the error feedback would spread NaN into every later column; "
        "clean the weights and use non_finite=error");
  if (!(o.damp > 0.0) || !std::isfinite(o.damp))
    bad("damp=" + std::to_string(o.damp) + " must be > 0 (fraction of mean(diag H) added to the diagonal; "
        "the paper uses 0.01)");
  if (o.block <= 0) bad("block=" + std::to_string(o.block) + " must be a positive number of columns (default 128)");
  if (o.static_groups && p.group_size <= 0)
    bad("static_groups needs groups (group_size > 0); per-row and per-tensor parameters are static already");
  if (h.rows() != w.cols || h.cols() != w.cols)
    bad("the Hessian is " + std::to_string(h.rows()) + " x " + std::to_string(h.cols()) + " but the weight has " +
        std::to_string(w.cols) + " input columns");
  quant::check_finite(w, quant::NonFinitePolicy::error, "gptq weight");
  if (!h.allFinite()) bad("the Hessian holds NaN/Inf; recapture the calibration inputs");
}

int64_t zero_dead_columns(Eigen::MatrixXd& h, Eigen::MatrixXd& w) {
  int64_t dead = 0;
  for (int64_t i = 0; i < h.rows(); ++i) {
    if (h(i, i) < 0.0)
      bad("the Hessian has a negative diagonal entry H[" + std::to_string(i) + "][" + std::to_string(i) +
          "] = " + std::to_string(h(i, i)) + "; it must be 2·XᵀX/n (positive semi-definite)");
    if (h(i, i) == 0.0) {
      h(i, i) = 1.0;
      w.col(i).setZero();
      ++dead;
    }
  }
  return dead;
}

std::vector<quant::GroupParams> fixed_params(const Eigen::MatrixXd& w, const quant::QuantParams& p,
                                             bool static_groups) {
  const int64_t rows = w.rows(), m = w.cols();
  std::vector<quant::GroupParams> fixed;
  std::vector<float> buf;
  if (p.group_size == quant::kPerTensor) {
    buf.resize(static_cast<size_t>(rows * m));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < m; ++c) buf[static_cast<size_t>(r * m + c)] = static_cast<float>(w(r, c));
    fixed.push_back(quant::choose_group_params(buf.data(), rows * m, p));
  } else if (p.group_size == quant::kPerRow || static_groups) {
    const int64_t len = p.group_size == quant::kPerRow ? m : p.group_size;
    const int64_t per_row = p.group_size == quant::kPerRow ? 1 : p.groups_per_row(m);
    fixed.resize(static_cast<size_t>(rows * per_row));
    buf.resize(static_cast<size_t>(len));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < per_row; ++g) {
        const int64_t n = p.group_extent(m, g);
        for (int64_t c = 0; c < n; ++c) buf[static_cast<size_t>(c)] = static_cast<float>(w(r, g * len + c));
        fixed[static_cast<size_t>(r * per_row + g)] = quant::choose_group_params(buf.data(), n, p);
      }
  }
  return fixed;
}

std::vector<int32_t> column_order(const Eigen::MatrixXd& h, bool act_order) {
  std::vector<int32_t> order(static_cast<size_t>(h.rows()));
  std::iota(order.begin(), order.end(), 0);
  // Descending diag(H); stable, so equal diagonals keep their original order (deterministic).
  if (act_order) std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return h(a, a) > h(b, b); });
  return order;
}

Eigen::MatrixXd inverse_cholesky(Eigen::MatrixXd hp, double damp, double* lambda_out) {
  const int64_t m = hp.rows();
  // Dampening. Worked number: diag(H) averaging 2.0 with damp 0.01 adds λ = 0.02 to every diagonal entry.
  const double lambda = damp * hp.diagonal().mean();
  hp.diagonal().array() += lambda;
  if (lambda_out) *lambda_out = lambda;
  Eigen::LLT<Eigen::MatrixXd> llt(hp);
  if (llt.info() != Eigen::Success)
    throw std::runtime_error("scheme 'gptq': H + λI (λ = " + std::to_string(lambda) +
                             ") is not positive definite; increase damp (e.g. damp=0.1) or capture more "
                             "calibration samples (run with calibration (--calib ...))");
  const Eigen::MatrixXd hinv = llt.solve(Eigen::MatrixXd::Identity(m, m));
  Eigen::LLT<Eigen::MatrixXd> llt_inv(hinv);
  if (llt_inv.info() != Eigen::Success)
    throw std::runtime_error("scheme 'gptq': the Cholesky factor of H⁻¹ failed (H badly conditioned, λ = " +
                             std::to_string(lambda) + "); increase damp (e.g. damp=0.1)");
  return llt_inv.matrixU();  // H⁻¹ = UᵀU, U upper triangular
}

}  // namespace gptq

namespace {

// The column sweep of Algorithm 1 over the permuted weights `wp` (updated in place) with U = chol(H⁻¹)ᵀ: codes in
// visiting order, the dynamic groups' parameters, GPTQ's proxy loss.
struct Sweep {
  const quant::QuantParams& p;
  const GptqOptions& o;
  const Eigen::MatrixXd& u;
  const std::vector<int32_t>& order;
  const std::vector<quant::GroupParams>& fixed;
  Eigen::MatrixXd& wp;
  int64_t rows, m, gsz, ng;
  std::vector<int32_t> qcodes;          // [rows, m], visiting order
  std::vector<quant::GroupParams> dyn;  // groups formed in visiting order
  std::vector<quant::GroupParams> cur;  // per row: the group being visited
  double loss = 0.0;

  // The group starting at `col`: its parameters from the current weights — in-block columns from w1 (up to date),
  // columns past the block with the pending lazy updates of this block's first i columns applied.
  void open_group(int64_t col, int64_t i1, int64_t i2, int64_t i, const Eigen::MatrixXd& w1,
                  const Eigen::MatrixXd& err1) {
    const int64_t end = col + p.group_extent(m, col / gsz);
    Eigen::MatrixXd tail;
    if (end > i2) tail = wp.middleCols(i2, end - i2) - err1.leftCols(i) * u.block(i1, i2, i, end - i2);
    std::vector<float> buf(static_cast<size_t>(end - col));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = col; c < end; ++c)
        buf[static_cast<size_t>(c - col)] = static_cast<float>(c < i2 ? w1(r, c - i1) : tail(r, c - i2));
      cur[static_cast<size_t>(r)] = quant::choose_group_params(buf.data(), end - col, p);
      dyn[static_cast<size_t>(r * ng + col / gsz)] = cur[static_cast<size_t>(r)];
    }
  }

  const quant::GroupParams& params_of(int64_t r, int64_t col) const {
    if (o.static_groups) return fixed[static_cast<size_t>(r * ng + order[static_cast<size_t>(col)] / gsz)];
    if (gsz > 0) return cur[static_cast<size_t>(r)];
    if (p.group_size == quant::kPerRow) return fixed[static_cast<size_t>(r)];
    return fixed[0];
  }

  // Quantizes column i of the block (absolute column col) and records its scaled error.
  void quantize_column(int64_t col, int64_t i, const Eigen::MatrixXd& w1, Eigen::MatrixXd& err1) {
    const double d = u(col, col);
    for (int64_t r = 0; r < rows; ++r) {
      const quant::GroupParams& g = params_of(r, col);
      const double wv = w1(r, i);
      const int32_t qc = quant::quantize_one(static_cast<float>(wv), g, p.qmin(), p.qmax(), p.rounding);
      qcodes[static_cast<size_t>(r * m + col)] = qc;
      const double diff = wv - static_cast<double>(quant::dequantize_one(qc, g));
      loss += diff * diff / (d * d) / 2.0;
      err1(r, i) = diff / d;
    }
  }

  void run() {
    qcodes.assign(static_cast<size_t>(rows * m), 0);
    if (gsz > 0 && !o.static_groups) dyn.resize(static_cast<size_t>(rows * ng));
    cur.resize(static_cast<size_t>(rows));
    for (int64_t i1 = 0; i1 < m; i1 += o.block) {
      const int64_t i2 = std::min(i1 + o.block, m), count = i2 - i1;
      Eigen::MatrixXd w1 = wp.middleCols(i1, count);
      Eigen::MatrixXd err1 = Eigen::MatrixXd::Zero(rows, count);
      for (int64_t i = 0; i < count; ++i) {
        const int64_t col = i1 + i;
        if (gsz > 0 && !o.static_groups && col % gsz == 0) open_group(col, i1, i2, i, w1, err1);
        quantize_column(col, i, w1, err1);
        if (i + 1 < count)
          w1.rightCols(count - i - 1).noalias() -= err1.col(i) * u.row(col).segment(col + 1, count - i - 1);
      }
      if (i2 < m) wp.rightCols(m - i2).noalias() -= err1 * u.block(i1, i2, count, m - i2);
    }
  }
};

// Codes in stored order: permuted with `perm` (act-order over dynamic groups), else back in original order.
quant::QuantizedMatrix pack(const Sweep& sw, const quant::QuantParams& p, const GptqOptions& o) {
  const int64_t rows = sw.rows, m = sw.m;
  if (o.act_order && sw.gsz > 0 && !o.static_groups) {
    quant::QuantizedMatrix out = calib::pack_affine(p, rows, m, sw.qcodes.data(), sw.dyn);
    out.perm = sw.order;
    return out;
  }
  std::vector<int32_t> orig(sw.qcodes.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < m; ++k)
      orig[static_cast<size_t>(r * m + sw.order[static_cast<size_t>(k)])] = sw.qcodes[static_cast<size_t>(r * m + k)];
  return calib::pack_affine(p, rows, m, orig.data(), sw.gsz > 0 && !o.static_groups ? sw.dyn : sw.fixed);
}

}  // namespace

quant::QuantizedMatrix gptq_quantize(quant::MatrixView w, const Eigen::MatrixXd& h_in, const quant::QuantParams& p,
                                     const GptqOptions& o, GptqInfo* info) {
  gptq::validate(w, h_in, p, o);
  const int64_t rows = w.rows, m = w.cols;
  Eigen::MatrixXd h = h_in;
  Eigen::MatrixXd wd(rows, m);  // column-major: GPTQ works column by column
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < m; ++c) wd(r, c) = w(r, c);
  const int64_t dead = gptq::zero_dead_columns(h, wd);
  const std::vector<quant::GroupParams> fixed = gptq::fixed_params(wd, p, o.static_groups);
  const std::vector<int32_t> order = gptq::column_order(h, o.act_order);
  Eigen::MatrixXd wp(rows, m), hp(m, m);
  for (int64_t k = 0; k < m; ++k) wp.col(k) = wd.col(order[static_cast<size_t>(k)]);
  for (int64_t a = 0; a < m; ++a)
    for (int64_t b = 0; b < m; ++b) hp(a, b) = h(order[static_cast<size_t>(a)], order[static_cast<size_t>(b)]);
  double lambda = 0.0;
  const Eigen::MatrixXd u = gptq::inverse_cholesky(hp, o.damp, &lambda);
  const int64_t gsz = p.group_size > 0 ? p.group_size : 0;
  Sweep sw{p, o, u, order, fixed, wp, rows, m, gsz, gsz > 0 ? p.groups_per_row(m) : 1, {}, {}, {}, 0.0};
  sw.run();
  quant::QuantizedMatrix out = pack(sw, p, o);
  out.validate();
  if (info) {
    info->dead_columns = dead;
    info->damp_lambda = lambda;
    info->proxy_loss = sw.loss;
    info->order = order;
  }
  return out;
}

namespace {

class Gptq final : public Scheme {
 public:
  explicit Gptq(const SchemeConfig& cfg) : Scheme(cfg) {
    const std::string id = cfg.scheme;
    cfg.options.check_known(id, {"damp", "block", "act_order", "static_groups"});
    opt_.damp = calib::positive_double(id, cfg.options, "damp", 0.01);
    opt_.block = calib::positive_int(id, cfg.options, "block", 128);
    opt_.act_order = cfg.options.get_bool(id, "act_order", false);
    opt_.static_groups = cfg.options.get_bool(id, "static_groups", false);
    if (opt_.static_groups && cfg.params.group_size <= 0)
      bad("static_groups=true needs groups (group_size > 0, e.g. --group-sizes 128); per-row and per-tensor "
          "parameters are static already");
    if (cfg.params.non_finite != quant::NonFinitePolicy::error)
      bad("non_finite=propagate is not supported (error feedback would spread NaN); use non_finite=error");
  }
  SchemeTraits traits() const override {
    SchemeTraits t;
    t.calibration.hessian = true;  // H = 2·XᵀX/n over every calibration token
    return t;
  }

  quant::QuantizedMatrix quantize(quant::MatrixView w, const Calibration* calib) const override {
    const Calibration& c = calib::require(name(), calib, "the layer's captured inputs or their Hessian 2·XᵀX/n");
    Eigen::MatrixXd h = calib::hessian(name(), c, w.cols);
    if (!c.migration_scales.empty()) {
      if (!c.migration_folded)
        throw std::invalid_argument(calib::who(name(), calib) +
                                    "migration_scales were given unfolded, but GPTQ does not apply column scales "
                                    "itself; fold them (migration_folded = true) or clear them");
      // The folded layer sees X·diag(1/s): H' = diag(1/s)·H·diag(1/s).
      for (int64_t i = 0; i < w.cols; ++i)
        for (int64_t j = 0; j < w.cols; ++j)
          h(i, j) /= static_cast<double>(c.migration_scales[static_cast<size_t>(i)]) *
                     static_cast<double>(c.migration_scales[static_cast<size_t>(j)]);
    }
    return gptq_quantize(w, h, params(), opt_);
  }

 private:
  GptqOptions opt_;
};

}  // namespace

std::unique_ptr<Scheme> make_scheme_gptq(const SchemeConfig& cfg) { return std::make_unique<Gptq>(cfg); }

}  // namespace qeval::schemes
