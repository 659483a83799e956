// eval/train/trainer.cpp — the LibTorch training loop: init, batches, AdamW, schedule, clipping, state files.
#include "eval/train/trainer.hpp"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <stdexcept>

namespace qeval::train {

using json = nlohmann::json;

// ---- config -----------------------------------------------------------------------------------------

void TrainConfig::validate() const {
  auto bad = [](const std::string& field, const std::string& why) {
    throw std::invalid_argument("train config: " + field + ": " + why);
  };
  if (n_layers <= 0) bad("n_layers", "must be positive");
  if (d_model <= 0 || n_heads <= 0 || d_model % n_heads != 0) bad("d_model", "must be a positive multiple of n_heads");
  if ((d_model / n_heads) % 2 != 0) bad("n_heads", "head_dim = d_model/n_heads must be even (RoPE pairs)");
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0) bad("n_kv_heads", "must divide n_heads");
  if (d_ff <= 0) bad("d_ff", "must be positive");
  if (vocab_size <= 0) bad("vocab_size", "must be positive");
  if (!(rope_theta > 0)) bad("rope_theta", "must be positive");
  if (!(rms_eps > 0)) bad("rms_eps", "must be positive");
  if (seq_len < 2) bad("seq_len", "must be ≥ 2");
  if (batch <= 0) bad("batch", "must be positive");
  if (micro_batch <= 0 || batch % micro_batch != 0) bad("micro_batch", "must be positive and divide batch");
  if (steps <= 0) bad("steps", "must be positive");
  if (warmup_steps < 0 || warmup_steps > steps) bad("warmup_steps", "must be in [0, steps]");
  if (!(lr > 0)) bad("lr", "must be positive");
  if (!(lr_min_ratio >= 0 && lr_min_ratio <= 1)) bad("lr_min_ratio", "must be in [0, 1]");
  if (!(beta1 >= 0 && beta1 < 1)) bad("beta1", "must be in [0, 1)");
  if (!(beta2 >= 0 && beta2 < 1)) bad("beta2", "must be in [0, 1)");
  if (!(adam_eps > 0)) bad("adam_eps", "must be positive");
  if (!(weight_decay >= 0)) bad("weight_decay", "must be ≥ 0");
  if (!(grad_clip > 0)) bad("grad_clip", "must be positive (use a large value to disable clipping)");
  if (!(init_std > 0)) bad("init_std", "must be positive");
  if (threads <= 0) bad("threads", "must be positive (a fixed count: results depend on it)");
}

json TrainConfig::to_json() const {
  return json{{"n_layers", n_layers},       {"d_model", d_model},
              {"n_heads", n_heads},         {"n_kv_heads", n_kv_heads},
              {"d_ff", d_ff},               {"vocab_size", vocab_size},
              {"rope_theta", rope_theta},   {"rms_eps", rms_eps},
              {"seq_len", seq_len},         {"batch", batch},
              {"micro_batch", micro_batch}, {"steps", steps},
              {"warmup_steps", warmup_steps}, {"lr", lr},
              {"lr_min_ratio", lr_min_ratio}, {"beta1", beta1},
              {"beta2", beta2},             {"adam_eps", adam_eps},
              {"weight_decay", weight_decay}, {"grad_clip", grad_clip},
              {"init_std", init_std},       {"seed", seed},
              {"threads", threads}};
}

