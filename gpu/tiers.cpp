// gpu/tiers.cpp — the tier table of a device: what it supports, lazy known-answer probes, and their disk cache.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "gpu/device.hpp"
#include "gpu/embedded_sources.hpp"
#include "gpu/fnv.hpp"
#include "gpu/ops.hpp"

namespace qeval::gpu {

namespace {

// Bump when a probe changes what it checks: old cache entries are then ignored.
constexpr int kProbeCacheVersion = 1;

size_t tier_index(Tier t) { return static_cast<size_t>(t); }

// FNV-1a over the hashes of every embedded kernel file: any kernel edit invalidates the probe cache.
uint64_t sources_hash() {
  size_t n = 0;
  const EmbeddedSource* s = embedded_sources(&n);
  uint64_t h = kFnvOffset;
  for (size_t i = 0; i < n; ++i) h = fnv1a(std::string(s[i].name) + ":" + hex64(s[i].hash), h);
  return h;
}

// $cache/probe-<hash>.json for (platform, device, driver, build options, kernel sources), or "".
std::string probe_cache_path(const DeviceInfo& info, const std::string& base_opts) {
  const std::string dir = cl_cache_dir();
  if (dir.empty()) return "";
  uint64_t h = fnv1a(info.platform_name + "|" + info.name + "|" + info.driver_version + "|" + base_opts + "|v" +
                     std::to_string(kProbeCacheVersion));
  h = fnv1a(hex64(sources_hash()), h);
  return dir + "/probe-" + hex64(h) + ".json";
}

nlohmann::json read_json_or_empty(const std::string& path) {
  std::ifstream f(path);
  if (!f) return nlohmann::json::object();
  try {
    nlohmann::json j = nlohmann::json::parse(f);
    return j.is_object() ? j : nlohmann::json::object();
  } catch (const std::exception&) {
    return nlohmann::json::object();  // a torn or corrupt cache file is just a miss
  }
}

// The cache key of a tier: the emulation's result depends on its subgroup size ($QEVAL_CL_EMU_SG).
std::string tier_key(const DeviceInfo& info, Tier t) {
  std::string k = to_string(t);
  if (t == Tier::t3_emulated) k += "/sg" + std::to_string(subgroup_size_for(info, t));
  return k;
}

void store_probe(const DeviceInfo& info, const std::string& base_opts, const TierState& s) {
  const std::string path = probe_cache_path(info, base_opts);
  if (path.empty()) return;
  nlohmann::json j = read_json_or_empty(path);
  j["device"] = info.platform_name + " / " + info.name;
  j["driver"] = info.driver_version;
  j["tiers"][tier_key(info, s.tier)] = {{"passed", s.passed}, {"variant", s.variant}, {"detail", s.detail}};
  const std::string tmp = path + ".tmp" + std::to_string(static_cast<long>(getpid()));
  std::ofstream o(tmp);
  o << j.dump(2) << "\n";
  o.close();
  if (o) std::rename(tmp.c_str(), path.c_str());
  else std::remove(tmp.c_str());
}

// What the device advertises for each tier (no probe run).
std::vector<TierState> supported_tiers(const DeviceInfo& info) {
  const bool sg_ok = std::any_of(info.intel_subgroup_sizes.begin(), info.intel_subgroup_sizes.end(),
                                 [](size_t s) { return s == 8 || s == 16; });
  std::vector<TierState> out;
  for (Tier t : kAllTiers) {
    TierState s;
    s.tier = t;
    switch (t) {
      case Tier::t0: s.supported = true; break;
      case Tier::t1:
        s.supported = info.has_extension("cl_khr_integer_dot_product");
        if (!s.supported) s.detail = "no cl_khr_integer_dot_product";
        break;
      case Tier::t2:
        s.supported = info.has_extension("cl_intel_subgroups") && sg_ok;
        if (!s.supported) s.detail = "no cl_intel_subgroups (with subgroup size 8 or 16)";
        break;
      case Tier::t3:
        s.supported = info.has_extension("cl_intel_subgroup_matrix_multiply_accumulate") &&
                      info.has_extension("cl_intel_subgroups") && sg_ok;
        if (!s.supported) s.detail = "no cl_intel_subgroup_matrix_multiply_accumulate";
        break;
      case Tier::t3_emulated: s.supported = true; break;
    }
    if (s.supported && t != Tier::t0) s.variant = t == Tier::t1 ? "" : "sg" + std::to_string(subgroup_size_for(info, t));
    out.push_back(s);
  }
  return out;
}

// Fills the probe results the disk cache holds into `tiers` (from_cache = true).
void apply_cached(const DeviceInfo& info, const std::string& base_opts, std::vector<TierState>& tiers) {
  const std::string path = probe_cache_path(info, base_opts);
  if (path.empty()) return;
  const nlohmann::json j = read_json_or_empty(path);
  if (!j.contains("tiers") || !j["tiers"].is_object()) return;
  for (TierState& s : tiers) {
    const std::string key = tier_key(info, s.tier);
    if (!s.supported || !j["tiers"].contains(key)) continue;
    const nlohmann::json& e = j["tiers"][key];
    try {
      s.passed = e.at("passed").get<bool>();
      s.variant = e.at("variant").get<std::string>();
      s.detail = e.at("detail").get<std::string>();
      s.probed = true;
      s.from_cache = true;
    } catch (const std::exception&) {
      // malformed entry: probe again
    }
  }
}

}  // namespace

int subgroup_size_for(const DeviceInfo& info, Tier t) {
  if (t == Tier::t3_emulated) {
    const char* e = std::getenv("QEVAL_CL_EMU_SG");  // tests run the emulation with 8 and 16
    return (e && std::string(e) == "16") ? 16 : 8;
  }
  // The matrix extension requires the device's minimum subgroup size (8 on DG2/Arc A, 16 on PVC/Xe2).
  size_t best = 0;
  for (size_t s : info.intel_subgroup_sizes)
    if ((s == 8 || s == 16) && (best == 0 || s < best)) best = s;
  return best ? static_cast<int>(best) : 8;
}

std::vector<TierState> known_tiers(const DeviceInfo& info, const std::string& extra_options) {
  std::vector<TierState> t = supported_tiers(info);
  apply_cached(info, base_build_options(info, extra_options), t);
  return t;
}

void Device::init_tiers() {
  tiers_ = supported_tiers(info_);
  probing_.assign(tiers_.size(), false);
  apply_cached(info_, base_options_, tiers_);
  const TierState& t0 = tiers_[tier_index(Tier::t0)];
  nv_dp4a_ = t0.probed && t0.passed && t0.variant == "dp4a";
}

TierState& Device::state(Tier t) { return tiers_.at(tier_index(t)); }

const TierState& Device::tier(Tier t) {
  auto lk = lock();
  TierState& s = state(t);
  if (s.supported && !s.probed && !probing_[tier_index(t)]) probe(s);
  return s;
}

const std::vector<TierState>& Device::tiers() {
  for (Tier t : kAllTiers) tier(t);
  return tiers_;
}

Tier Device::best_tier() {
  for (Tier t : {Tier::t3, Tier::t2, Tier::t1, Tier::t0})
    if (usable(t)) return t;
  throw std::runtime_error("OpenCL device " + info_.label() +
                           ": even the portable tier T0 failed its known-answer probe (" + tier(Tier::t0).detail +
                           "); use the CPU backend");
}

std::string Device::dot4_option(Tier t) {
  if (t == Tier::t1) return "-DQEVAL_DOT4_KHR=1";
  if (t != Tier::t0) return "";
  tier(Tier::t0);  // the dp4a decision is T0's probe result (no-op while that probe runs)
  return nv_dp4a_ ? "-DQEVAL_DOT4_NV=1" : "";
}

int Device::subgroup_size(Tier t) { return subgroup_size_for(info_, t); }

// Runs one tier's known-answer probe, records and caches the result, and warns when it failed.
void Device::probe(TierState& s) {
  probing_[tier_index(s.tier)] = true;
  compile_progress("qeval: probing OpenCL tier " + std::string(to_string(s.tier)) + " on " + info_.name + " ...");
  if (s.tier == Tier::t0) {
    probe_t0(s);
  } else {
    std::string r;
    try {
      r = probe_tier(*this, s.tier);
    } catch (const std::exception& e) {
      r = e.what();
    }
    s.passed = r.empty();
    if (!s.passed) s.detail = "known-answer probe failed: " + r;
  }
  compile_progress("");
  s.probed = true;
  probing_[tier_index(s.tier)] = false;
  store_probe(info_, base_options_, s);
  if (!s.passed)
    std::cerr << "qeval: OpenCL tier " << to_string(s.tier) << " disabled on " << info_.label() << ": " << s.detail
              << "\n";
}

// T0: on NVIDIA the dp4a dot product first, the portable char4 one when dp4a fails its probe.
void Device::probe_t0(TierState& s) {
  auto run = [&]() -> std::string {
    try {
      return probe_tier(*this, Tier::t0);
    } catch (const std::exception& e) {
      return e.what();
    }
  };
  if (info_.is_nvidia()) {
    nv_dp4a_ = true;
    const std::string r = run();
    if (r.empty()) {
      s.passed = true;
      s.variant = "dp4a";
      s.detail = "dot4 = PTX dp4a.s32.s32 (inline assembly)";
      return;
    }
    std::cerr << "qeval: OpenCL T0 dp4a variant disabled on " << info_.label() << ": " << r
              << "; using the portable char4 dot product\n";
    nv_dp4a_ = false;
  }
  s.variant = "portable";
  const std::string r = run();
  s.passed = r.empty();
  s.detail = s.passed ? "" : "known-answer probe failed: " + r;
}

}  // namespace qeval::gpu
