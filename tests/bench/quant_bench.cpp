// tests/bench/quant_bench.cpp — Google Benchmark: quantize/dequantize (ref vs AVX-512) against memcpy, int8 GEMM against oneDNN.
//
// Single thread throughout (the OpenMP runtime oneDNN uses is pinned to 1 thread in main()).
// Quantize/dequantize report bytes/s of the fp32 side (4096·4096·4 B = 64 MiB per iteration), so the
// figure is directly comparable with BM_Memcpy moving the same 64 MiB in the same run: the goal of the
// fast path is ≥ 50 % of that. The GEMM reports ops/s = 2·M·N·K per second (one multiply-add = 2 ops).
// scripts/perf/run_cpu_bench.sh runs this with repetitions and turns the JSON into ratios.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "quant/cpu/dispatch.hpp"
#include "quant/quantize.hpp"
#include "quant/ref/gemm_ref.hpp"
#include "quant/ref/quantize_ref.hpp"
#include "quant/rng.hpp"

#ifdef QEVAL_HAVE_DNNL
#include <dnnl.hpp>
#endif
#ifdef QEVAL_HAVE_OPENMP
#include <omp.h>
#endif

namespace {

using qeval::quant::Mapping;
using qeval::quant::QuantizedMatrix;
using qeval::quant::QuantParams;

constexpr int64_t kRows = 4096, kCols = 4096;
constexpr int64_t kFp32Bytes = kRows * kCols * static_cast<int64_t>(sizeof(float));  // 64 MiB

const std::vector<float>& input() {
  static const std::vector<float> x = [] {
    std::vector<float> v(static_cast<size_t>(kRows * kCols));
    qeval::Rng rng(qeval::seed_from_env(20240601));
    for (float& f : v) f = static_cast<float>(rng.normal());
    return v;
  }();
  return x;
}

QuantParams scheme(int id) {
  QuantParams p;
  if (id == 0) {  // int8 symmetric per-token (dynamic activation quantization of W8A8)
    p.bits = 8;
    p.mapping = Mapping::symmetric;
    p.group_size = qeval::quant::kPerRow;
  } else {  // int4 asymmetric, groups of 128 (GPTQ/AWQ weight format)
    p.bits = 4;
    p.mapping = Mapping::asymmetric;
    p.group_size = 128;
  }
  return p;
}
const char* scheme_name(int id) { return id == 0 ? "int8_sym_per_token" : "int4_asym_g128"; }

// ---- memcpy baseline ---------------------------------------------------------------------------------

void BM_Memcpy(benchmark::State& state) {
  const std::vector<float>& src = input();
  std::vector<float> dst(src.size(), 1.0f);  // touched: no page faults inside the loop
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), static_cast<size_t>(kFp32Bytes));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kFp32Bytes);
}
BENCHMARK(BM_Memcpy)->Name("memcpy/4096x4096_fp32")->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- quantize / dequantize -------------------------------------------------------------------------

void BM_QuantizeRef(benchmark::State& state, int id) {
  const qeval::quant::MatrixView x(input().data(), kRows, kCols);
  const QuantParams p = scheme(id);
  for (auto _ : state) {
    QuantizedMatrix q = qeval::ref::quantize_affine_ref(x, p);
    benchmark::DoNotOptimize(q.codes.data());
  }
  state.SetBytesProcessed(state.iterations() * kFp32Bytes);
}

