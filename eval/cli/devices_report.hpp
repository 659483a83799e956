// eval/cli/devices_report.hpp — what `qeval devices` prints: platforms, devices, the tiers each supports and the
// result of every tier's known-answer probe, saying plainly which tier the GEMMs actually use.
#pragma once

#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

namespace qeval::cli {

// What to probe while listing. Listing alone compiles nothing: every device shows its supported tiers and
// the probe results cached on disk ("not probed" where there are none). With probe = true the device in
// use (open_device(device): --device, else $QEVAL_CL_DEVICE, else the first GPU) is opened and its
// supported GEMM tiers T0..T3 probed (cached for later listings and runs); the T3 emulation, which only the
// tests use, keeps its cached state.
struct DevicesOptions {
  bool probe = false;
  std::string device;  // selector of the device to probe ("" = the default choice)
};

// {"devices": [{"platform", "name", "vendor", "version", "driver", "type", "index", "compute_units",
//   "clock_mhz", "global_mem_bytes", "fp64", "correctly_rounded_div", "selected",
//   "tiers": [{"tier", "supported", "probed", "cached", "passed", "usable", "variant", "detail"}],
//   "gemm_tier": "T0" | null, "gemm_tier_variant": "dp4a"}], "error": "..." (listing or probing failed)}
nlohmann::json devices_json(const DevicesOptions& o = {});

// Human-readable form of devices_json(). Returns 0, or 1 when no OpenCL device was found or the device to
// probe does not exist (the error is printed).
int print_devices(std::ostream& out, bool as_json = false, const DevicesOptions& o = {});

}  // namespace qeval::cli
