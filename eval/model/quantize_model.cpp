// eval/model/quantize_model.cpp — calibration windows, block-by-block calibrated quantization, folding, blame and
// mixed-precision allocation for the Llama forward (see quantize_model.hpp).
#include "eval/model/quantize_model.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>

#include "eval/model/checkpoint.hpp"
#include "eval/model/fingerprint.hpp"
#include "eval/model/ppl.hpp"
#include "quant/rng.hpp"
#include "schemes/mixed/mixed.hpp"

namespace qeval::model {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string resolve_path(const std::string& root, const std::string& p) {
  if (p.empty() || p[0] == '/' || root.empty()) return p;
  return root + "/" + p;
}

// Sets ATen's thread count for a scope and restores it.
struct ThreadScope {
  int prev;
  explicit ThreadScope(int n) : prev(at::get_num_threads()) {
    if (n > 0) configure_threads(n);
  }
  ~ThreadScope() {
    if (at::get_num_threads() != prev) at::set_num_threads(prev);
  }
};

std::string fmt_time(double s) {
  if (!std::isfinite(s) || s < 0) return "--";
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) / 60) % 60);
  }
  return buf;
}

double sqnr_db(const at::Tensor& ref, const at::Tensor& got) {
  const at::Tensor r = ref.to(at::kDouble);
  const double sig = r.pow(2).sum().item<double>();
  const double err = (r - got.to(at::kDouble)).pow(2).sum().item<double>();
  if (err == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(sig / err);
}

nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

quant::MatrixView view_of(const at::Tensor& t) {
  return quant::MatrixView(t.data_ptr<float>(), t.size(0), t.size(1));
}

}  // namespace

// ---- calibration spec / windows -------------------------------------------------------------------------------

nlohmann::json CalibrationSpec::to_json() const {
  return {{"text", text},   {"text_bytes", text_bytes}, {"count", count},           {"length", length},
          {"seed", seed},   {"max_rows", max_rows},     {"batch", batch},           {"sequential", sequential}};
}

CalibrationSpec CalibrationSpec::from_json(const nlohmann::json& j) {
  if (!j.is_object())
    throw std::invalid_argument("calibration: expected an object {\"text\", \"count\", \"length\", ...}, got " + j.dump());
  CalibrationSpec s;
  auto integer = [](const nlohmann::json& v, const std::string& k) {
    if (!v.is_number_integer())
      throw std::invalid_argument("calibration: \"" + k + "\" must be an integer, got " + v.dump());
    return v.get<int64_t>();
  };
  for (const auto& [k, v] : j.items()) {
    if (k == "text") {
      if (!v.is_string()) throw std::invalid_argument("calibration: \"text\" must be a path string");
      s.text = v.get<std::string>();
    } else if (k == "text_bytes") {
      s.text_bytes = integer(v, k);
    } else if (k == "count") {
      s.count = integer(v, k);
      if (s.count < 1) throw std::invalid_argument("calibration: \"count\" must be ≥ 1 (windows), got " + v.dump());
    } else if (k == "length") {
      s.length = integer(v, k);
      if (s.length != -1 && s.length < 4)
        throw std::invalid_argument("calibration: \"length\" must be ≥ 4 tokens or -1 (the protocol's n_ctx), got " +
                                    v.dump());
    } else if (k == "seed") {
      if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
        throw std::invalid_argument("calibration: \"seed\" must be a non-negative integer, got " + v.dump());
      s.seed = v.get<uint64_t>();
    } else if (k == "max_rows") {
      s.max_rows = integer(v, k);
      if (s.max_rows < 1) throw std::invalid_argument("calibration: \"max_rows\" must be ≥ 1, got " + v.dump());
    } else if (k == "batch") {
      s.batch = integer(v, k);
      if (s.batch < 1) throw std::invalid_argument("calibration: \"batch\" must be ≥ 1, got " + v.dump());
    } else if (k == "sequential") {
      if (!v.is_boolean()) throw std::invalid_argument("calibration: \"sequential\" must be true or false");
      s.sequential = v.get<bool>();
    } else {
      throw std::invalid_argument("calibration: unknown key \"" + k +
                                  "\" (accepted: text, text_bytes, count, length, seed, max_rows, batch, sequential)");
    }
  }
  return s;
}

CalibrationWindows calibration_windows_from_ids(const std::vector<int32_t>& ids, const CalibrationSpec& spec,
                                                int64_t length, BosMode bos, int64_t bos_id, const std::string& source) {
  if (length < 4) throw std::invalid_argument("calibration: window length " + std::to_string(length) + " < 4 tokens");
  if (spec.count < 1) throw std::invalid_argument("calibration: count must be ≥ 1");
  Protocol p;
  p.name = "calibration:" + source;
  p.n_ctx = length;
  p.n_chunks = -1;
  p.bos = bos;
  const Windows all = make_windows(p, ids, bos_id);
  const int64_t avail = all.n_windows();
  if (spec.count > avail)
    throw std::invalid_argument("calibration text " + source + ": " + std::to_string(avail) + " windows of " +
                                std::to_string(length) + " tokens available (" + std::to_string(all.n_stream_tokens) +
                                " tokens), " + std::to_string(spec.count) +
                                " requested; raise calibration.text_bytes or lower count / length");
  // Partial Fisher–Yates: the first `count` entries of a uniformly shuffled 0..avail−1.
  Rng rng(spec.seed);
  std::vector<int64_t> idx(static_cast<size_t>(avail));
  std::iota(idx.begin(), idx.end(), 0);
  for (int64_t i = 0; i < spec.count; ++i) {
    const int64_t j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(avail - i)));
    std::swap(idx[static_cast<size_t>(i)], idx[static_cast<size_t>(j)]);
  }
  std::vector<int64_t> chosen(idx.begin(), idx.begin() + spec.count);
  std::sort(chosen.begin(), chosen.end());
  CalibrationWindows w;
  w.count = spec.count;
  w.length = length;
  const int64_t S = all.scored_per_window();
  for (int64_t c : chosen) {
    // make_windows with first_chunk 0 and stride 1: window row c is chunk c.
    w.tokens.insert(w.tokens.end(), all.tokens.begin() + c * length, all.tokens.begin() + (c + 1) * length);
    w.targets.insert(w.targets.end(), all.targets.begin() + c * S, all.targets.begin() + (c + 1) * S);
  }
  w.window_ids = chosen;
  w.record = {{"source", source},
              {"count", w.count},
              {"length", w.length},
              {"tokens", w.count * w.length},
              {"stream_tokens", all.n_stream_tokens},
              {"available_windows", avail},
              {"seed", spec.seed},
              {"bos", to_string(bos)},
              {"window_ids", chosen},
              {"tokens_xxh64", xxh64_hex(w.tokens.data(), w.tokens.size() * sizeof(int32_t))}};
  return w;
}

