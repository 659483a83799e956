// tests/gpu/matmul_cl_test.cpp — quantized matmuls on the device: W8A8 and W4A8 (integer GEMM + scale/zero-point
// epilogue), W4A16/W8A16 and every other weight format (dequantized in registers), and LLM.int8 composed from the
// masked quantize, the int8 GEMM and the fp32 outlier part.
// Integer parts are checked exactly through the reference's codes; float results within derived tolerances.
//
// Tolerances (u = 2^-24, the float32 unit roundoff; derivations, not fitted numbers):
//  * integer GEMM + epilogue. The device computes y = Σ_s fl(fl(sa·sw)·fl(C_s)) over the nseg K segments, C_s the
//    exact integer Σ_k (qa − za)(qw − zw) of segment s. Each term carries ≤ 3 roundings (C_s → float, sa·sw,
//    the product): relative error ≤ 3u (+O(u²)); the sequential float sum of nseg terms adds ≤ (nseg − 1)·u·Σ|t_s|
//    (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 4.4). So
//        |y − y*| ≤ (nseg + 3)·u·Σ_s |t_s|,   t_s = sa·sw·C_s (computed exactly here in double from integers).
//    This is the rigorous form of STYLE.md's c·eps·max|x|·√K: Σ_s|t_s| ≤ Σ_k |x̂a_k·x̂w_k| ≤ K·max|x̂a|·max|x̂w|,
//    without the √K random-walk assumption (no flaky bound). Worked number: per token (nseg 1), |t| = 100 →
//    4·5.96e-8·100 = 2.4e-5.
//  * against the dequantized product Σ_k x̂a·x̂w (ref::dequantize_ref, double): each x̂ is itself rounded once
//    (relative u), so add 2u·Σ_k|x̂a·x̂w|.
//  * float matmul (W·A16): fp32 fma accumulation over K products of exactly dequantized weights:
//        |y − y*| ≤ γ_K·Σ_k |x_k·ŵ_k|,  γ_K = K·u / (1 − K·u)   (Higham eq. 3.5; K = 4096 → 2.4e-4 relative).
#include <gtest/gtest.h>

#include <cmath>

#include "gpu/backend.hpp"
#include "quant/float_formats.hpp"
#include "quant/pack.hpp"
#include "quant/ref/quantize_ref.hpp"
#include "tests/gpu/gpu_test_util.hpp"

