// eval/model/ppl.hpp — perplexity, KL divergence to the fp model, top-1 agreement, the cached fp reference,
// and per-layer blame, over the windows of a Protocol (protocol.hpp).
//
// Perplexity (llama.cpp's estimator, perplexity.cpp): over the N scored tokens with x_t = −log q(target_t),
//   mean = Σx/N, ppl = exp(mean), se(mean) = sqrt((Σx²/N − mean²) / (N − 1)), ppl_se = ppl·se(mean)
// (the delta method). N counts tokens as if independent; tokens of one window are correlated, so the true
// standard error is somewhat larger (a per-window estimate is reported beside it: se_window, from the
// variance of the window means / sqrt(n_windows)). All sums are in double and in token order.
//
// KL(P_fp ‖ Q) per scored token t = Σ_i p_i·(log p_i − log q_i), reported as mean (with se = sd/√N),
// median and p99 (nearest rank: the ⌈0.99·N⌉-th smallest), and top-1 agreement = fraction of tokens where
// argmax q = argmax p (first index on ties). Δ mean NLL (quantized − fp) is reported with its paired
// standard error, which is much smaller than either perplexity's own.
//
// The fp reference (FpReference) is computed once per (protocol, token stream, model) and cached in memory
// (process-wide) and on disk (<cache_dir>/<key>.qfpref, key = xxh64 of protocol JSON + token-stream hash +
// model content hash + format version + "fpref-<executable sha256, 16 hex>-torch<LibTorch version>", so a rebuilt
// binary or another LibTorch never reuses logits another build computed), so a sweep never recomputes the baseline. Per scored token it stores
// the exact fp NLL (double), the exact argmax, and the full log-softmax over the vocabulary quantized to
// uint16: lp_max = max_i log p_i, step = (lp_max − max(lp_min, lp_max − R)) / 65535 with R = kl_range_nats
// (default 40), u_i = round((lp_max − log p_i)/step) clamped to 65535. Decoding gives log p'_i = lp_max − u_i·step,
// renormalized by log Z' = log Σ exp(log p'_i). (llama.cpp's kl-divergence file also stores uint16 log-probs,
// with a 16-nat range; entries below the range are clamped, which would over-weight up to V·e^−16 of mass —
// 0.5 % for V = 49152 — hence 40 nats here: V·e^−40 < 3e−13.)
// Error bound (derived in ppl.cpp, computed per token at evaluation): with δ_t = step/2 + |log Z'| bounding
// |log p'_i − log p_i| for unclamped entries,
//   |KL_cached − KL_true| ≤ (e^δ − 1)·(A_t + δ) + (e^δ − 1)² + clamped-entry term,   A_t = Σ p'_i |log p'_i − log q_i|.
// The mean of this bound over tokens is reported as kl_bias_bound (it bounds |mean KL_cached − mean KL_true|);
// with R = 40 nats, step ≤ 6.1e−4, so the bound is ≈ 6e−4·A, and A ≈ √(2·KL) for small perturbations
// (worked number: KL = 0.01 → A ≈ 0.14 → bound ≈ 9e−5, < 1 % of KL; KL = 1e−4 → ≈ 9e−6, 9 %). Measured
// errors are far smaller (the rounding errors are zero-mean): see tests/eval/model.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/model/llama.hpp"
#include "eval/model/protocol.hpp"

namespace qeval::model {

class MappedFile;

struct NllStats {
  int64_t n = 0;
  double mean_nll = 0.0;
  double se_nll = 0.0;         // llama.cpp's per-token estimator
  double se_nll_window = 0.0;  // from window means (0 when unknown / one window)
  double ppl = 0.0;
  double ppl_se = 0.0;         // ppl · se_nll
  nlohmann::json to_json() const;
};
// Statistics of per-token NLLs in order; `per_window` > 0 also fills se_nll_window.
NllStats nll_stats(const double* nll, int64_t n, int64_t per_window = 0);

// The cached fp distribution (see the header comment).
class FpReference {
 public:
  static constexpr uint32_t kFormatVersion = 1;

  int64_t n_tokens() const { return n_tokens_; }
  int64_t n_vocab() const { return n_vocab_; }
  double range_nats() const { return range_; }
  const std::string& key() const { return key_; }
  const nlohmann::json& header() const { return header_; }
  const double* nll() const { return nll_; }
  const int32_t* argmax() const { return argmax_; }
  double lp_max(int64_t t) const { return lp_max_[t]; }
  double step(int64_t t) const { return step_[t]; }
  int32_t n_clamped(int64_t t) const { return nclamp_[t]; }
  const uint16_t* codes(int64_t t) const { return codes_ + t * n_vocab_; }
  bool mapped() const { return static_cast<bool>(map_); }
  void set_header(nlohmann::json h) { header_ = std::move(h); }

  // Encodes one token's fp logits (row of V floats) into slot t of a reference being built.
  void encode_token(int64_t t, const float* logits, int32_t target);

  void save(const std::string& path) const;  // atomic (path.tmp + rename)
  // Memory-maps `path`; throws std::runtime_error naming the file and the field when it is not a valid
  // reference file (bad magic/version, sizes that do not add up).
  static std::shared_ptr<FpReference> load(const std::string& path);
  static std::shared_ptr<FpReference> create(int64_t n_tokens, int64_t n_vocab, double range_nats,
                                             std::string key, nlohmann::json header);