CalibrationWindows make_calibration_windows(const CalibrationSpec& spec, int64_t length, const TokenSource& ts,
                                            BosMode bos, const std::string& root, const std::string& forbidden_sha256,
                                            int64_t eval_begin_byte) {
  const std::string path = resolve_path(root, spec.text);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    throw std::runtime_error("calibration text " + path + " not found (default data/sotu/sotu.txt under the project "
                             "root; set calibration.text)");
  const std::string sha = sha256_file_hex(path);
  std::string text = read_text_file(path);
  const int64_t file_bytes = static_cast<int64_t>(text.size());
  if (spec.text_bytes > 0 && file_bytes > spec.text_bytes) {
    // Cut back to the last line end inside the limit, so no line (nor UTF-8 sequence) is split.
    const size_t nl = text.rfind('\n', static_cast<size_t>(spec.text_bytes) - 1);
    text.resize(nl == std::string::npos ? static_cast<size_t>(spec.text_bytes) : nl + 1);
  }
  // Never calibrate on evaluated text: another file, or a part of the same file that ends before the evaluated
  // part begins (a protocol's text_begin_byte).
  if (!forbidden_sha256.empty() && sha == forbidden_sha256 && static_cast<int64_t>(text.size()) > eval_begin_byte)
    throw std::invalid_argument(
        "calibration text " + path + " is the evaluation text (" + sha + ")" +
        (eval_begin_byte > 0 ? ", and its first " + std::to_string(text.size()) + " bytes reach into the evaluated part (from byte " +
                                   std::to_string(eval_begin_byte) + " on); set calibration.text_bytes ≤ " +
                                   std::to_string(eval_begin_byte) + " or"
                             : ";") +
        " calibrate on another text (default data/sotu/sotu.txt)");
  const std::vector<int32_t> ids = ts.encode(text);
  CalibrationWindows w = calibration_windows_from_ids(ids, spec, length, bos, ts.bos_id, spec.text);
  w.record["text"] = spec.text;
  w.record["text_sha256"] = sha;
  w.record["file_bytes"] = file_bytes;
  w.record["bytes_used"] = static_cast<int64_t>(text.size());
  w.record["text_bytes_limit"] = spec.text_bytes;
  w.record["tokenizer"] = ts.name;
  w.record["tokenizer_hash"] = ts.hash;
  return w;
}

// ---- progress --------------------------------------------------------------------------------------------------

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(std::max<int64_t>(total, 1)), enabled_(enabled),
      tty_(enabled && ::isatty(STDERR_FILENO)), t0_(now_s()) {}

double Progress::seconds() const { return now_s() - t0_; }

void Progress::step(int64_t done, const std::string& note) {
  if (!enabled_) return;
  const double el = seconds();
  const double eta = done > 0 ? el / static_cast<double>(done) * static_cast<double>(total_ - done) : NAN;
  const double frac = static_cast<double>(done) / static_cast<double>(total_);
  if (tty_) {
    constexpr int kWidth = 24;
    const int fill = static_cast<int>(frac * kWidth + 0.5);
    std::string bar(static_cast<size_t>(fill), '#');
    bar.append(static_cast<size_t>(kWidth - fill), '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %3.0f%% elapsed %s ETA %s %s\x1b[K", label_.c_str(), bar.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), 100.0 * frac, fmt_time(el).c_str(),
                 fmt_time(eta).c_str(), note.c_str());
  } else {
    std::fprintf(stderr, "%s %lld/%lld (%.0f%%) elapsed %s ETA %s %s\n", label_.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total_), 100.0 * frac, fmt_time(el).c_str(), fmt_time(eta).c_str(),
                 note.c_str());
  }
  std::fflush(stderr);
}

void Progress::finish(const std::string& note) {
  if (!enabled_) return;
  if (tty_) std::fprintf(stderr, "\n");
  std::fprintf(stderr, "%s done in %s %s\n", label_.c_str(), fmt_time(seconds()).c_str(), note.c_str());
  std::fflush(stderr);
}

// ---- folding ---------------------------------------------------------------------------------------------------

const char* to_string(InputGroup g) {
  switch (g) {
    case InputGroup::attn_in: return "attn_in";
    case InputGroup::attn_out: return "attn_out";
    case InputGroup::ffn_in: return "ffn_in";
    case InputGroup::ffn_out: return "ffn_out";
  }
  return "?";
}

std::vector<std::string> group_members(int64_t block, InputGroup g) {
  const std::string p = "blk." + std::to_string(block) + ".";
  switch (g) {
    case InputGroup::attn_in: return {p + "attn_q", p + "attn_k", p + "attn_v"};
    case InputGroup::attn_out: return {p + "attn_output"};
    case InputGroup::ffn_in: return {p + "ffn_gate", p + "ffn_up"};
    case InputGroup::ffn_out: return {p + "ffn_down"};
  }
  return {};
}

bool group_foldable(const LlamaModel& m, InputGroup g) {
  // o's input column j (head h = j / head_dim) pairs with v's output row j only when every query head has its own
  // value head; under GQA one v row feeds n_heads/n_kv_heads columns of o, which would need equal s over them.
  if (g == InputGroup::attn_out) return m.config().n_heads == m.config().n_kv_heads;
  return true;
}

namespace {

constexpr InputGroup kGroups[] = {InputGroup::attn_in, InputGroup::attn_out, InputGroup::ffn_in, InputGroup::ffn_out};

at::Tensor& norm_param(LlamaModel& m, const std::string& name, std::vector<std::pair<std::string, at::Tensor>>& params) {
  for (auto& [n, t] : params)
    if (n == name) return t;
  throw std::logic_error("no parameter " + name);
}

}  // namespace