namespace qeval::gpu {
namespace {

using quant::Format;
using quant::Mapping;
using quant::QuantParams;
constexpr double kU = 5.9604644775390625e-8;  // 2^-24

// q − zero_point of every element (the integer factor of x̂ = scale·(q − zp)), row-major.
std::vector<int32_t> centered_codes(const quant::QuantizedMatrix& q) {
  std::vector<int32_t> out(static_cast<size_t>(q.rows * q.cols));
  std::vector<uint8_t> u(static_cast<size_t>(q.cols));
  const bool asym = q.params.mapping == Mapping::asymmetric;
  const int off = asym ? 0 : (1 << (q.params.bits - 1));
  for (int64_t r = 0; r < q.rows; ++r) {
    quant::unpack_row(q, r, u.data());
    for (int64_t c = 0; c < q.cols; ++c) {
      const int64_t gi = q.group_index(r, c);
      const int zp = asym ? q.zero_points[static_cast<size_t>(gi)] : 0;
      out[static_cast<size_t>(r * q.cols + c)] = static_cast<int32_t>(u[static_cast<size_t>(c)]) - off - zp;
    }
  }
  return out;
}

int64_t glen_of(const quant::QuantizedMatrix& q) {
  return q.params.group_size > 0 ? q.params.group_size : q.cols;
}

struct Expected {
  quant::Matrix y;    // exact Σ_s t_s (double → float for storage only; compared in double below)
  std::vector<double> y_exact, abs_terms;
  int64_t nseg = 1;
};

// y* = Σ_s sa·sw·C_s with exact integer C_s per segment, and Σ_s|t_s|.
Expected expected_quantized(const quant::QuantizedMatrix& a, const quant::QuantizedMatrix& w) {
  const int64_t M = a.rows, N = w.rows, K = a.cols;
  const int64_t seg = std::min(glen_of(a), glen_of(w));
  Expected e;
  e.nseg = (K + seg - 1) / seg;
  e.y_exact.assign(static_cast<size_t>(M * N), 0.0);
  e.abs_terms.assign(e.y_exact.size(), 0.0);
  const std::vector<int32_t> qa = centered_codes(a), qw = centered_codes(w);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < e.nseg; ++s) {
        int64_t c = 0;
        const int64_t k1 = std::min(K, (s + 1) * seg);
        for (int64_t k = s * seg; k < k1; ++k)
          c += static_cast<int64_t>(qa[static_cast<size_t>(m * K + k)]) * qw[static_cast<size_t>(n * K + k)];
        const double sa = a.scales[static_cast<size_t>(a.group_index(m, s * seg))];
        const double sw = w.scales[static_cast<size_t>(w.group_index(n, s * seg))];
        const double t = sa * sw * static_cast<double>(c);
        e.y_exact[static_cast<size_t>(m * N + n)] += t;
        e.abs_terms[static_cast<size_t>(m * N + n)] += std::fabs(t);
      }
  return e;
}

// Σ_k x̂a·x̂w and Σ_k|x̂a·x̂w| from the reference dequantization.
void dequantized_product(const quant::QuantizedMatrix& a, const quant::QuantizedMatrix& w, std::vector<double>& y,
                         std::vector<double>& absy) {
  quant::Matrix da(a.rows, a.cols), dw(w.rows, w.cols);
  ref::dequantize_ref(a, da.mut());
  ref::dequantize_ref(w, dw.mut());
  y.assign(static_cast<size_t>(a.rows * w.rows), 0.0);
  absy = y;
  for (int64_t m = 0; m < a.rows; ++m)
    for (int64_t n = 0; n < w.rows; ++n)
      for (int64_t k = 0; k < a.cols; ++k) {
        const double p = static_cast<double>(da(m, k)) * dw(n, k);
        y[static_cast<size_t>(m * w.rows + n)] += p;
        absy[static_cast<size_t>(m * w.rows + n)] += std::fabs(p);
      }
}

// Checks one W8A8/W4A8 product; returns the number of elements out of tolerance (and reports the first).
int check_quantized(Device& d, const quant::QuantizedMatrix& a, const quant::QuantizedMatrix& w, Tier t,
                    const std::string& what, TileConfig tile = TileConfig::automatic) {
  GemmOptions o;
  o.tier = t;
  o.tile = tile;
  const quant::Matrix y = matmul_quantized_cl(d, a, w, o);
  const Expected e = expected_quantized(a, w);
  std::vector<double> yd, absd;
  dequantized_product(a, w, yd, absd);
  int bad = 0;
  for (size_t i = 0; i < e.y_exact.size(); ++i) {
    const double tol = static_cast<double>(e.nseg + 3) * kU * e.abs_terms[i];
    const double err = std::fabs(static_cast<double>(y.data[i]) - e.y_exact[i]);
    const double err2 = std::fabs(static_cast<double>(y.data[i]) - yd[i]);
    const double tol2 = tol + 2.0 * kU * absd[i];
    if (!(err <= tol) || !(err2 <= tol2)) {
      if (bad == 0)
        ADD_FAILURE() << what << " " << to_string(t) << ": y[" << i << "] = " << y.data[i] << ", exact "
                      << e.y_exact[i] << " (err " << err << ", tol " << tol << "), dequantized product " << yd[i]
                      << " (err " << err2 << ", tol " << tol2 << ")";
      ++bad;
    }
  }
  return bad;
}

int check_a16(Device& d, const quant::Matrix& x, const quant::QuantizedMatrix& w, const std::string& what);

quant::QuantizedMatrix quantize_ref(const quant::Matrix& x, int bits, int64_t g, Mapping m) {
  QuantParams p;
  p.bits = bits;
  p.group_size = g;
  p.mapping = m;
  return ref::quantize_affine_ref(x.view(), p);
}

TEST(MatmulCl, W8A8AndW4A8EveryGroupingAndMapping) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  const int64_t M = 7, N = 129, K = 256;
  const quant::Matrix x = test::gaussian_matrix(M, K, seed, 2.0);
  quant::Matrix wf = test::gaussian_matrix(N, K, seed + 1, 0.05);
  for (int64_t c = 0; c < K; c += 5) wf(3, c) += 0.2f;  // a skewed row: asymmetric weights get a real zero point
  for (Tier t : test::tiers_to_test(*dev))
    for (int64_t ga : {int64_t{0}, int64_t{32}, int64_t{128}, int64_t{256}})
      for (int64_t gw : {int64_t{0}, int64_t{32}, int64_t{128}, int64_t{256}})
        for (Mapping ma : {Mapping::symmetric, Mapping::asymmetric})
          for (Mapping mw : {Mapping::symmetric, Mapping::asymmetric})
            for (int wb : {8, 4}) {
              const quant::QuantizedMatrix a = quantize_ref(x, 8, ga, ma);
              const quant::QuantizedMatrix w = quantize_ref(wf, wb, gw, mw);
              const std::string what = "ga " + std::to_string(ga) + " gw " + std::to_string(gw) + " a " +
                                       quant::to_string(ma) + " w " + quant::to_string(mw) + " int" +
                                       std::to_string(wb) + " seed " + std::to_string(seed);
              EXPECT_EQ(check_quantized(*dev, a, w, t, what), 0) << what;
            }
}

