// tests/schemes/gptq_test.cpp — GPTQ: beats RTN on the layer-output error with correlated inputs, reduces to
// RTN when H = I, equals an independent sequential-OBS reference, stores act-order permutations faithfully.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cstdio>
#include <numeric>

#include "quant/pack.hpp"
#include "schemes/gptq/gptq.hpp"
#include "tests/schemes/synthetic.hpp"

namespace qeval::schemes::test {
namespace {

constexpr uint64_t kSeed = 0x6b7a11;

Eigen::MatrixXd hessian_of(const quant::Matrix& x) {
  const Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> xm(x.data.data(),
                                                                                                  x.rows, x.cols);
  const Eigen::MatrixXd xd = xm.cast<double>();
  return 2.0 / double(x.rows) * (xd.transpose() * xd);
}

// Integer codes q (not storage codes) of a QuantizedMatrix, in stored column order.
std::vector<int32_t> int_codes(const quant::QuantizedMatrix& q) {
  std::vector<int32_t> out(static_cast<size_t>(q.rows * q.cols));
  std::vector<uint8_t> u(static_cast<size_t>(q.cols));
  const int offset = q.params.mapping == quant::Mapping::symmetric ? (1 << (q.params.bits - 1)) : 0;
  for (int64_t r = 0; r < q.rows; ++r) {
    quant::unpack_row(q, r, u.data());
    for (int64_t k = 0; k < q.cols; ++k) out[static_cast<size_t>(r * q.cols + k)] = int(u[static_cast<size_t>(k)]) - offset;
  }
  return out;
}

// The theory's prediction of GPTQ/RTN on the output error. Quantizing column i with optimal compensation by the
// later columns raises ‖X(W − Ŵ)ᵀ‖² by (w_i − q_i)²/[H_F⁻¹]_ii = (w_i − q_i)²/U_ii² (OBS; exact for the quadratic
// objective), and 1/U_ii² is the variance of feature i left unexplained by the features quantized after it
// (a Schur complement). RTN raises it by (w_i − q_i)²·H_ii. With rounding errors of equal variance Δ²/12 on both
// sides: GPTQ/RTN ≈ Σ_i 1/U_ii² / Σ_i H_ii — small when features are predictable from each other.
double predicted_ratio(const Eigen::MatrixXd& h_in, bool act_order, double damp = 0.01) {
  const int64_t m = h_in.rows();
  std::vector<int> order(static_cast<size_t>(m));
  std::iota(order.begin(), order.end(), 0);
  if (act_order) std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return h_in(a, a) > h_in(b, b); });
  Eigen::MatrixXd h(m, m);
  for (int64_t a = 0; a < m; ++a)
    for (int64_t b = 0; b < m; ++b) h(a, b) = h_in(order[static_cast<size_t>(a)], order[static_cast<size_t>(b)]);
  const double trace = h.trace();
  h.diagonal().array() += damp * h.diagonal().mean();
  const Eigen::MatrixXd u = Eigen::LLT<Eigen::MatrixXd>(h.inverse()).matrixU();
  double s = 0.0;
  for (int64_t i = 0; i < m; ++i) s += 1.0 / (u(i, i) * u(i, i));
  return s / trace;
}

