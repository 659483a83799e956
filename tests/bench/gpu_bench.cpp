// tests/bench/gpu_bench.cpp — Google Benchmark program of the OpenCL backend: quantize kernel GB/s and int8 GEMM
// TOPS (M,N,K = 4096 and decode shapes M = 1..16), against two baselines measured in the same run: the
// device's copy bandwidth (clEnqueueCopyBuffer) and its 4×int8 dot-product peak (a dependent-chain kernel).
// Every time is the kernel's own OpenCL profiling-event time (CL_PROFILING_COMMAND_START → END).
//
// Run: qeval_bench_gpu --benchmark_out=gpu.json --benchmark_out_format=json
//      [--benchmark_filter=Gemm] (QEVAL_CL_DEVICE picks the device; QEVAL_BENCH_COPY_MB the copy size, 512).
// Kernel variants: "tuned" benchmarks (and BM_Quantize, BM_W8A8, BM_W4A8) run what the backend runs — the device's
// tuning table (gpu/tuning.hpp: $QEVAL_CL_TUNING, the cache folder, gpu/tuning/) or the safe defaults; each
// benchmark's label names the variant. The others pin a tile (large/medium/small) or the default decode kernel.
// Counters: GB/s (quantize: bytes read + written), TOPS (2·M·N·K / s), and the ratios vs_copy (GB/s over the
// copy's GB/s, read + write counted the same way), vs_peak_measured and vs_peak_theoretical (TOPS over the
// dp4a peak). The theoretical dp4a peak is computed for NVIDIA devices as
//   compute units (SMs) × clock (CL_DEVICE_MAX_CLOCK_FREQUENCY) × 64 dp4a per SM per clock × 8 ops,
// 64/clk/SM = the INT32 issue rate of sm_70..sm_90 (4 sub-partitions × 16 INT32 lanes; NVIDIA H100 whitepaper,
// "H100 SM architecture"); one dp4a = 4 multiply-adds = 8 integer ops. Other vendors: 0 (not known here).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "gpu/device.hpp"
#include "gpu/ops.hpp"
#include "gpu/tuning.hpp"
#include "quant/rng.hpp"