TEST(MatmulCl, W8A8OddAndTailShapes) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  const int64_t sizes[] = {1, 7, 64, 127, 128, 129};
  for (Tier t : test::tiers_to_test(*dev))
    for (int64_t M : sizes)
      for (int64_t N : sizes)
        for (int64_t K : sizes) {
          if (t == Tier::t3_emulated && (M * N * K) % 3 != 0) continue;  // the slow emulation: a third of them
          const uint64_t s = seed + static_cast<uint64_t>(M * 7 + N * 131 + K * 8191);
          const quant::Matrix x = test::gaussian_matrix(M, K, s);
          const quant::Matrix wf = test::gaussian_matrix(N, K, s + 1, 0.1);
          const Mapping ma = (M + N) % 2 ? Mapping::asymmetric : Mapping::symmetric;
          const Mapping mw = (N + K) % 2 ? Mapping::asymmetric : Mapping::symmetric;
          const int wb = (M + K) % 2 ? 4 : 8;
          const std::string what = "M " + std::to_string(M) + " N " + std::to_string(N) + " K " + std::to_string(K) +
                                   " int" + std::to_string(wb) + " seed " + std::to_string(s);
          EXPECT_EQ(check_quantized(*dev, quantize_ref(x, 8, 0, ma), quantize_ref(wf, wb, 0, mw), t, what), 0) << what;
        }
}

TEST(MatmulCl, W8A8DecodeKernelEpilogue) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  // The weight-streaming kernel (M <= 16) with the single-segment epilogue: per token × per channel.
  const uint64_t seed = test::gpu_seed();
  for (Tier t : {Tier::t0, Tier::t1}) {
    if (!dev->usable(t)) continue;
    for (int64_t M : {int64_t{1}, int64_t{7}, int64_t{16}})
      for (int64_t K : {int64_t{7}, int64_t{129}, int64_t{4096}})
        for (Mapping ma : {Mapping::symmetric, Mapping::asymmetric})
          for (Mapping mw : {Mapping::symmetric, Mapping::asymmetric}) {
            const uint64_t s = seed + static_cast<uint64_t>(M * 31 + K);
            const quant::Matrix x = test::gaussian_matrix(M, K, s);
            const quant::Matrix wf = test::gaussian_matrix(65, K, s + 1, 0.1);
            const std::string what = "decode M " + std::to_string(M) + " K " + std::to_string(K) + " a " +
                                     quant::to_string(ma) + " w " + quant::to_string(mw) + " seed " + std::to_string(s);
            EXPECT_EQ(check_quantized(*dev, quantize_ref(x, 8, 0, ma), quantize_ref(wf, 8, 0, mw), t, what,
                                      TileConfig::decode),
                      0)
                << what;
          }
  }
}

