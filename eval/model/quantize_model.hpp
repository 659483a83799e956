// eval/model/quantize_model.hpp — model-level integration of the calibration schemes: turns an fp LlamaModel, a
// QuantPlan naming any registered scheme (weights / activations / KV cache / whole linear products) and
// calibration windows into the quantized model the protocol evaluates, with per-layer statistics.
//
// Calibration data (make_calibration_windows): a fixed-seed sample of `count` distinct non-overlapping windows of
// `length` tokens from the first `text_bytes` of a calibration text (default data/sotu/sotu.txt, the first 2 MB cut
// back to a line end: 1,908,739 bytes, the 57 addresses of 1790–1846 = 368,175 SmolLM2 tokens = 719 windows of 512
// to draw 128 from), tokenized with the model's tokenizer; never the evaluation text (same SHA-256 → error). BOS as the protocol resolves it (replace_first: each window's first token
// becomes BOS). The record (text, hash, bytes, tokens, windows drawn, seed, token hash) goes into every result.
//
// The pipeline (quantize_model), block by block as GPTQ's and AWQ's reference code does — each stage a function of
// quantize_stages.hpp, deciding from the schemes' traits (schemes::SchemeTraits), never from their names:
//   hidden = embed(calibration windows)                       [count, length, d_model], fp32 (128·512·576·4 B = 151 MB)
//   for each block l:
//     1. capture pass: forward_block(l, hidden) with block l still fp, recording the inputs of one representative
//        per input group — attn_q (for q, k, v: they read the same attn_norm output), attn_output, ffn_gate (gate, up),
//        ffn_down — through the linear observer: Σxᵀx in double (the Hessian 2·XᵀX/n), per-feature max|x| and mean|x|
//        (streaming: memory O(in²) per group whatever the token count), and at most `max_rows` raw rows (the first
//        rows; windows are a random sample, so these are too) only for groups whose schemes' traits ask for rows
//        (SmoothQuant's α search, static activations other than symmetric min/max). AWQ needs no rows: its α grid
//        and clip search score ‖X·(W − Ŵ)ᵀ‖² = tr(E·XᵀX·Eᵀ) exactly over every calibration token from the Gram matrix
//        (schemes/common OutputError) — better than a row sample, at the same O(in²) memory.
//     2. migration (AWQ, SmoothQuant): per input group whose quantized members share one scheme id and QuantParams,
//        s = lead->input_channel_scales(calibration, weights of every member) once (lead = first member in forward
//        order, e.g. attn_q with AWQ's clip=false override), stored in Calibration::migration_scales. Folded where a
//        preceding op exists (migration_folded = true): 1/s into the RMSNorm weight (q,k,v ← attn_norm; gate,up ←
//        ffn_norm) or into the rows of the previous linear (o ← v when n_heads == n_kv_heads; down ← up), s into every
//        member's columns — exact in full precision. Not folded (the scheme applies s itself: AWQ's quantize() returns
//        col_scale, SmoothQuant's linear() scales per call): o under GQA (v's output is narrower than o's input) and
//        the output head (tied embeddings would change the lookup). Groups whose quantized members differ get
//        per-layer scales, unfolded; GPTQ (no input_channel_scales) never receives migration scales.
//     3. quantize each member (then handed to the model's LinearBackend, LlamaModel::prepare_linear):
//        weight schemes → scheme->quantize(W, calibration) once, dequantized into `effective`;
//        Target::linear schemes (SmoothQuant, LLM.int8) → LinearLayer::linear_scheme with a stored Calibration
//        (layer_name, migration) so every forward routes the product through scheme->linear(); activation schemes
//        that need calibration (static) → calibrate() once per layer, result kept in LinearLayer::act_calib (its
//        statistics describe the input as the layer sees it at run time, i.e. X·diag(1/s) after a fold).
//     4. sequential (default; GPTQ's and AWQ's papers): hidden = forward_block(l, hidden) with block l quantized
//        (weights, activations, linear schemes, KV cache), so block l+1 is calibrated on the quantized prefix.
//        sequential = false: the fp outputs of the capture pass (llm-awq's reference behaviour).
//   output head: captured from final_norm(hidden) when its scheme needs calibration.
// Mixture of experts (eval/model/moe.hpp): every expert matrix is its own layer; its input group captures only the
// tokens routed to it (block_groups), so GPTQ / AWQ / static activations see that expert's tokens; the router stays
// fp (it is not a linear layer of the plan). An expert the router sent no calibration token, under a scheme that reads
// calibration, is refused with one line naming the layer and the fix (more windows, or a calibration-free override
// for it) — never quantized from an empty Hessian, never silently switched to another scheme.
// KV cache (plan.kv_cache): a KvHook calls scheme->fake_quantize_kv(key, K, K) and (value, V, V) in place on each
// sequence [T, n_kv_heads·head_dim] of the batch (T = LlamaModel::current_seq_len()), inside attention, from the
// start (so calibration of later blocks sees it). It replaces any KV hook set before.
// Mixed precision (allocate_mixed): per-layer sensitivity — mean KL to fp (or Δppl, or Δ mean NLL) on the first
// `windows` calibration windows with ONLY that layer quantized by the candidate — then schemes::allocate_bits for a
// target average bits/weight (scale and zero-point overhead counted), the allocation JSON written, and the plan's
// `mixed` configs pointed at it (option allocation=<file>).
// Layers a plan leaves alone stay fp. The model is modified in place (folds change its fp weights; the forward stays
// equal to the fp model's in exact arithmetic): quantize a fresh LlamaModel per run.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/model/hooks.hpp"
#include "eval/model/llama.hpp"
#include "eval/model/protocol.hpp"
#include "eval/model/tokens.hpp"
#include "schemes/scheme.hpp"

