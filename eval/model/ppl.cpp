// eval/model/ppl.cpp — perplexity / KL / top-1 evaluation, the uint16 fp-reference cache, per-layer blame.
#include "eval/model/ppl.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <xxhash.h>
#if __has_include(<torch/version.h>)
#include <torch/version.h>  // TORCH_VERSION, for the reference cache key
#endif
#ifndef TORCH_VERSION
#define TORCH_VERSION "unknown"
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/model/mapped_file.hpp"
#include "eval/model/quantize_model.hpp"

namespace qeval::model {

// ---- statistics -------------------------------------------------------------------------------

nlohmann::json NllStats::to_json() const {
  return {{"n_tokens", n},          {"mean_nll", mean_nll}, {"se_nll", se_nll},
          {"se_nll_window", se_nll_window}, {"ppl", ppl},   {"ppl_se", ppl_se}};
}

NllStats nll_stats(const double* x, int64_t n, int64_t per_window) {
  NllStats s;
  s.n = n;
  if (n <= 0) return s;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  s.mean_nll = sum / static_cast<double>(n);
  // llama.cpp's estimator, var = Σx²/N − mean², computed in two passes (Σ(x − mean)²/N: the same quantity
  // without the cancellation, so N equal values give exactly 0), then sqrt(var / (N − 1)).
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += (x[i] - s.mean_nll) * (x[i] - s.mean_nll);
  const double var = ss / static_cast<double>(n);
  s.se_nll = (n > 1 && var > 0) ? std::sqrt(var / static_cast<double>(n - 1)) : 0.0;
  s.ppl = std::exp(s.mean_nll);
  s.ppl_se = s.ppl * s.se_nll;
  if (per_window > 0 && n % per_window == 0 && n / per_window > 1) {
    const int64_t W = n / per_window;
    std::vector<double> wm(static_cast<size_t>(W), 0.0);
    double m1 = 0.0;
    for (int64_t w = 0; w < W; ++w) {
      for (int64_t i = 0; i < per_window; ++i) wm[w] += x[w * per_window + i];
      wm[w] /= static_cast<double>(per_window);
      m1 += wm[w];
    }
    m1 /= static_cast<double>(W);
    double v = 0.0;
    for (int64_t w = 0; w < W; ++w) v += (wm[w] - m1) * (wm[w] - m1);
    v /= static_cast<double>(W);
    s.se_nll_window = v > 0 ? std::sqrt(v / static_cast<double>(W - 1)) : 0.0;
  }
  return s;
}

namespace {

std::string hex16(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Sets ATen's thread count for a scope and restores it.
struct ThreadScope {
  int prev;
  explicit ThreadScope(int n) : prev(at::get_num_threads()) { configure_threads(n); }
  ~ThreadScope() { at::set_num_threads(prev); }
};

// Per-token log-sum-exp in double, first-index argmax.
struct RowStats {
  double lse;
  int32_t argmax;
  double lmin;
};
RowStats row_stats(const float* l, int64_t V) {
  double m = -std::numeric_limits<double>::infinity(), mn = std::numeric_limits<double>::infinity();
  int32_t am = 0;
  for (int64_t i = 0; i < V; ++i) {
    const double v = l[i];
    if (!std::isfinite(v))
      throw std::runtime_error("evaluation: non-finite logit (" + std::to_string(v) + ") at vocabulary index " +
                               std::to_string(i) + " — the model produced NaN/Inf");
    if (v > m) {
      m = v;
      am = static_cast<int32_t>(i);
    }
    if (v < mn) mn = v;
  }
  double s = 0.0;
  for (int64_t i = 0; i < V; ++i) s += std::exp(static_cast<double>(l[i]) - m);
  return {m + std::log(s), am, mn};
}

// Logits of the scored positions of windows [b0, b0 + nb): [nb, S, V] contiguous fp32.
at::Tensor scored_logits(LlamaModel& m, const Windows& w, int64_t b0, int64_t nb) {
  at::Tensor tok = at::from_blob(const_cast<int32_t*>(w.tokens.data() + b0 * w.n_ctx), {nb, w.n_ctx}, at::kInt)
                       .to(at::kLong);
  at::Tensor h = m.forward_hidden(tok);
  at::Tensor hs = h.slice(1, w.first, w.n_ctx - 1);
  return m.head(hs).contiguous();
}

int64_t windows_to_run(const Windows& w, const EvalOptions& o) {
  if (o.max_windows < 0) return w.n_windows();
  return std::min<int64_t>(o.max_windows, w.n_windows());
}

constexpr char kMagic[8] = {'Q', 'E', 'V', 'A', 'L', 'F', 'P', 'R'};

}  // namespace

// ---- FpReference ------------------------------------------------------------------------------

std::shared_ptr<FpReference> FpReference::create(int64_t n_tokens, int64_t n_vocab, double range_nats,
                                                 std::string key, nlohmann::json header) {
  auto r = std::make_shared<FpReference>();
  r->n_tokens_ = n_tokens;
  r->n_vocab_ = n_vocab;
  r->range_ = range_nats;
  r->key_ = std::move(key);
  r->header_ = std::move(header);
  const size_t bytes = static_cast<size_t>(n_tokens) * (3 * sizeof(double) + 2 * sizeof(int32_t)) +
                       static_cast<size_t>(n_tokens * n_vocab) * sizeof(uint16_t);
  r->own_.assign(bytes, 0);
  r->bind_owned();
  return r;
}

void FpReference::bind_owned() {
  uint8_t* p = own_.data();
  nll_ = reinterpret_cast<double*>(p);
  p += n_tokens_ * sizeof(double);
  lp_max_ = reinterpret_cast<double*>(p);
  p += n_tokens_ * sizeof(double);
  step_ = reinterpret_cast<double*>(p);
  p += n_tokens_ * sizeof(double);
  argmax_ = reinterpret_cast<int32_t*>(p);
  p += n_tokens_ * sizeof(int32_t);
  nclamp_ = reinterpret_cast<int32_t*>(p);
  p += n_tokens_ * sizeof(int32_t);
  codes_ = reinterpret_cast<uint16_t*>(p);
}

void FpReference::encode_token(int64_t t, const float* l, int32_t target) {
  const int64_t V = n_vocab_;
  const RowStats rs = row_stats(l, V);
  const double lp_max = static_cast<double>(l[rs.argmax]) - rs.lse;  // ≤ 0
  const double lp_min = rs.lmin - rs.lse;
  const double lo = std::max(lp_min, lp_max - range_);
  // step ≤ range/65535: 40 nats → 6.1e-4, 60 → 9.2e-4.
  const double step = (lp_max - lo) / 65535.0;
  uint16_t* u = codes_ + t * V;
  int32_t nc = 0;
  for (int64_t i = 0; i < V; ++i) {
    if (step == 0.0) {
      u[i] = 0;
      continue;
    }
    const double v = (lp_max - (static_cast<double>(l[i]) - rs.lse)) / step;
    if (v >= 65535.0) {
      u[i] = 65535;
      if (v > 65535.5) ++nc;
    } else {
      u[i] = static_cast<uint16_t>(std::nearbyint(v));
    }
  }
  nll_[t] = rs.lse - static_cast<double>(l[target]);
  lp_max_[t] = lp_max;
  step_[t] = step;
  argmax_[t] = rs.argmax;
  nclamp_[t] = nc;
}

void FpReference::save(const std::string& path) const {
  // A name of this process's own, so processes sharing a cache directory (Slurm shards) never write one file.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error(tmp + ": cannot create the fp-reference cache file (check the cache directory)");
    nlohmann::json h = header_;
    h["key"] = key_;
    h["n_tokens"] = n_tokens_;
    h["n_vocab"] = n_vocab_;
    h["range_nats"] = range_;
    std::string hs = h.dump();
    hs.resize((hs.size() + 7) / 8 * 8, ' ');  // keep the arrays 8-byte aligned
    const uint32_t ver = kFormatVersion, reserved = 0;
    const uint64_t hl = hs.size();
    f.write(kMagic, 8);
    f.write(reinterpret_cast<const char*>(&ver), 4);
    f.write(reinterpret_cast<const char*>(&reserved), 4);
    f.write(reinterpret_cast<const char*>(&hl), 8);
    f.write(hs.data(), static_cast<std::streamsize>(hs.size()));
    auto put = [&](const void* p, size_t n) { f.write(static_cast<const char*>(p), static_cast<std::streamsize>(n)); };
    put(nll_, n_tokens_ * sizeof(double));
    put(lp_max_, n_tokens_ * sizeof(double));
    put(step_, n_tokens_ * sizeof(double));
    put(argmax_, n_tokens_ * sizeof(int32_t));
    put(nclamp_, n_tokens_ * sizeof(int32_t));
    put(codes_, static_cast<size_t>(n_tokens_ * n_vocab_) * sizeof(uint16_t));
    if (!f) throw std::runtime_error(tmp + ": write failed (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error(path + ": cannot rename " + tmp + " into place");
}

std::shared_ptr<FpReference> FpReference::load(const std::string& path) {
  auto map = std::make_shared<const MappedFile>(path);
  const uint8_t* d = map->data();
  const size_t size = map->size();
  auto bad = [&](const std::string& field, const std::string& what) -> std::runtime_error {
    return std::runtime_error(path + ": " + field + ": " + what + " — not a valid qeval fp-reference cache; delete it to recompute");
  };
  if (size < 24 || std::memcmp(d, kMagic, 8) != 0) throw bad("magic", "missing");
  uint32_t ver;
  uint64_t hl;
  std::memcpy(&ver, d + 8, 4);
  std::memcpy(&hl, d + 16, 8);
  if (ver != kFormatVersion) throw bad("version", std::to_string(ver) + " (this build reads " + std::to_string(kFormatVersion) + ")");
  if (hl > size - 24 || hl % 8 != 0) throw bad("header_length", std::to_string(hl) + " out of range");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(d + 24), hl));
  } catch (const nlohmann::json::exception& e) {
    throw bad("header", e.what());
  }
  auto r = std::make_shared<FpReference>();
  try {
    r->key_ = h.at("key").get<std::string>();
    r->n_tokens_ = h.at("n_tokens").get<int64_t>();
    r->n_vocab_ = h.at("n_vocab").get<int64_t>();
    r->range_ = h.at("range_nats").get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw bad("header", e.what());
  }
  if (r->n_tokens_ <= 0 || r->n_vocab_ <= 0 || r->n_vocab_ > (int64_t(1) << 31)) throw bad("n_tokens/n_vocab", "out of range");
  const uint64_t need = 24 + hl + static_cast<uint64_t>(r->n_tokens_) * (3 * 8 + 2 * 4) +
                        static_cast<uint64_t>(r->n_tokens_) * static_cast<uint64_t>(r->n_vocab_) * 2;
  if (need != size) throw bad("size", std::to_string(size) + " bytes, the header implies " + std::to_string(need));
  r->header_ = h;
  uint8_t* p = const_cast<uint8_t*>(d + 24 + hl);  // read-only map; FpReference never writes a loaded one
  r->nll_ = reinterpret_cast<double*>(p);
  p += r->n_tokens_ * 8;
  r->lp_max_ = reinterpret_cast<double*>(p);
  p += r->n_tokens_ * 8;
  r->step_ = reinterpret_cast<double*>(p);
  p += r->n_tokens_ * 8;
  r->argmax_ = reinterpret_cast<int32_t*>(p);
  p += r->n_tokens_ * 4;
  r->nclamp_ = reinterpret_cast<int32_t*>(p);
  p += r->n_tokens_ * 4;
  r->codes_ = reinterpret_cast<uint16_t*>(p);
  r->map_ = std::move(map);
  return r;
}

