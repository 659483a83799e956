// tests/eval/model/random_gguf.hpp — writes random Llama-shaped GGUF files of any size (tests, memory/time benchmarks).
//
// Every weight is k·2^-s with k a random integer in [-127, 127] (one byte of mt19937_64 output from quant/rng.hpp,
// seeded per tensor from the spec's seed and the tensor's name) and s fixed per tensor so that the spread is
// about 1/sqrt(in_features). Such values are exact in F32, F16 and BF16 (8 significant bits), so the loaded fp32
// tensor equals random_tensor_values() whatever the file type. Norm weights are 1 + k/128 with |k| ≤ 16, stored
// F32 as llama.cpp stores 1-D tensors. The vocabulary is GPT-2's (data/gpt2-bpe), padded with unused tokens
// "<|pad{i}|>" up to `vocab`, so qeval's tokenizer loads from the file. Writing streams tensor by tensor: memory
// stays small whatever the model size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qeval::test {

struct RandomGgufSpec {
  int64_t d_model = 64, n_layers = 2, d_ff = 128, n_heads = 4, n_kv_heads = 2;
  int64_t vocab = 50257;    // ≥ 50257 (GPT-2's vocabulary, padded)
  int64_t n_ctx = 2048;
  std::string type = "F16";  // F32 | F16 | BF16: storage type of every 2-D tensor
  bool tied = false;          // output.weight absent (tied to token_embd)
  uint64_t seed = 20240229;
};

// The named presets: "460m" (d 2048, 8 layers, ff 2432, 16 heads, vocab 50257, F16: 459.6 M parameters, the
// issue-15 shape) and "7b" (Llama-2-7B's block: d 4096, ff 11008, 32 heads; 2 layers, GPT-2 vocabulary).
// Throws std::invalid_argument (one line) for an unknown name.
RandomGgufSpec random_gguf_preset(const std::string& name);

// Checks the sizes; throws std::invalid_argument with one line naming the field and the fix.
void validate_random_gguf_spec(const RandomGgufSpec& s);

// Parameters the spec's file holds (all tensors).
int64_t random_gguf_parameters(const RandomGgufSpec& s);

// The fp32 values of tensor `name` (canonical GGUF name, see eval/model/checkpoint.hpp), row-major.
std::vector<float> random_tensor_values(const RandomGgufSpec& s, const std::string& name);

// Writes the file (to path + ".tmp", then renamed). `gpt2_dir` holds encoder.json and vocab.bpe.
void write_random_gguf(const RandomGgufSpec& s, const std::string& path, const std::string& gpt2_dir);

}  // namespace qeval::test