namespace qeval::model {

// ---- calibration data ---------------------------------------------------------------------------------------

struct CalibrationSpec {
  std::string text = "data/sotu/sotu.txt";  // relative to the project root unless absolute
  int64_t text_bytes = 2000000;  // the first part of the text windows come from (cut back to a line end); ≤ 0: all
  int64_t count = 128;           // windows
  int64_t length = -1;           // tokens per window; −1: the protocol's n_ctx (512 without a protocol)
  uint64_t seed = 0x5EEDCA1B;    // which windows
  int64_t max_rows = 4096;       // raw input rows kept per input group, for schemes that read rows (see above)
  int64_t batch = 8;             // windows per block forward
  bool sequential = true;        // block l calibrated on the quantized prefix (else on the fp prefix)

  nlohmann::json to_json() const;
  // Strict: unknown keys and bad values throw std::invalid_argument naming the key.
  static CalibrationSpec from_json(const nlohmann::json& j);
};

struct CalibrationWindows {
  int64_t count = 0, length = 0;
  std::vector<int32_t> tokens;   // [count, length], row-major
  std::vector<int32_t> targets;  // [count, length − 1 − length/2]: the protocol's scored tokens of each window
  std::vector<int64_t> window_ids;  // which windows of the text (ascending)
  nlohmann::json record;         // what the results record: text, sha256, bytes, tokens, windows, seed, hash, ...
};

// Reads and tokenizes the first spec.text_bytes of spec.text (relative to `root`), cuts the ids into non-overlapping
// windows of `length` tokens (make_windows of a protocol with n_ctx = length over that text, so BOS is handled as
// `bos` says; bos must be resolved, not auto) and draws spec.count distinct windows with qeval::Rng(spec.seed)
// (partial Fisher–Yates), sorted. `forbidden_sha256` (the evaluation text's hash) must differ from the text's,
// unless the part read (the first text_bytes, cut at a line end) ends at or before `eval_begin_byte` (the protocol's
// text_begin_byte: the evaluation reads that file only from there on).
// Throws std::invalid_argument naming the text when it is too short for `count` windows (and the fix).
CalibrationWindows make_calibration_windows(const CalibrationSpec& spec, int64_t length, const TokenSource& ts,
                                            BosMode bos, const std::string& root,
                                            const std::string& forbidden_sha256 = "", int64_t eval_begin_byte = 0);
// The same from ids in hand (tests; `source` names them in the record). bos_id is needed for replace_first.
CalibrationWindows calibration_windows_from_ids(const std::vector<int32_t>& ids, const CalibrationSpec& spec,
                                                int64_t length, BosMode bos, int64_t bos_id,
                                                const std::string& source = "ids");

// ---- the quantizer ------------------------------------------------------------------------------------------

// Progress bar with ETA on stderr: "\r"-updated when stderr is a terminal, one plain line per step otherwise.
class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled);
  void step(int64_t done, const std::string& note = "");
  void finish(const std::string& note = "");
  double seconds() const;

 private:
  std::string label_;
  int64_t total_;
  bool enabled_, tty_;
  double t0_;
};

