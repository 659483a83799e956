// eval/train/trainer.hpp — trains a Llama-architecture model (eval/model/llama.hpp) from scratch in LibTorch,
// fp32: AdamW, linear warmup + cosine decay, global-norm gradient clipping, deterministic data order,
// resumable state files. Used for the embedded default model (models/qeval-sotu-*, see embedded.hpp).
//
// Data: one token stream (corpus.hpp). The batch of optimizer step s (0-based) is `batch` windows whose
// start offsets are drawn uniformly from [0, n − seq_len − 1] by qeval::Rng(step_seed(seed, s)); window =
// stream[start, start + seq_len + 1) with its first token replaced by BOS (the evaluation protocol's
// "replace_first" convention, so the model learns exactly the conditioning it is evaluated under); inputs
// are its first seq_len tokens, targets the last seq_len. Because each step's batch depends only on
// (seed, s), a resumed run draws the same batches as an uninterrupted one.
// Loss: mean cross-entropy over every target of the batch (micro-batches of `micro_batch` windows are
// back-propagated one after another with weight micro/batch, so the accumulated gradient is the gradient of
// the batch mean).
// Initialization (GPT-2's, a published recipe): token_embd and every projection N(0, init_std²), the two
// projections that write into the residual stream (attn_output, ffn_down) N(0, (init_std/√(2·n_layers))²),
// norms 1; values drawn by qeval::Rng(seed) in named_parameters() order, row-major. With init_std 0.02 and
// tied embeddings the initial logits have sd ≈ 0.02·√d_model = 0.32 (d_model 256), so the first loss is
// ≈ ln(vocab) (7.62 for 2048).
// Optimizer: AdamW (Loshchilov & Hutter 2019) as torch.optim.AdamW computes it:
//   p ← p·(1 − lr·wd)  [matrices only; norms are not decayed]
//   m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps)
// Learning rate at step s: lr·(s+1)/warmup for s < warmup, then lr·(r + (1 − r)·(1 + cos(π·u))/2) with
// u = (s − warmup)/(steps − warmup) and r = lr_min_ratio (cosine from lr down to r·lr at the last step).
// Clipping: the gradient's global L2 norm (summed in double) is scaled down to grad_clip when above it.
//
// Determinism: ATen runs with a fixed intra-op thread count (`threads`). On one machine, with the same thread
// count and the same LibTorch/BLAS build, two runs — and a run resumed from a state file — are bit-identical
// (tests/eval/train). Across machines they are NOT guaranteed bit-identical: the BLAS picks its GEMM kernels by
// CPU (AVX2 vs AVX-512 blockings sum in different orders), so the first steps differ in the last bits and
// the runs drift apart (statistically equivalent losses, different weights). A different thread count also
// changes reduction order. The data order and the initialization ARE identical everywhere (qeval::Rng).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/model/llama.hpp"
#include "quant/rng.hpp"

namespace qeval::train {

struct TrainConfig {
  // Model (Llama architecture; tied embeddings; vocab_size comes from the tokenizer). Defaults: the embedded
  // default model's recipe (models/qeval-sotu-4l256).
  int64_t n_layers = 4;
  int64_t d_model = 256;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 2;
  int64_t d_ff = 512;
  int64_t vocab_size = 2048;
  double rope_theta = 10000.0;
  double rms_eps = 1e-5;
  // Data.
  int64_t seq_len = 512;     // tokens per window; also the model's n_ctx_train
  int64_t batch = 8;         // windows per optimizer step
  int64_t micro_batch = 4;   // windows per forward/backward (memory), must divide batch
  // Optimization.
  int64_t steps = 1200;
  int64_t warmup_steps = 100;
  double lr = 2e-3;
  double lr_min_ratio = 0.1;
  double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;
  double init_std = 0.02;
  uint64_t seed = kDefaultSeed;
  int threads = 2;

  // Throws std::invalid_argument naming the field.
  void validate() const;
  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j);  // strict: unknown keys throw
  model::ModelConfig model_config(int32_t bos_id, int32_t eos_id) const;
  int64_t tokens_per_step() const { return batch * seq_len; }
};

double lr_at(const TrainConfig& c, int64_t step);
// splitmix64-mixed per-step seed (Steele et al. 2014): consecutive steps get unrelated mt19937_64 seeds.
uint64_t step_seed(uint64_t seed, int64_t step);

// Fills inputs/targets (each batch·seq_len, row-major) with the windows of step `step` (see the header).
void sample_windows(const std::vector<int32_t>& stream, int64_t seq_len, int64_t batch, uint64_t seed, int64_t step,
                    int32_t bos, std::vector<int64_t>& inputs, std::vector<int64_t>& targets);

// Held-out next-token NLL: windows c = 0 .. n−1 of `stream`, window c = stream[c·T, c·T + T + 1) with its
// first token replaced by `bos`, all T predictions scored (each stream token after the first is predicted
// exactly once, except the ones a window replaces by BOS). n = min(max_windows, ⌊(len − 1)/T⌋) (max_windows
// −1: all). `batch` windows per forward; NLL summed in double in window order. Runs in eval mode.
struct HeldoutNll {
  int64_t n_windows = 0, n_tokens = 0;
  double mean_nll = 0.0;
  double ppl() const;
  nlohmann::json to_json() const;
};
HeldoutNll heldout_nll(model::LlamaModel& m, const std::vector<int32_t>& stream, int64_t seq_len, int32_t bos,
                       int64_t max_windows, int64_t batch = 4);

class Trainer {
 public:
  // A freshly initialized model (see the header). `train_stream` must hold more than seq_len + 1 tokens.
  Trainer(TrainConfig cfg, std::vector<int32_t> train_stream, int32_t bos_id, int32_t eos_id);
  ~Trainer();

  // One optimizer step on the batch of step_index(); returns that batch's mean training loss.
  double step();
  int64_t step_index() const { return step_; }
  double last_grad_norm() const { return last_grad_norm_; }  // before clipping
  double last_lr() const { return last_lr_; }

  model::LlamaModel& model() { return *model_; }
  const TrainConfig& config() const { return cfg_; }
  int64_t n_parameters() const;

  // State file (model weights, AdamW moments, step, config, `extra`): "QEVALTRN", u32 version, u64 JSON
  // length, the JSON header, then per parameter (named_parameters() order) weights, m, v as fp32 LE.
  // Written to path.tmp, then renamed (a crash never leaves a half-written state).
  void save_state(const std::string& path, const nlohmann::json& extra = nullptr) const;
  // Restores a state written by save_state; returns its `extra`. Throws std::runtime_error naming the file
  // when it is not a state file, and std::invalid_argument naming the field when its config differs from
  // this trainer's (a resumed run must continue the same schedule on the same data).
  nlohmann::json load_state(const std::string& path);

 private:
  void init_weights();
  TrainConfig cfg_;
  std::vector<int32_t> stream_;
  int32_t bos_, eos_;
  std::unique_ptr<model::LlamaModel> model_;
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<at::Tensor> m_, v_;
  int64_t step_ = 0;
  double last_grad_norm_ = 0.0, last_lr_ = 0.0;
  std::vector<int64_t> in_buf_, tgt_buf_;
};

}  // namespace qeval::train