// GPTQ's ‖X(W − Ŵ)ᵀ‖² vs RTN's, same bits / group / mapping, on HELD-OUT tokens of correlated inputs (layer
// 64 × 256, 1024 calibration and 1024 test tokens from the same distribution). Two regimes: strongly correlated
// (rank 8 + noise σ = 0.1: the theory above predicts 0.024–0.035) and weakly correlated (rank 64 + σ = 0.7:
// predicts 0.41–0.51). GPTQ minimizes exactly this objective greedily; RTN ignores X.
// Measured (worst of 4 layers, QEVAL_SEED = default, 1, 77): strong regime 0.012–0.025 (below the prediction:
// error feedback also keeps group ranges tight), weak regime 0.58–0.65 (up to 1.5× the prediction: with 1024
// tokens for 64 + 256 effective dimensions the calibration H differs from the held-out one, so part of the
// compensation does not transfer). Required: ratio < min(2 × predicted, 0.8) — far from "no error feedback"
// (≈ 1) and from a wrong sign / wrong factor (≫ 1).
TEST(Gptq, BeatsRtnOnCorrelatedInputsAtSameBitsAndGroup) {
  const uint64_t seed0 = seed_from_env(kSeed);
  struct Cfg {
    int bits;
    int64_t group;
    quant::Mapping m;
    bool act_order;
    int64_t rank;
    double noise;
  };
  const Cfg cfgs[] = {{3, 128, quant::Mapping::symmetric, false, 8, 0.1},
                      {4, 128, quant::Mapping::symmetric, false, 8, 0.1},
                      {4, 32, quant::Mapping::asymmetric, false, 8, 0.1},
                      {3, 0, quant::Mapping::asymmetric, true, 8, 0.1},
                      {4, 128, quant::Mapping::symmetric, true, 8, 0.1},
                      {4, 128, quant::Mapping::symmetric, false, 64, 0.7},
                      {3, 32, quant::Mapping::asymmetric, true, 64, 0.7}};
  for (const Cfg& cf : cfgs) {
    double worst = 0.0, worst_pred = 0.0;
    for (uint64_t k = 0; k < 4; ++k) {
      const uint64_t seed = seed0 + k;
      const quant::Matrix w = gaussian(64, 256, seed * 7 + 1);
      // Calibration and held-out tokens: the same input distribution (B, big channels), different samples.
      const quant::Matrix xc = correlated_inputs(1024, 256, seed * 7 + 2, cf.rank, cf.noise, 4, 10.0, seed * 7 + 3);
      const quant::Matrix xt = correlated_inputs(1024, 256, seed * 7 + 2, cf.rank, cf.noise, 4, 10.0, seed * 7 + 4);
      std::map<std::string, std::string> o;
      if (cf.act_order) o["act_order"] = "true";
      const auto g = make_scheme(config("gptq", cf.bits, cf.group, o, cf.m));
      const auto r = make_scheme(config("rtn", cf.bits, cf.group, {}, cf.m));
      const Calibration c = calib_of(xc);
      const double eg = output_error(xt, w, fake_weight(*g, w, &c));
      const double er = output_error(xt, w, fake_weight(*r, w, nullptr));
      const double pred = predicted_ratio(hessian_of(xc), cf.act_order);
      worst = std::max(worst, eg / er);
      worst_pred = std::max(worst_pred, pred);
      EXPECT_LT(eg / er, std::min(2.0 * pred, 0.8)) << "bits " << cf.bits << " group " << cf.group << " seed " << seed;
    }
    std::printf("[gptq] rank %lld noise %.1f, bits %d group %lld %s%s: worst GPTQ/RTN output-error ratio %.3f "
                "(predicted %.3f)\n",
                static_cast<long long>(cf.rank), cf.noise, cf.bits, static_cast<long long>(cf.group),
                quant::to_string(cf.m), cf.act_order ? " act_order" : "", worst, worst_pred);
  }
}

