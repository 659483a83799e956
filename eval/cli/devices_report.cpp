// eval/cli/devices_report.cpp — `qeval devices`: the device list with supported tiers and (cached) probe results.
#include "eval/cli/devices_report.hpp"

#include <exception>

#include "gpu/device.hpp"

namespace qeval::cli {

using namespace qeval::gpu;  // the device API this report lists

namespace {

bool same_device(const DeviceInfo& a, const DeviceInfo& b) {
  return a.platform_index == b.platform_index && a.device_index == b.device_index;
}

nlohmann::json device_header(const DeviceInfo& i) {
  return {{"platform", i.platform_name},
          {"platform_version", i.platform_version},
          {"name", i.name},
          {"vendor", i.vendor},
          {"version", i.version},
          {"driver", i.driver_version},
          {"opencl_c", i.c_version},
          {"type", i.type_string()},
          {"index", std::to_string(i.platform_index) + ":" + std::to_string(i.device_index)},
          {"compute_units", i.compute_units},
          {"clock_mhz", i.clock_mhz},
          {"global_mem_bytes", i.global_mem_bytes},
          {"local_mem_bytes", i.local_mem_bytes},
          {"fp64", i.fp64},
          {"correctly_rounded_div", i.correctly_rounded_div}};
}

// The tier entries and the GEMM tier (T3 → T0: the first supported tier whose probe passed; null while a
// better supported tier is not probed yet).
void add_tiers(nlohmann::json& d, const std::vector<TierState>& tiers) {
  nlohmann::json ts = nlohmann::json::array();
  for (const TierState& s : tiers)
    ts.push_back({{"tier", to_string(s.tier)},
                  {"supported", s.supported},
                  {"probed", s.probed},
                  {"cached", s.from_cache},
                  {"passed", s.passed},
                  {"usable", s.usable()},
                  {"variant", s.variant},
                  {"detail", s.detail}});
  d["tiers"] = ts;
  d["gemm_tier"] = nullptr;
  d["gemm_tier_variant"] = "";
  for (Tier t : {Tier::t3, Tier::t2, Tier::t1, Tier::t0}) {
    const TierState& s = tiers[static_cast<size_t>(t)];
    if (!s.supported || (s.probed && !s.passed)) continue;
    if (!s.probed) break;  // unknown until probed
    d["gemm_tier"] = to_string(t);
    d["gemm_tier_variant"] = s.variant;
    break;
  }
}

}  // namespace

nlohmann::json devices_json(const DevicesOptions& o) {
  nlohmann::json j;
  j["devices"] = nlohmann::json::array();
  std::vector<DeviceInfo> devs;
  DeviceInfo selected;
  try {
    devs = list_devices();
    if (!devs.empty()) selected = select_device(o.device);
  } catch (const std::exception& e) {
    j["error"] = e.what();
    if (devs.empty() || o.probe) return j;
  }
  for (const DeviceInfo& i : devs) {
    nlohmann::json d = device_header(i);
    const bool sel = same_device(i, selected);
    d["selected"] = sel;
    try {
      if (sel && o.probe) {  // the GEMM tiers; the T3 emulation (tests only) keeps its cached state
        Device dev(i);
        std::vector<TierState> tiers = known_tiers(i);
        for (Tier t : {Tier::t0, Tier::t1, Tier::t2, Tier::t3}) tiers[static_cast<size_t>(t)] = dev.tier(t);
        add_tiers(d, tiers);
      } else {
        add_tiers(d, known_tiers(i));
      }
    } catch (const std::exception& e) {
      d["error"] = e.what();
    }
    j["devices"].push_back(d);
  }
  return j;
}

namespace {

std::string tier_state_text(const nlohmann::json& t) {
  if (!t["supported"].get<bool>()) return "not supported";
  if (!t["probed"].get<bool>()) return "not probed";
  const std::string cached = t["cached"].get<bool>() ? " (cached)" : "";
  return t["passed"].get<bool>() ? "probe passed" + cached : "PROBE FAILED" + cached + " — not used";
}

void print_device(std::ostream& out, const nlohmann::json& d) {
  out << "[" << d["index"].get<std::string>() << "] " << d["platform"].get<std::string>() << " / "
      << d["name"].get<std::string>() << " (" << d["type"].get<std::string>() << ", "
      << d["compute_units"].get<unsigned>() << " compute units, " << d["clock_mhz"].get<unsigned>() << " MHz, "
      << (d["global_mem_bytes"].get<uint64_t>() >> 20) << " MiB, fp64 " << (d["fp64"].get<bool>() ? "yes" : "no")
      << ")" << (d["selected"].get<bool>() ? "  <- selected" : "") << "\n    " << d["version"].get<std::string>()
      << ", driver " << d["driver"].get<std::string>() << "\n";
  bool unprobed = false;
  for (const auto& t : d.value("tiers", nlohmann::json::array())) {
    out << "    " << t["tier"].get<std::string>();
    const std::string v = t["variant"].get<std::string>();
    if (!v.empty()) out << "/" << v;
    out << ": " << tier_state_text(t);
    unprobed |= t["supported"].get<bool>() && !t["probed"].get<bool>();
    const std::string det = t["detail"].get<std::string>();
    if (!det.empty()) out << " (" << det << ")";
    if (t["tier"] == "T3-emulated" && t["passed"].get<bool>())
      out << " [emulation: tests T3's layout and indexing, never used for speed]";
    out << "\n";
  }
  if (d.contains("gemm_tier") && !d["gemm_tier"].is_null()) {
    const std::string v = d["gemm_tier_variant"].get<std::string>();
    out << "    GEMM kernels run on: " << d["gemm_tier"].get<std::string>() << (v.empty() ? "" : "/" + v) << "\n";
  } else if (unprobed) {
    out << "    GEMM tier: not known until probed (qeval devices --probe"
        << (d["selected"].get<bool>() ? "" : " --device " + d["index"].get<std::string>()) << ")\n";
  }
  if (d.contains("error")) out << "    error: " << d["error"].get<std::string>() << "\n";
}

}  // namespace

int print_devices(std::ostream& out, bool as_json, const DevicesOptions& o) {
  const nlohmann::json j = devices_json(o);
  if (as_json) {
    out << j.dump(2) << "\n";
    return j["devices"].empty() || (o.probe && j.contains("error")) ? 1 : 0;
  }
  if (j.contains("error")) out << "OpenCL: " << j["error"].get<std::string>() << "\n";
  if (j["devices"].empty()) {
    if (!j.contains("error") || !o.probe)
      out << "No OpenCL device found (no ICD/platform installed). Install PoCL (apt-get install pocl-opencl-icd) or "
             "a\nGPU driver to use --backend opencl; the CPU backend works without one.\n";
    return 1;
  }
  for (const auto& d : j["devices"]) print_device(out, d);
  return o.probe && j.contains("error") ? 1 : 0;
}

}  // namespace qeval::cli