// ---- results ----------------------------------------------------------------------------------

nlohmann::json EvalResult::to_json() const {
  nlohmann::json j;
  j["n_windows"] = n_windows;
  j["ppl"] = ppl.to_json();
  j["seconds"] = seconds;
  if (has_reference) {
    j["ref_ppl"] = ref_ppl.to_json();
    j["delta_ppl"] = delta_ppl;
    j["delta_mean_nll"] = delta_mean_nll;
    j["delta_mean_nll_se"] = delta_mean_nll_se;
    j["kl"] = {{"mean", kl_mean},   {"se", kl_se},         {"median", kl_median},
               {"p99", kl_p99},     {"max", kl_max},       {"bias_bound", kl_bias_bound},
               {"token_bound_max", kl_token_bound_max}};
    j["top1"] = top1;
    j["top1_se"] = top1_se;
  }
  return j;
}

nlohmann::json LayerBlame::to_json() const {
  nlohmann::json j = {{"layer", layer},
                      {"weight_scheme", weight_scheme},
                      {"act_scheme", act_scheme},
                      {"bits_per_weight", bits_per_weight},
                      {"weight_sqnr_db", weight_sqnr_db}};
  j["output_sqnr_db"] = std::isnan(output_sqnr_db) ? nlohmann::json(nullptr) : nlohmann::json(output_sqnr_db);
  j["kl_alone"] = std::isnan(kl_alone) ? nlohmann::json(nullptr) : nlohmann::json(kl_alone);
  return j;
}