TEST(MatmulCl, W8A8Long4096) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  const quant::Matrix x = test::gaussian_matrix(3, 4096, seed);
  const quant::Matrix wf = test::gaussian_matrix(64, 4096, seed + 1, 0.02);
  for (Tier t : test::tiers_to_test(*dev))
    for (int64_t g : {int64_t{0}, int64_t{128}})
      EXPECT_EQ(check_quantized(*dev, quantize_ref(x, 8, g, Mapping::asymmetric),
                                quantize_ref(wf, 4, 128, Mapping::asymmetric), t, "K 4096 g" + std::to_string(g)),
                0);
}

TEST(MatmulCl, PartialLastGroups) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  // 576 = 4·128 + 64 (partial_last_group): segments 128, 128, 128, 128, 64 on both sides.
  const uint64_t seed = test::gpu_seed();
  const quant::Matrix x = test::gaussian_matrix(9, 576, seed);
  const quant::Matrix wf = test::gaussian_matrix(70, 576, seed + 1, 0.05);
  for (Tier t : test::tiers_to_test(*dev))
    for (int wb : {8, 4}) {
      QuantParams pa, pw;
      pa.bits = 8;
      pa.group_size = 128;
      pa.mapping = Mapping::asymmetric;
      pa.partial_last_group = true;
      pw.bits = wb;
      pw.group_size = 128;
      pw.mapping = Mapping::asymmetric;
      pw.partial_last_group = true;
      EXPECT_EQ(check_quantized(*dev, ref::quantize_affine_ref(x.view(), pa), ref::quantize_affine_ref(wf.view(), pw),
                                t, "partial g128 int" + std::to_string(wb)),
                0);
      EXPECT_EQ(check_a16(*dev, x, ref::quantize_affine_ref(wf.view(), pw), "A16 partial g128"), 0);
    }
}

TEST(MatmulCl, EndToEndWithDeviceQuantizedActivations) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  // quantize_cl gives the reference's codes, so the product of the device-quantized activations is checked
  // against the same exact expectation.
  const uint64_t seed = test::gpu_seed();
  const quant::Matrix x = test::gaussian_matrix(64, 512, seed);
  const quant::Matrix wf = test::gaussian_matrix(96, 512, seed + 1, 0.05);
  QuantParams p;
  p.bits = 8;
  p.group_size = 128;
  p.mapping = Mapping::asymmetric;
  const quant::QuantizedMatrix a = quantize_cl(*dev, x.view(), p);
  EXPECT_EQ(check_quantized(*dev, a, quantize_ref(wf, 8, 0, Mapping::symmetric), dev->best_tier(), "end to end"), 0);
}

TEST(MatmulCl, GroupRulesAreClearErrors) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const quant::Matrix x = test::gaussian_matrix(2, 96, 1), w = test::gaussian_matrix(3, 96, 2);
  GemmOptions o;
  // segment 48 is neither a multiple of 32 nor the row
  try {
    matmul_quantized_cl(*dev, quantize_ref(x, 8, 48, Mapping::symmetric), quantize_ref(w, 8, 0, Mapping::symmetric), o);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("multiple of 32"), std::string::npos) << e.what();
  }
  EXPECT_THROW(matmul_quantized_cl(*dev, quantize_ref(x, 4, 0, Mapping::symmetric),
                                   quantize_ref(w, 8, 0, Mapping::symmetric), o),
               std::invalid_argument);
  EXPECT_THROW(matmul_quantized_cl(*dev, quantize_ref(x, 8, 32, Mapping::symmetric),
                                   quantize_ref(test::gaussian_matrix(3, 64, 3), 8, 0, Mapping::symmetric), o),
               std::invalid_argument);  // K mismatch
}

// ---- weight-only (A16) ----------------------------------------------------------------------------------