// H = I: the Cholesky factor of H⁻¹ = I/(1+λ) is diagonal, every error-feedback term is e·0 = 0, so GPTQ must give
// RTN's codes and scales bit for bit (groups chosen from untouched weights by the same choose_group_params).
// Checked through calib.hessian = I and through captured inputs X = 8·I₁₂₈ (2·XᵀX/n = 2·64·I/128 = I exactly).
TEST(Gptq, ReducesExactlyToRtnWhenHessianIsIdentity) {
  const uint64_t seed = seed_from_env(kSeed);
  const quant::Matrix w = gaussian(32, 128, seed);
  quant::Matrix x(128, 128, 0.0f);
  for (int64_t i = 0; i < 128; ++i) x(i, i) = 8.0f;
  for (quant::Mapping m : {quant::Mapping::symmetric, quant::Mapping::asymmetric})
    for (int64_t group : {int64_t{32}, int64_t{0}, int64_t{-1}})
      for (const char* ao : {"false", "true"}) {
        const SchemeConfig cfg = config("gptq", 4, group, {{"act_order", ao}}, m);
        const quant::QuantizedMatrix rtn = quant::quantize_affine(w.view(), cfg.params, quant::Backend::ref);
        Calibration by_h;
        by_h.hessian.assign(128 * 128, 0.0);
        for (int i = 0; i < 128; ++i) by_h.hessian[static_cast<size_t>(i * 128 + i)] = 1.0;
        const Calibration by_x = calib_of(x);
        for (const Calibration* c : std::vector<const Calibration*>{&by_h, &by_x}) {
          const quant::QuantizedMatrix q = make_scheme(cfg)->quantize(w.view(), c);
          EXPECT_EQ(q.codes, rtn.codes) << "group " << group << " " << quant::to_string(m) << " act_order " << ao;
          EXPECT_EQ(q.scales, rtn.scales);
          EXPECT_EQ(q.zero_points, rtn.zero_points);
        }
      }
}

// An independent reference: the OBS form of the same greedy algorithm (the paper's Eq. 2–3), with the inverse
// Hessian of the remaining columns updated by Gaussian elimination after every column — no Cholesky, no lazy
// blocks. Both are exact arithmetic identities of each other, so in double precision the integer codes agree.
std::vector<int32_t> obs_reference(const quant::Matrix& w, Eigen::MatrixXd h, const quant::QuantParams& p,
                                   double damp) {
  const int64_t rows = w.rows, m = w.cols, g = p.group_size;
  Eigen::MatrixXd wd(rows, m);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < m; ++c) wd(r, c) = w(r, c);
  for (int64_t i = 0; i < m; ++i)
    if (h(i, i) == 0.0) {
      h(i, i) = 1.0;
      wd.col(i).setZero();
    }
  h.diagonal().array() += damp * h.diagonal().mean();
  Eigen::MatrixXd hinv = h.inverse();
  std::vector<int32_t> q(static_cast<size_t>(rows * m));
  std::vector<quant::GroupParams> gp(static_cast<size_t>(rows));
  std::vector<float> buf;
  for (int64_t col = 0; col < m; ++col) {
    if (col % g == 0)
      for (int64_t r = 0; r < rows; ++r) {
        buf.assign(static_cast<size_t>(g), 0.0f);
        for (int64_t k = 0; k < g; ++k) buf[static_cast<size_t>(k)] = static_cast<float>(wd(r, col + k));
        gp[static_cast<size_t>(r)] = quant::choose_group_params(buf.data(), g, p);
      }
    const double d = hinv(col, col);
    for (int64_t r = 0; r < rows; ++r) {
      const int32_t code = quant::quantize_one(static_cast<float>(wd(r, col)), gp[static_cast<size_t>(r)], p.qmin(),
                                               p.qmax(), p.rounding);
      q[static_cast<size_t>(r * m + col)] = code;
      const double err = (wd(r, col) - double(quant::dequantize_one(code, gp[static_cast<size_t>(r)]))) / d;
      for (int64_t j = col + 1; j < m; ++j) wd(r, j) -= err * hinv(col, j);
    }
    // Remove column `col` from the inverse: H_F⁻¹ ← H⁻¹ − H⁻¹_{:,col}·H⁻¹_{col,:}/H⁻¹_{col,col}.
    const Eigen::VectorXd v = hinv.col(col);
    hinv -= v * v.transpose() / d;
  }
  return q;
}

