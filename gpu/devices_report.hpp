// gpu/devices_report.hpp — what `qeval devices` prints: platforms, devices, the tiers each supports and the
// result of every tier's known-answer probe, saying plainly which tier the GEMMs actually use.
#pragma once

#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

namespace qeval::gpu {

// The device list with the tier table of each device (probes run: opening a device compiles kernels).
// {"devices": [{"platform", "name", "vendor", "version", "driver", "type", "compute_units", "clock_mhz",
//   "global_mem_bytes", "fp64", "tiers": [{"tier", "supported", "probed", "passed", "variant", "detail"}],
//   "gemm_tier": "T0", "gemm_tier_variant": "dp4a"}], "error": "..." (only when listing failed)}
nlohmann::json devices_json();

// Human-readable form of devices_json(). Returns 0, or 1 when no OpenCL device was found.
int print_devices(std::ostream& out, bool as_json = false);

}  // namespace qeval::gpu
