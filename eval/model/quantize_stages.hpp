// eval/model/quantize_stages.hpp — the stages of quantize_model (quantize_model.hpp), each a function of its own so
// that it can be read and tested alone. quantize_model runs them in this order:
//   1. plan      resolve_plan: every linear layer's schemes, what their traits say they need, the backend's support
//   2. capture   Calibrator: the calibration windows' hidden state, block by block; the inputs of each input group
//   3. migrate   decide_migrations: per-input-channel factors (SmoothQuant, AWQ) per group, folded where possible
//   4. apply     install_layer: quantize once, dequantize, fingerprint, hand the layer to the model's backend
// (The fifth, allocation — allocate_mixed — runs before them, from model_run, when a wrapper scheme needs it.)
// Everything here dispatches on schemes::SchemeTraits; no scheme is known by name.
#pragma once

#include <ATen/core/Tensor.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eval/model/ppl.hpp"
#include "eval/model/quantize_model.hpp"

namespace qeval::model::stages {

// ---- 1. plan ------------------------------------------------------------------------------------------------

enum class Role : uint8_t { none, weight, linear };  // what the layer's weight-side scheme does

struct LayerSlot {
  std::string name;
  LinearLayer* layer = nullptr;
  int64_t block = -1;  // −1: the output head
  Role role = Role::none;
  std::shared_ptr<const schemes::Scheme> ws;  // weight or linear scheme (null: fp weights)
  std::shared_ptr<const schemes::Scheme> as;  // activation scheme (null: fp inputs)
  schemes::CalibrationNeeds w_needs, a_needs;  // what each reads (empty for an absent scheme)
  bool w_migrates = false;                     // ws decides migration factors (input_channel_scales)
  bool reads_statistics() const { return w_needs.any_statistics() || a_needs.any_statistics(); }
};

// One scheme object per distinct config (so a scheme's run statistics cover every layer it quantizes).
class SchemeSet {
 public:
  explicit SchemeSet(SchemeFactory f);
  std::shared_ptr<const schemes::Scheme> get(const schemes::SchemeConfig& c);
  std::vector<std::shared_ptr<const schemes::Scheme>> all() const;

 private:
  SchemeFactory f_;
  std::vector<std::pair<schemes::SchemeConfig, std::shared_ptr<const schemes::Scheme>>> made_;
};
SchemeFactory default_factory();  // schemes::make_scheme

struct ResolvedPlan {
  std::vector<LayerSlot> slots;         // forward order
  std::map<std::string, size_t> index;  // layer name → slot
  LayerSlot& at(const std::string& layer);
  const LayerSlot& at(const std::string& layer) const;
  bool needs_capture() const;  // some slot reads calibration statistics
  std::string label() const;   // "quantize gptq": the progress label, naming the schemes that read statistics
};

// Throws std::invalid_argument when `m` carries a plan or a quantized layer: quantize a fresh LlamaModel.
void require_fresh(const LlamaModel& m);
// Resolves `plan` on every layer of `m`: roles from the schemes' targets, their calibration needs, the backend's
// support (LinearBackend::supports). Every plan error is thrown here, before anything is quantized; `calibrated`:
// calibration windows are available (a scheme that reads statistics needs them).
ResolvedPlan resolve_plan(const LlamaModel& m, const QuantPlan& plan, SchemeSet& set, bool calibrated);

// Installs the KV-cache scheme's hook (fake_quantize_kv on every sequence's keys and values, inside attention);
// returns its on/off switch. Throws when the scheme does not quantize a KV cache (or activations).
std::shared_ptr<std::atomic<bool>> install_kv_hook(LlamaModel& m, std::shared_ptr<const schemes::Scheme> kv);

// ---- 2. capture ---------------------------------------------------------------------------------------------

// What one input group's capture records: the union of its members' needs.
struct CaptureNeeds {
  bool any = false;      // some member reads statistics (max|x|, mean|x| are then always kept: cheap)
  bool hessian = false;  // Σxᵀx
  bool rows = false;     // up to max_rows raw rows
};
CaptureNeeds capture_needs(const std::vector<const LayerSlot*>& members);

// The calibration windows' hidden state [count, length, d_model], pushed through the model block by block.
class Calibrator {
 public:
  // Embeds the windows (o.batch at a time). `kv_enabled` (may be null): the KV hook's switch, off during a
  // non-sequential capture pass (its outputs are the fp prefix).
  Calibrator(LlamaModel& m, const CalibrationWindows& calib, const QuantizeOptions& o,
             std::shared_ptr<std::atomic<bool>> kv_enabled);
  // Runs block `l` over the hidden state recording the inputs of the layers in `reps` (an input group's
  // representative → what to record). Returns their calibrations, keyed like `reps`; each is passed to
  // o.on_capture. Without `reps` and in sequential mode the block is not run. The calibrations' `inputs` point
  // into this Calibrator: valid until the next capture, capture_head or propagate.
  std::map<std::string, schemes::Calibration> capture(int64_t l, const std::map<std::string, CaptureNeeds>& reps);
  // The next block's input: block l's output with block l as installed (sequential), else the capture pass's.
  void propagate(int64_t l);
  // The output head's input (final norm of the last hidden state), captured with `needs` (inputs valid as above).
  schemes::Calibration capture_head(const CaptureNeeds& needs);
  int64_t tokens() const { return n_ * t_; }
  double embed_s = 0, capture_s = 0, propagate_s = 0;

