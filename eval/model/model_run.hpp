// eval/model/model_run.hpp — one "model run": (model file, protocol, quantization plan, calibration spec) → a JSON
// result with perplexity, KL, top-1, LAMBADA, bits/weight, per-layer blame, scheme statistics, the calibration
// record and timings. The sweep engine's "model" run kind calls run_model(); shared state (loaded checkpoints,
// tokenized texts, evaluators, calibration windows, fp LAMBADA figures) lives in a ModelRunContext, and the fp
// reference distribution is computed once per (model, protocol) and shared through Evaluator::reference's
// process-wide memory cache and its disk cache (ctx.cache_dir).
//
// Spec JSON (strict: unknown keys are errors naming the key):
//   {"model": "models/external/SmolLM2-135M-Instruct.Q4_1.gguf",        path, relative to ctx.root unless absolute
//    "protocol": "configs/protocol-wikitext2-512-quick.json" | {...},    a protocol file or object (protocol.hpp)
//    "plan": {"weight": {"scheme": "gptq", "params": {"bits": 3, "group_size": 64}},
//             "overrides": [{"pattern": "output", "skip": true}]},       QuantPlan JSON (hooks.hpp); a Target::linear
//                                                                        scheme may be given as "linear" (here and in
//                                                                        overrides) — it goes where "weight" goes
//    "calibration": {"count": 128, "length": -1, ...},                   CalibrationSpec (quantize_model.hpp)
//    "mixed": {"target_bits": 3.5, "candidates": [...]},                 MixedSpec, for a `mixed` plan without an
//                                                                        allocation file
//    "lambada": "auto" | true | false,                                   auto: when the protocol has a lambada section
//    "blame_windows": 1,                                                 protocol windows blame runs on (0: none)
//    "max_windows": -1,                                                  evaluate only the first N protocol windows
//    "backend": "ref",                                                   the LinearBackend every quantized layer runs
//                                                                        on (backend/linear_backend.hpp): ref (fake
//                                                                        quantization) or cpu (integer kernels). Only
//                                                                        written when not "ref", so runs made before
//                                                                        the key existed keep their ids
//    "awq_reference_overrides": true}                                    the reference-implementation overrides the
//                                                                        plan's default weight scheme declares
//                                                                        (SchemeTraits::reference_overrides; AWQ:
//                                                                        clip=false for blk.*.attn_q and blk.*.attn_k,
//                                                                        as llm-awq skips the clip search for q/k),
//                                                                        prepended to the plan's overrides; recorded
//                                                                        in the result's plan. The key keeps its
//                                                                        first name: it is part of every model run's
//                                                                        spec, so renaming it would change every id
// Result JSON: see run_model().
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "eval/model/checkpoint.hpp"
#include "eval/model/hooks.hpp"
#include "eval/model/lambada.hpp"
#include "eval/model/ppl.hpp"
#include "eval/model/quantize_model.hpp"
#include "eval/model/tokens.hpp"

namespace qeval::model {

struct ModelRunSpec {
  std::string model;
  nlohmann::json protocol;  // a path string or a protocol object
  QuantPlan plan;
  CalibrationSpec calibration;
  bool has_mixed = false;
  MixedSpec mixed;
  int lambada = -1;              // −1 auto, 0 off, 1 on
  int64_t blame_windows = 1;
  int64_t max_windows = -1;
  bool reference_overrides = true;  // JSON key kReferenceOverridesKey
  std::string backend = "ref";      // a name of linear_backend_names()

  nlohmann::json to_json() const;
  // Strict; errors name the key and the accepted form (std::invalid_argument).
  static ModelRunSpec from_json(const nlohmann::json& j);
};

// The plan JSON with "linear" keys (top level and in overrides) moved to "weight" — the QuantPlan form.
nlohmann::json normalize_plan_json(const nlohmann::json& plan);
// The spec key of ModelRunSpec::reference_overrides (see the header comment for why it keeps this name).
inline constexpr const char* kReferenceOverridesKey = "awq_reference_overrides";

// Shared, thread-safe state of many runs.
class ModelRunContext {
 public:
  // root: the project root relative paths resolve against. cache_dir: the fp reference disk cache ("" = memory
  // only). work_dir: where mixed-precision allocation files go ("" → cache_dir/allocations, or /tmp/qeval-
  // allocations when cache_dir is empty).
  explicit ModelRunContext(std::string root, std::string cache_dir = default_cache_dir(), std::string work_dir = "");