using SchemeFactory = std::function<std::shared_ptr<const schemes::Scheme>(const schemes::SchemeConfig&)>;

struct QuantizeOptions {
  int threads = 0;          // ATen threads during quantization (≤ 0: leave as is)
  bool progress = true;     // progress bar on stderr
  int64_t max_rows = 4096;  // CalibrationSpec::max_rows
  int64_t batch = 8;        // CalibrationSpec::batch
  bool sequential = true;   // CalibrationSpec::sequential
  // Builds the schemes (default schemes::make_scheme). Tests wrap schemes to observe calls.
  SchemeFactory make_scheme;
  // Called with every captured calibration (as captured: before migration), keyed by the representative layer
  // (blk.l.attn_q, blk.l.attn_output, blk.l.ffn_gate, blk.l.ffn_down, output).
  std::function<void(const std::string& layer, const schemes::Calibration&)> on_capture;
};

struct LayerQuantInfo {
  std::string layer;
  std::string role;          // "weight" (quantized weights), "linear" (a Target::linear scheme), "act" (only
                             // activations quantized)
  std::string scheme;        // label of the weight / linear scheme ("" for act-only layers)
  std::string act_scheme;    // label, "" when the inputs stay fp
  int64_t rows = 0, cols = 0;
  // Storage: QuantizedMatrix::bits_per_weight (codes + fp16 scales + zero points) + 16 bits per column when the
  // scheme stores col_scale (AWQ / SmoothQuant unfolded): 16·cols / (rows·cols) = 16/rows.
  double bits_per_weight = 32.0;
  double weight_sqnr_db = 0.0;  // effective (dequantized) vs the weight it quantized (after any fold)
  std::string migration;        // "", "folded into blk.3.attn_norm", "folded into blk.3.ffn_up rows", "unfolded"
  std::vector<float> migration_scales;  // kept for tests/reports (not written to JSON; see migration_stats)
  double seconds = 0.0;         // scheme->quantize (+ calibrate) time for this layer
  // Content hash of the quantized layer (eval/model/fingerprint.hpp): codes, scales, zero points, permutation,
  // column scales, migration factors, frozen activation parameters. "" for layers whose inputs are quantized
  // dynamically and whose weights stay fp (nothing is stored).
  std::string fingerprint;
  // A MoE expert's layer: the calibration tokens the router sent it (−1: not an expert, or nothing was captured).
  int64_t calibration_tokens = -1;
  nlohmann::json to_json() const;
};

// What quantize_model leaves besides the modified model.
struct QuantizedModel {
  std::vector<LayerQuantInfo> layers;                       // forward order
  std::vector<std::shared_ptr<const schemes::Scheme>> schemes;  // every scheme installed (for run_stats)
  std::shared_ptr<std::atomic<bool>> kv_enabled;            // the KV hook's switch (null: no KV scheme)
  nlohmann::json timings;       // seconds: embed, capture, search, quantize, propagate, total
  int64_t calibration_tokens = 0;
  // MoE: {"blk.{i}": [calibration tokens routed to each expert]} when calibration was captured for the experts.
  nlohmann::json expert_tokens = nlohmann::json::object();

