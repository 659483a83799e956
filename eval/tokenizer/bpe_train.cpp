// eval/tokenizer/bpe_train.cpp — byte-level BPE training (see bpe_train.hpp for the algorithm and tie rule).
#include "eval/tokenizer/bpe_train.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>
#include <stdexcept>

#include "eval/tokenizer/byte_alphabet.hpp"
#include "eval/tokenizer/pretokenizer.hpp"
#include "eval/tokenizer/utf8.hpp"

namespace qeval::tokenizer {

namespace {

using json = nlohmann::json;

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
int32_t key_left(uint64_t k) { return static_cast<int32_t>(k >> 32); }
int32_t key_right(uint64_t k) { return static_cast<int32_t>(k & 0xFFFFFFFFu); }

// The HF pre_tokenizer node that loads back (load_hf.cpp) as the named pipeline.
json pre_tokenizer_json(const std::string& name) {
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                           {"use_regex", true}};
  if (name == "gpt2") return byte_level;
  // "smollm": HF Digits(individual_digits=True), then ByteLevel — as SmolLM2's own tokenizer.json.
  return {{"type", "Sequence"},
          {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}}, byte_level})}};
}

}  // namespace

BpeTrainer::BpeTrainer(BpeTrainOptions options) : opt_(std::move(options)) {
  if (opt_.pre_tokenizer != "gpt2" && opt_.pre_tokenizer != "smollm")
    throw std::invalid_argument("BpeTrainer: pre_tokenizer '" + opt_.pre_tokenizer +
                                "' is not supported for training (supported: gpt2, smollm)");
  std::set<std::string> seen;
  for (const auto& s : opt_.special_tokens) {
    if (s.empty()) throw std::invalid_argument("BpeTrainer: a special token is the empty string");
    if (!seen.insert(s).second) throw std::invalid_argument("BpeTrainer: special token '" + s + "' is listed twice");
  }
  const int64_t min_vocab = 256 + static_cast<int64_t>(opt_.special_tokens.size());
  if (opt_.vocab_size < min_vocab)
    throw std::invalid_argument("BpeTrainer: vocab_size " + std::to_string(opt_.vocab_size) + " is below " +
                                std::to_string(min_vocab) + " (256 byte symbols + the special tokens)");
  for (const std::string* t : {&opt_.bos_token, &opt_.eos_token})
    if (!t->empty() && !seen.count(*t))
      throw std::invalid_argument("BpeTrainer: BOS/EOS token '" + *t + "' is not one of the special tokens");
  if (opt_.add_bos && opt_.bos_token.empty())
    throw std::invalid_argument("BpeTrainer: add_bos needs a bos_token");
  if (opt_.min_pair_count < 1) throw std::invalid_argument("BpeTrainer: min_pair_count must be ≥ 1");
}

void BpeTrainer::add_piece(std::string_view piece, int64_t count) {
  if (piece.empty() || count <= 0) return;
  counts_[std::string(piece)] += count;
  n_pieces_ += count;
  n_bytes_ += count * static_cast<int64_t>(piece.size());
}

void BpeTrainer::add_text(std::string_view text) {
  // 1. Remove special-token texts (encode() turns them into their ids, never into merges).
  std::vector<std::string_view> fragments;
  size_t start = 0;
  while (start <= text.size()) {
    size_t best = std::string_view::npos, best_len = 0;
    for (const auto& s : opt_.special_tokens) {
      const size_t p = text.find(s, start);
      if (p < best || (p == best && s.size() > best_len)) {
        best = p;
        best_len = s.size();
      }
    }
    if (best == std::string_view::npos) {
      fragments.push_back(text.substr(start));
      break;
    }
    fragments.push_back(text.substr(start, best - start));
    start = best + best_len;
  }
  // 2. Cut at invalid UTF-8 (one piece per invalid byte) and pre-tokenize the valid runs, as encode() does.
  const detail::PreTokenizer pre = detail::PreTokenizer::named(opt_.pre_tokenizer);
  std::vector<std::string> pieces;
  auto run = [&](std::string_view valid) {
    pieces.clear();
    pre.split(valid, pieces);
    for (const auto& p : pieces) add_piece(p);
  };
  for (std::string_view f : fragments) {
    size_t i = 0, run_start = 0;
    while (i < f.size()) {
      const size_t len = detail::utf8_sequence_length(f, i);
      if (len > 0) {
        i += len;
        continue;
      }
      if (i > run_start) run(f.substr(run_start, i - run_start));
      add_piece(f.substr(i, 1));
      run_start = ++i;
    }
    if (i > run_start) run(f.substr(run_start, i - run_start));
  }
}

