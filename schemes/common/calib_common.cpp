// schemes/common/calib_common.cpp — calibration look-ups, Gram matrices, codes → QuantizedMatrix, output error.
#include "schemes/common/calib_common.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "quant/pack.hpp"
#include "quant/quantize.hpp"

namespace qeval::schemes::calib {

std::string who(const std::string& scheme, const Calibration* c) {
  std::string s = "scheme '" + scheme + "'";
  if (c && !c->layer_name.empty()) s += " (layer " + c->layer_name + ")";
  return s + ": ";
}

void missing_calibration(const std::string& scheme, const Calibration* c, const std::string& what) {
  throw std::invalid_argument(who(scheme, c) + "needs calibration data (" + what +
                              ") but none was given; run with calibration (--calib ...)");
}

const Calibration& require(const std::string& scheme, const Calibration* c, const std::string& what) {
  if (!c) missing_calibration(scheme, c, what);
  return *c;
}

bool has_inputs(const Calibration& c) { return c.inputs.data != nullptr && c.inputs.rows > 0; }

void check_width(const std::string& scheme, const Calibration& c, int64_t in) {
  auto bad = [&](const std::string& what, int64_t got) {
    throw std::invalid_argument(who(scheme, &c) + what + " has " + std::to_string(got) +
                                " features but the layer has " + std::to_string(in) +
                                " input features (a calibration captured for another layer?)");
  };
  if (has_inputs(c) && c.inputs.cols != in) bad("the captured input", c.inputs.cols);
  if (!c.hessian.empty() && static_cast<int64_t>(c.hessian.size()) != in * in) {
    const double side = std::sqrt(static_cast<double>(c.hessian.size()));
    bad("the Hessian (" + std::to_string(c.hessian.size()) + " entries)", static_cast<int64_t>(side));
  }
  if (!c.act_absmax.empty() && static_cast<int64_t>(c.act_absmax.size()) != in) bad("act_absmax", c.act_absmax.size());
  if (!c.act_absmean.empty() && static_cast<int64_t>(c.act_absmean.size()) != in)
    bad("act_absmean", c.act_absmean.size());
  if (!c.migration_scales.empty() && static_cast<int64_t>(c.migration_scales.size()) != in)
    bad("migration_scales", c.migration_scales.size());
}

Eigen::MatrixXd hessian(const std::string& scheme, const Calibration& c, int64_t in) {
  check_width(scheme, c, in);
  Eigen::MatrixXd h(in, in);
  if (!c.hessian.empty()) {
    for (int64_t i = 0; i < in; ++i)
      for (int64_t j = 0; j < in; ++j) h(i, j) = c.hessian[static_cast<size_t>(i * in + j)];
    if (!h.allFinite())
      throw std::invalid_argument(who(scheme, &c) + "the calibration Hessian holds NaN/Inf; recapture the layer's "
                                  "inputs (run with calibration (--calib ...))");
    return h;
  }
  if (!has_inputs(c)) missing_calibration(scheme, &c, "the layer's captured inputs or their Hessian 2·XᵀX/n");
  const MatD x = to_matd(c.inputs);
  if (!x.allFinite())
    throw std::invalid_argument(who(scheme, &c) + "the captured inputs hold NaN/Inf; clean the calibration data");
  // 2·XᵀX/n in double: XᵀX is symmetric, so only the lower triangle is accumulated and mirrored.
  h.setZero();
  h.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose(), 2.0 / static_cast<double>(x.rows()));
  h.triangularView<Eigen::StrictlyUpper>() = h.transpose();
  return h;
}

namespace {
std::vector<double> from_stat(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }
}  // namespace

std::vector<double> act_absmax(const std::string& scheme, const Calibration& c, int64_t in) {
  check_width(scheme, c, in);
  if (!c.act_absmax.empty()) return from_stat(c.act_absmax);
  if (!has_inputs(c)) missing_calibration(scheme, &c, "per-feature max|x| (act_absmax) or the captured inputs");
  std::vector<double> m(static_cast<size_t>(in), 0.0);
  for (int64_t r = 0; r < c.inputs.rows; ++r)
    for (int64_t j = 0; j < in; ++j) m[static_cast<size_t>(j)] = std::fmax(m[static_cast<size_t>(j)], std::fabs(c.inputs(r, j)));
  return m;
}