  // Parameter-weighted mean over the layers with quantized weights (weight or linear role): Σ bits·n / Σ n.
  double bits_per_weight() const;
  int64_t quantized_params() const;
  // {scheme id: {layer: {stat: value}}} from every installed scheme's run_stats().
  nlohmann::json run_stats() const;
  nlohmann::json layers_json() const;
  // {"model": hash over (layer, fingerprint) in forward order, "layers": {layer: fingerprint}} over the layers with
  // a fingerprint — what the CI gate compares (docs/regression-gate.md).
  nlohmann::json fingerprint_json() const;
};

// Quantizes `m` (full precision, no plan or earlier quantize_model on it; throws std::invalid_argument otherwise)
// by `plan`. A Target::linear scheme (smoothquant, llm_int8) is named where a weight scheme goes (plan.weight or an
// override's weight): it then owns the layer's product. `calib` may be null when no scheme needs calibration data
// (else std::invalid_argument names the layer and scheme). Keeps the schemes alive in the result; the model must
// not be moved while its KV hook is installed.
QuantizedModel quantize_model(LlamaModel& m, const QuantPlan& plan, const CalibrationWindows* calib,
                              const QuantizeOptions& o = {});

// ---- plan queries: what the plan's schemes need, from their traits (schemes::SchemeTraits) -------------------------

// The traits of a config's scheme (builds it, so a bad config throws make_scheme's error).
schemes::SchemeTraits traits_of(const schemes::SchemeConfig& c);
// A wrapper scheme (mixed precision) whose per-layer allocation has yet to be measured (allocate_mixed).
bool needs_allocation(const schemes::SchemeConfig& c);
bool plan_needs_allocation(const QuantPlan& plan);
// Whether a scheme the plan resolves to on any of `layers` reads calibration data or needs an allocation.
bool plan_needs_calibration(const QuantPlan& plan, const std::vector<std::string>& layers);
// The plan with the reference overrides its default weight scheme declares (SchemeTraits::reference_overrides)
// prepended to its own overrides, which therefore still refine them.
QuantPlan with_reference_overrides(QuantPlan plan);
// The plan with every config that needs an allocation given `path` as its allocation file.
QuantPlan with_allocation(QuantPlan plan, const std::string& path);

// ---- folding (exposed for tests) ------------------------------------------------------------------------------

// The four input groups of a block that can carry a migration.
enum class InputGroup : uint8_t {
  attn_in,   // attn_q, attn_k, attn_v ← attn_norm
  attn_out,  // attn_output ← attn_v rows (only when n_heads == n_kv_heads)
  ffn_in,    // ffn_gate, ffn_up ← ffn_norm
  ffn_out,   // ffn_down ← ffn_up rows
};
inline constexpr InputGroup kInputGroups[] = {InputGroup::attn_in, InputGroup::attn_out, InputGroup::ffn_in,
                                              InputGroup::ffn_out};  // forward order
const char* to_string(InputGroup g);
std::vector<std::string> group_members(int64_t block, InputGroup g);  // layer names, forward order
bool group_foldable(const LlamaModel& m, InputGroup g);
// One input group of a block as the quantizer walks it: the layers that read one input (members[0] represents them).
// A dense block has the four groups above (foldable per group_foldable). A mixture-of-experts block has attn_in and
// attn_out, then per expert e an ffn_in group {ffn_gate.e, ffn_up.e} and an ffn_out group {ffn_down.e} (each captures
// only the tokens routed to e), then the shared expert's two (Qwen2-MoE); the expert groups are never folded (ffn_norm
// feeds every expert; a migrating scheme applies its factors itself, Calibration::migration_folded = false).
struct BlockGroup {
  InputGroup kind;
  std::vector<std::string> members;
  bool foldable = false;
};
std::vector<BlockGroup> block_groups(const LlamaModel& m, int64_t block);
// Folds s (size = the members' in_features, every s_j finite and > 0) into block `block`: producer ·= 1/s
// (RMSNorm weight, or rows of the previous linear), every member's weight columns ·= s. Returns the producer's name
// ("blk.3.attn_norm", "blk.3.ffn_up rows"). Throws std::invalid_argument when the group cannot be folded.
std::string fold_migration(LlamaModel& m, int64_t block, InputGroup g, const std::vector<float>& s);

