// tests/bench/fp32_gemm_bench.cpp — Google Benchmark: the forward's fp32 products y = x·Wᵀ through LibTorch's at::mm
// (Debian's LibTorch calls OpenBLAS) against oneDNN's dnnl_sgemm, on the linear shapes of the models qeval evaluates.
//
// Issue 12 says the fp32 forward through OpenBLAS runs at under half of oneDNN fp32 on these CPUs; this measures it in
// one run, per shape, with the same thread count for both (at::set_num_threads and omp_set_num_threads: 2 by
// default, QEVAL_BENCH_THREADS to change). Shapes: M = 512 tokens (one n_ctx-512 window) × (N, K) of SmolLM2-135M
// (d 576, ff 1536, kv 192, vocab 49152) and of the 460M random Llama of issue 15 (d 2048, ff 5632). Reports
// FLOP/s = 2·M·N·K / s; the ratio between the two rows of a shape is the figure.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <dnnl.h>
#include <omp.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "quant/rng.hpp"

namespace {

struct Shape {
  const char* name;
  int64_t m, n, k;
};
const Shape kShapes[] = {
    {"smollm2_q_o_576x576", 512, 576, 576},   {"smollm2_kv_192x576", 512, 192, 576},
    {"smollm2_gate_up_1536x576", 512, 1536, 576}, {"smollm2_down_576x1536", 512, 576, 1536},
    {"smollm2_head_49152x576", 512, 49152, 576},  {"llama460m_qo_2048x2048", 512, 2048, 2048},
    {"llama460m_up_5632x2048", 512, 5632, 2048},  {"llama460m_down_2048x5632", 512, 2048, 5632},
};

int threads() {
  const char* s = std::getenv("QEVAL_BENCH_THREADS");
  return s && *s ? std::atoi(s) : 2;
}

at::Tensor gaussian(int64_t r, int64_t c, uint64_t seed) {
  at::Tensor t = at::empty({r, c}, at::kFloat);
  qeval::Rng rng(qeval::seed_from_env(seed));
  float* p = t.data_ptr<float>();
  for (int64_t i = 0; i < r * c; ++i) p[i] = static_cast<float>(rng.normal());
  return t;
}

void set_flops(benchmark::State& state, const Shape& s) {
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(s.m * s.n * s.k),
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void BM_AtMm(benchmark::State& state, Shape s) {
  at::set_num_threads(threads());
  const at::Tensor x = gaussian(s.m, s.k, 1), w = gaussian(s.n, s.k, 2);
  at::Tensor y = at::empty({s.m, s.n}, at::kFloat);
  for (auto _ : state) at::mm_out(y, x, w.t());
  set_flops(state, s);
}

void BM_DnnlSgemm(benchmark::State& state, Shape s) {
  omp_set_num_threads(threads());
  const at::Tensor x = gaussian(s.m, s.k, 1), w = gaussian(s.n, s.k, 2);
  at::Tensor y = at::empty({s.m, s.n}, at::kFloat);
  for (auto _ : state) {
    // Row-major (oneDNN's convention): C[m×n] = A[m×k] · B[n×k]ᵀ.
    const dnnl_status_t st = dnnl_sgemm('N', 'T', s.m, s.n, s.k, 1.0f, x.data_ptr<float>(), s.k,
                                        w.data_ptr<float>(), s.k, 0.0f, y.data_ptr<float>(), s.n);
    if (st != dnnl_success) state.SkipWithError("dnnl_sgemm failed");
  }
  set_flops(state, s);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::AddCustomContext("threads", std::to_string(threads()));
  for (const Shape& s : kShapes) {
    benchmark::RegisterBenchmark((std::string("fp32_gemm/at_mm/") + s.name).c_str(), BM_AtMm, s)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark((std::string("fp32_gemm/onednn/") + s.name).c_str(), BM_DnnlSgemm, s)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