TEST(Gptq, EqualsSequentialObsReferenceAndIsIndependentOfBlockSize) {
  const uint64_t seed = seed_from_env(kSeed);
  const quant::Matrix w = gaussian(16, 96, seed + 11);
  const quant::Matrix x = correlated_inputs(512, 96, seed + 12, 6, 0.2, 2, 5.0);
  const Eigen::MatrixXd h = hessian_of(x);
  for (int64_t group : {int64_t{16}, int64_t{32}, int64_t{96}}) {
    quant::QuantParams p;
    p.bits = 3;
    p.group_size = group;
    p.mapping = quant::Mapping::asymmetric;
    const std::vector<int32_t> ref = obs_reference(w, h, p, 0.01);
    // Blocks smaller than, equal to, not aligned with and larger than the groups: the lazy updates must not
    // change which weights a group's parameters are chosen from.
    for (int64_t block : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{40}, int64_t{128}}) {
      GptqOptions o;
      o.block = block;
      const quant::QuantizedMatrix q = gptq_quantize(w.view(), h, p, o);
      const std::vector<int32_t> got = int_codes(q);
      int64_t diff = 0;
      for (size_t i = 0; i < got.size(); ++i) diff += got[i] != ref[i];
      EXPECT_EQ(diff, 0) << "group " << group << " block " << block << " seed " << seed;
    }
  }
}

// Act-order with groups formed in permuted order: the stored matrix has codes in permuted order, perm[], and
// per-group parameters over stored columns. The test recomputes every dequantized weight from those stored
// fields alone (its own unpacking and formula, not quant::dequantize) and compares with the scheme's
// dequantize bit for bit; perm must be the stable descending order of diag(H). Static groups store codes in the
// original order without perm. "No lost permutation" is also checked numerically: the weight SQNR is that of a
// 4-bit quantizer (> 12 dB), while applying the codes without their permutation would scramble columns (< 3 dB).
TEST(Gptq, ActOrderStoresCodesScalesAndPermutationConsistently) {
  const uint64_t seed = seed_from_env(kSeed);
  const quant::Matrix w = gaussian(24, 256, seed + 21);
  const quant::Matrix x = correlated_inputs(1024, 256, seed + 22);
  const Calibration c = calib_of(x);
  const Eigen::MatrixXd h = hessian_of(x);
  std::vector<int32_t> expect_perm(256);
  std::iota(expect_perm.begin(), expect_perm.end(), 0);
  std::stable_sort(expect_perm.begin(), expect_perm.end(), [&](int a, int b) { return h(a, a) > h(b, b); });
  for (const char* stat : {"false", "true"})
    for (quant::Mapping m : {quant::Mapping::symmetric, quant::Mapping::asymmetric}) {
      const auto s = make_scheme(config("gptq", 4, 32, {{"act_order", "true"}, {"static_groups", stat}}, m));
      const quant::QuantizedMatrix q = s->quantize(w.view(), &c);
      const bool is_static = std::string(stat) == "true";
      if (is_static) {
        EXPECT_TRUE(q.perm.empty());
      } else {
        ASSERT_EQ(q.perm, expect_perm) << "seed " << seed;
      }
      // Independent recomputation from the stored fields.
      quant::Matrix mine(w.rows, w.cols, std::nanf(""));
      const int offset = m == quant::Mapping::symmetric ? 8 : 0;
      for (int64_t r = 0; r < q.rows; ++r)
        for (int64_t k = 0; k < q.cols; ++k) {
          const int u = quant::packed_code_at(q.codes.data() + r * q.row_bytes(), k, 4);
          const size_t gi = static_cast<size_t>(r * (q.cols / 32) + k / 32);
          const int zp = m == quant::Mapping::asymmetric ? q.zero_points[gi] : 0;
          const int64_t col = q.perm.empty() ? k : q.perm[static_cast<size_t>(k)];
          mine(r, col) = q.scales[gi] * static_cast<float>(u - offset - zp);
        }
      quant::Matrix deq(w.rows, w.cols, std::nanf(""));
      s->dequantize(q, deq.mut());
      EXPECT_EQ(deq.data, mine.data) << "static_groups " << stat << " seed " << seed;
      double sig = 0.0;
      for (float v : w.data) sig += double(v) * v;
      const double sqnr = 10.0 * std::log10(sig / sq_diff(w, deq));
      EXPECT_GT(sqnr, 12.0) << "static_groups " << stat;
      if (!is_static) {
        quant::QuantizedMatrix lost = q;
        lost.perm.clear();
        quant::Matrix bad(w.rows, w.cols);
        quant::dequantize(lost, bad.mut());
        EXPECT_LT(10.0 * std::log10(sig / sq_diff(w, bad)), 3.0) << "the permutation test is not sensitive";
      }
      // And act-order still beats RTN on this layer.
      const auto r = make_scheme(config("rtn", 4, 32, {}, m));
      EXPECT_LT(output_error(x, w, deq), 0.5 * output_error(x, w, fake_weight(*r, w, nullptr)));
    }
}

