// eval/sweep/axes.hpp — the scheme axes every run kind shares, parsed ONCE from a sweep entry into typed values:
// scheme × bits × group size × mapping × range × clip ratio × percentile × rounding × non-finite policy × partial
// groups × scheme options ("key" for every scheme, "scheme.key" for one). Each value keeps the JSON path it came
// from, so every error — here or in a run kind — names it ("sweeps[2].group_sizes[1]: group size 100 ...").
//
//   entry JSON ──parse_scheme_axes──▶ SchemeAxes ──scheme_points(scheme)──▶ [SchemePoint {SchemeConfig, paths}]
//
// The points are the cross product for one scheme in a fixed order (bits, group sizes, mappings, ranges, clip
// ratios, percentiles, roundings, non-finite, partial groups, option values), each a schemes::SchemeConfig
// (schemes::default_config(id) with the axis values set) validated by schemes::make_scheme. An absent axis keeps
// the scheme's default (default_config: its bits and group size, symmetric, minmax, nearest_even, ...).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "quant/affine.hpp"
#include "schemes/scheme.hpp"

namespace qeval::sweep {

// One value of an axis and where it came from ("sweeps[0].bits[1]", "sweeps[0].mappings (default)").
template <class T>
struct AxisValue {
  T value;
  std::string path;
  bool is_default() const { return path.find("(default") != std::string::npos; }
};

// options: {"key": value-or-list} — every value of a key is run; "scheme.key" applies to that scheme only.
struct OptionAxis {
  std::string scheme;               // "" = every scheme of the entry
  std::string key;
  std::vector<std::string> values;  // numbers and booleans as text ("3", "0.5", "true")
  std::string path;                 // "sweeps[0].options.fp4.codebook"
  bool applies_to(const std::string& id) const { return scheme.empty() || scheme == id; }
};

struct SchemeAxes {
  std::vector<AxisValue<std::string>> schemes;               // registered ids; default ["rtn"]
  std::vector<AxisValue<int>> bits;                          // empty: each scheme's default
  std::vector<AxisValue<int64_t>> group_sizes;               // empty: each scheme's default (0 row, −1 tensor)
  std::vector<AxisValue<quant::Mapping>> mappings;           // empty: the scheme's default (symmetric)
  std::vector<AxisValue<quant::RangeMethod>> ranges;         // empty below: the scheme's default
  std::vector<AxisValue<double>> clip_ratios;
  std::vector<AxisValue<double>> percentiles;
  std::vector<AxisValue<quant::Rounding>> roundings;
  std::vector<AxisValue<quant::NonFinitePolicy>> non_finite;
  std::vector<AxisValue<bool>> partial_groups;
  std::vector<OptionAxis> options;
};

// The config keys parse_scheme_axes reads: kSchemeKeys always, kQuantDetailKeys for the kinds that take them
// (tensor runs; model runs keep each scheme's default range, rounding, ...).
extern const std::vector<std::string> kSchemeKeys;       // schemes bits group_sizes mappings partial_groups options
extern const std::vector<std::string> kQuantDetailKeys;  // ranges clip_ratios percentiles roundings non_finite

// Parses and validates the axes of sweeps[i] (`path` = "sweeps[i]"). Throws ConfigError naming the JSON path.
// `detail`: also read kQuantDetailKeys.
SchemeAxes parse_scheme_axes(const nlohmann::json& entry, const std::string& path, bool detail);

// One value per axis, for one scheme: the SchemeConfig and the JSON paths of the axis values that made it.
struct SchemePoint {
  schemes::SchemeConfig config;
  std::vector<std::string> paths;  // the given axis values (defaults left out), scheme first
  std::string group_path;          // where a group-size problem points (the group size, or the scheme's default)
};

// The cross product for `scheme` (one of a.schemes), each config validated by schemes::make_scheme; a combination
// the scheme refuses is a ConfigError at `entry_path` naming the config and its axis values.
std::vector<SchemePoint> scheme_points(const SchemeAxes& a, const AxisValue<std::string>& scheme,
                                       const std::string& entry_path);

// Command-line spellings, shared with the options front end: "row"/"per-row" = 0, "tensor"/"per-tensor" = −1.
bool parse_group_word(const std::string& s, int64_t* g);
bool parse_mapping_word(const std::string& s, quant::Mapping* m);  // "sym"/"symmetric", "asym"/"asymmetric"
std::string mapping_word(quant::Mapping m);  // "sym", "asym"

}  // namespace qeval::sweep
