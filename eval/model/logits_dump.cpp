// eval/model/logits_dump.cpp — `qeval logits` behind the CLI: ids parsing, the forward on one sequence, top-k, the file.
#include "eval/model/logits_dump.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <numeric>
#include <stdexcept>

#include "eval/model/safetensors.hpp"

namespace qeval::model {

std::vector<int64_t> parse_token_ids(const std::string& text, const std::string& source) {
  std::vector<int64_t> ids;
  size_t i = 0;
  const auto sep = [](char c) { return c == ',' || std::isspace(static_cast<unsigned char>(c)); };
  while (i < text.size()) {
    if (sep(text[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && !sep(text[j])) ++j;
    const std::string item = text.substr(i, j - i);
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (end != item.c_str() + item.size() || errno == ERANGE || v < 0)
      throw std::invalid_argument(source + ": '" + item + "' (item " + std::to_string(ids.size() + 1) +
                                  ") is not a token id — give non-negative integers separated by commas or spaces");
    ids.push_back(v);
    i = j;
  }
  if (ids.empty()) throw std::invalid_argument(source + ": no token ids — give e.g. --ids 1,2,3");
  return ids;
}

namespace {

// Per row of logits [T, V]: the k largest, largest first, ties to the smaller id (a stable, documented order
// that at::topk does not promise).
void fill_top_k(LogitsDump& d) {
  const int64_t T = d.logits.size(0), V = d.logits.size(1), K = d.top_k;
  const float* p = d.logits.data_ptr<float>();
  std::vector<int64_t> order(static_cast<size_t>(V));
  d.topk_ids.resize(static_cast<size_t>(T * K));
  d.topk_logits.resize(static_cast<size_t>(T * K));
  for (int64_t t = 0; t < T; ++t) {
    const float* row = p + t * V;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(), [row](int64_t a, int64_t b) {
      return row[a] > row[b] || (row[a] == row[b] && a < b);
    });
    for (int64_t k = 0; k < K; ++k) {
      d.topk_ids[static_cast<size_t>(t * K + k)] = order[static_cast<size_t>(k)];
      d.topk_logits[static_cast<size_t>(t * K + k)] = row[order[static_cast<size_t>(k)]];
    }
  }
}

}  // namespace

LogitsDump compute_logits(LlamaModel& model, const std::vector<int64_t>& ids, int64_t top_k) {
  if (ids.empty()) throw std::invalid_argument("logits: no token ids");
  if (top_k < 0) throw std::invalid_argument("logits: --top-k must be ≥ 0, got " + std::to_string(top_k));
  LogitsDump d;
  d.ids = ids;
  const at::Tensor tok = at::from_blob(d.ids.data(), {1, static_cast<int64_t>(ids.size())}, at::kLong).clone();
  d.logits = model.forward(tok).select(0, 0).contiguous();
  d.top_k = std::min<int64_t>(top_k, d.logits.size(1));
  fill_top_k(d);
  return d;
}

void save_logits_safetensors(const LogitsDump& d, const std::string& path, const LlamaModel& model,
                             const std::string& model_path) {
  const int64_t T = d.logits.size(0), V = d.logits.size(1), K = d.top_k;
  std::vector<SafetensorsBlob> blobs;
  blobs.push_back({"logits", "F32", {T, V}, d.logits.data_ptr<float>(), static_cast<size_t>(T * V) * sizeof(float)});
  blobs.push_back({"ids", "I64", {T}, d.ids.data(), d.ids.size() * sizeof(int64_t)});
  if (K > 0) {
    blobs.push_back({"topk_ids", "I64", {T, K}, d.topk_ids.data(), d.topk_ids.size() * sizeof(int64_t)});
    blobs.push_back({"topk_logits", "F32", {T, K}, d.topk_logits.data(), d.topk_logits.size() * sizeof(float)});
  }
  const nlohmann::json meta = {
      {"model", model_path}, {"content_hash", model.content_hash()}, {"arch", model.config().arch}};
  save_safetensors_file(path, std::move(blobs), meta);
}

}  // namespace qeval::model