std::vector<double> act_absmean(const std::string& scheme, const Calibration& c, int64_t in) {
  check_width(scheme, c, in);
  if (!c.act_absmean.empty()) return from_stat(c.act_absmean);
  if (!has_inputs(c)) missing_calibration(scheme, &c, "per-feature mean|x| (act_absmean) or the captured inputs");
  std::vector<double> m(static_cast<size_t>(in), 0.0);
  for (int64_t r = 0; r < c.inputs.rows; ++r)
    for (int64_t j = 0; j < in; ++j) m[static_cast<size_t>(j)] += std::fabs(c.inputs(r, j));
  for (auto& v : m) v /= static_cast<double>(c.inputs.rows);
  return m;
}

MatD to_matd(quant::MatrixView v) {
  MatD m(v.rows, v.cols);
  for (int64_t r = 0; r < v.rows; ++r)
    for (int64_t c = 0; c < v.cols; ++c) m(r, c) = v(r, c);
  return m;
}

MatF to_matf(quant::MatrixView v) {
  MatF m(v.rows, v.cols);
  for (int64_t r = 0; r < v.rows; ++r)
    for (int64_t c = 0; c < v.cols; ++c) m(r, c) = v(r, c);
  return m;
}

quant::Matrix to_matrix(const MatD& m) {
  quant::Matrix out(m.rows(), m.cols());
  for (int64_t r = 0; r < m.rows(); ++r)
    for (int64_t c = 0; c < m.cols(); ++c) out(r, c) = static_cast<float>(m(r, c));
  return out;
}

quant::Matrix copy(quant::MatrixView v) {
  quant::Matrix out(v.rows, v.cols);
  for (int64_t r = 0; r < v.rows; ++r)
    for (int64_t c = 0; c < v.cols; ++c) out(r, c) = v(r, c);
  return out;
}

quant::Matrix transpose(quant::MatrixView v) {
  quant::Matrix t(v.cols, v.rows);
  transpose_into(v, t.mut());
  return t;
}

void transpose_into(quant::MatrixView v, quant::MutableMatrixView out) {
  if (out.rows != v.cols || out.cols != v.rows)
    throw std::invalid_argument("transpose: output is " + std::to_string(out.rows) + " x " + std::to_string(out.cols) +
                                ", expected " + std::to_string(v.cols) + " x " + std::to_string(v.rows));
  for (int64_t r = 0; r < v.rows; ++r)
    for (int64_t c = 0; c < v.cols; ++c) out(c, r) = v(r, c);
}

void dequantize_transposed(const std::string& scheme, const std::string& setting, const quant::QuantizedMatrix& q,
                           quant::MutableMatrixView out) {
  if (out.rows != q.cols || out.cols != q.rows)
    throw std::invalid_argument("scheme '" + scheme + "': " + setting + " stores the transpose [features, tokens] = " +
                                std::to_string(q.rows) + " x " + std::to_string(q.cols) + "; the output must be " +
                                std::to_string(q.cols) + " x " + std::to_string(q.rows) + ", got " +
                                std::to_string(out.rows) + " x " + std::to_string(out.cols));
  quant::Matrix t(q.rows, q.cols);
  quant::dequantize(q, t.mut());
  transpose_into(t.view(), out);
}

void check_migration_scales(const std::string& scheme, const Calibration& c, const std::vector<float>& s, int64_t in) {
  if (static_cast<int64_t>(s.size()) != in)
    throw std::invalid_argument(who(scheme, &c) + "migration_scales has " + std::to_string(s.size()) +
                                " entries but the layer has " + std::to_string(in) + " input features");
  for (size_t j = 0; j < s.size(); ++j)
    if (!(s[j] > 0.0f) || !std::isfinite(s[j]))
      throw std::invalid_argument(who(scheme, &c) + "migration_scales[" + std::to_string(j) + "] = " +
                                  std::to_string(s[j]) + " must be finite and > 0");
}