TrainConfig TrainConfig::from_json(const json& j) {
  if (!j.is_object()) throw std::invalid_argument("train config: expected a JSON object");
  TrainConfig c;
  const json known = c.to_json();
  for (const auto& [k, v] : j.items()) {
    if (!known.contains(k)) throw std::invalid_argument("train config: unknown key '" + k + "'");
    if (!v.is_number()) throw std::invalid_argument("train config: " + k + ": expected a number, got " + v.dump());
  }
  auto get_i = [&](const char* k, int64_t& dst) {
    if (j.contains(k)) {
      if (!j[k].is_number_integer()) throw std::invalid_argument(std::string("train config: ") + k + ": expected an integer");
      dst = j[k].get<int64_t>();
    }
  };
  auto get_d = [&](const char* k, double& dst) {
    if (j.contains(k)) dst = j[k].get<double>();
  };
  get_i("n_layers", c.n_layers);
  get_i("d_model", c.d_model);
  get_i("n_heads", c.n_heads);
  get_i("n_kv_heads", c.n_kv_heads);
  get_i("d_ff", c.d_ff);
  get_i("vocab_size", c.vocab_size);
  get_d("rope_theta", c.rope_theta);
  get_d("rms_eps", c.rms_eps);
  get_i("seq_len", c.seq_len);
  get_i("batch", c.batch);
  get_i("micro_batch", c.micro_batch);
  get_i("steps", c.steps);
  get_i("warmup_steps", c.warmup_steps);
  get_d("lr", c.lr);
  get_d("lr_min_ratio", c.lr_min_ratio);
  get_d("beta1", c.beta1);
  get_d("beta2", c.beta2);
  get_d("adam_eps", c.adam_eps);
  get_d("weight_decay", c.weight_decay);
  get_d("grad_clip", c.grad_clip);
  get_d("init_std", c.init_std);
  if (j.contains("seed")) {
    if (!j["seed"].is_number_unsigned() && !(j["seed"].is_number_integer() && j["seed"].get<int64_t>() >= 0))
      throw std::invalid_argument("train config: seed: expected a non-negative integer");
    c.seed = j["seed"].get<uint64_t>();
  }
  if (j.contains("threads")) {
    if (!j["threads"].is_number_integer()) throw std::invalid_argument("train config: threads: expected an integer");
    c.threads = j["threads"].get<int>();
  }
  c.validate();
  return c;
}

model::ModelConfig TrainConfig::model_config(int32_t bos_id, int32_t eos_id) const {
  model::ModelConfig m;
  m.arch = "llama";
  m.n_layers = n_layers;
  m.d_model = d_model;
  m.n_heads = n_heads;
  m.n_kv_heads = n_kv_heads;
  m.d_ff = d_ff;
  m.vocab_size = vocab_size;
  m.n_ctx_train = seq_len;
  m.rope_theta = rope_theta;
  m.rms_eps = rms_eps;
  m.tied_embeddings = true;
  m.bos_id = bos_id;
  m.eos_id = eos_id;
  return m;
}

double lr_at(const TrainConfig& c, int64_t step) {
  if (step < c.warmup_steps) return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  const int64_t span = std::max<int64_t>(1, c.steps - 1 - c.warmup_steps);
  const double u = std::min(1.0, static_cast<double>(step - c.warmup_steps) / static_cast<double>(span));
  const double r = c.lr_min_ratio;
  return c.lr * (r + (1.0 - r) * 0.5 * (1.0 + std::cos(M_PI * u)));
}

