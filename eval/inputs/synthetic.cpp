// eval/inputs/synthetic.cpp — deterministic synthetic tensors (unit variance) drawn from qeval::Rng.
#include "eval/inputs/synthetic.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace qeval::inputs {

const char* to_string(Distribution d) {
  switch (d) {
    case Distribution::gaussian: return "gaussian";
    case Distribution::laplace: return "laplace";
    case Distribution::student_t: return "student-t";
    case Distribution::uniform: return "uniform";
    case Distribution::outliers: return "outliers";
  }
  return "?";
}

bool is_distribution_name(const std::string& s) {
  return s == "gaussian" || s == "laplace" || s == "student-t" || s == "student_t" || s == "uniform" ||
         s == "outliers";
}

Distribution parse_distribution(const std::string& s) {
  if (s == "gaussian") return Distribution::gaussian;
  if (s == "laplace") return Distribution::laplace;
  if (s == "student-t" || s == "student_t") return Distribution::student_t;
  if (s == "uniform") return Distribution::uniform;
  if (s == "outliers") return Distribution::outliers;
  throw std::invalid_argument("unknown distribution '" + s +
                              "' (accepted: gaussian, laplace, student-t, uniform, outliers)");
}

void SyntheticSpec::validate() const {
  if (rows < 1 || cols < 1)
    throw std::invalid_argument("synthetic input: shape " + std::to_string(rows) + "x" + std::to_string(cols) +
                                " is empty (rows and cols must be >= 1)");
  // 2^31 elements = 8 GiB of fp32: far beyond what a tensor-level sweep needs; refuse rather than
  // die in the allocator.
  if (rows > (int64_t{1} << 31) / cols)
    throw std::invalid_argument("synthetic input: shape " + std::to_string(rows) + "x" + std::to_string(cols) +
                                " has more than 2^31 elements (use a smaller --rows/--cols)");
  if (dist == Distribution::student_t && student_nu < 1)
    throw std::invalid_argument("synthetic input: student-t degrees of freedom nu=" + std::to_string(student_nu) +
                                " must be an integer >= 1 (default 3)");
  if (dist == Distribution::outliers) {
    if (outlier_channels < 0 || outlier_channels > cols)
      throw std::invalid_argument("synthetic input: outlier_channels=" + std::to_string(outlier_channels) +
                                  " must be in [0, cols=" + std::to_string(cols) + "]");
    if (!(outlier_scale > 0.0) || !std::isfinite(outlier_scale))
      throw std::invalid_argument("synthetic input: outlier_scale must be a finite number > 0 (default 20)");
  }
}

std::vector<int64_t> outlier_columns(const SyntheticSpec& spec) {
  if (spec.dist != Distribution::outliers || spec.outlier_channels <= 0) return {};
  // A stream of its own (seed mixed with the golden-ratio constant), so an outliers tensor equals the
  // gaussian tensor of the same seed except in the chosen columns. Partial Fisher–Yates shuffle.
  Rng rng(spec.seed ^ 0x9E3779B97F4A7C15ull);
  std::vector<int64_t> idx(static_cast<size_t>(spec.cols));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  for (int64_t i = 0; i < spec.outlier_channels; ++i) {
    const int64_t j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(spec.cols - i)));
    std::swap(idx[static_cast<size_t>(i)], idx[static_cast<size_t>(j)]);
  }
  std::vector<int64_t> out(idx.begin(), idx.begin() + spec.outlier_channels);
  std::sort(out.begin(), out.end());
  return out;
}

quant::Matrix generate(const SyntheticSpec& spec) {
  spec.validate();
  quant::Matrix m(spec.rows, spec.cols);
  Rng rng(spec.seed);
  const size_t n = m.data.size();
  float* d = m.data.data();
  switch (spec.dist) {
    case Distribution::gaussian:
    case Distribution::outliers:
      for (size_t i = 0; i < n; ++i) d[i] = static_cast<float>(rng.normal());
      break;
    case Distribution::laplace: {
      const double b = 1.0 / std::sqrt(2.0);  // variance 2b² = 1
      for (size_t i = 0; i < n; ++i) d[i] = static_cast<float>(rng.laplace(b));
      break;
    }
    case Distribution::student_t: {
      const int nu = spec.student_nu;
      // ν = 3: variance 3 → factor sqrt(1/3) = 0.577 gives unit variance.
      const double f = nu > 2 ? std::sqrt(static_cast<double>(nu - 2) / nu) : 1.0;
      for (size_t i = 0; i < n; ++i) d[i] = static_cast<float>(f * rng.student_t(nu));
      break;
    }
    case Distribution::uniform: {
      const double a = std::sqrt(3.0);  // U(−√3, √3): variance (2√3)²/12 = 1
      for (size_t i = 0; i < n; ++i) d[i] = static_cast<float>(rng.uniform(-a, a));
      break;
    }
  }
  if (spec.dist == Distribution::outliers) {
    const float s = static_cast<float>(spec.outlier_scale);
    for (int64_t c : outlier_columns(spec))
      for (int64_t r = 0; r < spec.rows; ++r) m(r, c) *= s;
  }
  return m;
}

namespace {
class SyntheticSource final : public TensorSource {
 public:
  explicit SyntheticSource(const SyntheticSpec& spec) : spec_(spec) { spec_.validate(); }
  std::string kind() const override { return "synthetic"; }
  nlohmann::json describe() const override {
    nlohmann::json j;
    j["kind"] = "synthetic";
    j["distribution"] = to_string(spec_.dist);
    j["rows"] = spec_.rows;
    j["cols"] = spec_.cols;
    j["seed"] = spec_.seed;
    j["variance"] = 1.0;
    if (spec_.dist == Distribution::student_t) j["nu"] = spec_.student_nu;
    if (spec_.dist == Distribution::outliers) {
      j["outlier_channels"] = spec_.outlier_channels;
      j["outlier_scale"] = spec_.outlier_scale;
      j["outlier_columns"] = outlier_columns(spec_);
    }
    return j;
  }
  std::vector<TensorInfo> tensors() const override { return {info()}; }
  Tensor load(const std::string& name) const override {
    if (name != "synthetic")
      throw std::invalid_argument("synthetic source has one tensor, 'synthetic' (asked for '" + name + "')");
    return make_owned_tensor(info(), generate(spec_));
  }

 private:
  TensorInfo info() const { return TensorInfo{"synthetic", spec_.rows, spec_.cols, "f32"}; }
  SyntheticSpec spec_;
};
}  // namespace

std::unique_ptr<TensorSource> make_synthetic_source(const SyntheticSpec& spec) {
  return std::make_unique<SyntheticSource>(spec);
}

Tensor make_owned_tensor(TensorInfo info, quant::Matrix m) {
  auto owned = std::make_shared<quant::Matrix>(std::move(m));
  Tensor t;
  t.info = std::move(info);
  t.view = owned->view();
  t.owner = owned;
  return t;
}

}  // namespace qeval::inputs
