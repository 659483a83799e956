// tests/fuzz/fuzz_tokenizer_gguf.cpp — libFuzzer driver: GGUF tokenizer metadata (as eval/model hands it over:
// key → JSON value) → Tokenizer::from_gguf_metadata → encode/decode of fixed texts.
//
// Input: a JSON object {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": [...], ...}; the GGUF container
// itself is fuzz_gguf's. Contract under test (eval/tokenizer/tokenizer.hpp): a malformed vocabulary throws
// std::invalid_argument / std::runtime_error; a loaded one encodes any text into ids in [0, vocab_size) that
// decode without error; ASan/UBSan stay silent.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "eval/tokenizer/tokenizer.hpp"
#include "quant/json_text.hpp"

namespace {

using nlohmann::json;
using qeval::tokenizer::Tokenizer;

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_tokenizer_gguf: %s\n", what.c_str());
  std::abort();
}

void encode_decode(const Tokenizer& t) {
  static const char* const kTexts[] = {"", "Hello world, 123 tokens!", " \n\t  a<s></s><unk>  ", "\xE2\x96\x81x\xC4\xA0",
                                       "\xFF\xFE invalid \xC3 utf-8", "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC 1234567"};
  for (const char* text : kTexts) {
    for (const bool special : {true, false}) {
      qeval::tokenizer::EncodeOptions o;
      o.parse_special = special;
      const auto ids = t.encode(text, o);
      for (const int32_t id : ids)
        if (id < 0 || id >= t.vocab_size()) finding("id " + std::to_string(id) + " outside the vocabulary");
      (void)t.decode(ids);
      (void)t.decode(ids, {true});
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  json in;
  try {  // the metadata as JSON text: the GGUF reader's nesting and value checks are fuzz_gguf's
    in = qeval::parse_json_text(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const std::invalid_argument&) {
    return 0;
  }
  if (!in.is_object()) return 0;
  const auto metadata = in.get<std::map<std::string, json>>();
  std::optional<Tokenizer> t;
  try {
    t = Tokenizer::from_gguf_metadata(metadata, "fuzz.gguf");
  } catch (const std::invalid_argument&) {
    return 0;
  } catch (const std::runtime_error&) {
    return 0;
  } catch (const std::exception& e) {
    finding(std::string("loading threw something other than invalid_argument/runtime_error: ") + e.what());
  }
  try {
    encode_decode(*t);
    (void)t->content_hash();
  } catch (const std::exception& e) {
    finding(std::string("encode/decode of a loaded tokenizer threw: ") + e.what());
  }
  return 0;
}