namespace {

// The training state: every distinct word as symbols, and the pair counts with, per pair, the words that
// (may) hold it. Lists can hold stale entries (a word whose pair was merged away); they are re-checked when used.
struct PairIndex {
  struct Word {
    std::vector<int32_t> sym;
    int64_t freq;
  };
  std::vector<Word> words;
  std::unordered_map<uint64_t, int64_t> count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;
  std::vector<int32_t> merged_sym;  // scratch

  // Words in byte order of their text: the processing order, hence the result, is independent of the
  // hash map's iteration order.
  explicit PairIndex(const std::unordered_map<std::string, int64_t>& counts) {
    std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
    std::sort(sorted.begin(), sorted.end());
    words.reserve(sorted.size());
    for (const auto& [text, c] : sorted) {
      Word w;
      w.freq = c;
      for (unsigned char ch : text) w.sym.push_back(ch);
      words.push_back(std::move(w));
    }
    for (size_t w = 0; w < words.size(); ++w) {
      const auto& s = words[w].sym;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = pair_key(s[i], s[i + 1]);
        count[k] += words[w].freq;
        auto& lst = where[k];
        if (lst.empty() || lst.back() != static_cast<int32_t>(w)) lst.push_back(static_cast<int32_t>(w));
      }
    }
  }

  // Replaces every (a, b) in word w by z and updates the counts; a stale entry changes nothing.
  void merge_in_word(int32_t w, int32_t a, int32_t b, int32_t z) {
    auto& s = words[size_t(w)].sym;
    const int64_t f = words[size_t(w)].freq;
    bool has = false;
    for (size_t i = 0; i + 1 < s.size() && !has; ++i) has = s[i] == a && s[i + 1] == b;
    if (!has) return;  // stale entry
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      auto c = count.find(pair_key(s[i], s[i + 1]));
      if ((c->second -= f) == 0) count.erase(c);
    }
    merged_sym.clear();
    for (size_t i = 0; i < s.size();) {
      const bool hit = i + 1 < s.size() && s[i] == a && s[i + 1] == b;
      merged_sym.push_back(hit ? z : s[i]);
      i += hit ? 2 : 1;
    }
    s.swap(merged_sym);
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t k = pair_key(s[i], s[i + 1]);
      count[k] += f;
      if (s[i] == z || s[i + 1] == z) {
        auto& lst = where[k];
        if (lst.empty() || lst.back() != w) lst.push_back(w);
      }
    }
  }

  // Merges the pair `best` into z in every word that holds it.
  void merge(uint64_t best, int32_t z) {
    std::vector<int32_t> affected = std::move(where[best]);
    where.erase(best);
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    for (int32_t w : affected) merge_in_word(w, key_left(best), key_right(best), z);
  }
};

// The most frequent pair; ties go to the smaller (left, right) texts as unsigned bytes. {0, 0} when none.
std::pair<uint64_t, int64_t> best_pair(const PairIndex& ix, const std::vector<std::string>& token_bytes) {
  auto tie_less = [&](uint64_t x, uint64_t y) {
    const int c = token_bytes[size_t(key_left(x))].compare(token_bytes[size_t(key_left(y))]);  // memcmp order
    if (c != 0) return c < 0;
    return token_bytes[size_t(key_right(x))].compare(token_bytes[size_t(key_right(y))]) < 0;
  };
  uint64_t best = 0;
  int64_t best_count = 0;
  for (const auto& [k, c] : ix.count) {
    if (c > best_count || (c == best_count && c > 0 && tie_less(k, best))) {
      best = k;
      best_count = c;
    }
  }
  return {best, best_count};
}

// The id of text a + b: an existing token (reached by another pair) or a new one.
int32_t token_for(BpeModel& out, std::unordered_map<std::string, int32_t>& id_of, int32_t a, int32_t b) {
  const std::string text = out.token_bytes[size_t(a)] + out.token_bytes[size_t(b)];
  auto it = id_of.find(text);
  if (it != id_of.end()) return it->second;
  const int32_t z = static_cast<int32_t>(out.token_bytes.size());
  out.token_bytes.push_back(text);
  id_of.emplace(text, z);
  return z;
}

}  // namespace

