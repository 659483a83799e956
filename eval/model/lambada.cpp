// eval/model/lambada.cpp — LAMBADA (lambada_openai) greedy last-word accuracy.
#include "eval/model/lambada.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <fstream>
#include <stdexcept>

#include "quant/json_text.hpp"

namespace qeval::model {

nlohmann::json LambadaResult::to_json() const {
  return {{"n", n},
          {"correct", correct},
          {"accuracy", accuracy},
          {"accuracy_se", accuracy_se},
          {"mean_target_ll", mean_target_ll},
          {"target_ppl", target_ppl},
          {"seconds", seconds}};
}

std::vector<std::string> read_lambada(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot open the LAMBADA file");
  std::vector<std::string> out;
  std::string line;
  int64_t ln = 0;
  while (std::getline(f, line)) {
    ++ln;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = parse_json_text(line);
    } catch (const std::invalid_argument& e) {  // a syntax error, a number beyond double, nesting too deep
      throw std::invalid_argument(path + ":" + std::to_string(ln) + ": not JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw std::invalid_argument(path + ":" + std::to_string(ln) + ": expected {\"text\": \"...\"}");
    out.push_back(j["text"].get<std::string>());
  }
  if (out.empty()) throw std::invalid_argument(path + ": no passages");
  return out;
}

std::pair<std::string, std::string> lambada_split(const std::string& text) {
  const size_t sp = text.rfind(' ');
  if (sp == std::string::npos) return {"", " " + text};
  return {text.substr(0, sp), " " + text.substr(sp + 1)};
}

std::vector<LambadaItem> lambada_items(const std::vector<std::string>& texts, const LambadaProtocol& p,
                                       const std::function<std::vector<int32_t>(const std::string&)>& encode,
                                       int64_t bos_id, int64_t eos_id) {
  if (p.stride < 1 || p.offset < 0) throw std::invalid_argument("lambada: stride must be ≥ 1 and offset ≥ 0");
  if (p.prepend_bos && bos_id < 0)
    throw std::invalid_argument("lambada: prepend_bos is set but the tokenizer has no BOS token");
  std::vector<LambadaItem> items;
  const int64_t N = static_cast<int64_t>(texts.size());
  for (int64_t i = p.offset; i < N; i += p.stride) {
    if (p.count >= 0 && static_cast<int64_t>(items.size()) >= p.count) break;
    auto [ctx, tgt] = lambada_split(texts[static_cast<size_t>(i)]);
    // lm-eval _encode_pair: trailing spaces of the context move to the continuation.
    size_t keep = ctx.size();
    while (keep > 0 && std::isspace(static_cast<unsigned char>(ctx[keep - 1]))) --keep;
    if (keep < ctx.size()) {
      tgt = ctx.substr(keep) + tgt;
      ctx.resize(keep);
    }
    const std::vector<int32_t> whole = encode(ctx + tgt);
    const std::vector<int32_t> cenc = ctx.empty() ? std::vector<int32_t>{} : encode(ctx);
    LambadaItem it;
    if (p.prepend_bos) it.context.push_back(static_cast<int32_t>(bos_id));
    it.context.insert(it.context.end(), cenc.begin(), cenc.end());
    if (it.context.empty()) {
      const int64_t start = bos_id >= 0 ? bos_id : eos_id;
      if (start < 0) throw std::invalid_argument("lambada: passage " + std::to_string(i) + " has an empty context and the tokenizer has neither BOS nor EOS");
      it.context.push_back(static_cast<int32_t>(start));
    }
    if (whole.size() <= cenc.size())
      throw std::invalid_argument("lambada: passage " + std::to_string(i) + ": the target encodes to no tokens");
    it.target.assign(whole.begin() + static_cast<std::ptrdiff_t>(cenc.size()), whole.end());
    items.push_back(std::move(it));
  }
  if (items.empty()) throw std::invalid_argument("lambada: the subset selects no passage");
  return items;
}

namespace {

// One batch as a padded token tensor: sequence i = (context + target)[:-1], left-truncated to max_len;
// `rows` gets the flat row index (b·T + t) of every scored position (the last |target| ones), in item order.
at::Tensor lambada_batch(const std::vector<LambadaItem>& items, size_t b0, size_t nb, int64_t max_len,
                         std::vector<int64_t>& rows) {
  std::vector<std::vector<int32_t>> seqs(nb);
  int64_t T = 0;
  for (size_t i = 0; i < nb; ++i) {
    const LambadaItem& it = items[b0 + i];
    std::vector<int32_t> s = it.context;
    s.insert(s.end(), it.target.begin(), it.target.end() - 1);
    if (max_len > 0 && static_cast<int64_t>(s.size()) > max_len) s.erase(s.begin(), s.end() - max_len);
    T = std::max<int64_t>(T, static_cast<int64_t>(s.size()));
    seqs[i] = std::move(s);
  }
  at::Tensor tok = at::zeros({static_cast<int64_t>(nb), T}, at::kLong);
  int64_t* tp = tok.data_ptr<int64_t>();
  rows.clear();
  for (size_t i = 0; i < nb; ++i) {
    const auto& s = seqs[i];
    for (size_t t = 0; t < s.size(); ++t) tp[i * T + t] = s[t];
    const int64_t L = static_cast<int64_t>(s.size());
    const int64_t n_t = static_cast<int64_t>(items[b0 + i].target.size());
    for (int64_t k = 0; k < n_t; ++k) rows.push_back(static_cast<int64_t>(i) * T + (L - n_t + k));
  }
  return tok;
}

// log p(target) of one position's logits (log-softmax in double) and whether the target is the argmax.
std::pair<double, bool> score_position(const float* l, int64_t V, int32_t target) {
  double mx = -INFINITY;
  int64_t am = 0;
  for (int64_t v = 0; v < V; ++v)
    if (l[v] > mx) {
      mx = l[v];
      am = v;
    }
  double s = 0.0;
  for (int64_t v = 0; v < V; ++v) s += std::exp(static_cast<double>(l[v]) - mx);
  return {static_cast<double>(l[target]) - mx - std::log(s), am == target};
}

// Scores items [b0, b0 + nb): the target's log-likelihood and whether greedy decoding reproduces it.
void score_batch(LlamaModel& m, const std::vector<LambadaItem>& items, size_t b0, size_t nb, int64_t max_len,
                 LambadaResult& r, std::vector<double>& ll) {
  std::vector<int64_t> rows;
  const at::Tensor tok = lambada_batch(items, b0, nb, max_len, rows);
  const at::Tensor hidden = m.forward_hidden(tok);  // [nb, T, D]
  const at::Tensor idx = at::from_blob(rows.data(), {static_cast<int64_t>(rows.size())}, at::kLong).clone();
  const at::Tensor sel = hidden.reshape({-1, hidden.size(2)}).index_select(0, idx);
  const at::Tensor logits = m.head(sel).contiguous();  // [rows, V]
  const int64_t V = m.config().vocab_size;
  const float* L = logits.data_ptr<float>();
  size_t row = 0;
  for (size_t i = 0; i < nb; ++i) {
    const LambadaItem& it = items[b0 + i];
    bool greedy = true;
    double sum = 0.0;
    for (size_t k = 0; k < it.target.size(); ++k, ++row) {
      const auto [lp, top] = score_position(L + row * V, V, it.target[k]);
      sum += lp;
      greedy = greedy && top;
    }
    r.per_item_correct[b0 + i] = greedy ? 1 : 0;
    ll[b0 + i] = sum;
  }
}

}  // namespace

LambadaResult eval_lambada(LlamaModel& m, const std::vector<LambadaItem>& items, int64_t batch, int threads,
                           int64_t max_len) {
  const int prev_threads = at::get_num_threads();
  configure_threads(threads);
  const auto t0 = std::chrono::steady_clock::now();
  LambadaResult r;
  r.per_item_correct.assign(items.size(), 0);
  std::vector<double> ll(items.size(), 0.0);
  try {
    for (size_t b0 = 0; b0 < items.size(); b0 += static_cast<size_t>(batch))
      score_batch(m, items, b0, std::min(items.size() - b0, static_cast<size_t>(batch)), max_len, r, ll);
  } catch (...) {
    at::set_num_threads(prev_threads);
    throw;
  }
  at::set_num_threads(prev_threads);
  r.n = static_cast<int64_t>(items.size());
  double llsum = 0.0;
  for (size_t i = 0; i < items.size(); ++i) {
    r.correct += r.per_item_correct[i];
    llsum += ll[i];
  }
  const double n = static_cast<double>(r.n);
  r.accuracy = static_cast<double>(r.correct) / n;
  r.accuracy_se = std::sqrt(r.accuracy * (1 - r.accuracy) / n);
  r.mean_target_ll = llsum / n;
  r.target_ppl = std::exp(-r.mean_target_ll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace qeval::model