namespace {

using qeval::gpu::Buffer;
using qeval::gpu::Device;
using qeval::gpu::Event;

std::shared_ptr<Device> g_dev;
double g_copy_gbps = 0.0;        // measured copy bandwidth, (read + write) bytes / s / 1e9
double g_peak_tops_meas = 0.0;   // measured dp4a (or portable dot4) peak, TOPS
double g_peak_tops_theo = 0.0;   // theoretical dp4a peak (NVIDIA), TOPS

// Inputs are made once per (size, kind, seed) and kept: Google Benchmark calls a benchmark function several
// times, and 64 M Gaussian floats take seconds on the host.
std::map<std::tuple<size_t, int, uint64_t>, Buffer> g_inputs;

Buffer make_random_buffer(size_t bytes, uint64_t seed);
Buffer make_gaussian_buffer(int64_t n, bool half, uint64_t seed);

Buffer random_buffer(size_t bytes, uint64_t seed) {
  auto key = std::make_tuple(bytes, 0, seed);
  auto it = g_inputs.find(key);
  if (it == g_inputs.end()) it = g_inputs.emplace(key, make_random_buffer(bytes, seed)).first;
  return it->second;
}

Buffer gaussian_buffer(int64_t n, bool half, uint64_t seed) {
  auto key = std::make_tuple(static_cast<size_t>(n), half ? 2 : 1, seed);
  auto it = g_inputs.find(key);
  if (it == g_inputs.end()) it = g_inputs.emplace(key, make_gaussian_buffer(n, half, seed)).first;
  return it->second;
}

Buffer make_random_buffer(size_t bytes, uint64_t seed) {
  std::vector<uint8_t> h(bytes);
  qeval::Rng rng(seed);
  for (size_t i = 0; i < bytes; i += 8) {
    const uint64_t v = rng.next_u64();
    for (size_t j = 0; j < 8 && i + j < bytes; ++j) h[i + j] = static_cast<uint8_t>(v >> (8 * j));
  }
  Buffer b(g_dev->context(), bytes);
  b.write(g_dev->queue(), h.data(), bytes);
  return b;
}

// Floats N(0,1) (or their binary16 bit patterns).
Buffer make_gaussian_buffer(int64_t n, bool half, uint64_t seed) {
  qeval::Rng rng(seed);
  if (!half) {
    std::vector<float> h(static_cast<size_t>(n));
    for (auto& v : h) v = static_cast<float>(rng.normal());
    Buffer b(g_dev->context(), h.size() * 4);
    b.write(g_dev->queue(), h.data(), h.size() * 4);
    return b;
  }
  std::vector<uint16_t> h(static_cast<size_t>(n));
  for (auto& v : h) {
    // |x| < 8 in binary16: sign, exponent 15 + e, 10 mantissa bits (rounding toward zero is fine for inputs)
    const float f = static_cast<float>(rng.normal());
    uint32_t b32;
    std::memcpy(&b32, &f, 4);
    const uint32_t s = (b32 >> 16) & 0x8000u;
    const int e = static_cast<int>((b32 >> 23) & 0xFF) - 127;
    v = (e < -14) ? static_cast<uint16_t>(s) : static_cast<uint16_t>(s | ((e + 15) << 10) | ((b32 >> 13) & 0x3FFu));
  }
  Buffer b(g_dev->context(), h.size() * 2);
  b.write(g_dev->queue(), h.data(), h.size() * 2);
  return b;
}

void BM_CopyBuffer(benchmark::State& st) {
  const size_t bytes = static_cast<size_t>(st.range(0)) << 20;
  Buffer src = random_buffer(bytes, 1), dst(g_dev->context(), bytes);
  double total = 0.0;
  int n = 0;
  for (auto _ : st) {
    Event e;
    qeval::gpu::check(clEnqueueCopyBuffer(g_dev->queue(), src.get(), dst.get(), 0, 0, bytes, 0, nullptr, e.out()),
                      "clEnqueueCopyBuffer");
    const double t = qeval::gpu::event_seconds(e.get());
    st.SetIterationTime(t);
    total += t;
    ++n;
  }
  const double gbps = 2.0 * static_cast<double>(bytes) * n / total / 1e9;  // read + write
  if (gbps > g_copy_gbps) g_copy_gbps = gbps;
  st.counters["GB/s"] = gbps;
  st.counters["bytes_moved"] = 2.0 * static_cast<double>(bytes);
}

void BM_IntDotPeak(benchmark::State& st, bool portable) {
  const int iters = 256;
  const size_t items = static_cast<size_t>(g_dev->info().compute_units) * 2048 * 4;
  Buffer out(g_dev->context(), items * 4);
  const std::string opts = portable ? "" : g_dev->dot4_option(qeval::gpu::Tier::t0);
  cl_kernel k = g_dev->kernel("bench.cl", opts, "int_dot_peak");
  qeval::gpu::set_args(k, out, iters, 0x12345678u);
  double total = 0.0;
  int n = 0;
  for (auto _ : st) {
    Event e;
    const size_t l = 256;
    qeval::gpu::check(clEnqueueNDRangeKernel(g_dev->queue(), k, 1, nullptr, &items, &l, 0, nullptr, e.out()),
                      "clEnqueueNDRangeKernel");
    const double t = qeval::gpu::event_seconds(e.get());
    st.SetIterationTime(t);
    total += t;
    ++n;
  }
  // 16 chains × 8 unrolled × iters dot4 per work-item, 8 ops per dot4 (bench.cl)
  const double ops = static_cast<double>(items) * iters * 8.0 * 16.0 * 8.0;
  const double tops = ops * n / total / 1e12;
  if (!portable || g_dev->dot4_option(qeval::gpu::Tier::t0).empty())
    if (tops > g_peak_tops_meas) g_peak_tops_meas = tops;
  st.counters["TOPS"] = tops;
  st.counters["vs_peak_theoretical"] = g_peak_tops_theo > 0 ? tops / g_peak_tops_theo : 0.0;
  st.SetLabel(portable ? "portable char4" : (opts.empty() ? "portable char4 (no dp4a)" : "dp4a"));
}

// Dynamic quantization of an M×K activation matrix, device-resident, per token or grouped.
void BM_Quantize(benchmark::State& st, int bits, int64_t group, bool asym, bool half) {
  const int64_t M = st.range(0), K = st.range(1);
  qeval::gpu::DevMatrix x;
  x.rows = M;
  x.cols = K;
  x.ld = K;
  x.type = half ? qeval::gpu::ElemType::f16 : qeval::gpu::ElemType::f32;
  x.buf = gaussian_buffer(M * K, half, 7);
  qeval::gpu::ActQuantSpec s;
  s.bits = bits;
  s.group_size = group;
  s.mapping = asym ? qeval::quant::Mapping::asymmetric : qeval::quant::Mapping::symmetric;
  s.with_sums = asym;  // the sums are what the asymmetric epilogue needs
  double total = 0.0;
  int n = 0;
  for (auto _ : st) {
    Event e;
    qeval::gpu::quantize_rows(*g_dev, x, s, nullptr, &e);
    const double t = qeval::gpu::event_seconds(e.get());
    st.SetIterationTime(t);
    total += t;
    ++n;
  }
  st.SetLabel(qeval::gpu::quantize_variant_for(*g_dev, x, s).name());
  const int64_t groups = M * (group > 0 ? K / group : 1);
  const double bytes = static_cast<double>(M * K) * (half ? 2 : 4) + static_cast<double>(M * ((K * bits + 7) / 8)) +
                       static_cast<double>(groups) * (4 + (asym ? 8 : 0));
  const double gbps = bytes * n / total / 1e9;
  st.counters["GB/s"] = gbps;
  st.counters["vs_copy"] = g_copy_gbps > 0 ? gbps / g_copy_gbps : 0.0;
  st.counters["bytes"] = bytes;
}

void gemm_counters(benchmark::State& st, double ops, double total, int n) {
  const double tops = ops * n / total / 1e12;
  st.counters["TOPS"] = tops;
  st.counters["vs_peak_measured"] = g_peak_tops_meas > 0 ? tops / g_peak_tops_meas : 0.0;
  st.counters["vs_peak_theoretical"] = g_peak_tops_theo > 0 ? tops / g_peak_tops_theo : 0.0;
}

// C = A·Wᵀ (int8 → int32), device-resident.
void BM_GemmS8(benchmark::State& st, qeval::gpu::TileConfig tile, bool portable, int tpc) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  Buffer A = random_buffer(static_cast<size_t>(M * K), 11), W = random_buffer(static_cast<size_t>(N * K), 12);
  Buffer C(g_dev->context(), static_cast<size_t>(M * N) * 4);
  qeval::gpu::GemmOptions o;
  o.tier = qeval::gpu::Tier::t0;
  o.tile = tile;
  o.portable_dot4 = portable;
  o.decode_tpc = tpc;
  double total = 0.0;
  int n = 0;
  for (auto _ : st) {
    Event e;
    qeval::gpu::gemm_s8s8_s32(*g_dev, M, N, K, A, K, W, K, C, N, o, 0, 0, &e);
    const double t = qeval::gpu::event_seconds(e.get());
    st.SetIterationTime(t);
    total += t;
    ++n;
  }
  gemm_counters(st, 2.0 * M * N * K, total, n);
  st.counters["weight_GB/s"] = static_cast<double>(N * K) * n / total / 1e9;  // decode shapes stream W once
  st.SetLabel(std::string("T0/") + (portable || g_dev->dot4_option(qeval::gpu::Tier::t0).empty() ? "portable" : "dp4a") +
              " " + qeval::gpu::gemm_variant_for(*g_dev, o, M, N, 8, K, 1).name());
}

