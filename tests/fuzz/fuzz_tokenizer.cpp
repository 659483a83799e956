// tests/fuzz/fuzz_tokenizer.cpp — libFuzzer driver: encode/decode of arbitrary bytes with the three byte-level
// pipelines and SentencePiece-style BPE, and the tokenizer.json loader on arbitrary JSON (first byte picks which).
// Checks: no crash/UB (ASan+UBSan), decode(encode(x)) == x for byte-level BPE with a full byte alphabet, ids in
// range, the loader fails only with std::invalid_argument / std::runtime_error (tokenizer.hpp's contract).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "eval/tokenizer/byte_alphabet.hpp"
#include "eval/tokenizer/tokenizer.hpp"
#include "quant/json_text.hpp"

using nlohmann::json;
using qeval::tokenizer::Tokenizer;

namespace {

json bytelevel_json(const json& pre_tokenizer) {
  const auto& a = qeval::tokenizer::detail::byte_alphabet();
  json vocab = json::object();
  int next = 0;
  for (int b = 0; b < 256; ++b) vocab[a.utf8[b]] = next++;
  json merges = json::array();
  const char* pairs[][2] = {{"t", "h"}, {"th", "e"}, {"\xC4\xA0", "the"},
                            {"i", "n"}, {"1", "2"},  {"\xC4\xA0", "\xC4\xA0"}};
  for (auto& p : pairs) {
    const std::string m = std::string(p[0]) + p[1];
    if (!vocab.contains(m)) vocab[m] = next++;
    merges.push_back(std::string(p[0]) + " " + p[1]);
  }
  json j;
  j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}};
  j["pre_tokenizer"] = pre_tokenizer;
  j["added_tokens"] = json::array({{{"id", next}, {"content", "<|s|>"}, {"special", true}}});
  return j;
}

const std::vector<Tokenizer>& bytelevel_tokenizers() {
  static const std::vector<Tokenizer> t = [] {
    std::vector<Tokenizer> v;
    v.push_back(Tokenizer::from_hf_json(bytelevel_json({{"type", "ByteLevel"}, {"add_prefix_space", false}})));
    v.push_back(Tokenizer::from_hf_json(
        bytelevel_json({{"type", "Sequence"},
                        {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}},
                                                       {{"type", "ByteLevel"}, {"add_prefix_space", false}}})}})));
    json l3 = bytelevel_json(
        {{"type", "Sequence"},
         {"pretokenizers", json::array({{{"type", "Split"},
                                         {"pattern",
                                          {{"Regex",
                                            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                            "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
                                         {"behavior", "Isolated"}},
                                        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}});
    l3["model"]["ignore_merges"] = true;
    v.push_back(Tokenizer::from_hf_json(l3));
    return v;
  }();
  return t;
}

const Tokenizer& spm_tokenizer() {
  static const Tokenizer t = [] {
    std::vector<std::string> toks = {"<unk>", "<s>", "</s>"};
    std::vector<int> types = {2, 3, 3};
    std::vector<float> scores = {0, 0, 0};
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      toks.push_back(name);
      types.push_back(6);
      scores.push_back(0);
    }
    float s = -1;
    for (const char* p : {"\xE2\x96\x81", "a", "b", "ab",
                          "\xE2\x96\x81"
                          "a",
                          "\xE2\x96\x81"
                          "ab",
                          "aa"}) {
      toks.push_back(p);
      types.push_back(1);
      scores.push_back(s--);
    }
    std::map<std::string, json> md{{"tokenizer.ggml.model", "llama"},
                                   {"tokenizer.ggml.tokens", toks},
                                   {"tokenizer.ggml.token_type", types},
                                   {"tokenizer.ggml.scores", scores}};
    return Tokenizer::from_gguf_metadata(md);
  }();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 5;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode < 3) {
    const Tokenizer& t = bytelevel_tokenizers()[mode];
    const auto ids = t.encode(text);
    for (int32_t id : ids) {
      if (id < 0 || id >= t.vocab_size()) std::abort();
    }
    if (t.decode(ids) != text) std::abort();  // full byte alphabet: every byte string round-trips
  } else if (mode == 3) {
    const Tokenizer& t = spm_tokenizer();
    qeval::tokenizer::EncodeOptions o;
    o.add_bos = false;
    const auto ids = t.encode(text, o);
    // Round trip unless the text holds what SentencePiece cannot give back: its special tokens, or U+2581 "▁"
    // itself (the space marker; it decodes as a space, as in SentencePiece and llama.cpp).
    if (text.find("<s>") == std::string::npos && text.find("</s>") == std::string::npos &&
        text.find("<unk>") == std::string::npos && text.find("\xE2\x96\x81") == std::string::npos &&
        t.decode(ids) != text) {
      std::abort();
    }
  } else {
    json j;
    try {  // as from_hf_json_file parses (quant/json_text.hpp)
      j = qeval::parse_json_text(text);
    } catch (const std::invalid_argument&) {
      return 0;
    }
    try {
      const Tokenizer t = Tokenizer::from_hf_json(j);
      (void)t.decode(t.encode("fuzz 123 <|s|> text"));
    } catch (const std::invalid_argument&) {
    } catch (const std::runtime_error&) {
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fuzz_tokenizer: from_hf_json threw something other than invalid_argument/runtime_error: %s\n",
                   e.what());
      std::abort();
    }
  }
  return 0;
}