void BM_QuantizeFast(benchmark::State& state, int id) {
  const qeval::quant::MatrixView x(input().data(), kRows, kCols);
  const QuantParams p = scheme(id);
  QuantizedMatrix q;  // reused: the output buffers are allocated once, as a caller quantizing each step would
  if (qeval::cpu::try_quantize_affine(x, p, q).status != qeval::cpu::FastStatus::done) {
    state.SkipWithError("AVX-512 quantize kernel unavailable on this CPU");
    return;
  }
  for (auto _ : state) {
    qeval::cpu::try_quantize_affine(x, p, q);
    benchmark::DoNotOptimize(q.codes.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kFp32Bytes);
}

void BM_DequantizeRef(benchmark::State& state, int id) {
  const QuantizedMatrix q = qeval::ref::quantize_affine_ref(qeval::quant::MatrixView(input().data(), kRows, kCols), scheme(id));
  qeval::quant::Matrix out(kRows, kCols, 1.0f);
  for (auto _ : state) {
    qeval::ref::dequantize_ref(q, out.mut());
    benchmark::DoNotOptimize(out.data.data());
  }
  state.SetBytesProcessed(state.iterations() * kFp32Bytes);
}

void BM_DequantizeFast(benchmark::State& state, int id) {
  const QuantizedMatrix q = qeval::ref::quantize_affine_ref(qeval::quant::MatrixView(input().data(), kRows, kCols), scheme(id));
  qeval::quant::Matrix out(kRows, kCols, 1.0f);
  if (qeval::cpu::try_dequantize(q, out.mut()).status != qeval::cpu::FastStatus::done) {
    state.SkipWithError("AVX-512 dequantize kernel unavailable on this CPU");
    return;
  }
  for (auto _ : state) {
    qeval::cpu::try_dequantize(q, out.mut());
    benchmark::DoNotOptimize(out.data.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kFp32Bytes);
}

// ---- int8 GEMM ---------------------------------------------------------------------------------------

struct GemmData {
  std::vector<int8_t> a, b;
  std::vector<int32_t> c;
  GemmData(int64_t m, int64_t n, int64_t k)
      : a(static_cast<size_t>(m * k)), b(static_cast<size_t>(n * k)), c(static_cast<size_t>(m * n), 0) {
    qeval::Rng rng(qeval::seed_from_env(20240602));
    for (int8_t& v : a) v = static_cast<int8_t>(static_cast<int>(rng.below(256)) - 128);
    for (int8_t& v : b) v = static_cast<int8_t>(static_cast<int>(rng.below(256)) - 128);
  }
};

void set_ops(benchmark::State& state, int64_t m, int64_t n, int64_t k) {
  state.counters["ops"] = benchmark::Counter(2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k),
                                             benchmark::Counter::kIsIterationInvariantRate);
}

void BM_GemmQeval(benchmark::State& state, qeval::cpu::GemmPath path) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  GemmData d(m, n, k);
  auto run = [&] { return qeval::cpu::try_gemm_s8s8_s32(m, n, k, d.a.data(), k, d.b.data(), k, d.c.data(), n, path); };
  if (run().status != qeval::cpu::FastStatus::done) {
    state.SkipWithError("this GEMM path is unavailable on this CPU");
    return;
  }
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(d.c.data());
    benchmark::ClobberMemory();
  }
  set_ops(state, m, n, k);
}

void BM_GemmRef(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  GemmData d(m, n, k);
  for (auto _ : state) {
    qeval::ref::gemm_s8s8_s32_ref(m, n, k, d.a.data(), k, d.b.data(), k, d.c.data(), n);
    benchmark::DoNotOptimize(d.c.data());
  }
  set_ops(state, m, n, k);
}