 private:
  void bind_owned();
  int64_t n_tokens_ = 0, n_vocab_ = 0;
  double range_ = 40.0;
  std::string key_;
  nlohmann::json header_;
  std::vector<uint8_t> own_;               // owned storage (when built in memory)
  std::shared_ptr<const MappedFile> map_;  // or a mapped file
  double* nll_ = nullptr;
  double* lp_max_ = nullptr;
  double* step_ = nullptr;
  int32_t* argmax_ = nullptr;
  int32_t* nclamp_ = nullptr;
  uint16_t* codes_ = nullptr;
};

struct EvalOptions {
  int64_t max_windows = -1;  // evaluate only the first N windows (−1: all); the reference must cover them
  bool keep_tokens = false;  // keep per-token NLL / KL in the result
  bool progress = false;     // a line per batch on stderr
};

struct EvalResult {
  int64_t n_windows = 0;
  NllStats ppl;
  bool has_reference = false;
  NllStats ref_ppl;
  double delta_ppl = 0.0;
  double delta_mean_nll = 0.0, delta_mean_nll_se = 0.0;  // paired
  double kl_mean = 0.0, kl_se = 0.0, kl_median = 0.0, kl_p99 = 0.0, kl_max = 0.0;
  double kl_bias_bound = 0.0;       // bound on |mean KL − exact mean KL| from the cache encoding (0: exact)
  double kl_token_bound_max = 0.0;  // the largest per-token bound (shifts median/p99 by at most this)
  double top1 = 0.0, top1_se = 0.0;
  double seconds = 0.0;
  // evaluate_pair only: max over scored tokens and the vocabulary of |logit_q − logit_fp|, and the seconds each
  // model's forward took (the rest of `seconds` is the comparison).
  double max_abs_dlogit = 0.0;
  double pair_seconds_q = 0.0, pair_seconds_fp = 0.0;
  std::vector<double> token_nll, token_kl;
  nlohmann::json to_json() const;
};

// One linear layer's share of the damage.
struct LayerBlame {
  std::string layer;
  std::string weight_scheme, act_scheme;  // labels, "" when fp
  double bits_per_weight = 32.0;
  double weight_sqnr_db = 0.0;
  // 10·log10(Σy² / Σ(y − ŷ)²) over every output element: y = x·Wᵀ with the fp model's input x, ŷ the same
  // layer quantized (activation fake-quant of x, quantized weights) on the SAME x.
  double output_sqnr_db = std::numeric_limits<double>::quiet_NaN();
  // Mean KL to fp when ONLY this layer is quantized (blame_one_at_a_time), NaN when not measured.
  double kl_alone = std::numeric_limits<double>::quiet_NaN();
  nlohmann::json to_json() const;
};

class Evaluator {
 public:
  Evaluator(Protocol p, Windows w);
  const Protocol& protocol() const { return p_; }
  const Windows& windows() const { return w_; }

  // Cache key of the fp reference of `fp` under this protocol and token stream.
  std::string reference_key(const LlamaModel& fp) const;
  // Runs the fp model and encodes the reference (no cache I/O).
  std::shared_ptr<FpReference> compute_reference(LlamaModel& fp, const EvalOptions& o = {}) const;
  // Process memory cache → disk cache (cache_dir non-empty) → compute (then stored in both).
  std::shared_ptr<const FpReference> reference(LlamaModel& fp, const std::string& cache_dir) const;

  // PPL of `m`, and KL / top-1 against `ref` when given (the model's current plan applies).
  EvalResult evaluate(LlamaModel& m, const FpReference* ref, const EvalOptions& o = {}) const;
  // Exact comparison of two models run side by side (no cache; KL from both full log-softmaxes in double).
  EvalResult evaluate_pair(LlamaModel& q, LlamaModel& fp, const EvalOptions& o = {}) const;

  // Per-layer output SQNR under the installed plan, with fp inputs (one fp pass + one quantized matmul per
  // layer), over the first max_windows windows; sorted worst (lowest SQNR) first.
  std::vector<LayerBlame> blame_sqnr(LlamaModel& m, int64_t max_windows = 1) const;
  // Quantize one layer at a time (the installed plan's scheme for that layer, everything else fp) and
  // measure mean KL against `ref` over max_windows windows; sorted worst (highest KL) first. Restores the
  // plan afterwards. Cost: one evaluation per quantized layer.
  std::vector<LayerBlame> blame_one_at_a_time(LlamaModel& m, const FpReference& ref, int64_t max_windows = 1) const;

 private:
  Protocol p_;
  Windows w_;
};

// Calibration capture over windows: runs the model (its current plan applies) on the first n_windows
// windows of `w` (all when −1), `batch` windows per forward, with `cap` installed; every token of every
// window is one captured row. Use windows of a calibration text (e.g. a training split), not the evaluation
// text, unless the experiment says otherwise. Returns the number of windows run.
int64_t run_calibration(LlamaModel& m, CalibrationCapture& cap, const Windows& w, int64_t n_windows = -1,
                        int64_t batch = 1);

// Where the disk cache goes by default: $QEVAL_CACHE_DIR, else $XDG_CACHE_HOME/qeval, else ~/.cache/qeval.
std::string default_cache_dir();

}  // namespace qeval::model