// A feature that is always 0 ("dead": H_ii = 0) gets weight 0 and leaves the rest finite, as in the paper's code.
TEST(Gptq, DeadColumnsAreZeroedNotNaN) {
  const uint64_t seed = seed_from_env(kSeed);
  const quant::Matrix w = gaussian(8, 64, seed + 31);
  quant::Matrix x = correlated_inputs(256, 64, seed + 32, 4, 0.1, 0, 1.0);
  for (int64_t t = 0; t < x.rows; ++t) x(t, 5) = x(t, 40) = 0.0f;
  GptqInfo info;
  quant::QuantParams p;
  p.group_size = 32;
  const quant::QuantizedMatrix q = gptq_quantize(w.view(), hessian_of(x), p, GptqOptions{}, &info);
  EXPECT_EQ(info.dead_columns, 2);
  quant::Matrix deq(w.rows, w.cols);
  quant::dequantize(q, deq.mut());
  for (int64_t r = 0; r < w.rows; ++r) {
    EXPECT_EQ(deq(r, 5), 0.0f);
    EXPECT_EQ(deq(r, 40), 0.0f);
    for (int64_t cc = 0; cc < w.cols; ++cc) ASSERT_TRUE(std::isfinite(deq(r, cc)));
  }
}

// A migration folded by eval/ (AWQ-style scales, then GPTQ on W·diag(s) whose input is X·diag(1/s)): the scheme
// scales its captured Hessian to diag(1/s)·H·diag(1/s), the Hessian of X·diag(1/s). With powers of two for s every
// scaling is exact in floating point, so the codes equal GPTQ run on captured X·diag(1/s) bit for bit. An unfolded
// migration is refused (GPTQ does not apply column scales itself).
TEST(Gptq, FoldedMigrationUsesTheMigratedInputsHessian) {
  const uint64_t seed = seed_from_env(kSeed);
  const quant::Matrix w = gaussian(16, 128, seed + 41);
  const quant::Matrix x = correlated_inputs(512, 128, seed + 42);
  Rng rng(seed + 43);
  std::vector<float> s(128);
  for (auto& v : s) v = std::ldexp(1.0f, static_cast<int>(rng.below(5)) - 2);  // 1/4 .. 4
  quant::Matrix ws(w.rows, w.cols), xs(x.rows, x.cols);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t j = 0; j < w.cols; ++j) ws(r, j) = w(r, j) * s[static_cast<size_t>(j)];
  for (int64_t t = 0; t < x.rows; ++t)
    for (int64_t j = 0; j < x.cols; ++j) xs(t, j) = x(t, j) / s[static_cast<size_t>(j)];
  const auto g = make_scheme(config("gptq", 4, 32, {{"act_order", "true"}}));
  Calibration folded = calib_of(x);
  folded.migration_scales = s;
  folded.migration_folded = true;
  const Calibration direct = calib_of(xs);
  const quant::QuantizedMatrix a = g->quantize(ws.view(), &folded), b = g->quantize(ws.view(), &direct);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.scales, b.scales);
  EXPECT_EQ(a.perm, b.perm);
  folded.migration_folded = false;
  EXPECT_ERROR_MENTIONS(g->quantize(w.view(), &folded), "unfolded");
}