 private:
  std::unique_ptr<CalibrationCapture> recorder(const std::string& layer, const CaptureNeeds& n) const;
  void run_block(int64_t l, bool keep_output);

  LlamaModel& m_;
  const QuantizeOptions& o_;
  std::map<std::string, std::unique_ptr<CalibrationCapture>> caps_;  // the latest captures (own their rows)
  std::shared_ptr<std::atomic<bool>> kv_;
  int64_t n_ = 0, t_ = 0, b_ = 1;
  at::Tensor hidden_, next_;
};

// ---- 3. migrate ---------------------------------------------------------------------------------------------

struct Migration {
  std::vector<float> s;  // per input feature
  bool folded = false;   // folded into the producer (1/s) and the members' columns (s)
  std::string producer;  // "blk.3.attn_norm", "blk.3.ffn_up rows" when folded
};
struct BlockMigrations {
  std::map<std::string, Migration> by_layer;             // the layers that carry one
  std::map<InputGroup, std::vector<float>> runtime_inv;  // 1/s of each folded group: its inputs' run-time factor
};
// Block l's migrations from its groups' captures (keyed by representative): when the group's quantized members share
// scheme id and params, one set of factors from the first of them for all, folded when group_foldable(); otherwise
// per layer, unfolded. Only schemes whose traits say they migrate are asked.
BlockMigrations decide_migrations(LlamaModel& m, int64_t l, const ResolvedPlan& plan,
                                  const std::map<std::string, schemes::Calibration>& captured);
// The output head's: factors for its own weight, never folded (tied embeddings would change the lookup).
std::optional<Migration> head_migration(const LayerSlot& head, const schemes::Calibration& c);

// ---- 4. apply -----------------------------------------------------------------------------------------------

// The calibration a layer is quantized with: its group's capture (or only its name), its migration.
schemes::Calibration layer_calibration(const std::string& layer, const schemes::Calibration* captured,
                                       const Migration* mig);
// Quantizes and installs one layer with calibration `c`: a weight or linear scheme quantizes the weight once (its
// dequantized codes become `effective`, or — a weight scheme, compact_weights() — the codes are kept as
// LinearLayer::codes and dequantized at use; a linear scheme keeps `c`, stripped, for every forward); a calibrated
// activation scheme runs calibrate() once on the input as the layer sees it at run time (scaled by `runtime_inv_s`,
// 1/s, after a fold); then the model's backend prepares the layer. Returns the layer's record (fingerprint included).
// Whether quantized layers are held as codes (QEVAL_QUANT_WEIGHTS unset or "codes", the default) or as a dequantized
// fp32 copy ("fp32", the former behaviour; results are bit-identical). Throws for another value.
bool compact_weights();
LayerQuantInfo install_layer(LlamaModel& m, const LayerSlot& s, const schemes::Calibration& c,
                             const std::vector<float>* runtime_inv_s, const Migration* mig);

// ---- 5. allocate (allocate_mixed, before the others) ----------------------------------------------------------

// The candidates {bits, group size}: the spec's, or {bits − 1, bits} at the wrapper's group size.
std::vector<std::pair<int, int64_t>> mixed_candidates(const MixedSpec& spec, const quant::QuantParams& p);
// An evaluator over the first k calibration windows (their BOS already in place), scoring as the protocol does.
Evaluator sensitivity_evaluator(const CalibrationWindows& calib, int64_t k);
// The metric ("kl": mean KL to fp, "ppl": Δppl, "nll": Δ mean NLL) with ONLY `layer` quantized by `sch` (through
// the model's backend), against `ref` (the fp model on ev's windows). `m` must be fp and is left fp, also on errors.
double layer_sensitivity(LlamaModel& m, const std::string& layer, std::shared_ptr<const schemes::Scheme> sch,
                         const Evaluator& ev, const FpReference& ref, const std::string& metric);
// Writes the allocation JSON atomically (write, then rename) to `path`, or when it is empty to
// <work_dir>/mixed-<xxh64 of the content>.json (the same allocation → the same file); returns the path.
std::string write_allocation(const nlohmann::json& allocation, const std::string& path, const std::string& work_dir);

}  // namespace qeval::model::stages