uint64_t step_seed(uint64_t seed, int64_t step) {
  // splitmix64 of seed + (step+1)·golden-ratio increment.
  uint64_t z = seed + static_cast<uint64_t>(step + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void sample_windows(const std::vector<int32_t>& stream, int64_t seq_len, int64_t batch, uint64_t seed, int64_t step,
                    int32_t bos, std::vector<int64_t>& inputs, std::vector<int64_t>& targets) {
  const int64_t n = static_cast<int64_t>(stream.size());
  if (n < seq_len + 2)
    throw std::invalid_argument("sample_windows: the training stream has " + std::to_string(n) +
                                " tokens, fewer than seq_len + 2 = " + std::to_string(seq_len + 2));
  inputs.resize(static_cast<size_t>(batch * seq_len));
  targets.resize(static_cast<size_t>(batch * seq_len));
  Rng rng(step_seed(seed, step));
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t start = static_cast<int64_t>(rng.below(static_cast<uint64_t>(n - seq_len)));  // ≤ n − T − 1
    int64_t* in = inputs.data() + b * seq_len;
    int64_t* tg = targets.data() + b * seq_len;
    for (int64_t t = 0; t < seq_len; ++t) {
      in[t] = stream[static_cast<size_t>(start + t)];
      tg[t] = stream[static_cast<size_t>(start + t + 1)];
    }
    in[0] = bos;
  }
}

// ---- held-out evaluation ------------------------------------------------------------------------------

double HeldoutNll::ppl() const { return std::exp(mean_nll); }

json HeldoutNll::to_json() const {
  return json{{"windows", n_windows}, {"tokens", n_tokens}, {"mean_nll", mean_nll}, {"ppl", ppl()}};
}

HeldoutNll heldout_nll(model::LlamaModel& m, const std::vector<int32_t>& stream, int64_t seq_len, int32_t bos,
                       int64_t max_windows, int64_t batch) {
  if (seq_len < 2 || batch <= 0) throw std::invalid_argument("heldout_nll: seq_len ≥ 2 and batch > 0 required");
  const int64_t avail = (static_cast<int64_t>(stream.size()) - 1) / seq_len;
  const int64_t n = max_windows < 0 ? avail : std::min(max_windows, avail);
  if (n <= 0)
    throw std::invalid_argument("heldout_nll: the stream (" + std::to_string(stream.size()) +
                                " tokens) holds no window of seq_len + 1 = " + std::to_string(seq_len + 1));
  const bool was_training = m.training();
  if (was_training) m.set_training(false);
  double sum = 0.0;
  std::vector<int64_t> in, tg;
  for (int64_t w0 = 0; w0 < n; w0 += batch) {
    const int64_t b = std::min(batch, n - w0);
    in.resize(static_cast<size_t>(b * seq_len));
    tg.resize(static_cast<size_t>(b * seq_len));
    for (int64_t i = 0; i < b; ++i) {
      const int64_t s = (w0 + i) * seq_len;
      for (int64_t t = 0; t < seq_len; ++t) {
        in[static_cast<size_t>(i * seq_len + t)] = stream[static_cast<size_t>(s + t)];
        tg[static_cast<size_t>(i * seq_len + t)] = stream[static_cast<size_t>(s + t + 1)];
      }
      in[static_cast<size_t>(i * seq_len)] = bos;
    }
    c10::InferenceMode guard;
    const at::Tensor x = at::from_blob(in.data(), {b, seq_len}, at::kLong);
    const at::Tensor y = at::from_blob(tg.data(), {b, seq_len, 1}, at::kLong);
    const at::Tensor lp = at::log_softmax(m.forward(x), -1).gather(-1, y).reshape({-1}).to(at::kDouble).contiguous();
    const double* p = lp.data_ptr<double>();
    for (int64_t i = 0; i < lp.numel(); ++i) sum -= p[i];
  }
  if (was_training) m.set_training(true);
  HeldoutNll r;
  r.n_windows = n;
  r.n_tokens = n * seq_len;
  r.mean_nll = sum / static_cast<double>(r.n_tokens);
  return r;
}

// ---- trainer ------------------------------------------------------------------------------------------

Trainer::Trainer(TrainConfig cfg, std::vector<int32_t> train_stream, int32_t bos_id, int32_t eos_id)
    : cfg_(std::move(cfg)), stream_(std::move(train_stream)), bos_(bos_id), eos_(eos_id) {
  cfg_.validate();
  if (static_cast<int64_t>(stream_.size()) < cfg_.seq_len + 2)
    throw std::invalid_argument("Trainer: the training stream has " + std::to_string(stream_.size()) +
                                " tokens, fewer than seq_len + 2 = " + std::to_string(cfg_.seq_len + 2));
  if (bos_ < 0 || bos_ >= cfg_.vocab_size)
    throw std::invalid_argument("Trainer: BOS id " + std::to_string(bos_) + " is outside the vocabulary");
  for (int32_t t : stream_)
    if (t < 0 || t >= cfg_.vocab_size)
      throw std::invalid_argument("Trainer: token id " + std::to_string(t) + " in the training stream is outside [0, " +
                                  std::to_string(cfg_.vocab_size) + ")");
  model::configure_threads(cfg_.threads);
  model_ = std::make_unique<model::LlamaModel>(cfg_.model_config(bos_, eos_), cfg_.seed, cfg_.init_std);
  init_weights();
  model_->set_training(true);
  params_ = model_->named_parameters();
  c10::InferenceMode off(false);
  for (auto& [name, p] : params_) {
    m_.push_back(at::zeros_like(p).set_requires_grad(false));
    v_.push_back(at::zeros_like(p).set_requires_grad(false));
  }
}

Trainer::~Trainer() = default;

void Trainer::init_weights() {
  at::NoGradGuard ng;
  Rng rng(cfg_.seed);
  const double resid_sd = cfg_.init_std / std::sqrt(2.0 * static_cast<double>(cfg_.n_layers));
  for (auto& [name, t] : model_->named_parameters()) {
    float* p = t.data_ptr<float>();
    if (t.dim() == 1) {
      for (int64_t i = 0; i < t.numel(); ++i) p[i] = 1.0f;
      continue;
    }
    const bool resid = name.find("attn_output.weight") != std::string::npos ||
                       name.find("ffn_down.weight") != std::string::npos;
    const double sd = resid ? resid_sd : cfg_.init_std;
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(rng.normal() * sd);
  }
  model_->recompute_content_hash();
}

int64_t Trainer::n_parameters() const {
  int64_t n = 0;
  for (const auto& [name, p] : params_) n += p.numel();
  return n;
}

double Trainer::step() {
  model::configure_threads(cfg_.threads);
  const int64_t T = cfg_.seq_len, B = cfg_.batch, mb = cfg_.micro_batch, V = cfg_.vocab_size;
  sample_windows(stream_, T, B, cfg_.seed, step_, bos_, in_buf_, tgt_buf_);
  c10::InferenceMode off(false);
  const at::Tensor inp = at::from_blob(in_buf_.data(), {B, T}, at::kLong);
  const at::Tensor tgt = at::from_blob(tgt_buf_.data(), {B, T}, at::kLong);
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad().zero_();
  double loss_sum = 0.0;
  for (int64_t i = 0; i < B; i += mb) {
    const at::Tensor logits = model_->forward(inp.slice(0, i, i + mb));
    const at::Tensor loss = at::cross_entropy_loss(logits.reshape({-1, V}), tgt.slice(0, i, i + mb).reshape({-1}));
    loss_sum += loss.item<double>() * static_cast<double>(mb);
    (loss * (static_cast<double>(mb) / static_cast<double>(B))).backward();
  }
  at::NoGradGuard ng;
  // Global gradient norm, in double.
  double sq = 0.0;
  for (auto& [name, p] : params_) {
    if (!p.grad().defined())
      throw std::runtime_error("Trainer::step: parameter " + name + " received no gradient");
    sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  }
  last_grad_norm_ = std::sqrt(sq);
  if (!std::isfinite(last_grad_norm_))
    throw std::runtime_error("Trainer::step " + std::to_string(step_) +
                             ": the gradient norm is not finite (diverged; lower --lr or raise --warmup)");
  if (last_grad_norm_ > cfg_.grad_clip) {
    const double s = cfg_.grad_clip / last_grad_norm_;
    for (auto& [name, p] : params_) p.mutable_grad().mul_(s);
  }
  // AdamW.
  const double lr = lr_at(cfg_, step_);
  last_lr_ = lr;
  const double t = static_cast<double>(step_ + 1);
  const double bc1 = 1.0 - std::pow(cfg_.beta1, t), bc2 = 1.0 - std::pow(cfg_.beta2, t);
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i].second;
    const at::Tensor g = p.grad();
    if (p.dim() >= 2 && cfg_.weight_decay > 0) p.mul_(1.0 - lr * cfg_.weight_decay);
    m_[i].mul_(cfg_.beta1).add_(g, 1.0 - cfg_.beta1);
    v_[i].mul_(cfg_.beta2).addcmul_(g, g, 1.0 - cfg_.beta2);
    const at::Tensor denom = (v_[i].sqrt() / std::sqrt(bc2)).add_(cfg_.adam_eps);
    p.addcdiv_(m_[i], denom, -lr / bc1);
  }
  ++step_;
  return loss_sum / static_cast<double>(B);
}

