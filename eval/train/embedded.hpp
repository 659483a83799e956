// eval/train/embedded.hpp — the embedded default model end to end: split sotu.txt, train the BPE tokenizer on
// the training addresses, train the model (trainer.hpp) with progress lines, periodic validation and state
// files, then write models/<name>/{model.gguf, tokenizer.json, training.json, README.md}; and the timing of
// the evaluation a default sweep runs (fp reference + RTN int4 at several group sizes under a protocol).
//
// Outputs (all written to `<file>.tmp` and renamed):
//   model.gguf      GGUF v3, every tensor F32 (eval/model's save_gguf_f32), with the tokenizer as
//                   tokenizer.ggml.* metadata — self-contained for load_checkpoint() and llama.cpp
//   tokenizer.json  the same tokenizer for HF tooling (its content hash equals the GGUF one)
//   training.json   config, data split, tokenizer statistics, loss/validation history, final figures, command
//   README.md       generated from training.json (architecture, split, command, wall time, figures)
// The state file (weights + AdamW moments, ~3× the model) goes to `state_path` and is deleted after a
// successful run unless keep_state.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/tokenizer/tokenizer.hpp"
#include "eval/train/trainer.hpp"

namespace qeval::train {

// Where the default model is named, for `qeval sweep` without a model (a JSON file {"model": <path relative
// to the project root>, ...}); read it with default_model_path().
inline constexpr const char* kDefaultModelConfig = "configs/default-model.json";
// The path in configs/default-model.json, resolved against `root` (the project root). Throws
// std::runtime_error naming the file when it is missing or has no "model" string.
std::string default_model_path(const std::string& root);

// Validation windows the README's "fixed slice" figure is computed on (and tests/eval/train recompute).
inline constexpr int64_t kValSliceWindows = 8;
inline constexpr int64_t kValBatch = 4;  // windows per forward in every validation figure

struct EmbeddedOptions {
  std::string root = ".";                       // project root (relative paths below resolve against it)
  std::string corpus = "data/sotu/sotu.txt";
  std::string out_dir;                          // e.g. models/qeval-sotu-4l256
  std::string state_path;                       // default: <out_dir>/train_state.bin
  std::string name;                             // model name (general.name); default: out_dir's last part
  double val_fraction = 0.05;
  std::string pre_tokenizer = "smollm";
  TrainConfig cfg;                              // cfg.vocab_size is the tokenizer's size
  bool resume = false;                          // continue from state_path (and tokenizer.json) if present
  bool keep_state = false;
  int64_t log_every = 10;
  int64_t val_every = 250;                      // periodic validation on the first val_windows windows
  int64_t val_windows = 16;
  int64_t ckpt_every = 50;                      // state file every N steps (and at the end)
  std::string protocol;                         // optional: a configs/protocol-*.json evaluated at the end
  std::vector<int64_t> group_sizes{32, 128, 256};
  std::string command_line;                     // recorded verbatim
  int64_t stop_after = -1;                      // stop (saving state) after this many steps in this process
};

struct Corpus {
  std::string path, sha256;
  std::vector<std::string> train_names, val_names;
  int64_t train_bytes = 0, val_bytes = 0;
  std::vector<int32_t> train_stream, val_stream;
};
// Reads and splits the corpus and builds both token streams with `tok` (whose BOS token is <eot>).
Corpus load_corpus(const std::string& path, double val_fraction, const tokenizer::Tokenizer& tok);

// Runs everything; returns training.json's content. Throws on any error (the state file stays for --resume).
nlohmann::json run_embedded_training(const EmbeddedOptions& o);

// Loads `model_path` (load_checkpoint), builds the protocol's windows with the model's own tokenizer, times
// one fp reference pass and one RTN int4 symmetric evaluation per group size (PPL, Δppl, KL, top-1), each
// from a fresh reference (no cache). Returns {"protocol", "reference": {...}, "runs": [...], "seconds"}.
nlohmann::json sweep_timing(const std::string& model_path, const std::string& protocol_path, const std::string& root,
                            const std::vector<int64_t>& group_sizes);

// Throughput of a configuration on random tokens: `steps` optimizer steps (training tokens/s, the first step
// excluded as warm-up when steps > 1) and a forward-only pass over `windows` windows of seq_len at batch 1
// (eval mode, logits for every position). Returns {"train_tokens_per_s", "forward_tokens_per_s", ...}.
nlohmann::json throughput(const TrainConfig& cfg, int64_t steps, int64_t windows);

// README.md text from training.json's content.
std::string render_readme(const nlohmann::json& summary);
// Rewrites <dir>/README.md from <dir>/training.json (after a change of the template).
void rerender_readme(const std::string& dir);

}  // namespace qeval::train