// W8A8 / W4A8 with the scale/zero-point epilogue (per-token activations, per-channel or g128 weights).
void BM_MatmulQuantized(benchmark::State& st, int wbits, int64_t wgroup, bool a_asym) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  qeval::gpu::DevQuantized a, w;
  a.params.bits = 8;
  a.params.group_size = 0;
  a.params.mapping = a_asym ? qeval::quant::Mapping::asymmetric : qeval::quant::Mapping::symmetric;
  a.rows = M;
  a.cols = K;
  a.row_bytes = K;
  a.glen = K;
  a.gpr = 1;
  a.codes = random_buffer(static_cast<size_t>(M * K), 21);
  std::vector<float> sa(static_cast<size_t>(M), 0.01f);
  a.scales = Buffer(g_dev->context(), sa.size() * 4);
  a.scales.write(g_dev->queue(), sa.data(), sa.size() * 4);
  if (a_asym) {
    std::vector<int32_t> za(static_cast<size_t>(M), 128);
    a.zps = Buffer(g_dev->context(), za.size() * 4);
    a.zps.write(g_dev->queue(), za.data(), za.size() * 4);
  }
  w.params.bits = wbits;
  w.params.group_size = wgroup;
  w.rows = N;
  w.cols = K;
  w.row_bytes = (K * wbits + 7) / 8;
  w.glen = wgroup > 0 ? wgroup : K;
  w.gpr = K / w.glen;
  w.codes = random_buffer(static_cast<size_t>(N * w.row_bytes), 22);
  std::vector<float> sw(static_cast<size_t>(N * w.gpr), 0.02f);
  w.scales = Buffer(g_dev->context(), sw.size() * 4);
  w.scales.write(g_dev->queue(), sw.data(), sw.size() * 4);
  Buffer Y(g_dev->context(), static_cast<size_t>(M * N) * 4);
  qeval::gpu::GemmOptions o;
  o.tier = qeval::gpu::Tier::t0;
  qeval::gpu::matmul_quantized(*g_dev, a, w, Y, N, o);  // builds the weight segment sums once
  double total = 0.0;
  int n = 0;
  for (auto _ : st) {
    Event e;
    qeval::gpu::matmul_quantized(*g_dev, a, w, Y, N, o, &e);
    const double t = qeval::gpu::event_seconds(e.get());
    st.SetIterationTime(t);
    total += t;
    ++n;
  }
  gemm_counters(st, 2.0 * M * N * K, total, n);
  st.SetLabel(qeval::gpu::gemm_variant_for(*g_dev, o, M, N, wbits, wgroup > 0 ? wgroup : K, wgroup > 0 ? K / wgroup : 1)
                  .name());
}