// ---- per-layer blame for a quantize_model result --------------------------------------------------------------

// Output SQNR of every quantized layer with the fp model's inputs (bypass: fp weights, no activation / KV
// quantization), the layer's own quantization applied to that same input (activation fake-quant with its
// calibration, effective weights, or its linear scheme), over the first `windows` rows of `tokens` [n, T].
// Sorted worst first. The linear schemes' run_stats count these calls too: read run_stats() before.
// The measurement under both blames (this one and Evaluator::blame_sqnr): Σy² and Σ(y − ŷ)² of every layer that
// carries a quantization, over the forwards `run` makes with the model in bypass (fp weights and inputs; the KV hook
// off through `kv_enabled` when given): y the fp layer's output, ŷ the layer's own quantization — through the
// model's backend — on that same input. Restores the model (bypass, observer, KV switch) afterwards.
struct OutputError {
  double sig = 0, err = 0;
  double sqnr_db() const;  // 10·log10(sig / err); +inf when err = 0
};
std::map<std::string, OutputError> quantized_output_errors(
    LlamaModel& m, const std::function<void()>& run, const std::shared_ptr<std::atomic<bool>>& kv_enabled = nullptr);

struct BlameEntry {
  std::string layer, scheme, act_scheme;
  double bits_per_weight = 32.0, weight_sqnr_db = 0.0, output_sqnr_db = 0.0;
  nlohmann::json to_json() const;
};
std::vector<BlameEntry> blame_layers(LlamaModel& m, const QuantizedModel& q, const std::vector<int32_t>& tokens,
                                     int64_t n_ctx, int64_t windows, int64_t batch = 1);

// ---- mixed precision ------------------------------------------------------------------------------------------

struct MixedSpec {
  double target_bits = 0.0;  // target average bits/weight (overhead counted) over the layers `mixed` quantizes; > 0
  // Candidates {bits, group_size} (the mixed config's other params are kept); empty: {bits − 1, bits} at its
  // group size.
  std::vector<std::pair<int, int64_t>> candidates;
  std::string metric = "kl";  // kl (mean KL to fp) | ppl (Δppl) | nll (Δ mean NLL)
  int64_t windows = 4;        // calibration windows the sensitivity is measured on
  std::string allocation_path;  // where the allocation JSON goes ("" → <work_dir>/mixed-<hash>.json)

  nlohmann::json to_json() const;
  static MixedSpec from_json(const nlohmann::json& j);
};

struct MixedReport {
  nlohmann::json allocation;  // schemes::allocation_to_json + the solver's figures
  nlohmann::json sensitivity; // {layer: [s per candidate]}
  std::string path;           // the allocation file written
  QuantPlan plan;             // the input plan with allocation=<path> set on every mixed config
  double seconds = 0.0;
  nlohmann::json to_json() const;
};

// Needs a plan with at least one wrapper config (mixed) without an allocation option. The sensitivity of (layer l,
// candidate c) is measured with the wrapper's sensitivity scheme (SchemeTraits::wrapper: its base when that needs no
// calibration, else a calibration-free stand-in; recorded as "sensitivity_scheme"); every other layer fp. `m` must
// be fp and is left fp.
MixedReport allocate_mixed(LlamaModel& m, const QuantPlan& plan, const MixedSpec& spec,
                           const CalibrationWindows& calib, const std::string& work_dir, int threads = 0,
                           bool progress = true);

}  // namespace qeval::model
