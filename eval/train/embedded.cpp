// eval/train/embedded.cpp — the embedded default model: corpus → tokenizer → training → model files + README,
// and the timing of a default sweep's evaluation on it.
#include "eval/train/embedded.hpp"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "eval/model/checkpoint.hpp"
#include "eval/model/ppl.hpp"
#include "eval/model/protocol.hpp"
#include "eval/model/tokens.hpp"
#include "eval/tokenizer/bpe_train.hpp"
#include "eval/tokenizer/tokenizer.hpp"
#include "eval/train/corpus.hpp"
#include "schemes/scheme.hpp"

namespace qeval::train {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kEot = "<|endoftext|>";

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string resolve(const std::string& root, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  return root + "/" + p;
}

std::string hms(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = std::lround(s);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm%02lds", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error(tmp + ": cannot open for writing");
    f << text;
    if (!f) throw std::runtime_error(tmp + ": write error");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(path + ": cannot rename " + tmp);
}

std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      return c == std::string::npos ? line : line.substr(c + 2);
    }
  return "unknown";
}

std::string env_or(const char* name, const char* dflt) {
  const char* v = std::getenv(name);
  return v && *v ? v : dflt;
}

// The 1-minute load average (/proc/loadavg), to say how shared the machine was; "" when unknown.
std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string one;
  f >> one;
  return one;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Which of the usual group sizes divide every linear layer's row (input widths d_model and d_ff).
std::string group_note(int64_t d_model, int64_t d_ff) {
  std::string ok, bad;
  for (int64_t g : {32, 64, 128, 256}) {
    std::string& dst = (d_model % g == 0 && d_ff % g == 0) ? ok : bad;
    dst += (dst.empty() ? "" : ", ") + std::to_string(g);
  }
  std::string s = "Linear-layer input widths are d_model " + std::to_string(d_model) + " and d_ff " +
                  std::to_string(d_ff) + ": group sizes " + (ok.empty() ? "(none)" : ok) + " divide every row";
  if (!bad.empty()) s += "; " + bad + " do not (a sweep with them is refused, never skipped)";
  return s + ".";
}

// Why the vocabulary size: the head's cost against one block's, per token.
std::string vocab_note(const json& a) {
  const double d = a["d_model"].get<double>(), f = a["d_ff"].get<double>(), v = a["vocab_size"].get<double>();
  const double kv = a["n_kv_heads"].get<double>() * a["head_dim"].get<double>();
  const double block = d * d + 2 * d * kv + d * d + 3 * d * f;  // q, k, v, output, gate/up/down weights
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "Vocabulary %.0f: the tied output layer costs 2·vocab·d_model = %.2f MFLOP per scored token, "
                "%.1f× one block's weights (%.2f MFLOP), so the head does not dominate evaluation, while tokens "
                "stay several bytes long (fewer positions to run than with a byte-level model).",
                v, 2 * v * d / 1e6, v * d / block, 2 * block / 1e6);
  return buf;
}

}  // namespace

