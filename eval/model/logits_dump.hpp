// eval/model/logits_dump.hpp — a model's fp32 logits on given token ids, their top-k, and the safetensors file of `qeval logits`.
//
// The file (`qeval logits --out F.safetensors`) holds, for T positions and a vocabulary of V:
//   "logits"       F32 [T, V]  — LlamaModel::forward on the ids as ONE sequence (batch 1), positions 0..T−1
//   "ids"          I64 [T]     — the ids the logits were computed on
//   "topk_ids"     I64 [T, K]  — per position the K largest logits' ids, largest first (ties: smaller id first)
//   "topk_logits"  F32 [T, K]  — their logits                                  (both absent when K = 0)
// and __metadata__ {"format": "pt", "model": <path>, "content_hash": <checkpoint hash>, "arch": <arch>}, so
// numpy/safetensors/torch read it directly (safetensors.numpy.load_file).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "eval/model/llama.hpp"

namespace qeval::model {

struct LogitsDump {
  std::vector<int64_t> ids;             // [T]
  at::Tensor logits;                    // [T, V] fp32, contiguous
  int64_t top_k = 0;                    // K (≤ V)
  std::vector<int64_t> topk_ids;        // [T·K] row-major
  std::vector<float> topk_logits;       // [T·K]
};

// Ids from text: integers separated by commas and/or whitespace ("1,2,3", "1 2 3", one per line). `source`
// names the input in errors ("--ids", a file name); throws std::invalid_argument naming the bad item.
std::vector<int64_t> parse_token_ids(const std::string& text, const std::string& source);

// The logits of `model` on `ids` (one sequence) and their top-k (k clamped to V). Ids outside the vocabulary
// throw std::invalid_argument (from the forward).
LogitsDump compute_logits(LlamaModel& model, const std::vector<int64_t>& ids, int64_t top_k);

// Writes the file described above; `model_path` goes into the metadata.
void save_logits_safetensors(const LogitsDump& d, const std::string& path, const LlamaModel& model,
                             const std::string& model_path);

}  // namespace qeval::model
