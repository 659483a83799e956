// eval/tokenizer/tokenizer.cpp — encode/decode for byte-level BPE and SentencePiece-style BPE, the
// special-token matcher, the merge loops, and the content hash. Loaders are in load_*.cpp.
#include "eval/tokenizer/tokenizer.hpp"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <queue>
#include <stdexcept>

#include "eval/tokenizer/byte_alphabet.hpp"
#include "eval/tokenizer/tokenizer_impl.hpp"
#include "eval/tokenizer/utf8.hpp"

namespace qeval::tokenizer {

namespace detail {

// ---------------------------------------------------------------------------------------------------
// Byte-level BPE merge loop (HF tokenizers' Word::merge_all, dropout off).
void bpe_merge(std::vector<int32_t>& ids, const MergeTable& merges) {
  const size_t n = ids.size();
  if (n < 2) return;
  struct Sym {
    int32_t id;
    int32_t prev, next;  // −1 at the ends
    bool alive;
  };
  struct Cand {
    int32_t rank, pos, new_id;
    // std::priority_queue is a max-heap: "less" means popped later → lower rank first, then lower pos.
    bool operator<(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Sym> s(n);
  for (size_t i = 0; i < n; ++i) s[i] = {ids[i], int32_t(i) - 1, i + 1 < n ? int32_t(i + 1) : -1, true};
  std::vector<Cand> heap_storage;
  heap_storage.reserve(n);
  std::priority_queue<Cand> heap(std::less<Cand>(), std::move(heap_storage));
  for (size_t i = 0; i + 1 < n; ++i) {
    if (const auto* m = merges.find(s[i].id, s[i + 1].id)) heap.push({m->rank, int32_t(i), m->new_id});
  }
  while (!heap.empty()) {
    const Cand top = heap.top();
    heap.pop();
    Sym& left = s[size_t(top.pos)];
    if (!left.alive || left.next < 0) continue;
    Sym& right = s[size_t(left.next)];
    const auto* m = merges.find(left.id, right.id);
    if (m == nullptr || m->new_id != top.new_id) continue;  // stale candidate
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) s[size_t(left.next)].prev = top.pos;
    if (left.prev >= 0) {
      if (const auto* mp = merges.find(s[size_t(left.prev)].id, left.id)) heap.push({mp->rank, left.prev, mp->new_id});
    }
    if (left.next >= 0) {
      if (const auto* mn = merges.find(left.id, s[size_t(left.next)].id)) heap.push({mn->rank, top.pos, mn->new_id});
    }
  }
  ids.clear();
  for (int32_t i = 0; i >= 0; i = s[size_t(i)].next) ids.push_back(s[size_t(i)].id);
}

// ---------------------------------------------------------------------------------------------------
namespace {
// Unicode White_Space (PropList.txt; Rust's char::is_whitespace, which HF's added-token lstrip/rstrip use).
bool is_white_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// The first position at or after `pos` that does not start a white-space character.
size_t skip_white_space(std::string_view text, size_t pos) {
  for (size_t len; pos < text.size() && (len = utf8_sequence_length(text, pos)) > 0 &&
                   is_white_space(utf8_decode(text, pos, len));) {
    pos += len;
  }
  return pos;
}

// `end` moved back over the white-space characters that end text[begin, end).
size_t trim_white_space_end(std::string_view text, size_t begin, size_t end) {
  while (end > begin) {
    size_t s = end - 1;
    while (s > begin && (static_cast<unsigned char>(text[s]) & 0xC0) == 0x80) --s;  // start of the last character
    const size_t len = utf8_sequence_length(text, s);
    if (len != end - s || !is_white_space(utf8_decode(text, s, len))) break;
    end = s;
  }
  return end;
}
}  // namespace

void SpecialMatcher::add(std::string text, int32_t id, bool needs_parse_special, bool lstrip, bool rstrip) {
  if (text.empty()) return;  // an empty token can never be matched in text
  const uint32_t index = uint32_t(entries_.size());
  entries_.push_back({std::move(text), id, needs_parse_special, lstrip, rstrip});
  // Keep each first-byte bucket sorted longest first (stable: equal lengths keep id order).
  auto& bucket = by_first_byte_[static_cast<unsigned char>(entries_.back().text[0])];
  const size_t len = entries_.back().text.size();
  auto pos = std::find_if(bucket.begin(), bucket.end(), [&](uint32_t k) { return entries_[k].text.size() < len; });
  bucket.insert(pos, index);
}

std::vector<SpecialMatcher::Fragment> SpecialMatcher::split(std::string_view text, bool parse_special) const {
  std::vector<Fragment> out;
  size_t start = 0;  // start of the pending text fragment
  for (size_t i = 0; i < text.size();) {
    const auto& cands = by_first_byte_[static_cast<unsigned char>(text[i])];
    const Entry* hit = nullptr;
    for (uint32_t k : cands) {  // longest first
      const Entry& e = entries_[k];
      if (e.needs_parse_special && !parse_special) continue;
      if (text.compare(i, e.text.size(), e.text) == 0) {
        hit = &e;
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    const size_t frag_end = hit->lstrip ? trim_white_space_end(text, start, i) : i;
    if (frag_end > start) out.push_back({text.substr(start, frag_end - start), -1});
    out.push_back({text.substr(i, hit->text.size()), hit->id});
    i += hit->text.size();
    if (hit->rstrip) i = skip_white_space(text, i);
    start = i;
  }
  if (start < text.size()) out.push_back({text.substr(start), -1});
  return out;
}

}  // namespace detail

// -------------------------------------------------------------------------------------------------------
// Impl: finishing a load.

void Tokenizer::Impl::check_id(int32_t id, const std::string& what) const {
  if (id < -1 || id >= int32_t(tokens.size())) {
    throw std::invalid_argument(source + ": " + what + " = " + std::to_string(id) + " is outside the vocabulary [0, " +
                                std::to_string(tokens.size()) + ")");
  }
}

namespace {
// Byte → id of its byte symbol (byte-level) or of its <0xNN> byte token (SentencePiece), −1 when absent.
void fill_byte_tables(Tokenizer::Impl& m) {
  const auto& alpha = detail::byte_alphabet();
  m.byte_id.fill(-1);
  m.spm_byte_id.fill(-1);
  for (int b = 0; b < 256; ++b) {
    if (m.kind == ModelKind::kByteLevelBpe) {
      auto it = m.token_to_id.find(alpha.utf8[b]);
      if (it != m.token_to_id.end()) m.byte_id[b] = it->second;
    } else {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      auto it = m.token_to_id.find(name);
      if (it != m.token_to_id.end() && m.types[size_t(it->second)] == TokenType::kByte) m.spm_byte_id[b] = it->second;
    }
  }
}

// Control/unknown tokens (matched with parse_special) and user-defined ones (always) into the matcher.
void fill_specials(Tokenizer::Impl& m) {
  for (size_t i = 0; i < m.tokens.size(); ++i) {
    const TokenType t = m.types[i];
    const auto strip = m.added_strip.find(int32_t(i));
    const uint8_t bits = strip == m.added_strip.end() ? 0 : strip->second;
    if (t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUserDefined) {
      m.specials.add(m.tokens[i], int32_t(i), t != TokenType::kUserDefined, bits & 1, bits & 2);
    }
  }
}
}  // namespace

void Tokenizer::Impl::finalize() {
  if (tokens.empty()) throw std::invalid_argument(source + ": the vocabulary is empty");
  if (tokens.size() > size_t(INT32_MAX)) throw std::invalid_argument(source + ": vocabulary larger than 2^31 tokens");
  if (types.empty()) types.assign(tokens.size(), TokenType::kNormal);
  if (types.size() != tokens.size()) {
    throw std::invalid_argument(source + ": token types (" + std::to_string(types.size()) + ") and tokens (" +
                                std::to_string(tokens.size()) + ") differ in length");
  }
  token_to_id.clear();
  token_to_id.reserve(tokens.size() * 2);
  for (size_t i = 0; i < tokens.size(); ++i) token_to_id.emplace(tokens[i], int32_t(i));
  check_id(bos, "BOS id");
  check_id(eos, "EOS id");
  check_id(unk, "unknown-token id");
  check_id(pad, "padding id");
  if (add_bos && bos < 0) throw std::invalid_argument(source + ": add_bos_token is set but there is no BOS id");
  if (add_eos && eos < 0) throw std::invalid_argument(source + ": add_eos_token is set but there is no EOS id");

  fill_byte_tables(*this);
  fill_specials(*this);
}

void Tokenizer::Impl::add_merge(const std::string& left, const std::string& right, const std::string& where) {
  auto find = [&](const std::string& t, const char* role) {
    auto it = token_to_id.find(t);
    if (it == token_to_id.end()) {
      throw std::invalid_argument(source + ": " + where + ": " + role + " '" + t +
                                  "' is not in the vocabulary (merges must name vocabulary tokens)");
    }
    return it->second;
  };
  const int32_t a = find(left, "left part");
  const int32_t b = find(right, "right part");
  const int32_t c = find(left + right, "merged token");
  const int32_t rank = int32_t(merges.by_rank.size());
  merges.by_rank.emplace_back(a, b);
  // A repeated pair keeps its first (lowest) rank, as HF's merge map does when built in rank order.
  merges.map.emplace(detail::MergeTable::key(a, b), detail::MergeTable::Entry{rank, c});
}

Tokenizer make_tokenizer(std::shared_ptr<Tokenizer::Impl> impl) { return Tokenizer(std::move(impl)); }

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

// -------------------------------------------------------------------------------------------------------
// Encoding.

namespace {

using detail::utf8_sequence_length;

constexpr const char* kSpmSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK "▁"

// Byte-level BPE of one pre-tokenizer piece, appended to `out`.
void encode_piece_bytelevel(const Tokenizer::Impl& m, std::string_view piece, std::vector<int32_t>& out,
                            EncodeStats& st) {
  const auto& alpha = detail::byte_alphabet();
  if (m.ignore_merges) {
    std::string mapped;
    for (unsigned char c : piece) mapped += alpha.utf8[c];
    auto it = m.token_to_id.find(mapped);
    if (it != m.token_to_id.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> ids;
  ids.reserve(piece.size());
  bool prev_unk = false;
  for (unsigned char c : piece) {
    const int32_t id = m.byte_id[c];
    if (id >= 0) {
      ids.push_back(id);
      prev_unk = false;
    } else if (m.unk_for_missing && m.unk >= 0) {
      if (!(m.fuse_unk && prev_unk)) ids.push_back(m.unk);
      prev_unk = true;
      ++st.unknown;
    } else {
      ++st.dropped_bytes;  // HF BPE with unk_token null, llama.cpp: the byte is skipped
    }
  }
  detail::bpe_merge(ids, m.merges);
  out.insert(out.end(), ids.begin(), ids.end());
}

void encode_text_bytelevel(const Tokenizer::Impl& m, std::string_view text, std::vector<int32_t>& out,
                           EncodeStats& st) {
  // Cache of piece → ids for this call (running text repeats most pieces: 286k pieces, ~29k distinct in
  // wiki.test.raw). Bounded so that adversarial input cannot grow it without limit.
  constexpr size_t kMaxCacheEntries = size_t(1) << 18;
  constexpr size_t kMaxCachedPieceBytes = 64;
  std::unordered_map<std::string, std::vector<int32_t>> cache;
  std::vector<std::string> pieces;
  auto run = [&](std::string_view valid) {
    pieces.clear();
    if (m.normalizer == detail::Normalizer::kNfc) {
      m.pre.split(detail::nfc(valid), pieces);
    } else {
      m.pre.split(valid, pieces);
    }
    st.pieces += pieces.size();
    for (const auto& p : pieces) {
      if (p.size() > kMaxCachedPieceBytes) {
        encode_piece_bytelevel(m, p, out, st);
        continue;
      }
      auto it = cache.find(p);
      if (it != cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
      const size_t before = out.size();
      const size_t dropped = st.dropped_bytes, unknown = st.unknown;
      encode_piece_bytelevel(m, p, out, st);
      // Pieces that dropped bytes or produced unk are not cached, so the stats stay exact.
      if (cache.size() < kMaxCacheEntries && dropped == st.dropped_bytes && unknown == st.unknown) {
        cache.emplace(p, std::vector<int32_t>(out.begin() + std::ptrdiff_t(before), out.end()));
      }
    }
  };
  // Cut at invalid UTF-8: valid runs are pre-tokenized, each invalid byte is a piece of its own.
  size_t i = 0, run_start = 0;
  while (i < text.size()) {
    const size_t len = utf8_sequence_length(text, i);
    if (len > 0) {
      i += len;
      continue;
    }
    if (i > run_start) run(text.substr(run_start, i - run_start));
    ++st.pieces;
    encode_piece_bytelevel(m, text.substr(i, 1), out, st);
    run_start = ++i;
  }
  if (i > run_start) run(text.substr(run_start, i - run_start));
}

// One symbol of the SentencePiece merge: a byte range of the escaped text in a doubly linked list.
struct SpmSym {
  size_t off, len;
  int32_t prev, next;
};

// The text with spaces as U+2581 (and one in front at the text's start when add_space_prefix), split
// into UTF-8 characters; an invalid byte is a symbol of its own (→ <0xNN>).
std::vector<SpmSym> spm_symbols(const Tokenizer::Impl& m, std::string_view text, bool at_text_start, std::string& s) {
  s.reserve(text.size() + 8);
  if (m.add_space_prefix && at_text_start) s += kSpmSpace;
  for (char c : text) {
    if (c == ' ')
      s += kSpmSpace;
    else
      s += c;
  }
  std::vector<SpmSym> sym;
  for (size_t i = 0; i < s.size();) {
    size_t len = utf8_sequence_length(s, i);
    if (len == 0) len = 1;
    sym.push_back({i, len, int32_t(sym.size()) - 1, -1});
    i += len;
  }
  for (size_t i = 0; i + 1 < sym.size(); ++i) sym[i].next = int32_t(i + 1);
  return sym;
}

bool is_real_piece(const Tokenizer::Impl& m, int32_t id) {
  const TokenType t = m.types[size_t(id)];
  return t == TokenType::kNormal || t == TokenType::kUserDefined;  // only real pieces are merge results
}

// Merges adjacent symbols, highest piece score first, until no pair is a piece.
void spm_merge(const Tokenizer::Impl& m, const std::string& s, std::vector<SpmSym>& sym) {
  struct Bigram {
    float score;
    int32_t left, right;
    size_t size;
    // Max-heap: highest score first, ties to the leftmost pair (SentencePiece's and llama.cpp's order).
    bool operator<(const Bigram& o) const { return score != o.score ? score < o.score : left > o.left; }
  };
  std::priority_queue<Bigram> heap;
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const size_t size = sym[size_t(l)].len + sym[size_t(r)].len;
    auto it = m.token_to_id.find(s.substr(sym[size_t(l)].off, size));
    if (it == m.token_to_id.end() || !is_real_piece(m, it->second)) return;
    heap.push({m.scores[size_t(it->second)], l, r, size});
  };
  for (size_t i = 0; i + 1 < sym.size(); ++i) try_add(int32_t(i), int32_t(i + 1));
  while (!heap.empty()) {
    const Bigram b = heap.top();
    heap.pop();
    SpmSym& l = sym[size_t(b.left)];
    SpmSym& r = sym[size_t(b.right)];
    if (l.len == 0 || r.len == 0 || l.next != b.right || l.len + r.len != b.size) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (l.next >= 0) sym[size_t(l.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
}

// SentencePiece-style BPE (Llama-2 GGUF vocabularies) of one text fragment.
void encode_text_spm(const Tokenizer::Impl& m, std::string_view text, bool at_text_start, std::vector<int32_t>& out,
                     EncodeStats& st) {
  std::string s;
  std::vector<SpmSym> sym = spm_symbols(m, text, at_text_start, s);
  spm_merge(m, s, sym);
  for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[size_t(i)].next) {
    const std::string piece = s.substr(sym[size_t(i)].off, sym[size_t(i)].len);
    auto it = m.token_to_id.find(piece);
    if (it != m.token_to_id.end() && is_real_piece(m, it->second)) {
      out.push_back(it->second);
      continue;
    }
    for (unsigned char c : piece) {  // byte fallback
      if (m.spm_byte_id[c] >= 0) {
        out.push_back(m.spm_byte_id[c]);
      } else if (m.unk >= 0) {
        out.push_back(m.unk);
        ++st.unknown;
        break;  // one <unk> for the whole unknown character, as SentencePiece does
      } else {
        ++st.dropped_bytes;
      }
    }
  }
}

}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& o, EncodeStats* stats) const {
  const Impl& m = *impl_;
  EncodeStats st;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  const bool add_bos = o.add_bos.value_or(m.add_bos);
  const bool add_eos = o.add_eos.value_or(m.add_eos);
  if (add_bos) {
    if (m.bos < 0) throw std::invalid_argument(m.source + ": encode(add_bos): this tokenizer has no BOS token");
    out.push_back(m.bos);
  }
  for (const auto& f : m.specials.split(text, o.parse_special)) {
    if (f.id >= 0) {
      out.push_back(f.id);
      continue;
    }
    if (m.kind == ModelKind::kByteLevelBpe) {
      encode_text_bytelevel(m, f.text, out, st);
    } else {
      ++st.pieces;
      if (m.hf.on) {
        detail::encode_text_hf_spm(m, f.text, f.text.data() == text.data(), out, st);
      } else {
        encode_text_spm(m, f.text, f.text.data() == text.data(), out, st);
      }
    }
  }
  if (add_eos) {
    if (m.eos < 0) throw std::invalid_argument(m.source + ": encode(add_eos): this tokenizer has no EOS token");
    out.push_back(m.eos);
  }
  if (stats != nullptr) *stats = st;
  return out;
}

// -------------------------------------------------------------------------------------------------------
// Decoding.

namespace {
bool is_control(TokenType t) { return t == TokenType::kControl || t == TokenType::kUnknown; }

// Byte-level token text → bytes: each character of the byte alphabet is its byte; any other character
// (possible only in hand-made vocabularies) is kept as its UTF-8, as HF's ByteLevel decoder does.
void append_bytelevel(const std::string& t, std::string& out) {
  const auto& alpha = detail::byte_alphabet();
  for (size_t i = 0; i < t.size();) {
    size_t len = detail::utf8_sequence_length(t, i);
    if (len == 0) {
      out += t[i++];
      continue;
    }
    const int b = alpha.byte_of_code_point(detail::utf8_decode(t, i, len));
    if (b >= 0) {
      out += char(b);
    } else {
      out.append(t, i, len);
    }
    i += len;
  }
}

int parse_byte_token(const std::string& t) {  // "<0xNN>" → NN
  unsigned v = 0;
  if (t.size() == 6 && std::sscanf(t.c_str(), "<0x%2X>", &v) == 1) return int(v);
  return -1;
}
// Whether the first SentencePiece piece, at ids[k], loses its leading "▁". GGUF (llama.cpp): the piece at
// the text's start, after an optional BOS. tokenizer.json: the decoder strips the first space of the
// decoded text (Strip after Fuse; Metaspace on the first token), i.e. of the first token it is given.
bool strips_first_space(const Tokenizer::Impl& m, const std::vector<int32_t>& ids, size_t k) {
  if (!m.add_space_prefix) return false;
  return m.hf.on || k == 0 || (k == 1 && ids[0] == m.bos);
}
}  // namespace

std::string Tokenizer::decode(const std::vector<int32_t>& ids, const DecodeOptions& o) const {
  const Impl& m = *impl_;
  std::string out;
  bool first_piece = true;  // SentencePiece: the dummy-prefix space of the first piece is removed
  for (size_t k = 0; k < ids.size(); ++k) {
    const int32_t id = ids[k];
    if (id < 0 || id >= int32_t(m.tokens.size())) {
      throw std::invalid_argument(m.source + ": decode: token id " + std::to_string(id) + " at position " +
                                  std::to_string(k) + " is outside the vocabulary [0, " +
                                  std::to_string(m.tokens.size()) + ")");
    }
    const TokenType t = m.types[size_t(id)];
    const std::string& text = m.tokens[size_t(id)];
    if (is_control(t)) {
      if (!o.skip_special) out += text;
      first_piece = first_piece && (o.skip_special || !m.hf.on);  // HF decodes a kept special token too
      continue;
    }
    if (t == TokenType::kUserDefined) {
      out += text;
      first_piece = false;
      continue;
    }
    if (m.kind == ModelKind::kByteLevelBpe) {
      append_bytelevel(text, out);
      continue;
    }
    if (t == TokenType::kByte && m.hf.decode_bytes) {
      const int b = parse_byte_token(text);
      if (b >= 0) out += char(b);
      first_piece = false;
      continue;
    }
    size_t pos = 0;
    if (first_piece && strips_first_space(m, ids, k) && text.compare(0, 3, kSpmSpace) == 0) {
      pos = 3;  // the space encode() prepended
    }
    first_piece = false;
    while (pos < text.size()) {
      if (text.compare(pos, 3, kSpmSpace) == 0) {
        out += ' ';
        pos += 3;
      } else {
        out += text[pos++];
      }
    }
  }
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  const Impl& m = *impl_;
  if (id < 0 || id >= int32_t(m.tokens.size())) {
    throw std::invalid_argument(m.source + ": token id " + std::to_string(id) + " is outside the vocabulary");
  }
  const TokenType t = m.types[size_t(id)];
  const std::string& text = m.tokens[size_t(id)];
  if (is_control(t) || t == TokenType::kUserDefined) return text;
  std::string out;
  if (m.kind == ModelKind::kByteLevelBpe) {
    append_bytelevel(text, out);
  } else if (t == TokenType::kByte && m.hf.decode_bytes) {
    const int b = parse_byte_token(text);
    if (b >= 0) out += char(b);
  } else {
    for (size_t pos = 0; pos < text.size();) {
      if (text.compare(pos, 3, kSpmSpace) == 0) {
        out += ' ';
        pos += 3;
      } else {
        out += text[pos++];
      }
    }
  }
  return out;
}

// -------------------------------------------------------------------------------------------------------
// Accessors and hash.

int32_t Tokenizer::vocab_size() const { return int32_t(impl_->tokens.size()); }
const std::string& Tokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::invalid_argument(impl_->source + ": token id " + std::to_string(id) + " is outside the vocabulary");
  return impl_->tokens[size_t(id)];
}
TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::invalid_argument(impl_->source + ": token id " + std::to_string(id) + " is outside the vocabulary");
  return impl_->types[size_t(id)];
}
std::optional<int32_t> Tokenizer::token_id(std::string_view text) const {
  auto it = impl_->token_to_id.find(std::string(text));
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}
ModelKind Tokenizer::model_kind() const { return impl_->kind; }
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
int32_t Tokenizer::unk_id() const { return impl_->unk; }
int32_t Tokenizer::pad_id() const { return impl_->pad; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
bool Tokenizer::add_eos() const { return impl_->add_eos; }

std::string Tokenizer::pre_tokenizer_name() const {
  return impl_->kind == ModelKind::kSentencePieceBpe ? std::string("spm") : impl_->pre.name();
}

std::vector<uint8_t> Tokenizer::missing_bytes() const {
  std::vector<uint8_t> out;
  if (impl_->kind != ModelKind::kByteLevelBpe) return out;
  for (int b = 0; b < 256; ++b) {
    if (impl_->byte_id[b] < 0) out.push_back(uint8_t(b));
  }
  return out;
}

uint64_t Tokenizer::content_hash() const {
  const Impl& m = *impl_;
  XXH64_state_t* st = XXH64_createState();
  if (st == nullptr) throw std::bad_alloc();
  XXH64_reset(st, 0);
  auto put_u32 = [&](uint32_t v) {
    unsigned char b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};  // little-endian
    XXH64_update(st, b, 4);
  };
  auto put_str = [&](const std::string& s) {
    put_u32(uint32_t(s.size()));
    XXH64_update(st, s.data(), s.size());
  };
  put_str("qeval-tokenizer-hash-v1");
  put_str(m.kind == ModelKind::kByteLevelBpe ? "bpe" : "spm");
  put_str(m.normalizer == detail::Normalizer::kNfc ? "nfc" : "none");
  put_str(pre_tokenizer_name());
  put_u32(uint32_t(m.tokens.size()));
  for (size_t i = 0; i < m.tokens.size(); ++i) {
    put_str(m.tokens[i]);
    put_u32(uint32_t(m.types[i]));
    if (m.kind == ModelKind::kSentencePieceBpe) {
      uint32_t bits;
      std::memcpy(&bits, &m.scores[i], 4);
      put_u32(bits);
    }
  }
  put_u32(uint32_t(m.merges.by_rank.size()));
  for (const auto& [a, b] : m.merges.by_rank) {
    put_str(m.tokens[size_t(a)]);
    put_str(m.tokens[size_t(b)]);
  }
  put_u32(m.ignore_merges ? 1u : 0u);
  if (m.hf.on) put_str(m.hf.describe());  // tokenizer.json SentencePiece-style pipeline (absent otherwise)
  for (const auto& [id, bits] : m.added_strip) {  // added tokens' lstrip/rstrip (absent when none)
    put_u32(uint32_t(id));
    put_u32(bits);
  }
  const uint64_t h = XXH64_digest(st);
  XXH64_freeState(st);
  return h;
}

std::string Tokenizer::content_hash_hex() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "xxh64:%016llx", static_cast<unsigned long long>(content_hash()));
  return buf;
}

}  // namespace qeval::tokenizer