std::string fold_migration(LlamaModel& m, int64_t block, InputGroup g, const std::vector<float>& s) {
  if (block < 0 || block >= m.config().n_layers)
    throw std::invalid_argument("fold_migration: block " + std::to_string(block) + " outside [0, " +
                                std::to_string(m.config().n_layers) + ")");
  if (!group_foldable(m, g))
    throw std::invalid_argument("fold_migration: group " + std::string(to_string(g)) + " of block " +
                                std::to_string(block) + " cannot be folded (n_heads " +
                                std::to_string(m.config().n_heads) + " != n_kv_heads " +
                                std::to_string(m.config().n_kv_heads) + ": v's output is narrower than o's input)");
  const std::vector<std::string> members = group_members(block, g);
  const int64_t in = m.linear_layer(members[0]).in_features();
  if (static_cast<int64_t>(s.size()) != in)
    throw std::invalid_argument("fold_migration: " + std::to_string(s.size()) + " scales for " +
                                std::to_string(in) + " input features of " + members[0]);
  for (size_t j = 0; j < s.size(); ++j)
    if (!(s[j] > 0.0f) || !std::isfinite(s[j]) || !std::isfinite(1.0f / s[j]))
      throw std::invalid_argument("fold_migration: s[" + std::to_string(j) + "] = " + std::to_string(s[j]) +
                                  " must be finite and > 0 (with a finite reciprocal)");
  c10::InferenceMode guard(false);
  at::NoGradGuard no_grad;
  const at::Tensor sv = at::from_blob(const_cast<float*>(s.data()), {in}, at::kFloat).clone();
  const at::Tensor inv = at::reciprocal(sv);
  std::string producer;
  const std::string p = "blk." + std::to_string(block) + ".";
  if (g == InputGroup::attn_in || g == InputGroup::ffn_in) {
    auto params = m.named_parameters();
    producer = p + (g == InputGroup::attn_in ? "attn_norm" : "ffn_norm");
    norm_param(m, producer + ".weight", params).mul_(inv);  // aliases the model's norm weight
  } else {
    LinearLayer& prev = m.linear_layer(p + (g == InputGroup::attn_out ? "attn_v" : "ffn_up"));
    if (prev.out_features() != in)
      throw std::logic_error("fold_migration: " + prev.name + " has " + std::to_string(prev.out_features()) +
                             " outputs for " + std::to_string(in) + " inputs of " + members[0]);
    prev.weight.mul_(inv.unsqueeze(1));  // row j of the producer ·= 1/s_j
    producer = prev.name + " rows";
  }
  for (const auto& name : members) m.linear_layer(name).weight.mul_(sv.unsqueeze(0));  // column j ·= s_j
  return producer;
}

// ---- results ---------------------------------------------------------------------------------------------------

nlohmann::json LayerQuantInfo::to_json() const {
  nlohmann::json j = {{"layer", layer}, {"role", role}, {"scheme", scheme}, {"act_scheme", act_scheme},
                      {"rows", rows},   {"cols", cols}, {"seconds", seconds}};
  if (role != "act") {
    j["bits_per_weight"] = bits_per_weight;
    j["weight_sqnr_db"] = finite_or_null(weight_sqnr_db);
  }
  if (!migration.empty()) {
    j["migration"] = migration;
    double mn = std::numeric_limits<double>::infinity(), mx = 0.0;
    for (float v : migration_scales) {
      mn = std::min(mn, static_cast<double>(v));
      mx = std::max(mx, static_cast<double>(v));
    }
    j["migration_scale_min"] = finite_or_null(mn);
    j["migration_scale_max"] = mx;
  }
  return j;
}

double QuantizedModel::bits_per_weight() const {
  double bits = 0.0, n = 0.0;
  for (const auto& l : layers)
    if (l.role != "act") {
      const double k = static_cast<double>(l.rows) * static_cast<double>(l.cols);
      bits += l.bits_per_weight * k;
      n += k;
    }
  return n > 0 ? bits / n : 32.0;
}

int64_t QuantizedModel::quantized_params() const {
  int64_t n = 0;
  for (const auto& l : layers)
    if (l.role != "act") n += l.rows * l.cols;
  return n;
}

nlohmann::json QuantizedModel::run_stats() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& s : schemes) {
    const auto st = s->run_stats();
    if (st.empty()) continue;
    nlohmann::json& dst = j[s->config().label()];
    for (const auto& [layer, kv] : st)
      for (const auto& [k, v] : kv) dst[layer][k] = finite_or_null(v);
  }
  return j;
}

nlohmann::json QuantizedModel::layers_json() const {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& l : layers) a.push_back(l.to_json());
  return a;
}

nlohmann::json QuantizedModel::fingerprint_json() const {
  Fingerprint model;
  nlohmann::json per_layer = nlohmann::json::object();
  for (const auto& l : layers) {
    if (l.fingerprint.empty()) continue;
    model.add(l.layer.data(), l.layer.size()).add(l.fingerprint.data(), l.fingerprint.size());
    per_layer[l.layer] = l.fingerprint;
  }
  return {{"model", model.hex()}, {"layers", per_layer}};
}

// ---- the quantizer ---------------------------------------------------------------------------------------------

namespace {

enum class Role : uint8_t { none, weight, linear };

struct Slot {
  std::string name;
  LinearLayer* layer = nullptr;
  int64_t block = -1;  // −1: output head
  Role role = Role::none;
  std::shared_ptr<const schemes::Scheme> ws;  // weight or linear scheme
  std::shared_ptr<const schemes::Scheme> as;  // activation scheme
  bool w_stats = false;  // the weight/linear scheme reads calibration statistics
  schemes::CalibrationNeeds w_needs;  // …which ones (its traits)
  bool a_stats = false;  // the activation scheme needs calibrate()
  bool a_rows = false;   // …and reads raw rows (static_act, except symmetric min/max, which needs only max|x|)
};

// Calibration statistics a layer group needs captured.
struct Needs {
  bool any = false, hessian = false, rows = false;
};

class SchemeSet {
 public:
  explicit SchemeSet(SchemeFactory f) : f_(std::move(f)) {}
  std::shared_ptr<const schemes::Scheme> get(const schemes::SchemeConfig& c) {
    for (auto& [cfg, s] : made_)
      if (cfg == c) return s;
    std::shared_ptr<const schemes::Scheme> s = f_(c);
    if (!s) throw std::logic_error("scheme factory returned null for '" + c.scheme + "'");
    made_.emplace_back(c, s);
    return s;
  }
  std::vector<std::shared_ptr<const schemes::Scheme>> all() const {
    std::vector<std::shared_ptr<const schemes::Scheme>> out;
    for (const auto& kv : made_) out.push_back(kv.second);
    return out;
  }
  const SchemeFactory& factory() const { return f_; }

 private:
  SchemeFactory f_;
  std::vector<std::pair<schemes::SchemeConfig, std::shared_ptr<const schemes::Scheme>>> made_;
};

SchemeFactory default_factory() {
  return [](const schemes::SchemeConfig& c) { return std::shared_ptr<const schemes::Scheme>(schemes::make_scheme(c)); };
}

// A Calibration without the parts that point into a capture (inputs) or are large (Hessian): what a linear scheme or
// an activation scheme keeps for every later forward.
schemes::Calibration stripped(schemes::Calibration c) {
  c.inputs = quant::MatrixView();
  c.hessian.clear();
  c.hessian.shrink_to_fit();
  return c;
}

struct Migration {
  std::vector<float> s;
  bool folded = false;
  std::string producer;
};

}  // namespace

