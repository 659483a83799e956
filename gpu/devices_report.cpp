// gpu/devices_report.cpp — `qeval devices`: the device list with supported tiers and probe results.
#include "gpu/devices_report.hpp"

#include <exception>

#include "gpu/device.hpp"

namespace qeval::gpu {

nlohmann::json devices_json() {
  nlohmann::json j;
  j["devices"] = nlohmann::json::array();
  std::vector<DeviceInfo> devs;
  try {
    devs = list_devices();
  } catch (const std::exception& e) {
    j["error"] = e.what();
    return j;
  }
  for (const DeviceInfo& i : devs) {
    nlohmann::json d{{"platform", i.platform_name},
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
                     {"fp64", i.fp64}};
    try {
      Device dev(i);
      nlohmann::json ts = nlohmann::json::array();
      for (const TierState& s : dev.tiers())
        ts.push_back({{"tier", to_string(s.tier)},
                      {"supported", s.supported},
                      {"probed", s.probed},
                      {"passed", s.passed},
                      {"usable", s.usable()},
                      {"variant", s.variant},
                      {"detail", s.detail}});
      d["tiers"] = ts;
      try {
        const Tier t = dev.best_tier();
        d["gemm_tier"] = to_string(t);
        d["gemm_tier_variant"] = dev.tier(t).variant;
      } catch (const std::exception& e) {
        d["gemm_tier"] = nullptr;
        d["error"] = e.what();
      }
    } catch (const std::exception& e) {
      d["error"] = e.what();
    }
    j["devices"].push_back(d);
  }
  return j;
}

int print_devices(std::ostream& out, bool as_json) {
  const nlohmann::json j = devices_json();
  if (as_json) {
    out << j.dump(2) << "\n";
    return j["devices"].empty() ? 1 : 0;
  }
  if (j.contains("error")) out << "OpenCL: " << j["error"].get<std::string>() << "\n";
  if (j["devices"].empty()) {
    out << "No OpenCL device found (no ICD/platform installed). Install PoCL (apt-get install pocl-opencl-icd) or a\n"
           "GPU driver to use --backend opencl; the CPU backend works without one.\n";
    return 1;
  }
  for (const auto& d : j["devices"]) {
    out << "[" << d["index"].get<std::string>() << "] " << d["platform"].get<std::string>() << " / "
        << d["name"].get<std::string>() << " (" << d["type"].get<std::string>() << ", "
        << d["compute_units"].get<unsigned>() << " compute units, " << d["clock_mhz"].get<unsigned>() << " MHz, "
        << (d["global_mem_bytes"].get<uint64_t>() >> 20) << " MiB, fp64 " << (d["fp64"].get<bool>() ? "yes" : "no")
        << ")\n    " << d["version"].get<std::string>() << ", driver " << d["driver"].get<std::string>() << "\n";
    if (d.contains("tiers")) {
      for (const auto& t : d["tiers"]) {
        std::string state;
        if (!t["supported"].get<bool>()) state = "not supported";
        else if (t["passed"].get<bool>()) state = "probe passed";
        else state = "PROBE FAILED — not used";
        out << "    " << t["tier"].get<std::string>();
        const std::string v = t["variant"].get<std::string>();
        if (!v.empty()) out << "/" << v;
        out << ": " << state;
        const std::string det = t["detail"].get<std::string>();
        if (!det.empty()) out << " (" << det << ")";
        if (t["tier"] == "T3-emulated" && t["passed"].get<bool>())
          out << " [emulation: tests T3's layout and indexing, never used for speed]";
        out << "\n";
      }
    }
    if (d.contains("gemm_tier") && !d["gemm_tier"].is_null())
      out << "    GEMM kernels run on: " << d["gemm_tier"].get<std::string>()
          << (d["gemm_tier_variant"].get<std::string>().empty() ? "" : "/" + d["gemm_tier_variant"].get<std::string>())
          << "\n";
    if (d.contains("error")) out << "    error: " << d["error"].get<std::string>() << "\n";
  }
  return 0;
}

}  // namespace qeval::gpu
