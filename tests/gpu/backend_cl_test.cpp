// tests/gpu/backend_cl_test.cpp — the ComputeBackend interface on both backends: fake-quantized weights are
// bit-identical (cpu vs opencl), matmuls agree within the sum of the two backends' derived error bounds.
#include <gtest/gtest.h>

#include <cmath>

#include "gpu/backend.hpp"
#include "gpu/compute_backend.hpp"
#include "quant/ref/quantize_ref.hpp"
#include "tests/gpu/gpu_test_util.hpp"

namespace qeval::gpu {
namespace {

using quant::Format;
using quant::Mapping;
using quant::QuantParams;
constexpr double kU = 5.9604644775390625e-8;  // 2^-24

TEST(ComputeBackend, FactoryNamesAndErrors) {
  EXPECT_EQ(make_compute_backend("cpu")->name(), "cpu");
  EXPECT_THROW(make_compute_backend("cuda"), std::invalid_argument);
  if (!default_device()) GTEST_SKIP() << "no OpenCL device found; OpenCL tests skipped";
  const auto b = make_compute_backend("opencl");
  EXPECT_EQ(b->name(), "opencl");
  EXPECT_NE(b->details().find("GEMM tier T"), std::string::npos) << b->details();
  std::cout << "[          ] " << b->details() << "\n";
}

TEST(ComputeBackend, FakeQuantizedWeightsAreBitIdenticalAcrossBackends) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  auto cpu = make_compute_backend("cpu");
  auto cl = make_compute_backend("opencl");
  const quant::Matrix w = test::gaussian_matrix(65, 256, test::gpu_seed(), 0.1);
  struct Case {
    Format f;
    int bits;
    int64_t g;
    Mapping m;
    quant::RangeMethod r;
  };
  for (const Case& c : {Case{Format::int_affine, 4, 128, Mapping::symmetric, quant::RangeMethod::minmax},
                        Case{Format::int_affine, 8, 0, Mapping::asymmetric, quant::RangeMethod::minmax},
                        Case{Format::int_affine, 3, 32, Mapping::asymmetric, quant::RangeMethod::minmax},
                        Case{Format::int_affine, 4, 64, Mapping::symmetric, quant::RangeMethod::mse},
                        Case{Format::int_affine, 4, -1, Mapping::symmetric, quant::RangeMethod::minmax},
                        Case{Format::nf4, 4, 64, Mapping::symmetric, quant::RangeMethod::minmax},
                        Case{Format::fp4_e2m1, 4, 32, Mapping::symmetric, quant::RangeMethod::minmax},
                        Case{Format::fp8_e4m3, 8, 128, Mapping::symmetric, quant::RangeMethod::minmax}}) {
    QuantParams p;
    p.bits = c.bits;
    p.group_size = c.g;
    p.mapping = c.m;
    p.range = c.r;
    quant::Matrix a(w.rows, w.cols), b(w.rows, w.cols);
    cpu->fake_quantize_weight(w.view(), c.f, p, a.mut());
    cl->fake_quantize_weight(w.view(), c.f, p, b.mut());
    EXPECT_EQ(test::first_difference(b.data, a.data), "") << quant::to_string(c.f) << " " << p.to_string();
  }
}

TEST(ComputeBackend, MatmulsAgreeWithinTheDerivedBound) {
  QEVAL_CL_DEVICE_OR_SKIP(dev);
  auto cpu = make_compute_backend("cpu");
  auto cl = make_compute_backend("opencl");
  const uint64_t seed = test::gpu_seed();
  const quant::Matrix x = test::gaussian_matrix(17, 256, seed);
  const quant::Matrix wf = test::gaussian_matrix(40, 256, seed + 1, 0.05);
  for (int bits : {8, 4})
    for (bool with_act : {false, true}) {
      QuantParams p;
      p.bits = bits;
      p.group_size = 64;
      const quant::QuantizedMatrix w = ref::quantize_affine_ref(wf.view(), p);
      std::optional<ActivationQuant> act;
      if (with_act) act = ActivationQuant{quant::kPerRow, Mapping::asymmetric};
      quant::Matrix ya(x.rows, w.rows), yb(x.rows, w.rows);
      cpu->matmul(x.view(), w, act, ya.mut());
      cl->matmul(x.view(), w, act, yb.mut());
      // Both approximate Σ_k x̂_k·ŵ_k (x̂ = X or its int8 fake quantization, identical on both backends):
      // the CPU with double accumulation + one float rounding (u·|y|); the device with ≤ (nseg + 3)·u·Σ|terms|
      // (integer path, nseg = K/64 segments) or γ_K·Σ|x·ŵ| (float path). Bound both by Σ_k|x̂·ŵ|.
      quant::Matrix xq(x.rows, x.cols), wd(w.rows, w.cols);
      if (with_act) {
        QuantParams ap;
        ap.bits = 8;
        ap.group_size = 0;
        ap.mapping = Mapping::asymmetric;
        ref::dequantize_ref(ref::quantize_affine_ref(x.view(), ap), xq.mut());
      } else {
        xq = x;
      }
      ref::dequantize_ref(w, wd.mut());
      const double K = 256.0;
      const double c_dev = with_act ? (K / 64.0 + 3.0 + 2.0) : K / (1.0 - K * kU);  // +2u: x̂ roundings (int path)
      for (int64_t m = 0; m < x.rows; ++m)
        for (int64_t n = 0; n < w.rows; ++n) {
          double sabs = 0.0;
          for (int64_t k = 0; k < x.cols; ++k) sabs += std::fabs(static_cast<double>(xq(m, k)) * wd(n, k));
          const double tol = (c_dev + 1.0) * kU * sabs;
          ASSERT_LE(std::fabs(static_cast<double>(ya(m, n)) - yb(m, n)), tol)
              << "int" << bits << (with_act ? " W8A8-path" : " A16-path") << " at " << m << "," << n << " seed " << seed;
        }
    }
}

}  // namespace
}  // namespace qeval::gpu