QuantizedModel quantize_model(LlamaModel& m, const QuantPlan& plan, const CalibrationWindows* calib,
                              const QuantizeOptions& o) {
  const double t_start = now_s();
  ThreadScope threads(o.threads);
  c10::InferenceMode inference;
  const std::vector<std::string> names = m.linear_names();
  if (!m.plan().empty())
    throw std::invalid_argument("quantize_model: the model has a plan installed (apply_plan); quantize a model in "
                                "full precision (a fresh LlamaModel)");
  for (const auto& n : names) {
    const LinearLayer& l = m.linear_layer(n);
    if (!l.effective.is_same(l.weight) || l.weight_scheme || l.act_scheme || l.linear_scheme)
      throw std::invalid_argument("quantize_model: layer " + n + " is already quantized (an earlier quantize_model "
                                  "or apply_plan); quantize a fresh LlamaModel — folds change the fp weights, so a "
                                  "model cannot be quantized twice");
  }
  for (const auto& ov : plan.overrides) {
    bool hit = false;
    for (const auto& n : names) hit = hit || glob_match(ov.pattern, n);
    if (!hit)
      throw std::invalid_argument("quant plan: override pattern '" + ov.pattern +
                                  "' matches no linear layer (names look like blk.3.ffn_down, output)");
  }
  SchemeSet set(o.make_scheme ? o.make_scheme : default_factory());
  QuantizedModel out;

  // ---- resolve the plan ----
  std::vector<Slot> slots;
  std::map<std::string, size_t> slot_of;
  for (const auto& n : names) {
    Slot s;
    s.name = n;
    s.layer = &m.linear_layer(n);
    if (n.rfind("blk.", 0) == 0) s.block = std::stoll(n.substr(4));
    const QuantPlan::Resolved r = plan.resolve(n);
    if (r.weight) {
      s.ws = set.get(*r.weight);
      const schemes::Target t = s.ws->target();
      if (t == schemes::Target::weight) {
        s.role = Role::weight;
      } else if (t == schemes::Target::linear) {
        s.role = Role::linear;
      } else {
        throw std::invalid_argument("quant plan: scheme '" + r.weight->scheme + "' quantizes " + schemes::to_string(t) +
                                    ", but it is named as the weight (or linear) scheme of " + n);
      }
      s.w_needs = s.ws->traits().calibration;
      s.w_stats = s.w_needs.any_statistics();
    }
    if (r.activation) {
      s.as = set.get(*r.activation);
      if (s.as->target() != schemes::Target::activation)
        throw std::invalid_argument("quant plan: scheme '" + r.activation->scheme + "' quantizes " +
                                    schemes::to_string(s.as->target()) + ", but it is named as the activation scheme of " +
                                    n);
      if (s.role == Role::linear)
        throw std::invalid_argument("quant plan: layer " + n + " has the linear scheme '" + s.ws->name() +
                                    "' (which quantizes its activations itself) and the activation scheme '" +
                                    s.as->name() + "'; drop one (override \"activation\": \"skip\")");
      // A calibrated activation scheme reads statistics over every calibration token, and raw rows (a bounded
      // sample) only when its traits say so (static activations: all but symmetric min/max).
      const schemes::CalibrationNeeds an = s.as->traits().calibration;
      s.a_stats = an.any_statistics();
      s.a_rows = an.rows;
    }
    slot_of[n] = slots.size();
    slots.push_back(std::move(s));
  }
  bool need_capture = false;
  for (const auto& s : slots) {
    if ((s.w_stats || s.a_stats) && (!calib || calib->count < 1)) {
      const std::string sch = s.w_stats ? s.ws->name() : s.as->name();
      throw std::invalid_argument("quantize_model: scheme '" + sch + "' of layer " + s.name +
                                  " needs calibration data; pass calibration windows (a calibration spec)");
    }
    need_capture = need_capture || s.w_stats || s.a_stats;
  }

  // ---- KV cache ----
  if (plan.kv_cache) {
    std::shared_ptr<const schemes::Scheme> kv = set.get(*plan.kv_cache);
    if (kv->target() != schemes::Target::kv_cache && kv->target() != schemes::Target::activation)
      throw std::invalid_argument("quant plan: scheme '" + plan.kv_cache->scheme + "' quantizes " +
                                  schemes::to_string(kv->target()) + ", but it is named as the KV-cache scheme");
    auto enabled = std::make_shared<std::atomic<bool>>(true);
    out.kv_enabled = enabled;
    LlamaModel* mp = &m;
    m.set_kv_hook([kv, enabled, mp](int, at::Tensor& k, at::Tensor& v) {
      if (!enabled->load()) return;
      const int64_t T = mp->current_seq_len(), rows = k.size(0), cols = k.size(1);
      if (T <= 0 || rows % T != 0)
        throw std::logic_error("KV hook: " + std::to_string(rows) + " key rows are not a multiple of T = " +
                               std::to_string(T));
      float* kp = k.data_ptr<float>();
      float* vp = v.data_ptr<float>();
      for (int64_t b = 0; b < rows / T; ++b) {
        const int64_t off = b * T * cols;
        kv->fake_quantize_kv(schemes::KvPart::key, quant::MatrixView(kp + off, T, cols),
                             quant::MutableMatrixView(kp + off, T, cols));
        kv->fake_quantize_kv(schemes::KvPart::value, quant::MatrixView(vp + off, T, cols),
                             quant::MutableMatrixView(vp + off, T, cols));
      }
    });
  }

  double t_embed = 0, t_capture = 0, t_search = 0, t_quant = 0, t_prop = 0;

  // Quantizes / installs one slot. `c` is the layer's calibration (statistics as captured, migration set).
  // `runtime_inv_s`: 1/s when the layer's input was folded (the activation scheme then sees X·diag(1/s)).
  auto install = [&](Slot& s, const schemes::Calibration& c, const std::vector<float>* runtime_inv_s,
                     const Migration* mig) {
    const double t0 = now_s();
    LinearLayer& L = *s.layer;
    LayerQuantInfo info;
    Fingerprint fp;  // what this layer stores, in fingerprint.hpp's order
    bool stores = false;
    info.layer = s.name;
    info.rows = L.out_features();
    info.cols = L.in_features();
    if (s.ws) info.scheme = s.ws->config().label();
    if (s.as) info.act_scheme = s.as->config().label();
    if (mig) {
      info.migration = mig->folded ? "folded into " + mig->producer : "unfolded";
      info.migration_scales = mig->s;
    }
    if (s.ws) {
      stores = true;
      info.role = s.role == Role::weight ? "weight" : "linear";
      c10::InferenceMode g(false);
      at::NoGradGuard ng;
      const at::Tensor w = L.weight.detach().contiguous();
      const quant::QuantizedMatrix q = s.ws->quantize(view_of(w), &c);
      at::Tensor eff = at::empty_like(w);
      s.ws->dequantize(q, quant::MutableMatrixView(eff.data_ptr<float>(), w.size(0), w.size(1)));
      info.bits_per_weight = q.bits_per_weight() + (q.col_scale.empty() ? 0.0 : 16.0 / static_cast<double>(q.rows));
      info.weight_sqnr_db = sqnr_db(w, eff);
      fp.add(q);
      L.effective = eff;
      L.bits_per_weight = info.bits_per_weight;
      L.weight_sqnr_db = info.weight_sqnr_db;
      if (s.role == Role::weight) {
        L.weight_scheme = s.ws;
      } else {
        L.linear_scheme = s.ws;
        L.linear_calib = std::make_shared<const schemes::Calibration>(stripped(c));
      }
    } else {
      info.role = "act";
    }
    if (s.as) {
      if (s.a_stats) {
        schemes::Calibration rc = c;
        rc.migration_scales.clear();
        rc.migration_folded = false;
        if (!s.a_rows) rc.inputs = quant::MatrixView();  // statistics over every token instead of a row sample
        quant::Matrix scaled;
        if (runtime_inv_s) {
          // The layer sees X·diag(1/s) at run time: its frozen ranges must come from that.
          const std::vector<float>& inv = *runtime_inv_s;
          for (size_t j = 0; j < rc.act_absmax.size(); ++j) rc.act_absmax[j] *= inv[j];
          for (size_t j = 0; j < rc.act_absmean.size(); ++j) rc.act_absmean[j] *= inv[j];
          rc.hessian.clear();
          if (rc.inputs.data) {
            scaled = quant::Matrix(rc.inputs.rows, rc.inputs.cols);
            for (int64_t r = 0; r < rc.inputs.rows; ++r)
              for (int64_t j = 0; j < rc.inputs.cols; ++j) scaled(r, j) = rc.inputs(r, j) * inv[static_cast<size_t>(j)];
            rc.inputs = scaled.view();
          }
        }
        L.act_calib = std::make_shared<const schemes::Calibration>(stripped(s.as->calibrate(rc)));
        fp.add(L.act_calib->frozen_scales).add(L.act_calib->frozen_zero_points);
        stores = true;
      }
      L.act_scheme = s.as;
    }
    if (mig) fp.add(mig->s).add_int(mig->folded ? 1 : 0);
    if (stores) info.fingerprint = fp.hex();
    info.seconds = now_s() - t0;
    t_quant += info.seconds;
    out.layers.push_back(std::move(info));
  };

  auto name_only = [](const std::string& n) {
    schemes::Calibration c;
    c.layer_name = n;
    return c;
  };

  if (!need_capture) {
    for (auto& s : slots)
      if (s.ws || s.as) install(s, name_only(s.name), nullptr, nullptr);
  } else {
    const int64_t N = calib->count, T = calib->length, D = m.config().d_model;
    if (static_cast<int64_t>(calib->tokens.size()) != N * T)
      throw std::invalid_argument("quantize_model: calibration windows hold " + std::to_string(calib->tokens.size()) +
                                  " tokens for " + std::to_string(N) + " x " + std::to_string(T));
    const int64_t B = std::max<int64_t>(1, o.batch);
    const at::Tensor tok =
        at::from_blob(const_cast<int32_t*>(calib->tokens.data()), {N, T}, at::kInt).to(at::kLong);
    double t0 = now_s();
    at::Tensor hidden = at::empty({N, T, D}, at::kFloat);
    for (int64_t b0 = 0; b0 < N; b0 += B) {
      const int64_t b1 = std::min(N, b0 + B);
      hidden.slice(0, b0, b1).copy_(m.embed(tok.slice(0, b0, b1)));
    }
    t_embed = now_s() - t0;
    out.calibration_tokens = N * T;
    std::string label = "quantize";
    {
      std::set<std::string> ids;
      for (const auto& s : slots)
        if (s.w_stats || s.a_stats) ids.insert(s.w_stats ? s.ws->name() : s.as->name());
      for (const auto& i : ids) label += " " + i;
    }
    const Slot& head = slots[slot_of.at("output")];
    const bool head_stats = head.w_stats || head.a_stats;
    const int64_t nL = m.config().n_layers;
    Progress bar(label, nL + (head_stats ? 1 : 0), o.progress);

    auto needs_of = [&](const std::vector<std::string>& members) {
      Needs n;
      for (const auto& name : members) {
        const Slot& s = slots[slot_of.at(name)];
        if (s.w_stats) {
          n.any = true;
          n.hessian = n.hessian || s.w_needs.hessian;
          n.rows = n.rows || s.w_needs.rows;
        }
        if (s.a_stats) n.any = true;
        if (s.a_rows) n.rows = true;
        // A migration of a group is decided from statistics even when only some members read them.
      }
      return n;
    };
    auto make_capture = [&](const std::string& rep, const Needs& n) {
      CaptureOptions co;
      co.layers = {rep};
      co.keep_inputs = n.rows;
      co.max_rows = o.max_rows;
      co.hessian = n.hessian;
      co.act_stats = true;
      return std::make_unique<CalibrationCapture>(co);
    };

    for (int64_t l = 0; l < nL; ++l) {
      // 1. capture pass
      std::map<std::string, std::unique_ptr<CalibrationCapture>> caps;
      std::map<InputGroup, Needs> needs;
      for (InputGroup g : kGroups) {
        const auto members = group_members(l, g);
        needs[g] = needs_of(members);
        if (needs[g].any) caps[members[0]] = make_capture(members[0], needs[g]);
      }
      at::Tensor next;
      if (!caps.empty() || !o.sequential) {
        t0 = now_s();
        if (!o.sequential) next = at::empty_like(hidden);
        if (out.kv_enabled) out.kv_enabled->store(o.sequential);
        m.set_observer([&caps](const LinearLayer& L, const at::Tensor& x, const at::Tensor&) {
          auto it = caps.find(L.name);
          if (it != caps.end()) it->second->record(L.name, x.data_ptr<float>(), x.size(0), x.size(1));
        });
        try {
          for (int64_t b0 = 0; b0 < N; b0 += B) {
            const int64_t b1 = std::min(N, b0 + B);
            at::Tensor y = m.forward_block(l, hidden.slice(0, b0, b1));
            if (!o.sequential) next.slice(0, b0, b1).copy_(y);
          }
        } catch (...) {
          m.set_observer(nullptr);
          throw;
        }
        m.set_observer(nullptr);
        if (out.kv_enabled) out.kv_enabled->store(true);
        t_capture += now_s() - t0;
      }
      std::map<std::string, schemes::Calibration> captured;  // by representative
      for (auto& [rep, cap] : caps) {
        captured[rep] = cap->calibration(rep);
        if (o.on_capture) o.on_capture(rep, captured[rep]);
      }

      // 2. migration
      std::map<std::string, Migration> mig;             // by member
      std::map<InputGroup, std::vector<float>> inv_of;  // runtime 1/s of folded groups
      for (InputGroup g : kGroups) {
        const auto members = group_members(l, g);
        auto it = captured.find(members[0]);
        if (it == captured.end()) continue;
        std::vector<Slot*> quantized;
        for (const auto& name : members) {
          Slot& s = slots[slot_of.at(name)];
          if (s.ws) quantized.push_back(&s);
        }
        if (quantized.empty()) continue;
        bool uniform = true;
        for (const Slot* s : quantized)
          uniform = uniform && s->ws->name() == quantized[0]->ws->name() &&
                    s->ws->params() == quantized[0]->ws->params();
        t0 = now_s();
        c10::InferenceMode gi(false);
        at::NoGradGuard ng;
        if (uniform) {
          std::vector<at::Tensor> keep;
          std::vector<quant::MatrixView> views;
          for (const Slot* s : quantized) {
            keep.push_back(s->layer->weight.detach().contiguous());
            views.push_back(view_of(keep.back()));
          }
          schemes::Calibration c = it->second;
          c.layer_name = quantized[0]->name;
          const std::vector<float> sc =
              quantized[0]->ws->traits().migrates ? quantized[0]->ws->input_channel_scales(c, views) : std::vector<float>{};
          if (!sc.empty()) {
            Migration mg;
            mg.s = sc;
            mg.folded = group_foldable(m, g);
            if (mg.folded) {
              mg.producer = fold_migration(m, l, g, sc);
              std::vector<float> inv(sc.size());
              for (size_t j = 0; j < sc.size(); ++j) inv[j] = 1.0f / sc[j];
              inv_of[g] = inv;
            }
            for (const Slot* s : quantized) mig[s->name] = mg;
          }
        } else {
          for (const Slot* s : quantized) {
            if (!s->w_stats || !s->ws->traits().migrates) continue;
            const at::Tensor w = s->layer->weight.detach().contiguous();
            schemes::Calibration c = it->second;
            c.layer_name = s->name;
            const std::vector<float> sc = s->ws->input_channel_scales(c, {view_of(w)});
            if (!sc.empty()) mig[s->name] = Migration{sc, false, ""};
          }
        }
        t_search += now_s() - t0;
      }

      // 3. quantize / install
      for (InputGroup g : kGroups) {
        const auto members = group_members(l, g);
        auto it = captured.find(members[0]);
        for (const auto& name : members) {
          Slot& s = slots[slot_of.at(name)];
          if (!s.ws && !s.as) continue;
          schemes::Calibration c = it != captured.end() ? it->second : name_only(name);
          c.layer_name = name;
          const Migration* mg = nullptr;
          if (auto mi = mig.find(name); mi != mig.end()) {
            mg = &mi->second;
            c.migration_scales = mg->s;
            c.migration_folded = mg->folded;
          }
          auto ii = inv_of.find(g);
          install(s, c, ii != inv_of.end() ? &ii->second : nullptr, mg);
        }
      }
      caps.clear();
      captured.clear();

      // 4. the next block's input
      t0 = now_s();
      if (o.sequential) {
        for (int64_t b0 = 0; b0 < N; b0 += B) {
          const int64_t b1 = std::min(N, b0 + B);
          hidden.slice(0, b0, b1).copy_(m.forward_block(l, hidden.slice(0, b0, b1)));
        }
      } else {
        hidden = next;
      }
      t_prop += now_s() - t0;
      bar.step(l + 1, "block " + std::to_string(l));
    }

    // The output head: its input is the final norm of the last hidden state.
    Slot& hs = slots[slot_of.at("output")];
    if (head_stats) {
      t0 = now_s();
      Needs n;
      n.any = true;
      n.hessian = hs.w_stats && hs.w_needs.hessian;
      n.rows = (hs.w_stats && hs.w_needs.rows) || hs.a_rows;
      auto cap = make_capture("output", n);
      for (int64_t b0 = 0; b0 < N; b0 += B) {
        const int64_t b1 = std::min(N, b0 + B);
        const at::Tensor h = m.final_norm(hidden.slice(0, b0, b1)).reshape({-1, D}).contiguous();
        cap->record("output", h.data_ptr<float>(), h.size(0), D);
      }
      schemes::Calibration c = cap->calibration("output");
      if (o.on_capture) o.on_capture("output", c);
      t_capture += now_s() - t0;
      // No fold for the head (tied embeddings would change the lookup): a migrating scheme applies s itself.
      const Migration* mgp = nullptr;
      Migration mg;
      if (hs.ws && hs.w_stats && hs.ws->traits().migrates) {
        t0 = now_s();
        c10::InferenceMode gi(false);
        const at::Tensor w = hs.layer->weight.detach().contiguous();
        mg.s = hs.ws->input_channel_scales(c, {view_of(w)});
        t_search += now_s() - t0;
        if (!mg.s.empty()) {
          c.migration_scales = mg.s;
          c.migration_folded = false;
          mgp = &mg;
        }
      }
      install(hs, c, nullptr, mgp);
      bar.step(nL + 1, "output");
    } else if (hs.ws || hs.as) {
      install(hs, name_only("output"), nullptr, nullptr);
    }
    bar.finish();
  }
  out.schemes = set.all();
  out.timings = {{"embed_s", t_embed},     {"capture_s", t_capture}, {"search_s", t_search},
                 {"quantize_s", t_quant},  {"propagate_s", t_prop},  {"total_s", now_s() - t_start}};
  return out;
}

