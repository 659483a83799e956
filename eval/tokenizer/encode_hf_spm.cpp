// eval/tokenizer/encode_hf_spm.cpp — encoding for SentencePiece-style tokenizer.json files (Llama-2, Mistral,
// Mixtral, Gemma): normalizer steps, Metaspace, then HF's BPE over characters with byte fallback and unk.
//
// Semantics are those of HF tokenizers 0.23.3 (facts taken over, no code): a Prepend normalizer adds its
// prefix to every non-empty fragment between added tokens (normalizers/prepend.rs); Replace with a String
// pattern replaces every occurrence (normalizers/replace.rs); Metaspace replaces ' ' with "▁", prepends per
// prepend_scheme ("first": only when the fragment starts at offset 0 of the input) and with split=true cuts
// before each "▁" (pre_tokenizers/metaspace.rs); Split with a String pattern cuts at its non-overlapping
// occurrences and keeps them per behavior (tokenizer.rs SplitDelimiterBehavior). The BPE word (models/bpe/model.rs, merge_word): each
// character that is a vocabulary token is its id; otherwise, with byte_fallback, the <0xNN> tokens of its
// UTF-8 bytes when all exist; otherwise unk (fused with a directly preceding unk when fuse_unk) — a pending
// unk is written when the next vocabulary character (or the word's end) comes, so byte-fallback tokens
// written meanwhile precede it, as in HF. Then the merges are applied by rank (detail::bpe_merge).
#include <algorithm>
#include <stdexcept>

#include "eval/tokenizer/tokenizer_impl.hpp"
#include "eval/tokenizer/utf8.hpp"

namespace qeval::tokenizer::detail {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 "▁"

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

// NFC/NFKC of the valid UTF-8 runs of s; invalid bytes are kept where they are (HF never sees them: its
// input is a Rust str; here they reach the byte fallback).
std::string normalize_valid_runs(const std::string& s, bool compat) {
  std::string out;
  size_t i = 0, run = 0;
  auto flush = [&](size_t end) {
    if (end > run) out += compat ? nfkc(std::string_view(s).substr(run, end - run))
                                 : nfc(std::string_view(s).substr(run, end - run));
  };
  while (i < s.size()) {
    const size_t len = utf8_sequence_length(s, i);
    if (len > 0) {
      i += len;
      continue;
    }
    flush(i);
    out += s[i];
    run = ++i;
  }
  flush(i);
  return out;
}

std::string apply_normalizer(const HfSpm& hf, std::string_view text) {
  std::string s(text);
  for (const auto& step : hf.normalizer) {
    switch (step.kind) {
      case TextStep::kPrepend:
        if (!s.empty()) s = step.to + s;
        break;
      case TextStep::kReplace:
        replace_all(s, step.from, step.to);
        break;
      case TextStep::kNfc:
      case TextStep::kNfkc:
        s = normalize_valid_runs(s, step.kind == TextStep::kNfkc);
        break;
    }
  }
  return s;
}

// Metaspace on one piece (appended to out); `at_text_start` when the piece starts at offset 0 of the input.
void metaspace(const PreStep& m, std::string piece, bool at_text_start, std::vector<std::string>& out) {
  replace_all(piece, " ", std::string(kSpace));
  const bool starts = piece.compare(0, kSpace.size(), kSpace) == 0;
  if (!starts && (m.prepend == PreStep::Prepend::kAlways || (m.prepend == PreStep::Prepend::kFirst && at_text_start))) {
    piece.insert(0, kSpace);
  }
  if (m.split) {
    split_literal(piece, kSpace, SplitBehavior::kMergedWithNext, out);
  } else if (!piece.empty()) {
    out.push_back(std::move(piece));
  }
}

// The pre-tokenizer steps on the normalized fragment: the words BPE sees. `first_at_start` tracks whether
// pieces[0] starts at offset 0 of the input (HF's Metaspace "first" test on the piece's original offset).
std::vector<std::string> pre_tokenize(const HfSpm& hf, std::string s, bool at_text_start) {
  std::vector<std::string> pieces, next;
  pieces.push_back(std::move(s));
  bool first_at_start = at_text_start;
  for (const PreStep& step : hf.pre) {
    next.clear();
    for (size_t i = 0; i < pieces.size(); ++i) {
      const bool at_start = first_at_start && i == 0;
      if (step.kind == PreStep::kMetaspace) {
        metaspace(step, std::move(pieces[i]), at_start, next);
      } else {
        const bool kept_start = split_literal(pieces[i], step.pattern, step.behavior, next);
        if (i == 0) first_at_start = at_start && kept_start;
      }
    }
    pieces.swap(next);
  }
  return pieces;
}

// The characters of one word as ids (HF merge_word before merging).
void word_symbols(const Tokenizer::Impl& m, std::string_view w, std::vector<int32_t>& ids, EncodeStats& st) {
  bool pending_unk = false;
  std::string ch;
  for (size_t i = 0; i < w.size();) {
    size_t len = utf8_sequence_length(w, i);
    if (len == 0) len = 1;  // an invalid byte: a symbol of its own, only the byte fallback can write it
    ch.assign(w.substr(i, len));
    i += len;
    auto it = m.token_to_id.find(ch);
    if (it != m.token_to_id.end()) {
      if (pending_unk) ids.push_back(m.unk);
      pending_unk = false;
      ids.push_back(it->second);
      continue;
    }
    bool all_bytes = m.hf.byte_fallback;
    for (unsigned char c : ch) all_bytes = all_bytes && m.spm_byte_id[c] >= 0;
    if (all_bytes) {
      for (unsigned char c : ch) ids.push_back(m.spm_byte_id[c]);
      continue;
    }
    if (m.unk < 0) {
      st.dropped_bytes += len;
      continue;
    }
    ++st.unknown;
    if (pending_unk && !m.fuse_unk) ids.push_back(m.unk);
    pending_unk = true;
  }
  if (pending_unk) ids.push_back(m.unk);
}

}  // namespace

