// gpu/tuner.cpp — the tuner's driver (gpu/tuner.hpp): baselines, the per-class budget loop, the table and its file.
#include "gpu/tuner.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include <unistd.h>

#include "gpu/embedded_sources.hpp"
#include "gpu/fnv.hpp"
#include "gpu/tuner_bench.hpp"
#include "gpu/tuning.hpp"

namespace qeval::gpu {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The order classes are tuned in: the ones with the longest catalogues last, so they get the budget left over.
constexpr ShapeClass kTuneOrder[] = {ShapeClass::quantize_per_token, ShapeClass::quantize_grouped,
                                     ShapeClass::gemm_decode_m1,     ShapeClass::gemm_decode_m16,
                                     ShapeClass::matmul_w4a8,        ShapeClass::gemm_prefill};

// Three significant digits (PoCL's figures are thousands of times below a GPU's).
std::string sig3(double v) {
  std::ostringstream o;
  o << std::setprecision(3) << v;
  return o.str();
}

struct Baselines {
  double copy_gbps = 0.0;       // clEnqueueCopyBuffer, (read + write) bytes / s
  double copy_bytes = 0.0;
  double dot4_peak_tops = 0.0;  // bench.cl int_dot_peak with the tier's dot4
  std::string dot4;             // "dp4a" or "portable"
};

// Best of 5 copies of `mib` MiB (read + write counted, as tests/bench/gpu_bench.cpp does).
double measure_copy(Device& d, size_t mib) {
  const size_t bytes = mib << 20;
  Buffer src(d.context(), bytes), dst(d.context(), bytes);
  src.fill_bytes(d.queue(), 0x5A);
  double best = 0.0;
  for (int i = 0; i < 6; ++i) {
    Event e;
    check(clEnqueueCopyBuffer(d.queue(), src.get(), dst.get(), 0, 0, bytes, 0, nullptr, e.out()), "clEnqueueCopyBuffer");
    const double gbps = 2.0 * static_cast<double>(bytes) / event_seconds(e.get()) / 1e9;
    if (i > 0) best = std::max(best, gbps);  // the first is a warm-up
  }
  return best;
}

// bench.cl's dependent-chain kernel: 16 chains × 8 unrolled × iters dot4 per work-item, 8 ops per dot4.
double measure_dot4_peak(Device& d, bool gpu) {
  const int iters = gpu ? 256 : 16;
  const size_t items = static_cast<size_t>(std::max<uint32_t>(1, d.info().compute_units)) * (gpu ? 8192 : 256);
  Buffer out(d.context(), items * 4);
  cl_kernel k = d.kernel("bench.cl", d.dot4_option(Tier::t0), "int_dot_peak");
  set_args(k, out, iters, 0x12345678u);
  double best = 0.0;
  for (int i = 0; i < 4; ++i) {
    Event e;
    const size_t l = 256;
    check(clEnqueueNDRangeKernel(d.queue(), k, 1, nullptr, &items, &l, 0, nullptr, e.out()), "clEnqueueNDRangeKernel");
    const double ops = static_cast<double>(items) * iters * 8.0 * 16.0 * 8.0;
    if (i > 0) best = std::max(best, ops / event_seconds(e.get()) / 1e12);
  }
  return best;
}

Baselines measure_baselines(Device& d, bool gpu, std::ostream& log) {
  Baselines b;
  const size_t mib = gpu ? 256 : 32;
  b.copy_bytes = 2.0 * static_cast<double>(mib << 20);
  b.copy_gbps = measure_copy(d, mib);
  b.dot4 = d.dot4_option(Tier::t0).empty() ? "portable" : "dp4a";
  b.dot4_peak_tops = measure_dot4_peak(d, gpu);
  log << "baselines: copy " << sig3(b.copy_gbps) << " GB/s (" << mib << " MiB, read + write), dot4 peak (" << b.dot4
      << ") " << sig3(b.dot4_peak_tops) << " TOPS\n";
  return b;
}

std::string first_line(const std::string& s) {
  const std::string l = s.substr(0, s.find('\n'));
  return l.size() > 200 ? l.substr(0, 200) + " ..." : l;
}

// One candidate: build + verify + time. Returns its record; figure < 0 when rejected.
nlohmann::json try_candidate(ClassBench& b, size_t i, int reps, double ref, std::ostream& log) {
  nlohmann::json r{{"name", b.name(i)}, {"variant", b.variant(i)}};
  const auto t0 = Clock::now();
  try {
    const std::string why = b.verify(i);
    if (!why.empty()) {
      r["status"] = "rejected: " + why;
    } else {
      const double fig = b.figure(b.seconds(i, reps));
      r["status"] = "verified";
      r["figure"] = fig;
      r["ratio"] = ref > 0 ? fig / ref : 0.0;
    }
  } catch (const std::exception& e) {
    r["status"] = "failed: " + first_line(e.what());
  }
  r["seconds"] = since(t0);
  log << "  " << std::left << std::setw(44) << b.name(i) << std::right;
  if (r.contains("figure"))
    log << std::setw(9) << sig3(r["figure"].get<double>()) << " " << b.unit() << "  " << std::setw(5)
        << sig3(r["ratio"].get<double>()) << " of " << b.baseline();
  else
    log << "  " << r["status"].get<std::string>();
  log << (i == 0 ? "  [default]" : "") << "\n";
  return r;
}

// Tunes one class until `class_deadline` (the default, candidate 0, always). The entry for the table.
nlohmann::json tune_class(ShapeClass c, Device& d, bool gpu, const Baselines& bl, int reps,
                          Clock::time_point class_deadline, std::ostream& log) {
  const auto t0 = Clock::now();
  std::unique_ptr<ClassBench> b = make_class_bench(c, d, gpu);
  const double ref = std::string(b->baseline()) == "copy" ? bl.copy_gbps : bl.dot4_peak_tops;
  log << to_string(c) << " " << b->shape().dump() << ": " << b->size() << " variants (inputs and reference "
      << std::setprecision(1) << std::fixed << since(t0) << " s)\n";
  nlohmann::json tried = nlohmann::json::array();
  double per_candidate = 0.0;
  size_t i = 0;
  for (; i < b->size(); ++i) {
    if (i > 0 && Clock::now() + std::chrono::duration<double>(per_candidate) > class_deadline) break;
    const auto tc = Clock::now();
    tried.push_back(try_candidate(*b, i, reps, ref, log));
    per_candidate = std::max(per_candidate, since(tc));
  }
  if (i < b->size()) log << "  (budget: " << b->size() - i << " variants not tried)\n";
  nlohmann::json entry{{"shape", b->shape()}, {"unit", b->unit()}, {"baseline", b->baseline()}, {"tried", tried},
                       {"untried", b->size() - i}, {"seconds", since(t0)}};
  int best = -1;
  for (size_t k = 0; k < tried.size(); ++k)
    if (tried[k].contains("figure") && (best < 0 || tried[k]["figure"] > tried[static_cast<size_t>(best)]["figure"]))
      best = static_cast<int>(k);
  if (best < 0) return entry;  // nothing verified: no entry for the class (the backend keeps its default)
  const nlohmann::json& w = tried[static_cast<size_t>(best)];
  entry["variant"] = w["variant"];
  entry["name"] = w["name"];
  entry["verified"] = true;
  entry["figure"] = w["figure"];
  entry["ratio"] = w["ratio"];
  if (tried[0].contains("figure")) entry["speedup_vs_default"] = w["figure"].get<double>() / tried[0]["figure"].get<double>();
  return entry;
}

// Fails early (before minutes of tuning) when the table cannot be written there.
void check_writable(const std::string& path) {
  const std::string probe = path + ".writetest" + std::to_string(static_cast<long>(getpid()));
  std::ofstream f(probe);
  if (!f) throw std::runtime_error("cannot write the tuning table " + path + " (cannot create a file there)");
  f.close();
  std::remove(probe.c_str());
}

void write_table(const nlohmann::json& t, const std::string& path) {
  const std::string tmp = path + ".tmp" + std::to_string(static_cast<long>(getpid()));
  std::ofstream f(tmp);
  f << t.dump(2) << "\n";
  f.close();
  if (!f || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot write the tuning table " + path);
  }
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return b;
}

nlohmann::json table_header(const DeviceInfo& info, const TuneOptions& o, const Baselines& bl) {
  size_t n = 0;
  const EmbeddedSource* s = embedded_sources(&n);
  uint64_t h = kFnvOffset;
  for (size_t i = 0; i < n; ++i) h = fnv1a(hex64(s[i].hash), h);
  return {{"schema", kTuningSchema},
          {"device", info.name},
          {"platform", info.platform_name},
          {"vendor", info.vendor},
          {"driver", info.driver_version},
          {"compute_units", info.compute_units},
          {"clock_mhz", info.clock_mhz},
          {"created_utc", utc_now()},
          {"kernel_sources_fnv1a", hex64(h)},
          {"budget_s", o.budget_s},
          {"baselines",
           {{"copy_GBps", bl.copy_gbps}, {"copy_bytes", bl.copy_bytes}, {"dot4_peak_TOPS", bl.dot4_peak_tops},
            {"dot4", bl.dot4}}},
          {"classes", nlohmann::json::object()}};
}

}  // namespace