// ---- plan queries ----------------------------------------------------------------------------------------------

schemes::SchemeTraits traits_of(const schemes::SchemeConfig& c) { return schemes::make_scheme(c)->traits(); }

bool needs_allocation(const schemes::SchemeConfig& c) {
  const schemes::SchemeTraits t = traits_of(c);
  return t.wrapper && !t.wrapper->allocated;
}

bool plan_needs_allocation(const QuantPlan& plan) {
  bool any = plan.weight && needs_allocation(*plan.weight);
  for (const auto& ov : plan.overrides) any = any || (ov.weight && needs_allocation(*ov.weight));
  return any;
}

bool plan_needs_calibration(const QuantPlan& plan, const std::vector<std::string>& layers) {
  std::vector<std::pair<schemes::SchemeConfig, bool>> seen;  // one scheme built per distinct config
  auto needs = [&](const schemes::SchemeConfig& c) {
    for (const auto& [cfg, v] : seen)
      if (cfg == c) return v;
    const schemes::SchemeTraits t = traits_of(c);
    const bool v = t.calibration.any() || (t.wrapper && !t.wrapper->allocated);
    seen.emplace_back(c, v);
    return v;
  };
  for (const auto& n : layers) {
    const QuantPlan::Resolved r = plan.resolve(n);
    if ((r.weight && needs(*r.weight)) || (r.activation && needs(*r.activation))) return true;
  }
  return false;
}