// ---- evaluator --------------------------------------------------------------------------------

std::string default_cache_dir() {
  if (const char* s = std::getenv("QEVAL_CACHE_DIR"); s && *s) return s;
  if (const char* s = std::getenv("XDG_CACHE_HOME"); s && *s) return std::string(s) + "/qeval";
  if (const char* s = std::getenv("HOME"); s && *s) return std::string(s) + "/.cache/qeval";
  return ".qeval-cache";
}

Evaluator::Evaluator(Protocol p, Windows w) : p_(std::move(p)), w_(std::move(w)) {
  if (w_.n_ctx != p_.n_ctx || w_.first != p_.first_scored_position())
    throw std::invalid_argument("Evaluator: windows were built for n_ctx " + std::to_string(w_.n_ctx) +
                                ", the protocol says " + std::to_string(p_.n_ctx));
}

namespace {
// "fpref-<first 16 hex of the running executable's SHA-256>-torch<version>": the build that computes a reference.
const std::string& build_identity() {
  static const std::string id = [] {
    std::string exe = "unknown";
    try {
      exe = sha256_file_hex("/proc/self/exe").substr(7, 16);
    } catch (const std::exception&) {
      // no /proc (not Linux): the torch version and format version still key the cache
    }
    return "fpref-" + exe + "-torch" + TORCH_VERSION;
  }();
  return id;
}
}  // namespace