int check_a16(Device& d, const quant::Matrix& x, const quant::QuantizedMatrix& w, const std::string& what) {
  const quant::Matrix y = matmul_a16_cl(d, x.view(), w);
  quant::Matrix dw(w.rows, w.cols);
  ref::dequantize_ref(w, dw.mut());
  const double K = static_cast<double>(x.cols);
  const double gamma = K * kU / (1.0 - K * kU);
  int bad = 0;
  for (int64_t m = 0; m < x.rows; ++m)
    for (int64_t n = 0; n < w.rows; ++n) {
      double s = 0.0, sa = 0.0;
      for (int64_t k = 0; k < x.cols; ++k) {
        const double p = static_cast<double>(x(m, k)) * dw(n, k);
        s += p;
        sa += std::fabs(p);
      }
      const double err = std::fabs(static_cast<double>(y(m, n)) - s);
      if (!(err <= gamma * sa)) {
        if (bad == 0)
          ADD_FAILURE() << what << ": y[" << m << "][" << n << "] = " << y(m, n) << ", expected " << s << " (err "
                        << err << ", tol " << gamma * sa << ")";
        ++bad;
      }
    }
  return bad;
}

TEST(MatmulCl, WeightOnlyEveryFormatAndShape) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 7, 128}, {7, 129, 256}, {64, 64, 128},
                         {127, 1, 256}, {129, 65, 512}, {3, 17, 4096}}) {
    const quant::Matrix x = test::gaussian_matrix(M, K, seed + static_cast<uint64_t>(M));
    const quant::Matrix wf = test::gaussian_matrix(N, K, seed + static_cast<uint64_t>(N) + 7, 0.05);
    const std::string shape = std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K);
    for (int bits : {8, 4, 3, 2})
      for (int64_t g : {int64_t{0}, int64_t{32}, int64_t{128}})
        for (Mapping m : {Mapping::symmetric, Mapping::asymmetric})
          EXPECT_EQ(check_a16(*dev, x, quantize_ref(wf, bits, g, m),
                              "W" + std::to_string(bits) + "A16 " + shape + " g" + std::to_string(g) + " " +
                                  quant::to_string(m) + " seed " + std::to_string(seed)),
                    0);
    for (Format f : {Format::fp4_e2m1, Format::fp4_bnb, Format::nf4, Format::fp8_e4m3, Format::fp8_e5m2}) {
      QuantParams p;
      p.bits = quant::format_bits(f);
      p.group_size = 64;
      EXPECT_EQ(check_a16(*dev, x, ref::quantize_float_format_ref(wf.view(), f, p),
                          std::string(quant::to_string(f)) + " " + shape),
                0);
    }
  }
}

TEST(MatmulCl, WeightOnlyWithHalfActivations) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  const int64_t M = 9, N = 33, K = 256;
  const quant::Matrix xf = test::gaussian_matrix(M, K, seed);
  std::vector<uint16_t> h(static_cast<size_t>(M * K));
  quant::Matrix x(M, K);  // the fp16 values as floats: the exact inputs of the device computation
  for (size_t i = 0; i < h.size(); ++i) {
    h[i] = quant::float_to_half_bits(xf.data[i]);
    x.data[i] = quant::half_bits_to_float(h[i]);
  }
  const quant::QuantizedMatrix w = quantize_ref(test::gaussian_matrix(N, K, seed + 1), 4, 32, Mapping::asymmetric);
  const DevMatrix dx = upload_f16(*dev, h.data(), M, K, K);
  const DevQuantized dw = upload(*dev, w);
  DevMatrix y = alloc_matrix(*dev, M, N);
  matmul_a16(*dev, dx, dw, y.buf, y.ld);
  const quant::Matrix got = download(*dev, y);
  const quant::Matrix want = matmul_a16_cl(*dev, x.view(), w);  // same products from float inputs
  EXPECT_EQ(test::first_difference(got.data, want.data), "") << "seed " << seed;
}

// ---- LLM.int8 from the kernels: masked quantize (X and W) + int8 GEMM + fp32 outlier part --------------------------

