// gpu/tuning.hpp — the per-device tuning table: which kernel variant (gpu/variants.hpp) each shape class runs,
// as `qeval tune` measured it, keyed by device name + driver version, and how the backend finds it.
//
// Lookup (load_tuning_table), first hit wins:
//   1. $QEVAL_CL_TUNING: a table file ("off": no table, safe defaults);
//   2. <cl_cache_dir()>/tuning-<hash of platform, device, driver>.json — where `qeval tune` writes by default;
//   3. the committed tables of gpu/tuning/*.json, embedded at build time: same device name and driver, else the
//      same device name with another driver (used, with a one-line note).
// No table: safe defaults (the kernels' historical choices) and a one-line note per device and process.
// A table that cannot be read or parsed, or an entry a device cannot run: a warning naming the file, and the
// safe defaults for what is affected. Tables are hints, never a correctness risk: every variant computes the
// same results (tests/gpu/variants_cl_test.cpp), and the tuner verified each chosen one on its device.
//
// Format (schema "qeval-cl-tuning/1"):
//   {"schema": "qeval-cl-tuning/1", "device": "NVIDIA H200", "platform": "NVIDIA CUDA", "driver": "580.159.04",
//    "classes": {"gemm_prefill": {"variant": {"kernel": "tiled", "bm": 128, ...}, "verified": true, ...}, ...},
//    ... (baselines, figures, what was tried: informational)}
#pragma once

#include <map>
#include <optional>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "gpu/device.hpp"
#include "gpu/variants.hpp"

namespace qeval::gpu {

inline constexpr const char* kTuningSchema = "qeval-cl-tuning/1";

struct TuningTable {
  std::string source;  // file path, "embedded:<file>", or "" (no table)
  std::string device, platform, driver;
  std::map<ShapeClass, QuantizeVariant> quantize;
  std::map<ShapeClass, GemmVariant> gemm;
  bool empty() const { return quantize.empty() && gemm.empty(); }
  std::optional<QuantizeVariant> quantize_for(ShapeClass c) const;
  std::optional<GemmVariant> gemm_for(ShapeClass c) const;
};

// Parses a table. Throws std::invalid_argument naming the problem (schema, device, a class entry). Entries that
// are unverified or that `info` cannot run are dropped with a warning on `warn` naming `source`.
TuningTable parse_tuning_table(const nlohmann::json& j, const std::string& source, const DeviceInfo& info,
                               std::ostream& warn);

// Where `qeval tune` writes a device's table by default (in cl_cache_dir(); "" when caching is off).
std::string default_tuning_path(const DeviceInfo& info);

// Finds and parses the table for a device (the lookup above). Notes and warnings go to `warn`; the "no table"
// note only once per device per process.
TuningTable load_tuning_table(const DeviceInfo& info, std::ostream& warn);

}  // namespace qeval::gpu