#ifdef QEVAL_HAVE_DNNL
// oneDNN matmul s8 × s8 → s32: src {M, K} row-major; weights {K, N} given as B[N][K] row-major, i.e.
// format tag `ba` — the same plain layout our kernel takes. `packed` = weights reordered once, outside
// the timed loop, into the layout oneDNN prefers (format_tag::any): the deployment-style best case.
void BM_GemmOneDnn(benchmark::State& state, bool packed) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  GemmData d(m, n, k);
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const dnnl::memory::desc a_md({m, k}, dt::s8, tag::ab);
  const dnnl::memory::desc b_plain_md({k, n}, dt::s8, tag::ba);
  const dnnl::memory::desc c_md({m, n}, dt::s32, tag::ab);
  const dnnl::memory::desc b_md = packed ? dnnl::memory::desc({k, n}, dt::s8, tag::any) : b_plain_md;
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), eng);
  dnnl::memory a_mem(a_md, eng, d.a.data());
  dnnl::memory b_plain(b_plain_md, eng, d.b.data());
  dnnl::memory c_mem(c_md, eng, d.c.data());
  dnnl::memory b_mem = b_plain;
  if (pd.weights_desc() != b_plain_md) {
    b_mem = dnnl::memory(pd.weights_desc(), eng);
    dnnl::reorder(b_plain, b_mem).execute(strm, b_plain, b_mem);
    strm.wait();
  }
  const dnnl::matmul prim(pd);
  const std::unordered_map<int, dnnl::memory> args = {
      {DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}};
  for (auto _ : state) {
    prim.execute(strm, args);
    strm.wait();
    benchmark::DoNotOptimize(d.c.data());
    benchmark::ClobberMemory();
  }
  set_ops(state, m, n, k);
  state.SetLabel(std::string("impl=") + pd.impl_info_str());
}
#endif

void gemm_shapes(benchmark::internal::Benchmark* b) {
  b->Args({4096, 4096, 4096});
  for (int64_t m : {1, 2, 4, 8, 16}) b->Args({m, 4096, 4096});
  b->ArgNames({"M", "N", "K"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

void register_all() {
  for (int id : {0, 1}) {
    const std::string s = scheme_name(id);
    benchmark::RegisterBenchmark(("quantize/ref/" + s).c_str(), BM_QuantizeRef, id)->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("quantize/avx512/" + s).c_str(), BM_QuantizeFast, id)->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("dequantize/ref/" + s).c_str(), BM_DequantizeRef, id)->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("dequantize/avx512/" + s).c_str(), BM_DequantizeFast, id)->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  benchmark::RegisterBenchmark("gemm_s8s8s32/qeval_best", BM_GemmQeval, qeval::cpu::GemmPath::best)->Apply(gemm_shapes);
  benchmark::RegisterBenchmark("gemm_s8s8s32/qeval_vnni", BM_GemmQeval, qeval::cpu::GemmPath::vnni)->Apply(gemm_shapes);
  if (qeval::cpu::cpu_features().amx_int8)
    benchmark::RegisterBenchmark("gemm_s8s8s32/qeval_amx", BM_GemmQeval, qeval::cpu::GemmPath::amx)->Apply(gemm_shapes);
#ifdef QEVAL_HAVE_DNNL
  benchmark::RegisterBenchmark("gemm_s8s8s32/onednn_plain", BM_GemmOneDnn, false)->Apply(gemm_shapes);
  benchmark::RegisterBenchmark("gemm_s8s8s32/onednn_prepacked", BM_GemmOneDnn, true)->Apply(gemm_shapes);
#endif
  // The scalar reference only at decode size (4096³ would take minutes per iteration).
  benchmark::RegisterBenchmark("gemm_s8s8s32/ref", BM_GemmRef)
      ->Args({1, 4096, 4096})
      ->ArgNames({"M", "N", "K"})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
#ifdef QEVAL_HAVE_OPENMP
  omp_set_num_threads(1);  // oneDNN (OpenMP runtime) single-threaded, like our kernels
#endif
  const auto& f = qeval::cpu::cpu_features();
  benchmark::AddCustomContext("cpu_model", f.model_name);
  benchmark::AddCustomContext("cpu_features", f.summary());
  benchmark::AddCustomContext("qeval_quantize_isa", qeval::cpu::active_quantize_isa());
  benchmark::AddCustomContext("qeval_gemm_isa", qeval::cpu::active_gemm_isa());
#ifdef QEVAL_HAVE_DNNL
  const dnnl_version_t* v = dnnl_version();
  benchmark::AddCustomContext("onednn_version", std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                                                    std::to_string(v->patch) + (v->hash ? std::string(" ") + v->hash : std::string()));
#endif
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