// The device, its tiers and the peak the ratios use, in the benchmark's context block.
void add_device_context() {
  const auto& info = g_dev->info();
  const qeval::gpu::Tier best = g_dev->best_tier();
  if (info.is_nvidia())
    g_peak_tops_theo = static_cast<double>(info.compute_units) * info.clock_mhz * 1e6 * 64.0 * 8.0 / 1e12;
  benchmark::AddCustomContext("cl_device", info.label());
  benchmark::AddCustomContext("cl_driver", info.driver_version);
  benchmark::AddCustomContext("cl_compute_units", std::to_string(info.compute_units));
  benchmark::AddCustomContext("cl_clock_mhz", std::to_string(info.clock_mhz));
  benchmark::AddCustomContext("gemm_tier", std::string(qeval::gpu::to_string(best)) + "/" + g_dev->tier(best).variant);
  benchmark::AddCustomContext("dp4a_peak_theoretical_tops", std::to_string(g_peak_tops_theo));
  benchmark::AddCustomContext("tuning_table", g_dev->tuning().source.empty() ? "none (safe defaults)" : g_dev->tuning().source);
  std::string tiers;
  for (const auto& s : qeval::gpu::known_tiers(info))
    tiers += std::string(tiers.empty() ? "" : ", ") + qeval::gpu::to_string(s.tier) + ":" +
             (s.usable() ? "usable" : (!s.supported ? "unsupported" : (s.probed ? "probe-failed" : "not-probed")));
  benchmark::AddCustomContext("cl_tiers", tiers);

}

// Quantize benchmarks: six layouts at 4096² and QM×4096 (per-token int8 sym also at M = 1 and 16).
void register_quantize(int64_t QM) {
  struct Q {
    const char* name;
    int bits;
    int64_t group;
    bool asym, half;
  };
  for (const Q& q : {Q{"int8_sym_token_f32", 8, 0, false, false}, Q{"int8_asym_token_f32", 8, 0, true, false},
                     Q{"int8_asym_g128_f32", 8, 128, true, false}, Q{"int8_sym_g32_f32", 8, 32, false, false},
                     Q{"int8_sym_token_f16", 8, 0, false, true}, Q{"int4_sym_g128_f32", 4, 128, false, false}}) {
    auto* b = benchmark::RegisterBenchmark((std::string("BM_Quantize/") + q.name).c_str(), BM_Quantize, q.bits,
                                          q.group, q.asym, q.half);
    b->Args({4096, 4096})->Args({QM, 4096})->UseManualTime()->Unit(benchmark::kMicrosecond);
    if (q.group == 0 && q.bits == 8 && !q.asym) b->Args({1, 4096})->Args({16, 4096});
  }
}

