// gpu/tuning.cpp — reading, checking and finding the per-device tuning table (gpu/tuning.hpp).
#include "gpu/tuning.hpp"

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>

#include "gpu/embedded_sources.hpp"
#include "gpu/fnv.hpp"

namespace qeval::gpu {

namespace {

bool is_quantize_class(ShapeClass c) {
  return c == ShapeClass::quantize_per_token || c == ShapeClass::quantize_grouped;
}

// Adds one class entry of a table to `t`, or explains on `warn` why it is left out.
void add_entry(TuningTable& t, ShapeClass c, const nlohmann::json& e, const DeviceInfo& info, std::ostream& warn) {
  const std::string where = t.source + ", class " + to_string(c);
  if (!e.is_object()) throw std::invalid_argument(where + ": expected {\"variant\": {...}, \"verified\": true, ...}");
  if (!e.contains("variant") || !e.value("verified", false)) {
    warn << "qeval: OpenCL tuning table " << where << ": no verified variant; using the safe default\n";
    return;
  }
  std::string unfit;
  if (is_quantize_class(c)) {
    const QuantizeVariant v = quantize_variant_from_json(e["variant"]);
    unfit = variant_unfit(v, info);
    if (unfit.empty()) t.quantize[c] = v;
  } else {
    const GemmVariant v = gemm_variant_from_json(e["variant"]);
    unfit = variant_unfit(v, info);
    if (unfit.empty()) t.gemm[c] = v;
  }
  if (!unfit.empty())
    warn << "qeval: OpenCL tuning table " << where << ": " << unfit << " on " << info.name
         << "; using the safe default\n";
}

nlohmann::json read_table_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::invalid_argument("cannot open it");
  try {
    return nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("not JSON: ") + e.what());
  }
}

// The table of a file, or the empty table with a warning naming the file (corrupt, wrong schema, ...).
TuningTable table_from_file(const std::string& path, const DeviceInfo& info, std::ostream& warn) {
  try {
    return parse_tuning_table(read_table_file(path), path, info, warn);
  } catch (const std::exception& e) {
    warn << "qeval: ignoring OpenCL tuning table " << path << ": " << e.what() << "; using safe kernel defaults\n";
    TuningTable none;
    none.source = "";
    return none;
  }
}

// The committed table for this device: same name and driver, else same name (noted).
std::optional<TuningTable> embedded_table(const DeviceInfo& info, std::ostream& warn) {
  size_t n = 0;
  const EmbeddedSource* tabs = embedded_tuning_tables(&n);
  const EmbeddedSource* name_only = nullptr;
  nlohmann::json name_only_json;
  for (size_t i = 0; i < n; ++i) {
    nlohmann::json j = nlohmann::json::parse(std::string(tabs[i].text, tabs[i].size), nullptr, false);
    if (j.is_discarded() || j.value("device", "") != info.name) continue;
    if (j.value("driver", "") == info.driver_version)
      return parse_tuning_table(j, std::string("embedded:gpu/tuning/") + tabs[i].name, info, warn);
    if (!name_only) {
      name_only = &tabs[i];
      name_only_json = std::move(j);
    }
  }
  if (!name_only) return std::nullopt;
  warn << "qeval: OpenCL tuning table gpu/tuning/" << name_only->name << " was made with driver "
       << name_only_json.value("driver", "?") << "; " << info.name << " runs driver " << info.driver_version
       << " (run `qeval tune` for a table of this driver)\n";
  return parse_tuning_table(name_only_json, std::string("embedded:gpu/tuning/") + name_only->name, info, warn);
}

void note_no_table_once(const DeviceInfo& info, std::ostream& warn) {
  static std::mutex mu;
  static std::set<std::string> noted;
  std::lock_guard<std::mutex> lk(mu);
  if (!noted.insert(info.platform_name + "|" + info.name + "|" + info.driver_version).second) return;
  warn << "qeval: no OpenCL tuning table for " << info.name << " (driver " << info.driver_version
       << "); safe kernel defaults (`qeval tune` makes one)\n";
}

}  // namespace

std::optional<QuantizeVariant> TuningTable::quantize_for(ShapeClass c) const {
  auto it = quantize.find(c);
  return it == quantize.end() ? std::nullopt : std::optional<QuantizeVariant>(it->second);
}

std::optional<GemmVariant> TuningTable::gemm_for(ShapeClass c) const {
  auto it = gemm.find(c);
  return it == gemm.end() ? std::nullopt : std::optional<GemmVariant>(it->second);
}

TuningTable parse_tuning_table(const nlohmann::json& j, const std::string& source, const DeviceInfo& info,
                               std::ostream& warn) {
  if (!j.is_object() || j.value("schema", "") != kTuningSchema)
    throw std::invalid_argument(std::string("not a tuning table (\"schema\" must be \"") + kTuningSchema + "\")");
  TuningTable t;
  t.source = source;
  t.device = j.value("device", "");
  t.platform = j.value("platform", "");
  t.driver = j.value("driver", "");
  if (t.device != info.name)
    throw std::invalid_argument("made for device '" + t.device + "', not '" + info.name + "'");
  if (!j.contains("classes") || !j["classes"].is_object()) throw std::invalid_argument("no \"classes\" object");
  for (const auto& [name, entry] : j["classes"].items()) add_entry(t, parse_shape_class(name), entry, info, warn);
  return t;
}

std::string default_tuning_path(const DeviceInfo& info) {
  const std::string dir = cl_cache_dir();
  if (dir.empty()) return "";
  return dir + "/tuning-" + hex64(fnv1a(info.platform_name + "|" + info.name + "|" + info.driver_version)) + ".json";
}

TuningTable load_tuning_table(const DeviceInfo& info, std::ostream& warn) {
  if (const char* e = std::getenv("QEVAL_CL_TUNING"); e && *e) {
    if (std::string(e) == "off") return TuningTable{};
    return table_from_file(e, info, warn);
  }
  const std::string cached = default_tuning_path(info);
  if (!cached.empty() && std::ifstream(cached)) return table_from_file(cached, info, warn);
  try {
    if (std::optional<TuningTable> t = embedded_table(info, warn)) return *t;
  } catch (const std::exception& e) {
    warn << "qeval: ignoring a committed OpenCL tuning table for " << info.name << ": " << e.what() << "\n";
  }
  note_no_table_once(info, warn);
  return TuningTable{};
}

}  // namespace qeval::gpu
