// eval/model/hooks.hpp — what the forward's hooks do: the QuantPlan (which scheme quantizes which linear
// layer) and calibration capture (inputs of chosen layers → schemes::Calibration).
//
// Layer names are GGUF tensor names without ".weight": "blk.{i}.attn_q", "blk.{i}.attn_k", "blk.{i}.attn_v",
// "blk.{i}.attn_output", "blk.{i}.ffn_gate", "blk.{i}.ffn_up", "blk.{i}.ffn_down", and "output" (lm_head).
//
// QuantPlan resolution for a layer: start from the plan's defaults (weight, activation), then apply every
// override whose glob matches the layer name, in order (later overrides refine earlier ones):
//   skip: true            → no weight and no activation quantization for that layer
//   weight / activation   → replace that part (a SchemeConfig), or "skip" to switch only that part off
// Glob: '*' matches any run of characters (including '.'), '?' one character; the whole name must match.
// Example: {"weight": rtn int4 g128, "overrides": [{"pattern": "output", "skip": true},
//                                                 {"pattern": "blk.*.ffn_down", "weight": rtn int8 per-row}]}
// The KV-cache scheme (kv_cache) applies to every layer's keys and values (see llama.hpp).
//
// JSON form (configs/, reports):
//   {"weight": {"scheme": "rtn", "params": {...QuantParams JSON...}, "options": {"k": "v"}} | null,
//    "activation": {...} | null, "kv_cache": {...} | null,
//    "overrides": [{"pattern": "output", "skip": true}, {"pattern": "blk.*.ffn_down", "weight": {...}},
//                  {"pattern": "blk.0.*", "activation": "skip"}]}
// "params" is quant/params_json.hpp's form (every field written, so a report reproduces its run); when
// reading, missing params keys keep the scheme's defaults from schemes.def.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "schemes/scheme.hpp"

namespace qeval::model {

// Whole-string glob match: '*' any run (incl. empty), '?' exactly one character. No character classes.
bool glob_match(const std::string& pattern, const std::string& name);

struct LayerOverride {
  std::string pattern;  // glob over layer names
  bool skip = false;    // both weight and activation stay fp
  // Set → replaces the plan's scheme for that part. skip_weight / skip_activation switch one part off.
  std::optional<schemes::SchemeConfig> weight;
  std::optional<schemes::SchemeConfig> activation;
  bool skip_weight = false;
  bool skip_activation = false;
};

struct QuantPlan {
  std::optional<schemes::SchemeConfig> weight;      // default weight scheme for every linear layer
  std::optional<schemes::SchemeConfig> activation;  // default activation scheme for every linear layer
  std::optional<schemes::SchemeConfig> kv_cache;    // keys/values inside attention
  std::vector<LayerOverride> overrides;

  struct Resolved {
    std::optional<schemes::SchemeConfig> weight;
    std::optional<schemes::SchemeConfig> activation;
  };
  Resolved resolve(const std::string& layer) const;
  // Throws std::invalid_argument when an override's pattern matches none of `layers` (a typo must not silently
  // quantize nothing).
  void check_overrides(const std::vector<std::string>& layers) const;
  bool empty() const { return !weight && !activation && !kv_cache && overrides.empty(); }

  nlohmann::json to_json() const;
  // Throws std::invalid_argument naming the key and the accepted form.
  static QuantPlan from_json(const nlohmann::json& j);
};

// SchemeConfig ↔ JSON (all QuantParams fields explicit).
nlohmann::json scheme_config_to_json(const schemes::SchemeConfig& c);
schemes::SchemeConfig scheme_config_from_json(const nlohmann::json& j);

// What to capture.
struct CaptureOptions {
  std::vector<std::string> layers;  // globs; a layer is captured when any matches
  bool keep_inputs = true;          // keep the input rows (Calibration::inputs)
  int64_t max_rows = -1;            // per layer, rows kept in `inputs` (statistics still see every row); −1: all
  bool hessian = true;              // Σ xᵀx in double → H = 2·XᵀX / n
  bool act_stats = true;            // per-feature absmax and absmean
};

// Records the inputs of chosen linear layers during forwards (LlamaModel::set_capture). For windows
// [B, T] every token of every window is one row (causal LM: all positions are real inputs).
// Statistics are accumulated in double in row order, so they do not depend on the thread count.
class CalibrationCapture {
 public:
  explicit CalibrationCapture(CaptureOptions opt);
  CalibrationCapture(const CalibrationCapture&) = delete;
  CalibrationCapture& operator=(const CalibrationCapture&) = delete;

  const CaptureOptions& options() const { return opt_; }
  bool wants(const std::string& layer) const;
  // x: row-major [rows, cols] fp32 (contiguous); the layer's input as the layer sees it.
  void record(const std::string& layer, const float* x, int64_t rows, int64_t cols);

  std::vector<std::string> layers() const;  // captured so far, sorted
  int64_t rows_seen(const std::string& layer) const;
  // A Calibration for `layer` (hessian = 2·XᵀX/n, absmax, absmean, inputs view). The view points into
  // this object: valid while it lives and until the next record() for that layer.
  schemes::Calibration calibration(const std::string& layer) const;
  // All captured layers.
  std::map<std::string, schemes::Calibration> calibrations() const;

 private:
  struct Layer {
    int64_t cols = 0;
    int64_t n = 0;                 // rows seen
    std::vector<float> inputs;     // kept rows, row-major
    int64_t kept = 0;
    std::vector<double> xtx;       // cols × cols, Σ xᵀx (full matrix)
    std::vector<double> absmax;    // per feature
    std::vector<double> abssum;    // per feature Σ|x|
  };
  const Layer& get(const std::string& layer) const;

  CaptureOptions opt_;
  std::map<std::string, Layer> layers_;
};

}  // namespace qeval::model