std::string Evaluator::reference_key(const LlamaModel& fp) const {
  std::string s = p_.to_json().dump() + "|" + w_.stream_hash + "|" + fp.content_hash() + "|qfpref-v" +
                  std::to_string(FpReference::kFormatVersion) + "|" + build_identity();
  // A reference computed in another summation order is another reference (the native key stays as it was).
  if (fp.reassociation() != Reassociation::native) s += std::string("|") + to_string(fp.reassociation());
  return hex16(XXH64(s.data(), s.size(), 0));
}

std::shared_ptr<FpReference> Evaluator::compute_reference(LlamaModel& fp, const EvalOptions& o) const {
  ThreadScope threads(p_.threads);
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t nW = windows_to_run(w_, o), S = w_.scored_per_window(), V = fp.config().vocab_size;
  nlohmann::json header = {{"protocol", p_.to_json()},
                           {"stream_hash", w_.stream_hash},
                           {"model", fp.content_hash()},
                           {"reassociation", to_string(fp.reassociation())},
                           {"n_windows", nW},
                           {"format", "u16 log-softmax, step = range/65535 per token, renormalized on decode"}};
  auto ref = FpReference::create(nW * S, V, p_.kl_range_nats, reference_key(fp), header);
  for (int64_t b0 = 0; b0 < nW; b0 += p_.batch) {
    const int64_t nb = std::min<int64_t>(p_.batch, nW - b0);
    const at::Tensor logits = scored_logits(fp, w_, b0, nb);
    const float* L = logits.data_ptr<float>();
    const int64_t base = b0 * S;
    at::parallel_for(0, nb * S, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) ref->encode_token(base + i, L + i * V, w_.targets[base + i]);
    });
    if (o.progress) std::fprintf(stderr, "fp reference: window %lld/%lld\n", (long long)(b0 + nb), (long long)nW);
  }
  const NllStats st = nll_stats(ref->nll(), ref->n_tokens(), S);
  nlohmann::json h = ref->header();
  h["fp_ppl"] = st.to_json();
  h["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ref->set_header(std::move(h));
  return ref;
}