nlohmann::json run_tuner(const TuneOptions& o, std::ostream& log) {
  const auto start = Clock::now();
  if (!(o.budget_s > 0)) throw std::invalid_argument("--budget must be > 0 seconds");
  const DeviceInfo info = select_device(o.device);
  const std::string out = o.out.empty() ? default_tuning_path(info) : o.out;
  if (out.empty()) throw std::invalid_argument("no --out given and no cache folder (QEVAL_CL_CACHE_DIR=off)");
  check_writable(out);
  Device d(info);
  d.set_tuning(TuningTable{});  // the tuner runs explicit variants; no lookup, no "no table" note
  const bool gpu = (info.type & CL_DEVICE_TYPE_GPU) != 0;
  const int reps = o.reps > 0 ? o.reps : (gpu ? 10 : 2);
  log << "qeval tune: " << info.label() << ", driver " << info.driver_version << ", budget " << o.budget_s
      << " s, GEMM tier " << to_string(d.best_tier()) << "/" << d.tier(Tier::t0).variant << "\n";
  const Baselines bl = measure_baselines(d, gpu, log);
  nlohmann::json table = table_header(info, o, bl);
  std::vector<ShapeClass> classes;
  for (ShapeClass c : kTuneOrder)
    if (o.classes.empty() || std::find(o.classes.begin(), o.classes.end(), c) != o.classes.end()) classes.push_back(c);
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.budget_s));
  for (size_t k = 0; k < classes.size(); ++k) {
    const auto left = deadline - Clock::now();
    const auto class_deadline = Clock::now() + left / static_cast<int>(classes.size() - k);
    try {  // a context of its own per class: a variant that faults on the device cannot spoil the next class
      Device dc(info);
      dc.set_tuning(TuningTable{});
      table["classes"][to_string(classes[k])] = tune_class(classes[k], dc, gpu, bl, reps, class_deadline, log);
    } catch (const std::exception& e) {  // inputs could not be set up (memory): the class keeps its default
      log << "  " << to_string(classes[k]) << " skipped: " << first_line(e.what()) << "\n";
    }
    table["elapsed_s"] = since(start);
    write_table(table, out);  // after every class: a run stopped by a timeout keeps what it measured
  }
  write_table(table, out);
  log << "wrote " << out << " (" << std::fixed << std::setprecision(1) << since(start) << " s)\n";
  return table;
}

}  // namespace qeval::gpu