QuantPlan with_reference_overrides(QuantPlan plan) {
  if (!plan.weight) return plan;
  std::vector<LayerOverride> pre;
  for (const schemes::ReferenceOverride& ro : traits_of(*plan.weight).reference_overrides) {
    LayerOverride o;
    o.pattern = ro.pattern;
    schemes::SchemeConfig c = *plan.weight;
    for (const auto& [k, v] : ro.options.items()) c.options.set(k, v);
    o.weight = c;
    pre.push_back(o);
  }
  // Prepended: the user's own overrides (later) still refine them (e.g. a skip).
  plan.overrides.insert(plan.overrides.begin(), pre.begin(), pre.end());
  return plan;
}

QuantPlan with_allocation(QuantPlan plan, const std::string& path) {
  auto point = [&](std::optional<schemes::SchemeConfig>& c) {
    if (c && needs_allocation(*c)) c->options.set(traits_of(*c).wrapper->allocation_option, path);
  };
  point(plan.weight);
  for (auto& ov : plan.overrides) point(ov.weight);
  return plan;
}

// ---- blame -----------------------------------------------------------------------------------------------------

nlohmann::json BlameEntry::to_json() const {
  return {{"layer", layer},
          {"scheme", scheme},
          {"act_scheme", act_scheme},
          {"bits_per_weight", bits_per_weight},
          {"weight_sqnr_db", finite_or_null(weight_sqnr_db)},
          {"output_sqnr_db", finite_or_null(output_sqnr_db)}};
}