namespace {

// The disk cache's copy of reference `key`, or null when there is none; throws when the file is not that reference.
std::shared_ptr<const FpReference> load_cached(const std::string& path, const std::string& key, int64_t n_scored) {
  struct stat st;
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return nullptr;
  auto loaded = FpReference::load(path);
  if (loaded->key() != key)
    throw std::runtime_error(path + ": key " + loaded->key() + " does not match its name — delete it to recompute");
  if (loaded->n_tokens() != n_scored)
    throw std::runtime_error(path + ": holds " + std::to_string(loaded->n_tokens()) + " tokens, the protocol scores " +
                             std::to_string(n_scored) + " — delete it to recompute");
  return loaded;
}

}  // namespace

std::shared_ptr<const FpReference> Evaluator::reference(LlamaModel& fp, const std::string& cache_dir) const {
  // One slot per key, so that runs needing the same reference at once (sweep --jobs) compute it once: the first
  // holds the slot's lock while computing, the others wait for it.
  struct Slot {
    std::mutex mu;
    std::shared_ptr<const FpReference> ref;
  };
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<Slot>> memory;
  const std::string key = reference_key(fp);
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto& s = memory[key];
    if (!s) s = std::make_shared<Slot>();
    slot = s;
  }
  std::lock_guard<std::mutex> lock(slot->mu);
  if (slot->ref) return slot->ref;
  const std::string path = cache_dir.empty() ? "" : cache_dir + "/" + key + ".qfpref";
  std::shared_ptr<const FpReference> ref = load_cached(path, key, w_.n_scored());
  if (!ref) {
    auto computed = compute_reference(fp);
    if (!path.empty()) {
      // The cache only saves time: a directory that cannot be made or written costs a warning, not the run.
      std::error_code ec;
      std::filesystem::create_directories(cache_dir, ec);
      try {
        computed->save(path);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "qeval: warning: fp reference not cached (%s); set QEVAL_CACHE_DIR to a writable "
                             "directory to keep it between runs\n", e.what());
      }
    }
    ref = computed;
  }
  slot->ref = ref;
  return ref;
}