// The composition the model path runs (eval/model/backend/opencl_backend.cpp), outlier features given: gpu/ no longer
// decides which features are outliers (that is schemes/llm_int8's threshold).
quant::Matrix outlier_split_cl(Device& d, const quant::Matrix& x, const quant::Matrix& w,
                               const std::vector<int32_t>& outl, Tier t) {
  std::vector<uint8_t> mask(static_cast<size_t>(x.cols), 0);
  for (int32_t c : outl) mask[static_cast<size_t>(c)] = 1;
  Buffer bm(d.context(), mask.size()), bc(d.context(), std::max<size_t>(1, outl.size()) * 4);
  bm.write(d.queue(), mask.data(), mask.size());
  if (!outl.empty()) bc.write(d.queue(), outl.data(), outl.size() * 4);
  ActQuantSpec s;  // int8 symmetric per row: LLM.int8's vector-wise codes
  s.with_sums = false;
  const DevMatrix dx = upload(d, x.view()), dw = upload(d, w.view());
  const DevQuantized a = quantize_rows(d, dx, s, &bm);
  DevQuantized wq = quantize_rows(d, dw, s, &bm);
  DevMatrix y = alloc_matrix(d, x.rows, w.rows);
  GemmOptions o;
  o.tier = t;
  matmul_quantized(d, a, wq, y.buf, y.ld, o);
  outlier_accumulate(d, dx, dw, bc, static_cast<int64_t>(outl.size()), y.buf, y.ld);
  return download(d, y);
}

TEST(MatmulCl, LlmInt8FromMaskedQuantizeGemmAndOutlierAccumulate) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  const uint64_t seed = test::gpu_seed();
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{7, 33, 129}, {64, 129, 256}, {1, 64, 4096}}) {
    quant::Matrix x = test::gaussian_matrix(M, K, seed + static_cast<uint64_t>(K));
    const quant::Matrix w = test::gaussian_matrix(N, K, seed + 99, 0.05);
    // outlier features (LLM.int8: a few hidden dimensions with |x| ≫ 6 in some tokens), and none at all
    const std::vector<int32_t> some = {0, static_cast<int32_t>(K / 3), static_cast<int32_t>(K - 1)};
    for (int32_t c : some) x(M / 2, c) = 25.0f * (c % 2 ? -1.0f : 1.0f);
    for (const std::vector<int32_t>& outl : {some, std::vector<int32_t>{}}) {
      // int8 part: the reference's per-row codes of X and W with the outlier columns zeroed (symmetric: a zero
      // column neither widens the absmax range nor adds to the product — the kernel's mask excludes it)
      quant::Matrix x0 = x, w0 = w;
      for (int32_t c : outl) {
        for (int64_t m = 0; m < M; ++m) x0(m, c) = 0.0f;
        for (int64_t n = 0; n < N; ++n) w0(n, c) = 0.0f;
      }
      const Expected e = expected_quantized(quantize_ref(x0, 8, 0, Mapping::symmetric),
                                            quantize_ref(w0, 8, 0, Mapping::symmetric));
      for (Tier t : test::tiers_to_test(*dev)) {
        const quant::Matrix y = outlier_split_cl(*dev, x, w, outl, t);
        // y = fl(y_int8 + s_out), s_out an fp32 fma sum over n_out products: tolerance = int8 part's bound
        // (4u·|t|) + γ_nout·Σ|x_o·w_o| + one final rounding u·(|y_int8| + |s_out|).
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            double so = 0.0, sao = 0.0;
            for (int32_t c : outl) {
              const double p = static_cast<double>(x(m, c)) * w(n, c);
              so += p;
              sao += std::fabs(p);
            }
            const size_t i = static_cast<size_t>(m * N + n);
            const double nout = static_cast<double>(outl.size());
            const double tol = 4.0 * kU * e.abs_terms[i] + nout * kU / (1.0 - nout * kU) * sao +
                               kU * (e.abs_terms[i] + sao) + 1e-30;
            const double want = e.y_exact[i] + so;
            ASSERT_LE(std::fabs(static_cast<double>(y(m, n)) - want), tol)
                << to_string(t) << " M " << M << " N " << N << " K " << K << " outliers " << outl.size() << " at "
                << m << "," << n << " seed " << seed;
          }
      }
    }
  }
}

}  // namespace
}  // namespace qeval::gpu