  const std::string& root() const { return root_; }
  const std::string& cache_dir() const { return cache_dir_; }
  const std::string& work_dir() const { return work_dir_; }
  bool progress = true;
  // Execution settings that are not part of a run's spec (nor its id): with or without them a run is the same
  // experiment.
  //   reassociation_twin  also run the run's reassociation twin (run_model's "twin"): the noise figures the CI
  //                       gate derives its tolerances from (docs/regression-gate.md); costs a second quantize and
  //                       evaluation (and one fp reference per protocol)
  //   fault_scale_error   test-only fault injection (`qeval sweep --inject-scale-error E`): every weight scheme's
  //                       stored scales are multiplied by (1 + E) after quantize() — "a slightly wrong scale"
  bool reassociation_twin = false;
  double fault_scale_error = 0.0;

  struct Loaded {
    std::string path;
    Checkpoint ck;
    TokenSource ts;
    double load_seconds = 0.0;
  };
  std::shared_ptr<const Loaded> model(const std::string& path);
  std::shared_ptr<const Evaluator> evaluator(const Loaded& m, const Protocol& p);
  std::shared_ptr<const CalibrationWindows> calibration(const Loaded& m, const CalibrationSpec& spec, int64_t length,
                                                        BosMode bos, const std::string& eval_sha256,
                                                        int64_t eval_begin_byte = 0);
  std::shared_ptr<const std::vector<LambadaItem>> lambada_items_for(const Loaded& m, const LambadaProtocol& lp);
  // The fp model's LAMBADA result, computed once per (model, LAMBADA protocol) with `fp` (which must be fp).
  LambadaResult fp_lambada(const Loaded& m, const LambadaProtocol& lp, LlamaModel& fp, int threads);

 private:
  std::string root_, cache_dir_, work_dir_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const Loaded>> models_;
  std::map<std::string, std::shared_ptr<const Evaluator>> evaluators_;
  std::map<std::string, std::shared_ptr<const CalibrationWindows>> calibs_;
  std::map<std::string, std::shared_ptr<const std::vector<LambadaItem>>> lambada_;
  std::map<std::string, LambadaResult> fp_lambada_;
};

// Runs one model run. Result:
//   {"model": {path, content_hash, config}, "protocol": <protocol as run>, "plan": <plan as run>,
//    "calibration": {"spec", "windows": <record>} | null,
//    "ppl", "fp_ppl" (NllStats), "delta_ppl", "delta_mean_nll", "delta_mean_nll_se",
//    "kl": {mean, se, median, p99, max, bias_bound, token_bound_max}, "top1", "top1_se", "n_windows",
//    "lambada": {accuracy, accuracy_se, ..., "fp": {...}, "delta_accuracy"} | null,
//    "bits_per_weight" (parameter-weighted over quantized layers, overhead counted), "quantized_params",
//    "linear_params", "layers": [per-layer quantization], "blame": [worst first], "scheme_stats": run_stats(),
//    "scheme_stats_summary": {scheme: {stat: {mean, max}}}, "mixed": <allocation report> | null,
//    "fingerprint": {"model": hex, "layers": {layer: hex}} (QuantizedModel::fingerprint_json),
//    "twin": null | {"reassociation": "split_k", "kl": {"delta", "se"}, "delta_ppl": {"delta", "se"},
//                    "fp_ppl": {"delta"}, "fingerprint_equal", "changed_layers": [...], "seconds"}
//           the reassociation twin: the same run (fp reference, calibration, quantization, evaluation) with every
//           linear product summed in another order (LlamaModel's Reassociation::split_k), compared token by token
//           with this run: delta = twin − run; se = the larger of the token-level (sd/√N) and window-level (sd of
//           window means/√W) standard errors of the per-token differences. What another CPU's BLAS would move.
//           Only when ctx.reassociation_twin.
//    "timings": {load_s, reference_s, calibration_windows_s, mixed_s, quantize_s, quantize: {...}, eval_s,
//                lambada_s, lambada_fp_s, blame_s, total_s}}
nlohmann::json run_model(const ModelRunSpec& spec, ModelRunContext& ctx);
nlohmann::json run_model(const nlohmann::json& spec, ModelRunContext& ctx);

// ---- pieces of run_model (exposed for tests) ------------------------------------------------------------------

// The quantizer's options for a run: the spec's calibration settings, the protocol's thread count, and the
// context's test-only fault injection (every weight scheme's scales × (1 + fault_scale_error)).
QuantizeOptions quantize_options(const ModelRunSpec& spec, const ModelRunContext& ctx, int threads);
// {scheme: {stat: {"mean", "max", "layers"}}} over the layers of QuantizedModel::run_stats() (non-numbers skipped).
nlohmann::json scheme_stats_summary(const nlohmann::json& stats);

}  // namespace qeval::model