std::vector<BlameEntry> blame_layers(LlamaModel& m, const QuantizedModel& q, const std::vector<int32_t>& tokens,
                                     int64_t n_ctx, int64_t windows, int64_t batch) {
  if (n_ctx <= 0 || tokens.size() % static_cast<size_t>(n_ctx) != 0)
    throw std::invalid_argument("blame_layers: " + std::to_string(tokens.size()) + " tokens are not windows of " +
                                std::to_string(n_ctx));
  const int64_t nW = std::min<int64_t>(windows, static_cast<int64_t>(tokens.size()) / n_ctx);
  std::map<std::string, const LayerQuantInfo*> info;
  for (const auto& l : q.layers) info[l.layer] = &l;
  struct Acc {
    double sig = 0, err = 0;
  };
  std::map<std::string, Acc> acc;
  struct Scope {
    LlamaModel& m;
    const QuantizedModel& q;
    ~Scope() {
      m.set_observer(nullptr);
      m.set_bypass_plan(false);
      if (q.kv_enabled) q.kv_enabled->store(true);
    }
  } scope{m, q};
  if (q.kv_enabled) q.kv_enabled->store(false);
  m.set_bypass_plan(true);
  m.set_observer([&](const LinearLayer& L, const at::Tensor& x, const at::Tensor& y) {
    if (!info.count(L.name)) return;
    at::Tensor xq = x;
    const int64_t rows = x.size(0), in = x.size(1);
    if (L.act_scheme) {
      xq = at::empty_like(x);
      L.act_scheme->fake_quantize(view_of(x), quant::MutableMatrixView(xq.data_ptr<float>(), rows, in),
                                  L.act_calib.get());
    }
    at::Tensor yq;
    bool done = false;
    if (L.linear_scheme) {
      const at::Tensor w = L.weight.contiguous();
      yq = at::empty({rows, L.out_features()}, at::kFloat);
      done = L.linear_scheme->linear(view_of(xq), view_of(w),
                                     quant::MutableMatrixView(yq.data_ptr<float>(), rows, L.out_features()),
                                     L.linear_calib.get());
    }
    if (!done) yq = at::mm(xq, L.effective.t());
    const at::Tensor yd = y.to(at::kDouble);
    Acc& a = acc[L.name];
    a.sig += yd.pow(2).sum().item<double>();
    a.err += (yd - yq.to(at::kDouble)).pow(2).sum().item<double>();
  });
  for (int64_t b0 = 0; b0 < nW; b0 += std::max<int64_t>(1, batch)) {
    const int64_t nb = std::min<int64_t>(std::max<int64_t>(1, batch), nW - b0);
    const at::Tensor tok =
        at::from_blob(const_cast<int32_t*>(tokens.data() + b0 * n_ctx), {nb, n_ctx}, at::kInt).to(at::kLong);
    (void)m.forward(tok);
  }
  std::vector<BlameEntry> outv;
  for (const auto& l : q.layers) {
    auto it = acc.find(l.layer);
    if (it == acc.end()) continue;
    BlameEntry b;
    b.layer = l.layer;
    b.scheme = l.scheme;
    b.act_scheme = l.act_scheme;
    b.bits_per_weight = l.role == "act" ? 32.0 : l.bits_per_weight;
    b.weight_sqnr_db = l.weight_sqnr_db;
    b.output_sqnr_db = it->second.err > 0 ? 10.0 * std::log10(it->second.sig / it->second.err)
                                          : std::numeric_limits<double>::infinity();
    outv.push_back(b);
  }
  std::stable_sort(outv.begin(), outv.end(),
                   [](const BlameEntry& a, const BlameEntry& b) { return a.output_sqnr_db < b.output_sqnr_db; });
  return outv;
}

// ---- mixed precision -------------------------------------------------------------------------------------------

nlohmann::json MixedSpec::to_json() const {
  nlohmann::json c = nlohmann::json::array();
  for (const auto& [b, g] : candidates) c.push_back({{"bits", b}, {"group_size", g}});
  return {{"target_bits", target_bits}, {"candidates", c},          {"metric", metric},
          {"windows", windows},         {"allocation_path", allocation_path}};
}

MixedSpec MixedSpec::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("mixed: expected an object {\"target_bits\": ..., ...}");
  MixedSpec s;
  for (const auto& [k, v] : j.items()) {
    if (k == "target_bits") {
      if (!v.is_number() || !(v.get<double>() > 0))
        throw std::invalid_argument("mixed: \"target_bits\" must be a number > 0 (average bits/weight), got " + v.dump());
      s.target_bits = v.get<double>();
    } else if (k == "candidates") {
      if (!v.is_array()) throw std::invalid_argument("mixed: \"candidates\" must be an array of {bits, group_size}");
      for (const auto& c : v) {
        if (!c.is_object() || !c.contains("bits") || !c["bits"].is_number_integer())
          throw std::invalid_argument("mixed: candidate " + c.dump() + " must be {\"bits\": b, \"group_size\": g}");
        s.candidates.emplace_back(c["bits"].get<int>(), c.value("group_size", int64_t{128}));
      }
    } else if (k == "metric") {
      s.metric = v.get<std::string>();
      if (s.metric != "kl" && s.metric != "ppl" && s.metric != "nll")
        throw std::invalid_argument("mixed: \"metric\" '" + s.metric + "' unknown (accepted: kl, ppl, nll)");
    } else if (k == "windows") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1)
        throw std::invalid_argument("mixed: \"windows\" must be an integer ≥ 1, got " + v.dump());
      s.windows = v.get<int64_t>();
    } else if (k == "allocation_path") {
      s.allocation_path = v.get<std::string>();
    } else {
      throw std::invalid_argument("mixed: unknown key \"" + k +
                                  "\" (accepted: target_bits, candidates, metric, windows, allocation_path)");
    }
  }
  return s;
}

nlohmann::json MixedReport::to_json() const {
  return {{"allocation", allocation}, {"sensitivity", sensitivity}, {"path", path}, {"seconds", seconds}};
}