namespace {

// Per-token outputs of an evaluation, combined in token order afterwards.
struct TokOut {
  double nll = 0, kl = 0, bound = 0;
  int32_t argmax = 0;
  bool match = false;
};

// KL(P'‖Q) with P' decoded from the cache, and its error bound (see ppl.hpp).
//   δ = step/2 + |log Z'| bounds |log p'_i − log p_i| on entries not at the range edge (u < 65535);
//   with A = Σ p'_i |log p'_i − log q_i|, for the non-edge set U:
//     Σ_U (p'_i − p_i)(log p_i − log q_i) ≤ (e^δ − 1)(A + δ)            (|p' − p| ≤ p'(e^δ − 1))
//     |Σ_U p'_i log(p'_i/p_i)| ≤ (e^δ − 1)² + |P_E − P'_E|             (log r ≤ r − 1 both ways)
//   and the edge set E (u = 65535, where clamping may have happened) has true and decoded probabilities
//   ≤ e^(lo + δ), lo = lp_max − 65535·step, so its entries change KL by at most
//     n_E·e^(lo+δ)·(1 + 2(|lo| + δ + |log q|_max)).
void kl_cached(const FpReference& ref, int64_t t, const float* ql, double lse_q, TokOut& out) {
  const int64_t V = ref.n_vocab();
  const uint16_t* u = ref.codes(t);
  const double lpm = ref.lp_max(t), step = ref.step(t);
  double z = 0.0;
  for (int64_t i = 0; i < V; ++i) z += std::exp(lpm - static_cast<double>(u[i]) * step);
  const double lz = std::log(z);
  double kl = 0.0, a = 0.0, lq_absmax = 0.0;
  int64_t n_edge = 0;
  for (int64_t i = 0; i < V; ++i) {
    const double lp = lpm - static_cast<double>(u[i]) * step - lz;
    const double lq = static_cast<double>(ql[i]) - lse_q;
    const double p = std::exp(lp);
    const double d = lp - lq;
    kl += p * d;
    a += p * std::fabs(d);
    lq_absmax = std::max(lq_absmax, std::fabs(lq));
    n_edge += u[i] == 65535;
  }
  const double delta = step / 2 + std::fabs(lz);
  const double e = std::expm1(delta);
  double bound = e * (a + delta) + e * e;
  // Edge term only when the encoder actually clamped entries (range > kl_range_nats); otherwise every
  // entry, u = 65535 included, was rounded to within step/2.
  if (ref.n_clamped(t) > 0 && n_edge > 0 && step > 0) {
    const double lo = lpm - 65535.0 * step;
    bound += static_cast<double>(n_edge) * std::exp(lo + delta) * (1.0 + 2.0 * (std::fabs(lo) + delta + lq_absmax));
  }
  out.kl = kl;
  out.bound = bound;
}

// Exact KL(P‖Q) from two logit rows, in double.
double kl_exact(const float* pl, double lse_p, const float* ql, double lse_q, int64_t V) {
  double kl = 0.0;
  for (int64_t i = 0; i < V; ++i) {
    const double lp = static_cast<double>(pl[i]) - lse_p;
    const double lq = static_cast<double>(ql[i]) - lse_q;
    kl += std::exp(lp) * (lp - lq);
  }
  return kl;
}

EvalResult summarize(const Windows& w, int64_t nW, const std::vector<TokOut>& tok, const double* ref_nll,
                     const int32_t* ref_argmax, bool has_ref, bool keep) {
  EvalResult r;
  r.n_windows = nW;
  const int64_t n = static_cast<int64_t>(tok.size());
  std::vector<double> nll(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) nll[i] = tok[i].nll;
  r.ppl = nll_stats(nll.data(), n, w.scored_per_window());
  if (keep) r.token_nll = nll;
  if (!has_ref) return r;
  r.has_reference = true;
  r.ref_ppl = nll_stats(ref_nll, n, w.scored_per_window());
  r.delta_ppl = r.ppl.ppl - r.ref_ppl.ppl;
  std::vector<double> diff(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) diff[i] = nll[i] - ref_nll[i];
  const NllStats ds = nll_stats(diff.data(), n);
  r.delta_mean_nll = ds.mean_nll;
  r.delta_mean_nll_se = ds.se_nll;
  std::vector<double> kl(static_cast<size_t>(n));
  double sum = 0.0, sum2 = 0.0, bsum = 0.0, bmax = 0.0;
  int64_t agree = 0;
  for (int64_t i = 0; i < n; ++i) {
    kl[i] = tok[i].kl;
    sum += kl[i];
    sum2 += kl[i] * kl[i];
    bsum += tok[i].bound;
    bmax = std::max(bmax, tok[i].bound);
    agree += tok[i].argmax == ref_argmax[i];
  }
  const double dn = static_cast<double>(n);
  r.kl_mean = sum / dn;
  const double var = sum2 / dn - r.kl_mean * r.kl_mean;
  r.kl_se = (n > 1 && var > 0) ? std::sqrt(var / (dn - 1)) : 0.0;
  r.kl_bias_bound = bsum / dn;
  r.kl_token_bound_max = bmax;
  if (keep) r.token_kl = kl;
  std::vector<double> sorted = kl;
  std::sort(sorted.begin(), sorted.end());
  // Median: mean of the two middle values for even n. p99: nearest rank ⌈0.99·n⌉.
  r.kl_median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  const int64_t rank = static_cast<int64_t>(std::ceil(0.99 * dn));
  r.kl_p99 = sorted[static_cast<size_t>(std::max<int64_t>(1, rank) - 1)];
  r.kl_max = sorted.back();
  r.top1 = static_cast<double>(agree) / dn;
  r.top1_se = std::sqrt(r.top1 * (1 - r.top1) / dn);
  return r;
}

}  // namespace