BpeModel BpeTrainer::train(bool progress) const {
  BpeModel out;
  out.options = opt_;
  out.n_train_pieces = n_pieces_;
  out.n_train_bytes = n_bytes_;
  PairIndex ix(counts_);
  out.token_bytes.resize(256);
  std::unordered_map<std::string, int32_t> id_of;
  for (int b = 0; b < 256; ++b) {
    out.token_bytes[size_t(b)] = std::string(1, static_cast<char>(b));
    id_of[out.token_bytes[size_t(b)]] = b;
  }
  const int32_t target_learned = opt_.vocab_size - static_cast<int32_t>(opt_.special_tokens.size());
  while (static_cast<int32_t>(out.token_bytes.size()) < target_learned) {
    const auto [best, best_count] = best_pair(ix, out.token_bytes);
    if (best_count < opt_.min_pair_count || best_count == 0) break;
    const int32_t a = key_left(best), b = key_right(best);
    const int32_t z = token_for(out, id_of, a, b);
    out.merges.emplace_back(a, b);
    out.merge_result.push_back(z);
    out.merge_counts.push_back(best_count);
    ix.merge(best, z);
    if (progress && out.merges.size() % 512 == 0)
      std::fprintf(stderr, "bpe: %zu merges, %zu tokens, last count %lld\n", out.merges.size(),
                   out.token_bytes.size(), static_cast<long long>(best_count));
  }
  for (const auto& w : ix.words) out.n_train_tokens += w.freq * static_cast<int64_t>(w.sym.size());
  return out;
}

// ---- BpeModel ------------------------------------------------------------------------------------

int32_t BpeModel::special_id(const std::string& text) const {
  for (size_t i = 0; i < options.special_tokens.size(); ++i)
    if (options.special_tokens[i] == text) return n_learned() + static_cast<int32_t>(i);
  return -1;
}

std::string BpeModel::token_text(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::invalid_argument("BpeModel::token_text: id " + std::to_string(id) + " outside [0, " +
                                std::to_string(vocab_size()) + ")");
  if (id >= n_learned()) return options.special_tokens[size_t(id - n_learned())];
  const auto& alpha = detail::byte_alphabet();
  std::string t;
  for (unsigned char c : token_bytes[size_t(id)]) t += alpha.utf8[c];
  return t;
}

json BpeModel::to_hf_json() const {
  json vocab = json::object();
  for (int32_t id = 0; id < vocab_size(); ++id) vocab[token_text(id)] = id;
  json merges_j = json::array();
  for (const auto& [l, r] : merges) merges_j.push_back(json::array({token_text(l), token_text(r)}));
  json added = json::array();
  for (size_t i = 0; i < options.special_tokens.size(); ++i)
    added.push_back({{"id", n_learned() + static_cast<int32_t>(i)},
                     {"content", options.special_tokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = pre_tokenizer_json(options.pre_tokenizer);
  if (options.add_bos) {
    const std::string& b = options.bos_token;
    j["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", b}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", json::array({{{"SpecialToken", {{"id", b}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"SpecialToken", {{"id", b}, {"type_id", 1}}}},
                              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
        {"special_tokens", {{b, {{"id", b}, {"ids", json::array({special_id(b)})}, {"tokens", json::array({b})}}}}}};
  } else {
    j["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                           {"use_regex", true}};
  }
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", merges_j}};
  return j;
}

void BpeModel::save_hf_json(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error(tmp + ": cannot open for writing");
    f << to_hf_json().dump(1) << "\n";
    if (!f) throw std::runtime_error(tmp + ": write error");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(path + ": cannot rename " + tmp);
}

std::map<std::string, json> BpeModel::gguf_metadata() const {
  std::map<std::string, json> m;
  json tokens = json::array(), types = json::array(), merges_j = json::array();
  for (int32_t id = 0; id < vocab_size(); ++id) {
    tokens.push_back(token_text(id));
    types.push_back(id < n_learned() ? static_cast<int32_t>(TokenType::kNormal) : static_cast<int32_t>(TokenType::kControl));
  }
  for (const auto& [l, r] : merges) merges_j.push_back(token_text(l) + " " + token_text(r));
  m["tokenizer.ggml.model"] = "gpt2";
  m["tokenizer.ggml.pre"] = detail::gguf_pre_for_pipeline(options.pre_tokenizer);  // "gpt-2": llama.cpp refuses "gpt2"
  m["tokenizer.ggml.tokens"] = tokens;
  m["tokenizer.ggml.token_type"] = types;
  m["tokenizer.ggml.merges"] = merges_j;
  if (!options.bos_token.empty()) m["tokenizer.ggml.bos_token_id"] = special_id(options.bos_token);
  if (!options.eos_token.empty()) m["tokenizer.ggml.eos_token_id"] = special_id(options.eos_token);
  m["tokenizer.ggml.add_bos_token"] = options.add_bos;
  m["tokenizer.ggml.add_eos_token"] = false;
  return m;
}

Tokenizer BpeModel::tokenizer() const { return Tokenizer::from_hf_json(to_hf_json(), "trained BPE"); }

}  // namespace qeval::tokenizer
