// eval/tokenizer/encode_hf_spm.cpp — encoding for SentencePiece-style tokenizer.json files (Llama-2, Mistral,
// Mixtral, Gemma): normalizer steps, Metaspace, then HF's BPE over characters with byte fallback and unk.
//
// Semantics are those of HF tokenizers 0.23.3 (facts taken over, no code): a Prepend normalizer adds its
// prefix to every non-empty fragment between added tokens (normalizers/prepend.rs); Replace with a String
// pattern replaces every occurrence (normalizers/replace.rs); Metaspace replaces ' ' with "▁", prepends per
// prepend_scheme ("first": only when the fragment starts at offset 0 of the input) and with split=true cuts
// before each "▁" (pre_tokenizers/metaspace.rs). The BPE word (models/bpe/model.rs, merge_word): each
// character that is a vocabulary token is its id; otherwise, with byte_fallback, the <0xNN> tokens of its
// UTF-8 bytes when all exist; otherwise unk (fused with a directly preceding unk when fuse_unk) — a pending
// unk is written when the next vocabulary character (or the word's end) comes, so byte-fallback tokens
// written meanwhile precede it, as in HF. Then the merges are applied by rank (detail::bpe_merge).
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

// Metaspace on the normalized fragment: the words BPE sees (views into s).
std::vector<std::string_view> metaspace_words(const HfSpm& hf, std::string& s, bool at_text_start) {
  if (!hf.metaspace) return {std::string_view(s)};
  replace_all(s, " ", std::string(kSpace));
  const bool starts = s.compare(0, kSpace.size(), kSpace) == 0;
  if (!starts && (hf.prepend == HfSpm::Prepend::kAlways || (hf.prepend == HfSpm::Prepend::kFirst && at_text_start))) {
    s.insert(0, kSpace);
  }
  const std::string_view v(s);
  if (!hf.split) return {v};
  std::vector<std::string_view> words;
  size_t start = 0;
  for (size_t hit; (hit = v.find(kSpace, start + 1)) != std::string_view::npos; start = hit) {
    words.push_back(v.substr(start, hit - start));
  }
  if (start < v.size()) words.push_back(v.substr(start));
  return words;
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
  std::string s = apply_normalizer(m.hf, text);
  std::vector<int32_t> ids;
  for (std::string_view w : metaspace_words(m.hf, s, at_text_start)) {
    if (w.empty()) continue;
    if (m.ignore_merges) {
      auto it = m.token_to_id.find(std::string(w));
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
  if (metaspace) {
    const char* p = prepend == Prepend::kAlways ? "always" : prepend == Prepend::kFirst ? "first" : "never";
    d += std::string("|metaspace(") + p + (split ? ",split)" : ")");
  }
  d += byte_fallback ? "|byte_fallback" : "";
  d += decode_bytes ? "" : "|bytes-decode-as-text";
  return d;
}

}  // namespace qeval::tokenizer::detail