EvalResult Evaluator::evaluate(LlamaModel& m, const FpReference* ref, const EvalOptions& o) const {
  ThreadScope threads(p_.threads);
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t nW = windows_to_run(w_, o), S = w_.scored_per_window(), V = m.config().vocab_size;
  if (ref) {
    if (ref->n_vocab() != V)
      throw std::invalid_argument("evaluate: the fp reference has vocabulary " + std::to_string(ref->n_vocab()) +
                                  ", the model " + std::to_string(V));
    if (ref->n_tokens() < nW * S)
      throw std::invalid_argument("evaluate: the fp reference covers " + std::to_string(ref->n_tokens()) +
                                  " tokens, this evaluation scores " + std::to_string(nW * S));
  }
  std::vector<TokOut> tok(static_cast<size_t>(nW * S));
  for (int64_t b0 = 0; b0 < nW; b0 += p_.batch) {
    const int64_t nb = std::min<int64_t>(p_.batch, nW - b0);
    const at::Tensor logits = scored_logits(m, w_, b0, nb);
    const float* L = logits.data_ptr<float>();
    const int64_t base = b0 * S;
    at::parallel_for(0, nb * S, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float* ql = L + i * V;
        const RowStats rs = row_stats(ql, V);
        TokOut& t = tok[base + i];
        t.nll = rs.lse - static_cast<double>(ql[w_.targets[base + i]]);
        t.argmax = rs.argmax;
        if (ref) kl_cached(*ref, base + i, ql, rs.lse, t);
      }
    });
    if (o.progress) std::fprintf(stderr, "evaluate: window %lld/%lld\n", (long long)(b0 + nb), (long long)nW);
  }
  EvalResult r = summarize(w_, nW, tok, ref ? ref->nll() : nullptr, ref ? ref->argmax() : nullptr, ref != nullptr,
                           o.keep_tokens);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

EvalResult Evaluator::evaluate_pair(LlamaModel& q, LlamaModel& fp, const EvalOptions& o) const {
  ThreadScope threads(p_.threads);
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t nW = windows_to_run(w_, o), S = w_.scored_per_window(), V = q.config().vocab_size;
  if (fp.config().vocab_size != V) throw std::invalid_argument("evaluate_pair: the two models' vocabularies differ");
  std::vector<TokOut> tok(static_cast<size_t>(nW * S));
  std::vector<double> ref_nll(tok.size());
  std::vector<int32_t> ref_am(tok.size());
  std::vector<float> dlogit(tok.size());
  double sq = 0.0, sfp = 0.0;
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  for (int64_t b0 = 0; b0 < nW; b0 += p_.batch) {
    const int64_t nb = std::min<int64_t>(p_.batch, nW - b0);
    const auto tq = std::chrono::steady_clock::now();
    const at::Tensor lq = scored_logits(q, w_, b0, nb);
    sq += since(tq);
    const auto tp = std::chrono::steady_clock::now();
    const at::Tensor lp = scored_logits(fp, w_, b0, nb);
    sfp += since(tp);
    const float* Q = lq.data_ptr<float>();
    const float* P = lp.data_ptr<float>();
    const int64_t base = b0 * S;
    at::parallel_for(0, nb * S, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float* ql = Q + i * V;
        const float* pl = P + i * V;
        const RowStats rq = row_stats(ql, V), rp = row_stats(pl, V);
        const int32_t target = w_.targets[base + i];
        TokOut& t = tok[base + i];
        t.nll = rq.lse - static_cast<double>(ql[target]);
        t.argmax = rq.argmax;
        t.kl = kl_exact(pl, rp.lse, ql, rq.lse, V);
        t.bound = 0.0;
        ref_nll[base + i] = rp.lse - static_cast<double>(pl[target]);
        ref_am[base + i] = rp.argmax;
        float d = 0.0f;
        for (int64_t v = 0; v < V; ++v) d = std::max(d, std::fabs(ql[v] - pl[v]));
        dlogit[base + i] = d;
      }
    });
  }
  EvalResult r = summarize(w_, nW, tok, ref_nll.data(), ref_am.data(), true, o.keep_tokens);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.max_abs_dlogit = dlogit.empty() ? 0.0 : *std::max_element(dlogit.begin(), dlogit.end());
  r.pair_seconds_q = sq;
  r.pair_seconds_fp = sfp;
  return r;
}