// GEMM benchmarks: prefill tiles, decode shapes, and the W8A8 / W4A8 epilogues.
void register_gemm(int64_t PM, int64_t PK, int64_t DN, int64_t DK) {
  using qeval::gpu::TileConfig;
  struct G {
    const char* name;
    TileConfig tile;
    bool portable;
    int tpc;
  };
  for (const G& g : {G{"tuned", TileConfig::automatic, false, 16}, G{"large", TileConfig::large, false, 16},
                     G{"medium", TileConfig::medium, false, 16}, G{"large_portable", TileConfig::large, true, 16}})
    benchmark::RegisterBenchmark((std::string("BM_GemmS8/") + g.name).c_str(), BM_GemmS8, g.tile, g.portable, g.tpc)
        ->Args({PM, PM, PK})
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  // Decode: N = K = 4096 (16 MiB of weights: fits a large L2, so the ratio to the copy bandwidth flatters), and
  // 16384×8192 (128 MiB, the tuner's shape: weights streamed from memory).
  for (const G& g : {G{"decode_tuned", TileConfig::automatic, false, 16}, G{"decode_tpc16", TileConfig::decode, false, 16},
                     G{"decode_tpc32", TileConfig::decode, false, 32}, G{"small", TileConfig::small, false, 16}}) {
    auto* b = benchmark::RegisterBenchmark((std::string("BM_GemmS8/") + g.name).c_str(), BM_GemmS8, g.tile, g.portable,
                                           g.tpc);
    for (int64_t m : {1, 2, 4, 8, 16}) b->Args({m, 4096, 4096});
    b->Args({1, DN, DK})->Args({16, DN, DK});
    b->UseManualTime()->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark("BM_W8A8/token_x_channel", BM_MatmulQuantized, 8, int64_t{0}, false)
      ->Args({PM, PM, PK})
      ->Args({16, 4096, 4096})
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_W8A8/asym_token_x_g128", BM_MatmulQuantized, 8, int64_t{128}, true)
      ->Args({PM, PM, PK})
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_W4A8/token_x_g128", BM_MatmulQuantized, 4, int64_t{128}, false)
      ->Args({PM, PM, PK})
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  try {
    g_dev = qeval::gpu::open_device();
  } catch (const std::exception& e) {
    std::cerr << "qeval_bench_gpu: " << e.what() << "\n";
    return 1;
  }
  add_device_context();
  const bool gpu = (g_dev->info().type & CL_DEVICE_TYPE_GPU) != 0;
  // Shapes: a GPU gets the (4096³ GEMMs, 16384×4096 quantize, 16384×8192 decode weights); a CPU device
  // (PoCL) the same benchmarks scaled down so that a dry run of reports/perf/run_opencl_gpu.sh ends in minutes.
  const int64_t PM = gpu ? 4096 : 256, PK = gpu ? 4096 : 1024;  // prefill GEMM M = N = PM, K = PK
  const int64_t QM = gpu ? 16384 : 512;                         // quantize rows (4096 columns)
  const int64_t DN = gpu ? 16384 : 2048, DK = gpu ? 8192 : 2048;  // decode weights beyond the L2
  const char* mb = std::getenv("QEVAL_BENCH_COPY_MB");
  const int64_t copy_mb = mb ? std::atoll(mb) : (gpu ? 512 : 64);
  // Order matters: the baselines run first, the ratios of the later benchmarks use them.
  benchmark::RegisterBenchmark("BM_CopyBuffer", BM_CopyBuffer)->Arg(copy_mb)->UseManualTime()->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_IntDotPeak/tier_dot4", BM_IntDotPeak, false)->UseManualTime()->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_IntDotPeak/portable", BM_IntDotPeak, true)->UseManualTime()->Unit(benchmark::kMicrosecond);
  register_quantize(QM);
  register_gemm(PM, PK, DN, DK);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::cout << "baselines: copy " << g_copy_gbps << " GB/s, dot4 peak measured " << g_peak_tops_meas
            << " TOPS, dp4a peak theoretical " << g_peak_tops_theo << " TOPS\n";
  return 0;
}