std::string default_model_path(const std::string& root) {
  const std::string path = resolve(root, kDefaultModelConfig);
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot open (the embedded default model's pointer file)");
  json j;
  try {
    f >> j;
  } catch (const json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("model") || !j["model"].is_string())
    throw std::runtime_error(path + ": expected {\"model\": \"<path relative to the project root>\", ...}");
  return resolve(root, j["model"].get<std::string>());
}

Corpus load_corpus(const std::string& path, double val_fraction, const tokenizer::Tokenizer& tok) {
  Corpus c;
  c.path = path;
  c.sha256 = model::sha256_file_hex(path);
  const CorpusSplit s = split_last_addresses(parse_sotu(model::read_text_file(path), path), val_fraction);
  for (const auto& a : s.train) c.train_names.push_back(a.name);
  for (const auto& a : s.val) c.val_names.push_back(a.name);
  c.train_bytes = s.train_bytes;
  c.val_bytes = s.val_bytes;
  const auto eot = tok.token_id(kEot);
  if (!eot) throw std::invalid_argument("load_corpus: the tokenizer has no " + std::string(kEot) + " token");
  c.train_stream = token_stream(s.train, tok, *eot);
  c.val_stream = token_stream(s.val, tok, *eot);
  return c;
}

// ---- run_embedded_training, stage by stage ------------------------------------------------------------------

namespace {

// Stage 1's result: the tokenizer trained on the training addresses and the corpus tokenized with it.
struct TokenizedCorpus {
  tokenizer::BpeModel bpe;
  tokenizer::Tokenizer tok;
  int32_t eot = 0;
  Corpus corpus;
  double seconds = 0.0;
};

// 1. Corpus split and tokenizer (BPE on the training addresses only; deterministic, so a resumed run re-derives
//    the identical tokenizer — checked against the saved file).
TokenizedCorpus tokenize_corpus(const EmbeddedOptions& o, const TrainConfig& cfg, const std::string& out) {
  const std::string corpus_path = resolve(o.root, o.corpus);
  const auto t_tok = Clock::now();
  const CorpusSplit split =
      split_last_addresses(parse_sotu(model::read_text_file(corpus_path), corpus_path), o.val_fraction);
  tokenizer::BpeTrainOptions bo;
  bo.vocab_size = static_cast<int32_t>(cfg.vocab_size);
  bo.pre_tokenizer = o.pre_tokenizer;
  tokenizer::BpeTrainer bt(bo);
  for (const auto& a : split.train) bt.add_text(a.text);
  tokenizer::BpeModel bpe = bt.train();
  if (bpe.vocab_size() != cfg.vocab_size)
    throw std::runtime_error("BPE training stopped at " + std::to_string(bpe.vocab_size()) + " tokens, fewer than " +
                             std::to_string(cfg.vocab_size) + " (corpus too small for this --vocab)");
  const std::string tj = out + "/tokenizer.json";
  if (o.resume && fs::exists(tj)) {
    const auto old = tokenizer::Tokenizer::from_hf_json_file(tj);
    if (old.content_hash_hex() != bpe.tokenizer().content_hash_hex())
      throw std::runtime_error(tj + ": differs from the tokenizer this run derives (corpus or options changed); "
                               "start afresh without --resume");
  }
  bpe.save_hf_json(tj);
  tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_hf_json_file(tj);
  const int32_t eot = bpe.special_id(kEot);
  Corpus corpus = load_corpus(corpus_path, o.val_fraction, tok);
  return TokenizedCorpus{std::move(bpe), std::move(tok), eot, std::move(corpus), seconds_since(t_tok)};
}

void print_corpus_lines(const TokenizedCorpus& t) {
  const Corpus& c = t.corpus;
  std::fprintf(stderr,
               "corpus: %zu train addresses (%s … %s, %lld B, %zu tokens), %zu validation addresses (%s … %s, %lld B, "
               "%zu tokens)\n",
               c.train_names.size(), c.train_names.front().c_str(), c.train_names.back().c_str(),
               static_cast<long long>(c.train_bytes), c.train_stream.size(), c.val_names.size(),
               c.val_names.front().c_str(), c.val_names.back().c_str(), static_cast<long long>(c.val_bytes),
               c.val_stream.size());
  std::fprintf(stderr, "tokenizer: %d tokens (%zu merges), %.3f bytes/token on the training text, %s, %.1f s\n",
               t.bpe.vocab_size(), t.bpe.merges.size(),
               static_cast<double>(t.bpe.n_train_bytes) / static_cast<double>(t.bpe.n_train_tokens),
               t.tok.content_hash_hex().c_str(), t.seconds);
}

void print_model_line(const Trainer& tr, const TrainConfig& cfg, double epochs) {
  std::fprintf(stderr,
               "model: %lld parameters (%lld layers, d_model %lld, heads %lld/%lld kv, d_ff %lld, vocab %lld, tied), "
               "%lld steps × %lld tokens = %.2f epochs, %d threads, seed %llu\n",
               static_cast<long long>(tr.n_parameters()), static_cast<long long>(cfg.n_layers),
               static_cast<long long>(cfg.d_model), static_cast<long long>(cfg.n_heads),
               static_cast<long long>(cfg.n_kv_heads), static_cast<long long>(cfg.d_ff),
               static_cast<long long>(cfg.vocab_size), static_cast<long long>(cfg.steps),
               static_cast<long long>(cfg.tokens_per_step()), epochs, cfg.threads,
               static_cast<unsigned long long>(cfg.seed));
}

// The progress log's running window: sums since the last log line.
struct LogWindow {
  double loss = 0.0, time = 0.0, gnorm = 0.0;
  int64_t steps = 0;
};

// One log line and one history entry for the window that ends at step s; resets the window.
void log_window(LogWindow& w, const Trainer& tr, const TrainConfig& cfg, double train_seconds, json& extra) {
  const int64_t s = tr.step_index();
  const double tps = static_cast<double>(w.steps * cfg.tokens_per_step()) / w.time;
  const double eta = static_cast<double>(cfg.steps - s) * w.time / static_cast<double>(w.steps);
  std::fprintf(stderr, "step %6lld/%lld  loss %.4f  lr %.2e  gnorm %.3f  %6.0f tok/s  elapsed %s  ETA %s\n",
               static_cast<long long>(s), static_cast<long long>(cfg.steps), w.loss / w.steps, tr.last_lr(),
               w.gnorm / w.steps, tps, hms(train_seconds).c_str(), hms(eta).c_str());
  extra["history"].push_back({{"step", s},
                              {"loss", w.loss / w.steps},
                              {"steps", w.steps},
                              {"lr", tr.last_lr()},
                              {"grad_norm", w.gnorm / w.steps},
                              {"tokens_per_s", tps}});
  w = LogWindow{};
}

// 3. The training loop, from wherever the trainer stands to cfg.steps, with logs, periodic validation and state
//    files. extra["train_seconds"] and the histories accumulate in `extra`. Returns false when --stop-after
//    stopped it (state saved).
bool train_loop(Trainer& tr, const TrainConfig& cfg, const EmbeddedOptions& o, const TokenizedCorpus& t,
                const std::string& state, json& extra) {
  double train_seconds = extra["train_seconds"].get<double>();
  LogWindow w;
  int64_t done_here = 0;
  while (tr.step_index() < cfg.steps) {
    if (o.stop_after >= 0 && done_here >= o.stop_after) {
      extra["train_seconds"] = train_seconds;
      tr.save_state(state, extra);
      std::fprintf(stderr, "stopped after %lld steps (--stop-after); state saved to %s\n",
                   static_cast<long long>(done_here), state.c_str());
      return false;
    }
    const auto t0 = Clock::now();
    const double loss = tr.step();
    const double dt = seconds_since(t0);
    ++done_here;
    train_seconds += dt;
    w.loss += loss;
    w.time += dt;
    w.gnorm += tr.last_grad_norm();
    ++w.steps;
    const int64_t s = tr.step_index();
    if (s % o.log_every == 0 || s == cfg.steps) log_window(w, tr, cfg, train_seconds, extra);
    if (s % o.val_every == 0 || s == cfg.steps) {
      const HeldoutNll v = heldout_nll(tr.model(), t.corpus.val_stream, cfg.seq_len, t.eot, o.val_windows, kValBatch);
      std::fprintf(stderr, "val   %6lld  nll %.4f  ppl %.3f  (%lld windows of %lld)\n", static_cast<long long>(s),
                   v.mean_nll, v.ppl(), static_cast<long long>(v.n_windows), static_cast<long long>(cfg.seq_len));
      extra["val_history"].push_back({{"step", s}, {"mean_nll", v.mean_nll}, {"ppl", v.ppl()}});
    }
    if (s % o.ckpt_every == 0 || s == cfg.steps) {
      extra["train_seconds"] = train_seconds;
      tr.save_state(state, extra);
    }
  }
  return true;
}

// 4. Final figures: the whole validation split, and the fixed slice the tests recompute.
struct FinalFigures {
  HeldoutNll val_all, val_slice;
  double val_seconds = 0.0;
  double final_loss = NAN;   // mean training loss over the last ≤ 100 steps (the last log windows)
  int64_t final_loss_steps = 0;
};

FinalFigures final_figures(Trainer& tr, const TrainConfig& cfg, const TokenizedCorpus& t, const json& extra) {
  FinalFigures f;
  const auto t_val = Clock::now();
  f.val_all = heldout_nll(tr.model(), t.corpus.val_stream, cfg.seq_len, t.eot, -1, kValBatch);
  f.val_seconds = seconds_since(t_val);
  f.val_slice = heldout_nll(tr.model(), t.corpus.val_stream, cfg.seq_len, t.eot, kValSliceWindows, kValBatch);
  std::fprintf(stderr, "final validation: ppl %.4f over %lld tokens (%.1f s); slice of %lld windows: ppl %.6f\n",
               f.val_all.ppl(), static_cast<long long>(f.val_all.n_tokens), f.val_seconds,
               static_cast<long long>(kValSliceWindows), f.val_slice.ppl());
  double sum = 0.0;
  for (auto it = extra["history"].rbegin(); it != extra["history"].rend() && f.final_loss_steps < 100; ++it) {
    sum += (*it)["loss"].get<double>() * (*it)["steps"].get<double>();
    f.final_loss_steps += (*it)["steps"].get<int64_t>();
  }
  if (f.final_loss_steps > 0) f.final_loss = sum / static_cast<double>(f.final_loss_steps);
  return f;
}

// 5. Model file: fp32 GGUF with the tokenizer inside; reloaded and checked to reproduce the slice figure and the
//    tokenizer. Returns the reloaded checkpoint's content hash.
std::string write_model_file(Trainer& tr, const TrainConfig& cfg, const TokenizedCorpus& t,
                             const FinalFigures& f, const std::string& name, const std::string& gguf) {
  model::Checkpoint ck = tr.model().to_checkpoint();
  ck.metadata = t.bpe.gguf_metadata();
  ck.metadata["general.name"] = name;
  ck.metadata["general.description"] =
      "qeval embedded default model: Llama architecture trained from scratch in fp32 on US State of the Union "
      "addresses (see README.md beside this file)";
  ck.metadata["general.license"] = "CC0-1.0";
  ck.metadata["qeval.train.seed"] = static_cast<uint32_t>(cfg.seed & 0xFFFFFFFFu);
  ck.metadata["qeval.train.steps"] = static_cast<uint32_t>(cfg.steps);
  model::save_gguf_f32(ck, gguf);
  const model::Checkpoint back = model::load_checkpoint(gguf);
  model::LlamaModel reloaded(back);
  const HeldoutNll again = heldout_nll(reloaded, t.corpus.val_stream, cfg.seq_len, t.eot, kValSliceWindows, kValBatch);
  if (again.mean_nll != f.val_slice.mean_nll)
    throw std::runtime_error(gguf + ": the reloaded model's validation NLL " + fmt("%.17g", again.mean_nll) +
                             " differs from the trained model's " + fmt("%.17g", f.val_slice.mean_nll));
  const model::TokenSource ts = model::token_source_for(back);
  if (ts.hash != t.tok.content_hash_hex())
    throw std::runtime_error(gguf + ": its tokenizer hash " + ts.hash + " differs from tokenizer.json's " +
                             t.tok.content_hash_hex());
  return back.content_hash;
}

json architecture_json(const TrainConfig& cfg, int64_t parameters) {
  return {{"arch", "llama"},
          {"n_layers", cfg.n_layers},
          {"d_model", cfg.d_model},
          {"n_heads", cfg.n_heads},
          {"n_kv_heads", cfg.n_kv_heads},
          {"head_dim", cfg.d_model / cfg.n_heads},
          {"d_ff", cfg.d_ff},
          {"vocab_size", cfg.vocab_size},
          {"n_ctx_train", cfg.seq_len},
          {"rope_theta", cfg.rope_theta},
          {"rms_eps", cfg.rms_eps},
          {"tied_embeddings", true},
          {"parameters", parameters}};
}

json tokenizer_json(const EmbeddedOptions& o, const TokenizedCorpus& t) {
  return {{"type", "byte-level BPE (eval/tokenizer/bpe_train)"},
          {"pre_tokenizer", o.pre_tokenizer},
          {"vocab_size", t.bpe.vocab_size()},
          {"merges", t.bpe.merges.size()},
          {"special", kEot},
          {"bos_id", t.eot},
          {"add_bos", true},
          {"hash", t.tok.content_hash_hex()},
          {"train_bytes", t.bpe.n_train_bytes},
          {"train_tokens", t.bpe.n_train_tokens},
          {"bytes_per_token", static_cast<double>(t.bpe.n_train_bytes) / t.bpe.n_train_tokens},
          {"seconds", t.seconds}};
}

json data_json(const EmbeddedOptions& o, const Corpus& c) {
  return {{"corpus", o.corpus},
          {"sha256", c.sha256},
          {"val_fraction", o.val_fraction},
          {"train_addresses", c.train_names.size()},
          {"train_first", c.train_names.front()},
          {"train_last", c.train_names.back()},
          {"val_addresses", c.val_names.size()},
          {"val_first", c.val_names.front()},
          {"val_last", c.val_names.back()},
          {"train_bytes", c.train_bytes},
          {"val_bytes", c.val_bytes},
          {"train_tokens", c.train_stream.size()},
          {"val_tokens", c.val_stream.size()}};
}

json training_json(const EmbeddedOptions& o, const TrainConfig& cfg, double epochs, const json& extra,
                   const FinalFigures& f) {
  return {{"config", cfg.to_json()},
          {"tokens_seen", cfg.steps * cfg.tokens_per_step()},
          {"epochs", epochs},
          {"train_seconds", extra["train_seconds"]},
          {"final_train_loss", f.final_loss},
          {"final_train_loss_steps", f.final_loss_steps},
          {"history", extra["history"]},
          {"val_history", extra["val_history"]},
          {"cpu", cpu_name()},
          {"threads", cfg.threads},
          {"omp_wait_policy", env_or("OMP_WAIT_POLICY", "(default)")},
          {"load_average_at_end", load_average()},
          {"command", o.command_line}};
}

}  // namespace

json run_embedded_training(const EmbeddedOptions& o) {
  const auto t_run = Clock::now();
  if (o.out_dir.empty()) throw std::invalid_argument("run_embedded_training: no output directory given");
  const std::string out = resolve(o.root, o.out_dir);
  fs::create_directories(out);
  const std::string state = o.state_path.empty() ? out + "/train_state.bin" : resolve(o.root, o.state_path);
  const std::string name = o.name.empty() ? fs::path(out).filename().string() : o.name;
  TrainConfig cfg = o.cfg;
  cfg.validate();

  const TokenizedCorpus t = tokenize_corpus(o, cfg, out);  // 1.
  print_corpus_lines(t);

  // 2. Model and optimizer (fresh or resumed).
  Trainer tr(cfg, t.corpus.train_stream, t.eot, t.eot);
  json extra = {{"train_seconds", 0.0}, {"history", json::array()}, {"val_history", json::array()}};
  if (o.resume && fs::exists(state)) {
    extra = tr.load_state(state);
    std::fprintf(stderr, "resumed from %s at step %lld (%.0f s of training so far)\n", state.c_str(),
                 static_cast<long long>(tr.step_index()), extra["train_seconds"].get<double>());
  }
  const double epochs = static_cast<double>(cfg.steps * cfg.tokens_per_step()) /
                        static_cast<double>(t.corpus.train_stream.size());
  print_model_line(tr, cfg, epochs);

  if (!train_loop(tr, cfg, o, t, state, extra)) return json{{"stopped_at_step", tr.step_index()}};  // 3.
  const FinalFigures f = final_figures(tr, cfg, t, extra);                                            // 4.
  const std::string gguf = out + "/model.gguf";
  const std::string model_hash = write_model_file(tr, cfg, t, f, name, gguf);                         // 5.

  json summary;
  summary["name"] = name;
  summary["files"] = {{"model", "model.gguf"}, {"tokenizer", "tokenizer.json"},
                      {"model_bytes", fs::file_size(gguf)}, {"model_sha256", model_hash}};
  summary["architecture"] = architecture_json(cfg, tr.n_parameters());
  summary["tokenizer"] = tokenizer_json(o, t);
  summary["data"] = data_json(o, t.corpus);
  summary["training"] = training_json(o, cfg, epochs, extra, f);
  summary["validation"] = {{"all", f.val_all.to_json()},         {"slice", f.val_slice.to_json()},
                           {"slice_windows", kValSliceWindows}, {"batch", kValBatch},
                           {"seq_len", cfg.seq_len},            {"all_seconds", f.val_seconds}};
  if (!o.protocol.empty()) {
    std::fprintf(stderr, "evaluating %s ...\n", o.protocol.c_str());
    summary["protocol_eval"] = sweep_timing(gguf, o.protocol, o.root, o.group_sizes);
  }
  summary["run_wall_seconds"] = seconds_since(t_run);
  write_text_atomic(out + "/training.json", summary.dump(1) + "\n");
  write_text_atomic(out + "/README.md", render_readme(summary));
  if (!o.keep_state) fs::remove(state);
  return summary;
}

json sweep_timing(const std::string& model_path, const std::string& protocol_path, const std::string& root,
                  const std::vector<int64_t>& group_sizes) {
  const auto t_all = Clock::now();
  const model::Checkpoint ck = model::load_checkpoint(resolve(root, model_path));
  model::LlamaModel m(ck);
  const model::TokenSource ts = model::token_source_for(ck);
  const model::Protocol p = model::Protocol::load(resolve(root, protocol_path));
  const auto t_windows = Clock::now();
  const model::Evaluator ev = model::make_evaluator(p, ts, root);
  const double windows_s = seconds_since(t_windows);
  const auto t_ref = Clock::now();
  const auto ref = ev.compute_reference(m);
  const double ref_s = seconds_since(t_ref);
  const int64_t S = ev.windows().scored_per_window();
  const model::NllStats base = model::nll_stats(ref->nll(), ref->n_tokens(), S);
  json runs = json::array();
  std::fprintf(stderr, "fp32: ppl %.4f ± %.4f over %lld tokens (%lld windows of %lld), reference %.2f s\n", base.ppl,
               base.ppl_se, static_cast<long long>(base.n), static_cast<long long>(ev.windows().n_windows()),
               static_cast<long long>(ev.windows().n_ctx), ref_s);
  for (int64_t g : group_sizes) {
    schemes::SchemeConfig c = schemes::default_config("rtn");
    c.params.bits = 4;
    c.params.group_size = g;
    c.params.mapping = quant::Mapping::symmetric;
    model::QuantPlan plan;
    plan.weight = c;
    const auto t0 = Clock::now();
    m.apply_plan(plan);
    const double quant_s = seconds_since(t0);
    const model::EvalResult r = ev.evaluate(m, ref.get());
    const double s = seconds_since(t0);
    std::fprintf(stderr, "%s: ppl %.4f (Δ %+.4f)  KL %.5f  top-1 %.4f  %.2f s (quantize %.2f s)\n", c.label().c_str(),
                 r.ppl.ppl, r.delta_ppl, r.kl_mean, r.top1, s, quant_s);
    runs.push_back({{"scheme", c.label()},
                    {"group_size", g},
                    {"ppl", r.ppl.ppl},
                    {"delta_ppl", r.delta_ppl},
                    {"kl_mean", r.kl_mean},
                    {"top1", r.top1},
                    {"seconds", s},
                    {"quantize_seconds", quant_s}});
    m.clear_plan();
  }
  const double total = seconds_since(t_all);
  return json{{"protocol", ev.protocol().to_json()},
              {"model", model_path},
              {"windows", ev.windows().n_windows()},
              {"scored_tokens", base.n},
              {"reference", {{"ppl", base.ppl}, {"ppl_se", base.ppl_se}, {"mean_nll", base.mean_nll}, {"seconds", ref_s}}},
              {"runs", runs},
              {"tokenize_seconds", windows_s},
              {"seconds", total},
              {"threads", p.threads},
              {"omp_wait_policy", env_or("OMP_WAIT_POLICY", "(default)")},
              {"load_average", load_average()},
              {"cpu", cpu_name()}};
}

json throughput(const TrainConfig& cfg, int64_t steps, int64_t windows) {
  cfg.validate();
  const int64_t n = std::max<int64_t>(cfg.seq_len * (windows + cfg.batch) + 2, 1 << 16);
  std::vector<int32_t> stream(static_cast<size_t>(n));
  Rng rng(cfg.seed);
  for (auto& t : stream) t = static_cast<int32_t>(rng.below(static_cast<uint64_t>(cfg.vocab_size - 1)));
  const int32_t bos = static_cast<int32_t>(cfg.vocab_size - 1);
  Trainer tr(cfg, stream, bos, bos);
  double timed = 0.0;
  int64_t timed_steps = 0;
  for (int64_t s = 0; s < steps; ++s) {
    const auto t0 = Clock::now();
    tr.step();
    const double dt = seconds_since(t0);
    std::fprintf(stderr, "step %lld: %.2f s (%.0f tok/s)\n", static_cast<long long>(s), dt,
                 static_cast<double>(cfg.tokens_per_step()) / dt);
    if (s > 0 || steps == 1) {
      timed += dt;
      ++timed_steps;
    }
  }
  const auto t1 = Clock::now();
  const HeldoutNll h = heldout_nll(tr.model(), stream, cfg.seq_len, bos, windows, 1);
  const double fwd = seconds_since(t1);
  const double train_tps = static_cast<double>(timed_steps * cfg.tokens_per_step()) / timed;
  const double fwd_tps = static_cast<double>(h.n_tokens) / fwd;
  std::fprintf(stderr, "%lld parameters: train %.0f tok/s, forward %.0f tok/s (%d threads)\n",
               static_cast<long long>(tr.n_parameters()), train_tps, fwd_tps, cfg.threads);
  return json{{"config", cfg.to_json()},
              {"parameters", tr.n_parameters()},
              {"train_tokens_per_s", train_tps},
              {"forward_tokens_per_s", fwd_tps},
              {"cpu", cpu_name()}};
}

namespace {

// README section: Title and the files table.
void readme_intro(std::ostringstream& os, const json& s) {
  const json& t = s["tokenizer"];
  os << "# " << s["name"].get<std::string>() << " — qeval's embedded default model\n\n"
     << "A small Llama-architecture language model that qeval trains itself (eval/train, LibTorch, fp32) on the US "
        "State of the Union addresses. Its weights are plain fp32 values that no quantization grid produced, so "
        "it is the honest baseline for weight-quantization error (unlike a model distributed already quantized). "
        "Generated by the trainer from `training.json`; do not edit by hand.\n\n"
     << "| file | what |\n|---|---|\n"
     << "| `model.gguf` | GGUF v3, all tensors F32, tokenizer included (`tokenizer.ggml.*`); "
     << s["files"]["model_bytes"].get<int64_t>() << " bytes, " << s["files"]["model_sha256"].get<std::string>()
     << " |\n"
     << "| `tokenizer.json` | the same tokenizer as a Hugging Face tokenizer.json (content hash " << t["hash"].get<std::string>()
     << ") |\n"
     << "| `training.json` | everything below plus the loss and validation history |\n\n";
}

// README section: The architecture table.
void readme_architecture(std::ostringstream& os, const json& s) {
  const json& a = s["architecture"];
  os << "## Architecture\n\n"
     << "Llama: RMSNorm (eps " << a["rms_eps"].get<double>() << "), RoPE (θ " << a["rope_theta"].get<double>()
     << ", GGUF adjacent-pair order), grouped-query attention, SwiGLU MLP, tied input/output embeddings.\n\n"
     << "| | |\n|---|---|\n"
     << "| layers | " << a["n_layers"] << " |\n| d_model | " << a["d_model"] << " |\n| heads (query / key-value) | "
     << a["n_heads"] << " / " << a["n_kv_heads"] << " (head_dim " << a["head_dim"] << ") |\n| d_ff | " << a["d_ff"]
     << " |\n| vocabulary | " << a["vocab_size"] << " |\n| context (trained) | " << a["n_ctx_train"]
     << " |\n| parameters | " << a["parameters"] << " (embeddings " << a["vocab_size"].get<int64_t>() * a["d_model"].get<int64_t>()
     << ") |\n\n"
     << group_note(a["d_model"].get<int64_t>(), a["d_ff"].get<int64_t>()) << "\n\n";
}

// README section: How the tokenizer was learned.
void readme_tokenizer(std::ostringstream& os, const json& s) {
  const json& a = s["architecture"];
  const json& t = s["tokenizer"];
  os << "## Tokenizer\n\n"
     << "Byte-level BPE learned by `eval/tokenizer/bpe_train` on the training addresses only: " << t["vocab_size"]
     << " tokens = 256 byte symbols + " << t["merges"] << " merges + `" << t["special"].get<std::string>()
     << "` (id " << t["bos_id"] << ", BOS and document separator; `add_bos` true, so protocols with `bos: auto` "
     << "replace each window's first token by it). Pre-tokenizer `" << t["pre_tokenizer"].get<std::string>()
     << "` (each digit alone, then GPT-2's regex). " << fmt("%.3f", t["bytes_per_token"].get<double>())
     << " bytes/token on the training text. " << vocab_note(a) << "\n\n";
}

// README section: The data split table.
void readme_data(std::ostringstream& os, const json& s) {
  const json& t = s["tokenizer"];
  const json& d = s["data"];
  os << "## Data\n\n"
     << "`" << d["corpus"].get<std::string>() << "` (" << d["sha256"].get<std::string>() << "). Address bodies "
     << "(header lines removed, trimmed, one trailing newline), each preceded by `" << t["special"].get<std::string>()
     << "`.\n\n"
     << "| split | addresses | bytes | tokens |\n|---|---|---|---|\n"
     << "| train | " << d["train_addresses"] << " (" << d["train_first"].get<std::string>() << " … "
     << d["train_last"].get<std::string>() << ") | " << d["train_bytes"] << " | " << d["train_tokens"] << " |\n"
     << "| validation (held out: the last addresses holding ≥ " << d["val_fraction"].get<double>() * 100
     << " % of the bytes) | " << d["val_addresses"] << " (" << d["val_first"].get<std::string>() << " … "
     << d["val_last"].get<std::string>() << ") | " << d["val_bytes"] << " | " << d["val_tokens"] << " |\n\n";
}

// README section: The training command and settings.
void readme_training(std::ostringstream& os, const json& s) {
  const json& tr = s["training"];
  const json& c = s["training"]["config"];
  os << "## Training\n\n"
     << "```\n" << tr["command"].get<std::string>() << "\n```\n\n"
     << "| | |\n|---|---|\n"
     << "| steps × batch × context | " << c["steps"] << " × " << c["batch"] << " × " << c["seq_len"] << " = "
     << tr["tokens_seen"] << " tokens (" << fmt("%.2f", tr["epochs"].get<double>()) << " epochs) |\n"
     << "| optimizer | AdamW β (" << c["beta1"].get<double>() << ", " << c["beta2"].get<double>() << "), eps "
     << c["adam_eps"].get<double>() << ", weight decay " << c["weight_decay"].get<double>()
     << " (matrices), clip global norm " << c["grad_clip"].get<double>() << " |\n"
     << "| learning rate | " << c["lr"].get<double>() << " peak, linear warmup " << c["warmup_steps"]
     << " steps, cosine to " << c["lr_min_ratio"].get<double>() << "× |\n"
     << "| init | N(0, " << c["init_std"].get<double>() << "²), residual projections / √(2·layers) |\n"
     << "| seed | " << c["seed"] << " (data order and init: qeval::Rng) |\n"
     << "| threads | " << c["threads"] << " (ATen intra-op) on " << tr["cpu"].get<std::string>() << " |\n"
     << "| wall time (optimizer steps) | " << hms(tr["train_seconds"].get<double>()) << " ("
     << fmt("%.0f", tr["train_seconds"].get<double>()) << " s; the machine was shared with other jobs: 1-minute "
     << "load average " << tr.value("load_average_at_end", std::string("?")) << " on 2 cores at the end) |\n"
     << "| wall time (whole run: tokenizer, training, validation, files, WikiText-2 timing) | "
     << hms(s.value("run_wall_seconds", 0.0)) << " |\n"
     << "| final training loss (mean of the last " << tr["final_train_loss_steps"] << " steps) | "
     << fmt("%.4f", tr["final_train_loss"].get<double>()) << " nats/token |\n\n"
     << "Reproducibility: data order and initialization are identical on every machine; with the same thread "
        "count and LibTorch/BLAS build on the same CPU type the run is bit-identical (tests/eval/train checks this on "
        "a tiny model), on another CPU the BLAS kernels round differently and the weights drift apart "
        "(equivalent losses, different bits). The committed `model.gguf` is the reference; its figures below are "
        "recomputed from it by tests/eval/train.\n\n";
}

// README section: Validation figures.
void readme_validation(std::ostringstream& os, const json& s) {
  const json& v = s["validation"];
  os << "## Figures\n\n"
     << "Validation (held-out addresses; windows of " << v["seq_len"] << " tokens, first token replaced by BOS, "
     << "every position scored):\n\n"
     << "| | windows | tokens | mean NLL | perplexity |\n|---|---|---|---|---|\n"
     << "| all validation addresses | " << v["all"]["windows"] << " | " << v["all"]["tokens"] << " | "
     << fmt("%.6f", v["all"]["mean_nll"].get<double>()) << " | " << fmt("%.4f", v["all"]["ppl"].get<double>())
     << " |\n"
     << "| fixed slice (first " << v["slice_windows"] << " windows, batch " << v["batch"] << ") | "
     << v["slice"]["windows"] << " | " << v["slice"]["tokens"] << " | "
     << fmt("%.6f", v["slice"]["mean_nll"].get<double>()) << " | " << fmt("%.4f", v["slice"]["ppl"].get<double>())
     << " |\n\n"
     << "val_slice_ppl: " << fmt("%.4f", v["slice"]["ppl"].get<double>()) << "\n\n";
}

// README section: WikiText-2 under the pinned protocol, when the run measured it.
void readme_protocol_eval(std::ostringstream& os, const json& s) {
  if (s.contains("protocol_eval")) {
    const json& pe = s["protocol_eval"];
    const json& p = pe["protocol"];
    os << "WikiText-2 (test) under protocol `" << p["name"].get<std::string>() << "` (n_ctx " << p["n_ctx"] << ", "
       << pe["windows"] << " windows, " << pe["scored_tokens"] << " scored tokens, bos "
       << p["bos"].get<std::string>() << ", " << pe["threads"] << " threads):\n\n"
       << "| weights | perplexity | Δppl | KL (mean) | top-1 | seconds |\n|---|---|---|---|---|---|\n"
       << "| fp32 | " << fmt("%.3f", pe["reference"]["ppl"].get<double>()) << " ± "
       << fmt("%.3f", pe["reference"]["ppl_se"].get<double>()) << " | | | | "
       << fmt("%.2f", pe["reference"]["seconds"].get<double>()) << " |\n";
    for (const auto& r : pe["runs"])
      os << "| " << r["scheme"].get<std::string>() << " | " << fmt("%.3f", r["ppl"].get<double>()) << " | "
         << fmt("%+.3f", r["delta_ppl"].get<double>()) << " | " << fmt("%.5f", r["kl_mean"].get<double>()) << " | "
         << fmt("%.4f", r["top1"].get<double>()) << " | " << fmt("%.2f", r["seconds"].get<double>()) << " |\n";
    os << "\nWhole evaluation (load, tokenize, fp reference, " << pe["runs"].size() << " quantized run"
       << (pe["runs"].size() == 1 ? "" : "s") << "): "
       << fmt("%.1f", pe["seconds"].get<double>()) << " s on " << pe["cpu"].get<std::string>() << ", "
       << pe["threads"] << " threads, OMP_WAIT_POLICY " << pe.value("omp_wait_policy", std::string("?"))
       << ", 1-minute load average " << pe.value("load_average", std::string("?"))
       << " (tokenizing the text: " << fmt("%.1f", pe["tokenize_seconds"].get<double>()) << " s)"
       << ". The text is Wikipedia, not speeches: the perplexity is high in absolute terms; what the model is for "
          "is the *difference* quantization makes.\n";
  }
}

}  // namespace

std::string render_readme(const json& s) {
  std::ostringstream os;
  readme_intro(os, s);
  readme_architecture(os, s);
  readme_tokenizer(os, s);
  readme_data(os, s);
  readme_training(os, s);
  readme_validation(os, s);
  readme_protocol_eval(os, s);
  return os.str();
}

void rerender_readme(const std::string& dir) {
  const std::string path = dir + "/training.json";
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot open");
  json j;
  try {
    f >> j;
  } catch (const json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
  write_text_atomic(dir + "/README.md", render_readme(j));
}

}  // namespace qeval::train