TEST(Gptq, RejectsBadConfigurationAndMissingCalibration) {
  const quant::Matrix w = gaussian(8, 128, kSeed);
  const quant::Matrix x = gaussian(64, 128, kSeed + 1);
  const Calibration c = calib_of(x);
  EXPECT_ERROR_MENTIONS(make_scheme(config("gptq", 4, 128))->quantize(w.view(), nullptr), "gptq",
                        "run with calibration (--calib");
  EXPECT_ERROR_MENTIONS(make_scheme(config("gptq", 4, 128, {{"damp", "0"}})), "damp", "> 0");
  EXPECT_ERROR_MENTIONS(make_scheme(config("gptq", 4, 128, {{"damp", "-0.01"}})), "damp");
  EXPECT_ERROR_MENTIONS(make_scheme(config("gptq", 4, 128, {{"block", "0"}})), "block");
  EXPECT_ERROR_MENTIONS(make_scheme(config("gptq", 9, 128)), "bits", "9");
  EXPECT_ERROR_MENTIONS(make_scheme(config("gptq", 1, 128)), "bits", "1");
  EXPECT_ERROR_MENTIONS(make_scheme(config("gptq", 4, 0, {{"static_groups", "true"}})), "static_groups");
  EXPECT_ERROR_MENTIONS(make_scheme(config("gptq", 4, 128, {{"actorder", "true"}})), "actorder", "act_order");
  EXPECT_ERROR_MENTIONS(make_scheme(config("gptq", 4, 100))->quantize(w.view(), &c), "100", "128");
  const quant::Matrix narrow = gaussian(64, 64, kSeed + 2);
  const Calibration wrong = calib_of(narrow);
  EXPECT_ERROR_MENTIONS(make_scheme(config("gptq", 4, 32))->quantize(w.view(), &wrong), "64", "128");
  Calibration empty;
  EXPECT_ERROR_MENTIONS(make_scheme(config("gptq", 4, 32))->quantize(w.view(), &empty),
                        "run with calibration (--calib");
}

}  // namespace
}  // namespace qeval::schemes::test