MixedReport allocate_mixed(LlamaModel& m, const QuantPlan& plan, const MixedSpec& spec, const CalibrationWindows& calib,
                           const std::string& work_dir, int threads, bool progress) {
  const double t_start = now_s();
  if (!(spec.target_bits > 0))
    throw std::invalid_argument("mixed precision: target_bits must be > 0 (the average bits/weight to meet)");
  if (!plan_needs_allocation(plan))
    throw std::invalid_argument("mixed precision: the plan has no `mixed` weight scheme without an allocation file; "
                                "name {\"scheme\": \"mixed\"} as the weight scheme");
  const int64_t k = std::min<int64_t>(spec.windows, calib.count);
  if (k < 1) throw std::invalid_argument("mixed precision: no calibration windows to measure sensitivity on");
  ThreadScope ts(threads);

  // The layers the mixed scheme quantizes and their configs.
  struct L {
    std::string name;
    schemes::SchemeConfig cfg;
  };
  std::vector<L> layers;
  for (const auto& n : m.linear_names()) {
    const QuantPlan::Resolved r = plan.resolve(n);
    if (r.weight && needs_allocation(*r.weight)) layers.push_back({n, *r.weight});
  }
  std::vector<std::pair<int, int64_t>> cands = spec.candidates;
  if (cands.empty()) {
    const quant::QuantParams& p = layers.front().cfg.params;
    if (p.bits > 2) cands.emplace_back(p.bits - 1, p.group_size);
    cands.emplace_back(p.bits, p.group_size);
  }

  // Sensitivity evaluator over the first k calibration windows (fp reference in memory).
  Protocol p;
  p.name = "calibration-sensitivity";
  p.text = calib.record.value("text", std::string("calibration"));
  p.n_ctx = calib.length;
  p.n_chunks = k;
  p.bos = BosMode::none;  // the windows carry BOS already when the protocol wants it
  p.threads = at::get_num_threads();
  p.batch = 1;
  Windows w;
  w.n_ctx = calib.length;
  w.first = p.first_scored_position();
  const int64_t S = w.scored_per_window();
  for (int64_t i = 0; i < k; ++i) w.chunk_ids.push_back(i);
  w.tokens.assign(calib.tokens.begin(), calib.tokens.begin() + k * calib.length);
  w.targets.assign(calib.targets.begin(), calib.targets.begin() + k * S);
  w.n_stream_tokens = k * calib.length;
  w.stream_hash = xxh64_hex(w.tokens.data(), w.tokens.size() * sizeof(int32_t));
  const Evaluator ev(p, w);
  const auto ref = ev.compute_reference(m);
  const NllStats fp = nll_stats(ref->nll(), ref->n_tokens(), S);

  SchemeSet set(default_factory());
  schemes::MixedProblem prob;
  prob.target_bits_per_weight = spec.target_bits;
  std::string sens_scheme;
  nlohmann::json sens = nlohmann::json::object();
  Progress bar("mixed-precision sensitivity", static_cast<int64_t>(layers.size()), progress);
  for (size_t li = 0; li < layers.size(); ++li) {
    LinearLayer& layer = m.linear_layer(layers[li].name);
    // No per-layer calibration here: the wrapper names a calibration-free stand-in for a base that needs it.
    const schemes::SchemeConfig base = traits_of(layers[li].cfg).wrapper->sensitivity;
    if (sens_scheme.empty()) sens_scheme = base.scheme;
    schemes::MixedLayer ml;
    ml.name = layers[li].name;
    ml.rows = layer.out_features();
    ml.cols = layer.in_features();
    for (const auto& [bits, g] : cands) {
      schemes::SchemeConfig c = base;
      c.params.bits = bits;
      c.params.group_size = g;
      std::shared_ptr<const schemes::Scheme> sch;
      try {
        sch = set.get(c);
        c.params.validate_for_row_length(ml.cols);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument("mixed precision: candidate " + std::to_string(bits) + " bits, group " +
                                    std::to_string(g) + " does not fit layer " + ml.name + ": " + e.what());
      }
      {
        c10::InferenceMode gi(false);
        at::NoGradGuard ng;
        const at::Tensor wt = layer.weight.detach().contiguous();
        schemes::Calibration cal;
        cal.layer_name = ml.name;
        const quant::QuantizedMatrix q = sch->quantize(view_of(wt), &cal);
        at::Tensor eff = at::empty_like(wt);
        sch->dequantize(q, quant::MutableMatrixView(eff.data_ptr<float>(), wt.size(0), wt.size(1)));
        layer.effective = eff;
      }
      EvalResult r;
      try {
        r = ev.evaluate(m, ref.get());
      } catch (...) {
        layer.effective = layer.weight;
        throw;
      }
      layer.effective = layer.weight;
      const double v = spec.metric == "kl" ? r.kl_mean : spec.metric == "ppl" ? r.ppl.ppl - fp.ppl : r.delta_mean_nll;
      ml.sensitivity.push_back(v);
    }
    sens[ml.name] = ml.sensitivity;
    prob.layers.push_back(std::move(ml));
    bar.step(static_cast<int64_t>(li + 1), layers[li].name);
  }
  bar.finish();
  for (const auto& [bits, g] : cands) {
    quant::QuantParams q = layers.front().cfg.params;
    q.bits = bits;
    q.group_size = g;
    prob.candidates.push_back(q);
  }
  const schemes::MixedAllocation a = schemes::allocate_bits(prob);
  nlohmann::json j = schemes::allocation_to_json(prob, a);
  j["metric"] = spec.metric;
  j["sensitivity_scheme"] = sens_scheme;
  j["sensitivity_windows"] = k;
  j["fp_ppl_on_windows"] = fp.ppl;
  j["lower_bound"] = a.lower_bound;
  j["unit_bits"] = a.unit_bits;
  nlohmann::json cj = nlohmann::json::array();
  for (const auto& [bits, g] : cands) cj.push_back({{"bits", bits}, {"group_size", g}});
  j["candidates"] = cj;

  MixedReport rep;
  rep.path = spec.allocation_path;
  if (rep.path.empty()) {
    ::mkdir(work_dir.c_str(), 0755);  // one level; an existing directory is fine
    const std::string d = j.dump();
    rep.path = work_dir + "/mixed-" + xxh64_hex(d.data(), d.size()) + ".json";
  }
  {
    const std::string tmp = rep.path + ".tmp";
    std::ofstream f(tmp);
    if (!f) throw std::runtime_error("mixed precision: cannot write the allocation file " + tmp);
    f << j.dump(2) << "\n";
    f.close();
    if (!f || std::rename(tmp.c_str(), rep.path.c_str()) != 0)
      throw std::runtime_error("mixed precision: cannot write the allocation file " + rep.path);
  }
  rep.plan = with_allocation(plan, rep.path);
  rep.allocation = j;
  rep.sensitivity = sens;
  rep.seconds = now_s() - t_start;
  return rep;
}

}  // namespace qeval::model