// ---- state files --------------------------------------------------------------------------------------

namespace {
constexpr char kMagic[8] = {'Q', 'E', 'V', 'A', 'L', 'T', 'R', 'N'};
constexpr uint32_t kStateVersion = 1;

bool host_is_little_endian() {
  const uint32_t one = 1;
  uint8_t b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

void write_floats(std::ofstream& f, const at::Tensor& t) {
  const at::Tensor c = t.detach().contiguous();
  f.write(reinterpret_cast<const char*>(c.data_ptr<float>()), static_cast<std::streamsize>(c.numel() * 4));
}

void read_floats(std::ifstream& f, at::Tensor& t, const std::string& path, const std::string& what) {
  // t is a contiguous leaf parameter or moment: fill it in place.
  if (!f.read(reinterpret_cast<char*>(t.data_ptr<float>()), static_cast<std::streamsize>(t.numel() * 4)))
    throw std::runtime_error(path + ": truncated state file (while reading " + what + ")");
}
}  // namespace

void Trainer::save_state(const std::string& path, const json& extra) const {
  if (!host_is_little_endian()) throw std::runtime_error("Trainer::save_state: big-endian hosts are not supported");
  json h;
  h["config"] = cfg_.to_json();
  h["step"] = step_;
  h["bos_id"] = bos_;
  h["eos_id"] = eos_;
  h["train_tokens"] = stream_.size();
  json ps = json::array();
  for (const auto& [name, p] : params_) ps.push_back({{"name", name}, {"shape", p.sizes().vec()}});
  h["parameters"] = ps;
  h["extra"] = extra;
  const std::string hs = h.dump();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error(tmp + ": cannot open for writing");
    f.write(kMagic, 8);
    const uint32_t ver = kStateVersion;
    const uint64_t len = hs.size();
    f.write(reinterpret_cast<const char*>(&ver), 4);
    f.write(reinterpret_cast<const char*>(&len), 8);
    f.write(hs.data(), static_cast<std::streamsize>(hs.size()));
    for (size_t i = 0; i < params_.size(); ++i) {
      write_floats(f, params_[i].second);
      write_floats(f, m_[i]);
      write_floats(f, v_[i]);
    }
    f.flush();
    if (!f) throw std::runtime_error(tmp + ": write error (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(path + ": cannot rename " + tmp);
}

json Trainer::load_state(const std::string& path) {
  if (!host_is_little_endian()) throw std::runtime_error("Trainer::load_state: big-endian hosts are not supported");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open the training state");
  char magic[8];
  uint32_t ver = 0;
  uint64_t len = 0;
  if (!f.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0)
    throw std::runtime_error(path + ": not a qeval training state (magic 'QEVALTRN' missing)");
  if (!f.read(reinterpret_cast<char*>(&ver), 4) || ver != kStateVersion)
    throw std::runtime_error(path + ": training state version " + std::to_string(ver) + ", this build reads " +
                             std::to_string(kStateVersion));
  if (!f.read(reinterpret_cast<char*>(&len), 8) || len > (uint64_t(1) << 30))
    throw std::runtime_error(path + ": corrupt header length");
  std::string hs(len, '\0');
  if (!f.read(hs.data(), static_cast<std::streamsize>(len))) throw std::runtime_error(path + ": truncated header");
  json h;
  try {
    h = json::parse(hs);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e99999
    throw std::runtime_error(path + ": corrupt header JSON: " + e.what());
  }
  const json mine = cfg_.to_json();
  const json theirs = h.at("config");
  for (const auto& [k, v] : mine.items())
    if (!theirs.contains(k) || theirs[k] != v)
      throw std::invalid_argument(path + ": config." + k + " is " + (theirs.contains(k) ? theirs[k].dump() : "missing") +
                                  " in the state but " + v.dump() +
                                  " in this run — resume with the same options (or start afresh without --resume)");
  if (h.at("train_tokens").get<uint64_t>() != stream_.size() || h.at("bos_id").get<int32_t>() != bos_)
    throw std::invalid_argument(path + ": the state was trained on a different token stream (" +
                                h.at("train_tokens").dump() + " tokens, this run has " +
                                std::to_string(stream_.size()) + ") — tokenizer or corpus changed");
  const json& ps = h.at("parameters");
  if (ps.size() != params_.size())
    throw std::invalid_argument(path + ": " + std::to_string(ps.size()) + " parameters in the state, the model has " +
                                std::to_string(params_.size()));
  for (size_t i = 0; i < params_.size(); ++i)
    if (ps[i].at("name") != params_[i].first || ps[i].at("shape").get<std::vector<int64_t>>() != params_[i].second.sizes().vec())
      throw std::invalid_argument(path + ": parameter " + std::to_string(i) + " is " + ps[i].dump() + ", the model's is " +
                                  params_[i].first);
  at::NoGradGuard ng;
  for (size_t i = 0; i < params_.size(); ++i) {
    read_floats(f, params_[i].second, path, params_[i].first);
    read_floats(f, m_[i], path, params_[i].first + " (m)");
    read_floats(f, v_[i], path, params_[i].first + " (v)");
  }
  char extra_byte;
  if (f.read(&extra_byte, 1)) throw std::runtime_error(path + ": trailing bytes after the last tensor");
  step_ = h.at("step").get<int64_t>();
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad().zero_();
  return h.value("extra", json());
}

}  // namespace qeval::train