void encode_text_hf_spm(const Tokenizer::Impl& m, std::string_view text, bool at_text_start,
                        std::vector<int32_t>& out, EncodeStats& st) {
  std::vector<int32_t> ids;
  for (const std::string& w : pre_tokenize(m.hf, apply_normalizer(m.hf, text), at_text_start)) {
    if (w.empty()) continue;
    if (m.ignore_merges) {
      auto it = m.token_to_id.find(w);
      if (it != m.token_to_id.end()) {
        out.push_back(it->second);
        continue;
      }
    }
    ids.clear();
    word_symbols(m, w, ids, st);
    bpe_merge(ids, m.merges);
    out.insert(out.end(), ids.begin(), ids.end());
  }
}

namespace {

struct Part {
  size_t begin, end;
  bool match;
};

// The whole of s as matches of `pattern` (non-overlapping, leftmost first) and the text between them.
std::vector<Part> find_parts(std::string_view s, std::string_view pattern) {
  std::vector<Part> parts;
  size_t pos = 0;
  for (size_t hit; !pattern.empty() && (hit = s.find(pattern, pos)) != std::string_view::npos;
       pos = hit + pattern.size()) {
    if (hit > pos) parts.push_back({pos, hit, false});
    parts.push_back({hit, hit + pattern.size(), true});
  }
  if (pos < s.size()) parts.push_back({pos, s.size(), false});
  return parts;
}

// HF's fold over the parts per behavior: MergedWithPrevious/-Next join a match (not following a match) to
// the piece before/after it (MergedWithNext folds the reversed list); Contiguous joins runs of equal kind.
std::vector<Part> merge_parts(const std::vector<Part>& parts, SplitBehavior behavior) {
  const bool rev = behavior == SplitBehavior::kMergedWithNext;
  const size_t n = parts.size();
  std::vector<Part> merged;
  for (size_t k = 0; k < n; ++k) {
    const Part& p = parts[rev ? n - 1 - k : k];
    if (behavior == SplitBehavior::kRemoved && p.match) continue;
    const bool prev_match = k > 0 && parts[rev ? n - k : k - 1].match;
    bool join = false;
    if (behavior == SplitBehavior::kContiguous) join = p.match == prev_match;
    if (behavior == SplitBehavior::kMergedWithPrevious || rev) join = p.match && !prev_match;
    if (!join || merged.empty()) {
      merged.push_back(p);
    } else if (rev) {
      merged.back().begin = p.begin;
    } else {
      merged.back().end = p.end;
    }
  }
  if (rev) std::reverse(merged.begin(), merged.end());
  return merged;
}

}  // namespace

bool split_literal(std::string_view s, std::string_view pattern, SplitBehavior behavior,
                   std::vector<std::string>& out) {
  const std::vector<Part> merged = merge_parts(find_parts(s, pattern), behavior);
  bool first_at_zero = false;
  for (size_t k = 0; k < merged.size(); ++k) {
    if (merged[k].end == merged[k].begin) continue;
    first_at_zero = first_at_zero || (k == 0 && merged[k].begin == 0);
    out.emplace_back(s.substr(merged[k].begin, merged[k].end - merged[k].begin));
  }
  return first_at_zero;
}

std::string HfSpm::describe() const {
  std::string d = "hf-spm:";
  for (const auto& step : normalizer) {
    switch (step.kind) {
      case TextStep::kPrepend: d += "prepend(" + step.to + "),"; break;
      case TextStep::kReplace: d += "replace(" + step.from + "\x1F" + step.to + "),"; break;
      case TextStep::kNfc: d += "nfc,"; break;
      case TextStep::kNfkc: d += "nfkc,"; break;
    }
  }
  for (const auto& step : pre) {
    if (step.kind == PreStep::kSplit) {
      d += "|split(" + step.pattern + "\x1F" + std::to_string(int(step.behavior)) + ")";
      continue;
    }
    const auto p = step.prepend;
    d += std::string("|metaspace(") + (p == PreStep::Prepend::kAlways  ? "always"
                                       : p == PreStep::Prepend::kFirst ? "first"
                                                                       : "never") +
         (step.split ? ",split)" : ")");
  }
  d += byte_fallback ? "|byte_fallback" : "";
  d += decode_bytes ? "" : "|bytes-decode-as-text";
  return d;
}

}  // namespace qeval::tokenizer::detail
