// eval/model/lambada.hpp — LAMBADA last-word accuracy, the lm-eval `lambada_openai` definition.
//
// Definition (lm-evaluation-harness lm_eval/tasks/lambada/lambada_openai.yaml, output_type loglikelihood):
//   context = text.split(' ')[:-1] joined by ' '     (everything before the last space)
//   target  = ' ' + text.split(' ')[-1]              (the whole last word with its leading space; it may be
//                                                     several tokens, and punctuation glued to it is part of it)
//   tokens (lm-eval's _encode_pair): whole = encode(context + target), ctx = encode(context),
//   cont = whole[len(ctx):] — so a word split differently in context is handled as lm-eval does.
//   correct ⇔ the greedy (argmax) token at every target position equals the target token, with the true
//   previous target tokens fed (teacher forcing: one forward over context + target[:-1]) — lm-eval's
//   `is_greedy`. accuracy = mean(correct); its standard error is the binomial sqrt(p(1 − p)/n).
//   Also reported: the mean target log-likelihood and lm-eval's lambada "perplexity" exp(−mean ll).
// BOS: lm-eval's HF models add none for this task (prepend_bos = false); an empty context gets BOS (or EOS)
// as its only token, as lm-eval uses the end-of-text token there.
// Subset: passages offset, offset + stride, ... (count of them), fixed by the protocol, e.g. count 500,
// stride 10 spreads 500 passages over the 5,153 — a subset figure is NOT comparable with full-set figures.
// Batching right-pads with token 0: padding comes after every scored position, so with a causal mask it
// cannot influence them (only float rounding of the batched matmul may differ; batch is pinned).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "eval/model/llama.hpp"
#include "eval/model/protocol.hpp"

namespace qeval::model {

struct LambadaItem {
  std::vector<int32_t> context;  // BOS (if any) + context tokens
  std::vector<int32_t> target;   // the last word's tokens (≥ 1)
};

struct LambadaResult {
  int64_t n = 0, correct = 0;
  double accuracy = 0.0, accuracy_se = 0.0;
  double mean_target_ll = 0.0;  // mean over passages of Σ log p(target tokens)
  double target_ppl = 0.0;      // exp(−mean_target_ll), lm-eval's lambada perplexity
  double seconds = 0.0;
  std::vector<uint8_t> per_item_correct;
  nlohmann::json to_json() const;
};

// The passages of a JSONL file with one {"text": ...} per line. Throws naming the file and line.
std::vector<std::string> read_lambada(const std::string& path);
// (context, target) by the definition above.
std::pair<std::string, std::string> lambada_split(const std::string& text);
// Selects the protocol's subset and tokenizes. `encode` must add no BOS/EOS. bos_id is used when
// prepend_bos or for an empty context (eos_id as the fallback for the latter).
std::vector<LambadaItem> lambada_items(const std::vector<std::string>& texts, const LambadaProtocol& p,
                                       const std::function<std::vector<int32_t>(const std::string&)>& encode,
                                       int64_t bos_id, int64_t eos_id);
// Greedy last-word accuracy. max_len > 0 truncates long inputs from the left (lm-eval does the same with
// the model's max length); threads as in the protocol.
LambadaResult eval_lambada(LlamaModel& m, const std::vector<LambadaItem>& items, int64_t batch, int threads,
                           int64_t max_len = 0);

}  // namespace qeval::model