quant::QuantizedMatrix pack_affine(const quant::QuantParams& p, int64_t rows, int64_t cols, const int32_t* q,
                                   const std::vector<quant::GroupParams>& groups) {
  quant::QuantizedMatrix out;
  out.format = quant::Format::int_affine;
  out.params = p;
  out.rows = rows;
  out.cols = cols;
  const int64_t ng = out.num_groups();
  if (static_cast<int64_t>(groups.size()) != ng)
    throw std::logic_error("pack_affine: " + std::to_string(groups.size()) + " group parameters for " +
                           std::to_string(ng) + " groups");
  const bool asym = p.mapping == quant::Mapping::asymmetric;
  out.scales.resize(static_cast<size_t>(ng));
  if (asym) out.zero_points.resize(static_cast<size_t>(ng));
  for (int64_t g = 0; g < ng; ++g) {
    out.scales[static_cast<size_t>(g)] = groups[static_cast<size_t>(g)].scale;
    if (asym) out.zero_points[static_cast<size_t>(g)] = groups[static_cast<size_t>(g)].zero_point;
  }
  // Storage code u = q − qmin_storage: symmetric adds 2^(b−1) (int4: −7..7 → 1..15), asymmetric stores q.
  const int32_t offset = asym ? 0 : (1 << (p.bits - 1));
  out.codes.assign(static_cast<size_t>(rows * out.row_bytes()), 0);
  std::vector<uint8_t> u(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) u[static_cast<size_t>(c)] = static_cast<uint8_t>(q[r * cols + c] + offset);
    quant::pack_codes(u.data(), cols, p.bits, out.codes.data() + r * out.row_bytes());
  }
  return out;
}

OutputError::OutputError(const std::string& scheme, const Calibration& c, int64_t in, const std::vector<double>& inv_s)
    : in_(in) {
  check_width(scheme, c, in);
  // Cheaper path: with n < in rows, X·Eᵀ costs n·in per output row against in² for the Gram form (which also
  // costs n·in²/2 once when it must be built from the rows).
  use_x_ = has_inputs(c) && c.inputs.rows < in;
  if (use_x_) {
    x_ = to_matf(c.inputs);
    if (!inv_s.empty())
      for (int64_t j = 0; j < in; ++j) x_.col(j) *= static_cast<float>(inv_s[static_cast<size_t>(j)]);
  } else {
    // XᵀX = H·n/2, so that errors are ‖X·Eᵀ‖² in the data's units (n: the rows behind H; when the calibration
    // does not say, H itself — the same ranking of candidates).
    Eigen::MatrixXd g = hessian(scheme, c, in);
    const int64_t n = c.hessian.empty() ? c.inputs.rows : c.n_samples;
    if (n > 0) g *= static_cast<double>(n) / 2.0;
    if (!inv_s.empty())
      for (int64_t i = 0; i < in; ++i)
        for (int64_t j = 0; j < in; ++j) g(i, j) *= inv_s[static_cast<size_t>(i)] * inv_s[static_cast<size_t>(j)];
    g_ = g.cast<float>();
  }
}

double OutputError::operator()(const MatD& e) const {
  const MatF ef = e.cast<float>();
  if (use_x_) return (x_ * ef.transpose()).cast<double>().squaredNorm();
  const MatF eg = ef * g_;
  return (eg.cast<double>().array() * e.array()).sum();
}

Eigen::VectorXd OutputError::group_rows(const MatD& e, int64_t c0) const {
  const int64_t len = e.cols();
  const MatF ef = e.cast<float>();
  if (use_x_) {
    const Eigen::MatrixXf y = x_.middleCols(c0, len) * ef.transpose();  // [n, out]
    return y.cast<double>().colwise().squaredNorm().transpose();
  }
  const MatF eg = ef * g_.block(c0, c0, len, len);
  return (eg.cast<double>().array() * e.array()).rowwise().sum();
}

double unit_interval(const std::string& scheme, const Options& o, const std::string& key, double def) {
  const double v = o.get_double(scheme, key, def);
  if (!(v >= 0.0 && v <= 1.0))
    throw std::invalid_argument("scheme '" + scheme + "': option " + key + "=" + o.items().at(key) +
                                " is outside [0, 1]");
  return v;
}

int64_t positive_int(const std::string& scheme, const Options& o, const std::string& key, int64_t def) {
  const int64_t v = o.get_int(scheme, key, def);
  if (v <= 0)
    throw std::invalid_argument("scheme '" + scheme + "': option " + key + "=" + std::to_string(v) +
                                " must be a positive integer (default " + std::to_string(def) + ")");
  return v;
}

double positive_double(const std::string& scheme, const Options& o, const std::string& key, double def) {
  const double v = o.get_double(scheme, key, def);
  if (!(v > 0.0)) {
    std::ostringstream os;
    os << def;
    throw std::invalid_argument("scheme '" + scheme + "': option " + key + "=" + o.items().at(key) +
                                " must be > 0 (default " + os.str() + ")");
  }
  return v;
}

}  // namespace qeval::schemes::calib
