// tests/bench/schemes_bench.cpp — Google Benchmark over every row of schemes/schemes.def: what one scheme call costs.
//
// Driven by the list (schemes::scheme_list()), so a new scheme is benchmarked without touching this file. Each row
// runs the call its target implies, on one 1024×1024 fp32 layer (4 MiB) with its default config:
//   weight      quantize(W, calib)                      — once per layer in a model run
//   activation  fake_quantize(X) on 512 tokens           — at every forward
//   kv_cache    fake_quantize_kv(keys) on 512 tokens     — at every attention call
//   linear      linear(X, W, Y, calib) on 512 tokens     — at every forward (the whole product)
// Calibration schemes get a synthetic calibration of 128 gaussian rows (with 8 outlier features ×20, the shape of
// LLM.int8's outliers) carrying what their traits ask for. bytes/s counts the fp32 bytes the call reads (W, or X,
// or X and W), comparable with memcpy of the same bytes in the same run. A row that cannot run alone (e.g. mixed
// without an allocation file) is reported as skipped with the scheme's own message.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/matrix.hpp"
#include "quant/rng.hpp"
#include "schemes/scheme.hpp"

namespace {

namespace sc = qeval::schemes;
using qeval::quant::Matrix;

constexpr int64_t kOut = 1024, kIn = 1024, kTokens = 512, kCalibRows = 128;

Matrix gaussian(int64_t rows, int64_t cols, uint64_t seed, bool outliers) {
  Matrix m(rows, cols);
  qeval::Rng rng(qeval::seed_from_env(seed));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      m(r, c) = static_cast<float>(rng.normal() * (outliers && c % 128 == 7 ? 20.0 : 1.0));
  return m;
}

const Matrix& weights() {
  static const Matrix w = gaussian(kOut, kIn, 7101, false);
  return w;
}
const Matrix& tokens() {
  static const Matrix x = gaussian(kTokens, kIn, 7102, true);
  return x;
}
const Matrix& calib_rows() {
  static const Matrix x = gaussian(kCalibRows, kIn, 7103, true);
  return x;
}

// What the traits ask for, from calib_rows(): H = 2·XᵀX/n, per-feature max|x| and mean|x|, the rows themselves.
sc::Calibration synthetic_calibration(const sc::CalibrationNeeds& needs) {
  const Matrix& x = calib_rows();
  sc::Calibration c;
  c.inputs = x.view();
  c.n_samples = kCalibRows;
  c.layer_name = "bench";
  c.act_absmax.assign(kIn, 0.0f);
  c.act_absmean.assign(kIn, 0.0f);
  for (int64_t r = 0; r < kCalibRows; ++r)
    for (int64_t i = 0; i < kIn; ++i) {
      const float a = std::abs(x(r, i));
      c.act_absmax[i] = std::max(c.act_absmax[i], a);
      c.act_absmean[i] += a / static_cast<float>(kCalibRows);
    }
  if (needs.hessian) {
    c.hessian.assign(static_cast<size_t>(kIn * kIn), 0.0);
    for (int64_t r = 0; r < kCalibRows; ++r)
      for (int64_t i = 0; i < kIn; ++i)
        for (int64_t j = 0; j < kIn; ++j) c.hessian[i * kIn + j] += 2.0 * x(r, i) * x(r, j) / kCalibRows;
  }
  return c;
}

// One iteration of the call the scheme's target implies; returns the fp32 bytes it read.
int64_t call_once(const sc::Scheme& s, const sc::Calibration* calib, Matrix& out) {
  switch (s.target()) {
    case sc::Target::weight:
      benchmark::DoNotOptimize(s.quantize(weights().view(), calib));
      return kOut * kIn * 4;
    case sc::Target::activation:
      s.fake_quantize(tokens().view(), out.mut(), calib);
      return kTokens * kIn * 4;
    case sc::Target::kv_cache:
      s.fake_quantize_kv(sc::KvPart::key, tokens().view(), out.mut());
      return kTokens * kIn * 4;
    case sc::Target::linear:
      if (!s.linear(tokens().view(), weights().view(), out.mut(), calib))
        throw std::invalid_argument("linear() declined the product");
      return (kTokens + kOut) * kIn * 4;
  }
  return 0;
}

void BM_Scheme(benchmark::State& state, std::string id) {
  try {
    const auto scheme = sc::make_scheme(sc::default_config(id));
    const sc::SchemeTraits t = scheme->traits();
    sc::Calibration calib;
    const sc::Calibration* cp = nullptr;
    if (t.calibration.any()) {
      calib = synthetic_calibration(t.calibration);
      if (t.calibrates_once) calib = scheme->calibrate(calib);
      cp = &calib;
    }
    Matrix out(kTokens, t.target == sc::Target::linear ? kOut : kIn);
    int64_t bytes = 0;
    for (auto _ : state) bytes += call_once(*scheme, cp, out);
    state.SetBytesProcessed(bytes);
    state.SetLabel(sc::to_string(t.target));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void BM_Memcpy(benchmark::State& state) {
  const Matrix& src = weights();
  Matrix dst(kOut, kIn);
  for (auto _ : state) {
    std::memcpy(dst.data.data(), src.data.data(), kOut * kIn * 4);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kOut * kIn * 4);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("memcpy/1024x1024_fp32", BM_Memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (const auto& row : sc::scheme_list())
    benchmark::RegisterBenchmark(("scheme/" + std::string(row.id)).c_str(), BM_Scheme, std::string(row.id))
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