int64_t run_calibration(LlamaModel& m, CalibrationCapture& cap, const Windows& w, int64_t n_windows, int64_t batch) {
  if (batch < 1) throw std::invalid_argument("run_calibration: batch must be ≥ 1");
  const int64_t nW = n_windows < 0 ? w.n_windows() : std::min<int64_t>(n_windows, w.n_windows());
  struct Restore {
    LlamaModel& m;
    ~Restore() { m.set_capture(nullptr); }
  } restore{m};
  m.set_capture(&cap);
  for (int64_t b0 = 0; b0 < nW; b0 += batch) {
    const int64_t nb = std::min<int64_t>(batch, nW - b0);
    at::Tensor tok = at::from_blob(const_cast<int32_t*>(w.tokens.data() + b0 * w.n_ctx), {nb, w.n_ctx}, at::kInt)
                         .to(at::kLong);
    const at::Tensor h = m.forward_hidden(tok);
    if (cap.wants("output")) (void)m.head(h);  // the head runs only when its input is wanted
  }
  return nW;
}

// ---- blame ------------------------------------------------------------------------------------

namespace {

LayerBlame blame_entry(const LinearLayer& l) {
  LayerBlame b;
  b.layer = l.name;
  const auto& ws = l.linear_scheme ? l.linear_scheme : l.weight_scheme;  // a linear scheme owns the weight
  if (ws) b.weight_scheme = ws->config().label();
  if (l.act_scheme) b.act_scheme = l.act_scheme->config().label();
  b.bits_per_weight = l.bits_per_weight;
  b.weight_sqnr_db = l.weight_sqnr_db;
  return b;
}
}  // namespace

std::vector<LayerBlame> Evaluator::blame_sqnr(LlamaModel& m, int64_t max_windows) const {
  ThreadScope threads(p_.threads);
  const int64_t nW = max_windows < 0 ? w_.n_windows() : std::min<int64_t>(max_windows, w_.n_windows());
  const auto acc = quantized_output_errors(m, [&] {
    for (int64_t b0 = 0; b0 < nW; b0 += p_.batch) (void)scored_logits(m, w_, b0, std::min<int64_t>(p_.batch, nW - b0));
  });
  std::vector<LayerBlame> out;
  for (const auto& name : m.linear_names()) {
    auto it = acc.find(name);
    if (it == acc.end()) continue;
    LayerBlame b = blame_entry(m.linear_layer(name));
    b.output_sqnr_db = it->second.sqnr_db();
    out.push_back(b);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const LayerBlame& a, const LayerBlame& b) { return a.output_sqnr_db < b.output_sqnr_db; });
  return out;
}

std::vector<LayerBlame> Evaluator::blame_one_at_a_time(LlamaModel& m, const FpReference& ref,
                                                       int64_t max_windows) const {
  const QuantPlan full = m.plan();
  std::vector<LayerBlame> out;
  try {
    for (const auto& name : m.linear_names()) {
      const QuantPlan::Resolved r = full.resolve(name);
      if (!r.weight && !r.activation) continue;
      QuantPlan one;
      LayerOverride all;
      all.pattern = "*";
      all.skip = true;
      LayerOverride me;
      me.pattern = name;
      me.weight = r.weight;
      me.activation = r.activation;
      one.overrides = {all, me};
      m.apply_plan(one);
      EvalOptions o;
      o.max_windows = max_windows;
      const EvalResult res = evaluate(m, &ref, o);
      LayerBlame b = blame_entry(m.linear_layer(name));
      b.kl_alone = res.kl_mean;
      out.push_back(b);
    }
  } catch (...) {
    m.apply_plan(full);
    throw;
  }
  m.apply_plan(full);
  std::stable_sort(out.begin(), out.end(), [](const LayerBlame& a, const LayerBlame& b) { return a.kl_alone > b.kl_alone; });
  return out;
}

}  // namespace qeval::model