namespace qeval::schemes::test {
namespace {

// partial_last_group (a width the group size does not divide, like SmolLM2's 576 with g128): with H = I
// GPTQ has nothing to compensate, so it must reproduce RTN's partial grouping exactly — including the
// short last group's own scale (200 = 3·64 + 8 here), with and without act-order.
TEST(Gptq, PartialLastGroupReducesToRtnWhenHessianIsIdentity) {
  const uint64_t seed = seed_from_env(kSeed);
  const quant::Matrix w = gaussian(16, 200, seed);
  quant::Matrix x(200, 200, 0.0f);
  for (int64_t i = 0; i < 200; ++i) x(i, i) = 8.0f;
  const Calibration c = calib_of(x);
  for (const char* ao : {"false", "true"}) {
    SchemeConfig cfg = config("gptq", 4, 64, {{"act_order", ao}}, quant::Mapping::asymmetric);
    cfg.params.partial_last_group = true;
    const quant::QuantizedMatrix rtn = quant::quantize_affine(w.view(), cfg.params, quant::Backend::ref);
    ASSERT_EQ(rtn.scales.size(), 16u * 4u);
    const quant::QuantizedMatrix q = make_scheme(cfg)->quantize(w.view(), &c);
    EXPECT_EQ(q.codes, rtn.codes) << "act_order " << ao;
    EXPECT_EQ(q.scales, rtn.scales);
    EXPECT_EQ(q.zero_points, rtn.zero_points);
    cfg.params.partial_last_group = false;
    EXPECT_THROW(make_scheme(cfg)->quantize(w.view(), &c), std::invalid_argument);
  }
}

// ---- the steps of gptq_quantize --------------------------------------------------------------------------------

// U is upper triangular with UᵀU = (H + λI)⁻¹, λ = damp·mean(diag H): checked by multiplying back, to 1e-9 relative
// (double LLT on a well-conditioned 48 × 48 Gram matrix).
TEST(GptqSteps, InverseCholeskyFactorsTheDampedInverse) {
  const quant::Matrix x = gaussian(200, 48, seed_from_env(kSeed) + 3);
  const Eigen::MatrixXd h = hessian_of(x);
  double lambda = 0.0;
  const Eigen::MatrixXd u = gptq::inverse_cholesky(h, 0.01, &lambda);
  EXPECT_DOUBLE_EQ(lambda, 0.01 * h.diagonal().mean());
  EXPECT_TRUE(u.isUpperTriangular());
  const Eigen::MatrixXd damped = h + lambda * Eigen::MatrixXd::Identity(48, 48);
  const Eigen::MatrixXd back = (u.transpose() * u) * damped;
  EXPECT_LT((back - Eigen::MatrixXd::Identity(48, 48)).cwiseAbs().maxCoeff(), 1e-9);
  Eigen::MatrixXd indefinite = -Eigen::MatrixXd::Identity(4, 4);
  EXPECT_ERROR_MENTIONS(gptq::inverse_cholesky(indefinite, 0.01), "positive definite", "damp");
}

TEST(GptqSteps, DeadColumnsOrderAndFixedParameters) {
  Eigen::MatrixXd h = Eigen::MatrixXd::Zero(4, 4), w = Eigen::MatrixXd::Ones(2, 4);
  h.diagonal() << 3.0, 0.0, 5.0, 3.0;
  EXPECT_EQ(gptq::zero_dead_columns(h, w), 1);
  EXPECT_EQ(h(1, 1), 1.0);
  EXPECT_TRUE(w.col(1).isZero());
  EXPECT_EQ(w.col(0).sum(), 2.0);
  // Descending diag(H) = (3, 1, 5, 3) → 2, then 0 and 3 in their original order (stable), then 1.
  EXPECT_EQ(gptq::column_order(h, true), (std::vector<int32_t>{2, 0, 3, 1}));
  EXPECT_EQ(gptq::column_order(h, false), (std::vector<int32_t>{0, 1, 2, 3}));
  Eigen::MatrixXd neg = Eigen::MatrixXd::Identity(2, 2);
  neg(1, 1) = -1.0;
  Eigen::MatrixXd w2 = Eigen::MatrixXd::Ones(1, 2);
  EXPECT_ERROR_MENTIONS(gptq::zero_dead_columns(neg, w2), "negative diagonal", "H[1][1]");
  // Per row: one parameter set per row, quant's choice over that row; dynamic groups: none fixed in advance.
  Eigen::MatrixXd wr(2, 8);
  for (int64_t c = 0; c < 8; ++c) {
    wr(0, c) = 0.1 * (c + 1);
    wr(1, c) = -2.0 + 0.5 * c;
  }
  const quant::QuantParams per_row = config("gptq", 4, 0).params;
  const auto fixed = gptq::fixed_params(wr, per_row, false);
  ASSERT_EQ(fixed.size(), 2u);
  std::vector<float> row1(8);
  for (int64_t c = 0; c < 8; ++c) row1[static_cast<size_t>(c)] = static_cast<float>(wr(1, c));
  EXPECT_EQ(fixed[1].scale, quant::choose_group_params(row1.data(), 8, per_row).scale);
  EXPECT_TRUE(gptq::fixed_params(wr, config("gptq", 4, 4).params, false).empty());
  EXPECT_EQ(gptq::fixed_params(wr, config("gptq", 4, 4).params, true).size(), 4u);
}

}  // namespace
}  // namespace qeval::schemes::test
