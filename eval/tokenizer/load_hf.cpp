// eval/tokenizer/load_hf.cpp — Tokenizer from a Hugging Face tokenizer.json (model BPE: byte-level, or
// SentencePiece-style with byte_fallback as Llama-2 / Mistral / Gemma publish it) and from GPT-2's original
// encoder.json + vocab.bpe.
//
// Field meanings and defaults are those of HF `tokenizers` (serde defaults: ByteLevel add_prefix_space,
// trim_offsets and use_regex default to true, Digits individual_digits to false). Components qeval does not
// implement are refused with their type named, never silently ignored. `truncation` and `padding` are
// batching settings qeval never applies (it encodes whole texts) and are not read.
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "eval/tokenizer/tokenizer.hpp"
#include "eval/tokenizer/tokenizer_impl.hpp"
#include "quant/json_text.hpp"

namespace qeval::tokenizer {

namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string& src, const std::string& field, const std::string& problem) {
  throw std::invalid_argument(src + ": " + field + ": " + problem);
}

std::string type_of(const json& node) {
  if (node.is_object() && node.contains("type") && node["type"].is_string()) return node["type"].get<std::string>();
  return "";
}

bool get_bool(const std::string& src, const json& obj, const std::string& path, const char* key, bool dflt) {
  if (!obj.contains(key) || obj[key].is_null()) return dflt;
  if (!obj[key].is_boolean()) fail(src, path + "." + key, std::string("expected a boolean, got ") + obj[key].dump());
  return obj[key].get<bool>();
}

// Appends the steps of one pre_tokenizer node; `seen_bytelevel` is set by a ByteLevel step, which must be
// the last step (HF rewrites pieces into the byte alphabet there; a later split would see that alphabet).
void add_pre_steps(const std::string& src, const json& node, const std::string& path, detail::PreTokenizer& pre,
                   bool& seen_bytelevel) {
  const std::string type = type_of(node);
  if (type.empty()) fail(src, path, "expected an object with a \"type\", got " + node.dump().substr(0, 200));
  if (seen_bytelevel) {
    fail(src, path, "pre_tokenizer step '" + type + "' after ByteLevel is not supported (ByteLevel must be last)");
  }
  if (type == "Sequence") {
    if (!node.contains("pretokenizers") || !node["pretokenizers"].is_array()) {
      fail(src, path + ".pretokenizers", "missing or not an array");
    }
    const auto& steps = node["pretokenizers"];
    for (size_t i = 0; i < steps.size(); ++i) {
      add_pre_steps(src, steps[i], path + ".pretokenizers[" + std::to_string(i) + "]", pre, seen_bytelevel);
    }
  } else if (type == "ByteLevel") {
    if (get_bool(src, node, path, "add_prefix_space", true)) pre.add_prefix_space();
    if (get_bool(src, node, path, "use_regex", true)) pre.add_split(detail::kGpt2Pattern);
    seen_bytelevel = true;
  } else if (type == "Digits") {
    pre.add_split(get_bool(src, node, path, "individual_digits", false) ? detail::kDigitPattern : R"(\p{N}+)");
  } else if (type == "Split") {
    const std::string behavior = node.value("behavior", std::string());
    if (behavior != "Isolated") {
      fail(src, path + ".behavior", "Split behavior '" + behavior + "' is not supported (supported: Isolated)");
    }
    if (get_bool(src, node, path, "invert", false)) fail(src, path + ".invert", "invert=true is not supported");
    if (!node.contains("pattern") || !node["pattern"].is_object()) fail(src, path + ".pattern", "missing");
    const auto& pat = node["pattern"];
    if (pat.contains("Regex") && pat["Regex"].is_string()) {
      pre.add_split(pat["Regex"].get<std::string>());
    } else if (pat.contains("String") && pat["String"].is_string()) {
      std::string lit;  // the literal, escaped for the regex engine
      for (char c : pat["String"].get<std::string>()) {
        if (std::string("\\^$.|?*+()[]{}").find(c) != std::string::npos) lit += '\\';
        lit += c;
      }
      pre.add_split(lit);
    } else {
      fail(src, path + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}, got " + pat.dump());
    }
  } else {
    fail(src, path,
         "pre_tokenizer type '" + type + "' is not supported (supported: ByteLevel, Digits, Split, Sequence)");
  }
}

// BOS/EOS from a TemplateProcessing post-processor: [SpecialToken X]? Sequence A [SpecialToken Y]?
void read_template(const std::string& src, const json& node, const std::string& path, Tokenizer::Impl& impl) {
  if (!node.contains("single") || !node["single"].is_array()) fail(src, path + ".single", "missing or not an array");
  const auto& single = node["single"];
  bool seen_a = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const auto& item = single[i];
    const std::string where = path + ".single[" + std::to_string(i) + "]";
    if (item.contains("Sequence")) {
      if (seen_a) fail(src, where, "a second sequence in the single-text template is not supported");
      seen_a = true;
      continue;
    }
    if (!item.contains("SpecialToken") || !item["SpecialToken"].contains("id")) {
      fail(src, where, "expected {\"SpecialToken\": {...}} or {\"Sequence\": {...}}");
    }
    const std::string name = item["SpecialToken"]["id"].get<std::string>();
    const auto& specials = node.value("special_tokens", json::object());
    if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array() ||
        specials[name]["ids"].size() != 1 || !specials[name]["ids"][0].is_number_integer()) {
      fail(src, path + ".special_tokens", "'" + name + "' must map to exactly one id");
    }
    const int32_t id = specials[name]["ids"][0].get<int32_t>();
    if (!seen_a) {
      if (impl.add_bos) fail(src, where, "more than one token before the text is not supported");
      impl.bos = id;
      impl.add_bos = true;
    } else {
      if (impl.add_eos) fail(src, where, "more than one token after the text is not supported");
      impl.eos = id;
      impl.add_eos = true;
    }
  }
}

void read_post_processor(const std::string& src, const json& node, const std::string& path, Tokenizer::Impl& impl) {
  if (node.is_null()) return;
  const std::string type = type_of(node);
  if (type == "ByteLevel") return;  // offsets only
  if (type == "TemplateProcessing") {
    read_template(src, node, path, impl);
  } else if (type == "Sequence" && node.contains("processors") && node["processors"].is_array()) {
    for (size_t i = 0; i < node["processors"].size(); ++i) {
      read_post_processor(src, node["processors"][i], path + ".processors[" + std::to_string(i) + "]", impl);
    }
  } else {
    fail(src, path,
         "post_processor type '" + type +
             "' is not supported (supported: null, ByteLevel, TemplateProcessing, Sequence)");
  }
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open file for reading");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw std::runtime_error(path + ": read error");
  return ss.str();
}

json parse_json_file(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return parse_json_text(text);
  } catch (const std::invalid_argument& e) {  // a syntax error, a number beyond double, nesting too deep
    throw std::invalid_argument(path + ": not valid JSON: " + e.what());
  }
}

// model.type BPE and the BPE options qeval implements; sets fuse_unk and ignore_merges.
void read_bpe_options(const std::string& src, const json& model, Tokenizer::Impl& impl) {
  const std::string mtype = type_of(model);
  if (!(mtype == "BPE" || (mtype.empty() && model.contains("merges")))) {
    fail(src, "model.type", "'" + mtype + "' is not supported (supported: BPE)");
  }
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0)) {
    fail(src, "model.dropout",
         "BPE dropout " + model["dropout"].dump() + " is not supported (evaluation is deterministic)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && model[key] != "") {
      fail(src, std::string("model.") + key, model[key].dump() + " is not supported (byte-level BPE only)");
    }
  }
  impl.hf.byte_fallback = get_bool(src, model, "model", "byte_fallback", false);
  impl.fuse_unk = get_bool(src, model, "model", "fuse_unk", false);
  impl.ignore_merges = get_bool(src, model, "model", "ignore_merges", false);

}

using IdTable = std::map<int64_t, std::pair<std::string, TokenType>>;

// added_tokens[] into the id table; an id that model.vocab gives another text is refused.
void read_added_tokens(const std::string& src, const json& added, IdTable& by_id, Tokenizer::Impl& impl) {
  if (!added.is_array()) fail(src, "added_tokens", "expected an array");
  for (size_t i = 0; i < added.size(); ++i) {
    const auto& a = added[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
        a["id"].get<int64_t>() >= INT32_MAX || !a.contains("content") || !a["content"].is_string()) {
      fail(src, where, "expected {\"id\": <non-negative integer>, \"content\": <string>, ...}");
    }
    if (get_bool(src, a, where, "single_word", false)) {
      fail(src, where + ".single_word", "true is not supported (supported: false; lstrip and rstrip may be true)");
    }
    const int64_t id = a["id"].get<int64_t>();
    const uint8_t strip = uint8_t((get_bool(src, a, where, "lstrip", false) ? 1 : 0) |
                                  (get_bool(src, a, where, "rstrip", false) ? 2 : 0));
    if (strip != 0) impl.added_strip[int32_t(id)] = strip;
    const std::string content = a["content"].get<std::string>();
    const TokenType t = get_bool(src, a, where, "special", false) ? TokenType::kControl : TokenType::kUserDefined;
    auto it = by_id.find(id);
    if (it != by_id.end() && it->second.first != content) {
      fail(src, where,
           "id " + std::to_string(id) + " is '" + content + "' here but '" + it->second.first + "' in model.vocab");
    }
    by_id[id] = {content, t};
  }
}

// model.vocab + added_tokens → the dense id → text table of impl.
void read_vocabulary(const std::string& src, const json& j, const json& model, Tokenizer::Impl& impl) {
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(src, "model.vocab", "missing or not an object");
  IdTable by_id;
  for (const auto& [text, idv] : model["vocab"].items()) {
    if (!idv.is_number_integer() || idv.get<int64_t>() < 0 || idv.get<int64_t>() >= INT32_MAX) {
      fail(src, "model.vocab[\"" + text + "\"]", "expected a non-negative integer id, got " + idv.dump());
    }
    if (!by_id.emplace(idv.get<int64_t>(), std::make_pair(text, TokenType::kNormal)).second) {
      fail(src, "model.vocab", "id " + idv.dump() + " is used by two tokens");
    }
  }
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) read_added_tokens(src, j["added_tokens"], by_id, impl);
  if (by_id.empty()) fail(src, "model.vocab", "the vocabulary is empty");
  const int64_t n = by_id.rbegin()->first + 1;
  if (int64_t(by_id.size()) != n) {
    int64_t hole = 0;
    while (by_id.count(hole)) ++hole;
    fail(src, "model.vocab",
         "token ids are not dense: id " + std::to_string(hole) + " is missing (largest id " + std::to_string(n - 1) +
             ")");
  }
  impl.tokens.reserve(size_t(n));
  impl.types.reserve(size_t(n));
  for (auto& [id, v] : by_id) {
    impl.tokens.push_back(std::move(v.first));
    impl.types.push_back(v.second);
  }
}

bool has_bytelevel(const json& node) {
  if (type_of(node) == "ByteLevel") return true;
  if (type_of(node) != "Sequence" || !node.contains("pretokenizers") || !node["pretokenizers"].is_array()) return false;
  for (const auto& step : node["pretokenizers"]) {
    if (has_bytelevel(step)) return true;
  }
  return false;
}

// A SentencePiece-style file: BPE over characters, no ByteLevel pre-tokenizer, and a decoder that is not
// ByteLevel (a ByteLevel decoder without a ByteLevel pre-tokenizer stays refused as before).
bool is_spm_style(const json& j) {
  const json pre = j.value("pre_tokenizer", json());
  const json dec = j.value("decoder", json());
  return !(pre.is_object() && has_bytelevel(pre)) && type_of(dec) != "ByteLevel";
}

const char* const kSpmNormalizers = "supported: Prepend, Replace with a String pattern, NFC, NFKC, Sequence of these";

void read_spm_normalizer(const std::string& src, const json& node, const std::string& path,
                         std::vector<detail::TextStep>& steps) {
  const std::string t = type_of(node);
  auto string_field = [&](const json& obj, const char* key, const std::string& where) {
    if (!obj.contains(key) || !obj[key].is_string()) fail(src, where + "." + key, "missing or not a string");
    return obj[key].get<std::string>();
  };
  if (t == "Sequence") {
    if (!node.contains("normalizers") || !node["normalizers"].is_array()) {
      fail(src, path + ".normalizers", "missing or not an array");
    }
    for (size_t i = 0; i < node["normalizers"].size(); ++i) {
      read_spm_normalizer(src, node["normalizers"][i], path + ".normalizers[" + std::to_string(i) + "]", steps);
    }
  } else if (t == "Prepend") {
    steps.push_back({detail::TextStep::kPrepend, "", string_field(node, "prepend", path)});
  } else if (t == "Replace") {
    if (!node.contains("pattern") || !node["pattern"].is_object() || !node["pattern"].contains("String")) {
      fail(src, path + ".pattern", "only {\"String\": ...} patterns are supported (a Regex pattern is not)");
    }
    steps.push_back(
        {detail::TextStep::kReplace, string_field(node["pattern"], "String", path + ".pattern"),
         string_field(node, "content", path)});
  } else if (t == "NFC" || t == "NFKC") {
    steps.push_back({t == "NFC" ? detail::TextStep::kNfc : detail::TextStep::kNfkc, "", ""});
  } else {
    fail(src, path, "normalizer type '" + t + "' is not supported (" + kSpmNormalizers + ")");
  }
}

void check_replacement(const std::string& src, const json& node, const std::string& path) {
  if (node.value("replacement", std::string()) != "\xE2\x96\x81") {
    fail(src, path + ".replacement", "only \"\u2581\" is supported, got " + node.value("replacement", json()).dump());
  }
}

// Metaspace prepend_scheme ("always" | "first" | "never"; files older than tokenizers 0.19 write
// add_prefix_space true/false instead).
detail::PreStep::Prepend read_prepend_scheme(const std::string& src, const json& node, const std::string& path) {
  if (!node.contains("prepend_scheme")) {
    return get_bool(src, node, path, "add_prefix_space", true) ? detail::PreStep::Prepend::kAlways
                                                               : detail::PreStep::Prepend::kNever;
  }
  const std::string p = node["prepend_scheme"].is_string() ? node["prepend_scheme"].get<std::string>() : "";
  if (p == "always") return detail::PreStep::Prepend::kAlways;
  if (p == "first") return detail::PreStep::Prepend::kFirst;
  if (p == "never") return detail::PreStep::Prepend::kNever;
  fail(src, path + ".prepend_scheme", node["prepend_scheme"].dump() + " is not one of \"always\", \"first\", \"never\"");
}

detail::SplitBehavior read_split_behavior(const std::string& src, const json& node, const std::string& path) {
  static const std::map<std::string, detail::SplitBehavior> kNames = {
      {"Removed", detail::SplitBehavior::kRemoved},
      {"Isolated", detail::SplitBehavior::kIsolated},
      {"MergedWithPrevious", detail::SplitBehavior::kMergedWithPrevious},
      {"MergedWithNext", detail::SplitBehavior::kMergedWithNext},
      {"Contiguous", detail::SplitBehavior::kContiguous}};
  const auto it = kNames.find(node.value("behavior", std::string()));
  if (it == kNames.end()) {
    fail(src, path + ".behavior",
         node.value("behavior", json()).dump() +
             " is not supported (supported: Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)");
  }
  return it->second;
}

// pre_tokenizer of a SentencePiece-style file: Metaspace | Split (String pattern) | Sequence of these.
void read_spm_pre_tokenizer(const std::string& src, const json& node, const std::string& path, detail::HfSpm& hf) {
  const std::string t = type_of(node);
  if (t == "Sequence" && node.contains("pretokenizers") && node["pretokenizers"].is_array()) {
    for (size_t i = 0; i < node["pretokenizers"].size(); ++i) {
      read_spm_pre_tokenizer(src, node["pretokenizers"][i], path + ".pretokenizers[" + std::to_string(i) + "]", hf);
    }
  } else if (t == "Metaspace") {
    check_replacement(src, node, path);
    detail::PreStep step{detail::PreStep::kMetaspace};
    step.prepend = read_prepend_scheme(src, node, path);
    step.split = get_bool(src, node, path, "split", true);
    hf.pre.push_back(step);
  } else if (t == "Split") {
    if (get_bool(src, node, path, "invert", false)) fail(src, path + ".invert", "invert=true is not supported");
    if (!node.contains("pattern") || !node["pattern"].is_object() || !node["pattern"].contains("String") ||
        !node["pattern"]["String"].is_string()) {
      fail(src, path + ".pattern",
           "only {\"String\": ...} patterns are supported without a ByteLevel step (a Regex pattern is not)");
    }
    detail::PreStep step{detail::PreStep::kSplit};
    step.pattern = node["pattern"]["String"].get<std::string>();
    step.behavior = read_split_behavior(src, node, path);
    hf.pre.push_back(step);
  } else {
    fail(src, path,
         "pre_tokenizer type '" + t +
             "' is not supported without a ByteLevel step (supported: null, Metaspace, Split with a String pattern, "
             "Sequence of these; with ByteLevel: ByteLevel, Digits, Split, Sequence)");
  }
}

// One decoder step of a SentencePiece-style file; `replaces` is set by a step that turns "▁" into spaces.
void read_spm_decoder_step(const std::string& src, const json& d, const std::string& where, Tokenizer::Impl& impl,
                           bool& replaces) {
  const std::string t = type_of(d);
  const json sp = json{{"String", "\xE2\x96\x81"}};
  const int start = t.empty() ? -1 : d.value("start", -1);
  if (t == "Replace" && d.value("pattern", json()) == sp && d.value("content", "") == " ") {
    replaces = true;
  } else if (t == "ByteFallback") {
    impl.hf.decode_bytes = true;
  } else if (t == "Strip" && d.value("content", "") == " " && d.value("stop", -1) == 0 && (start == 0 || start == 1)) {
    impl.add_space_prefix = start == 1;
  } else if (t == "Metaspace") {
    check_replacement(src, d, where);
    replaces = true;
    impl.add_space_prefix = read_prepend_scheme(src, d, where) != detail::PreStep::Prepend::kNever;
  } else if (t != "Fuse") {
    fail(src, where,
         "decoder " + (t.empty() ? d.dump().substr(0, 100) : "type '" + t + "'") +
             " is not supported for a SentencePiece-style file (supported: Replace(\"\u2581\", \" \"), "
             "ByteFallback, Fuse, Strip(\" \", 0|1, 0), Metaspace, Sequence of these)");
  }
}

// decoder: Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)] (any subset containing the
// Replace) or Metaspace. Sets what decode() needs: whether <0xNN> decode to bytes and whether the first
// space is stripped.
void read_spm_decoder(const std::string& src, const json& node, const std::string& path, Tokenizer::Impl& impl) {
  const bool seq = type_of(node) == "Sequence" && node.contains("decoders") && node["decoders"].is_array();
  const json steps = seq ? node["decoders"] : json::array({node});
  bool replaces = false;
  impl.hf.decode_bytes = false;
  impl.add_space_prefix = false;
  for (size_t i = 0; i < steps.size(); ++i) {
    read_spm_decoder_step(src, steps[i], seq ? path + ".decoders[" + std::to_string(i) + "]" : path, impl, replaces);
  }
  if (!replaces) fail(src, path, "has no Replace(\"\u2581\", \" \") or Metaspace step: \"\u2581\" would stay in the text");
}

// qeval matches added tokens in the raw text; HF matches normalized=true ones after the normalizer.
void check_added_not_normalized(const std::string& src, const json& j) {
  if (!j.contains("added_tokens") || !j["added_tokens"].is_array()) return;
  for (size_t i = 0; i < j["added_tokens"].size(); ++i) {
    const json& a = j["added_tokens"][i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    if (get_bool(src, a, where, "normalized", false)) {
      fail(src, where + ".normalized",
           "true with a normalizer is not supported (qeval matches added tokens in the raw text, before the "
           "normalizer)");
    }
  }
}

// The SentencePiece-style pipeline of a tokenizer.json (Llama-2, Mistral, Mixtral, Gemma).
void read_spm_pipeline(const std::string& src, const json& j, Tokenizer::Impl& impl) {
  impl.kind = ModelKind::kSentencePieceBpe;
  impl.hf.on = true;
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    read_spm_normalizer(src, j["normalizer"], "normalizer", impl.hf.normalizer);
    if (!impl.hf.normalizer.empty()) check_added_not_normalized(src, j);
  }
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null()) {
    read_spm_pre_tokenizer(src, j["pre_tokenizer"], "pre_tokenizer", impl.hf);
  }
  read_spm_decoder(src, j.value("decoder", json()), "decoder", impl);
}

// "<0xNN>" tokens of model.vocab become byte tokens (HF writes them as format!("<{:#04X}>", byte)).
void mark_byte_tokens(Tokenizer::Impl& impl) {
  if (!impl.hf.on || !(impl.hf.byte_fallback || impl.hf.decode_bytes)) return;
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  for (size_t i = 0; i < impl.tokens.size(); ++i) {
    const std::string& t = impl.tokens[i];
    if (impl.types[i] == TokenType::kNormal && t.size() == 6 && t.compare(0, 3, "<0x") == 0 && hex(t[3]) &&
        hex(t[4]) && t[5] == '>') {
      impl.types[i] = TokenType::kByte;
    }
  }
  impl.scores.assign(impl.tokens.size(), 0.0f);  // merges go by rank; scores only keep the hash's layout
}

// normalizer, pre_tokenizer (must end with ByteLevel) and decoder of a byte-level file.
void read_bytelevel_pipeline(const std::string& src, const json& j, Tokenizer::Impl& impl) {
  if (impl.hf.byte_fallback) {
    fail(src, "model.byte_fallback", "byte_fallback=true with a ByteLevel pre-tokenizer is not supported "
                                     "(byte-level BPE needs no fallback)");
  }
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const auto& nz = j["normalizer"];
    const std::string t = type_of(nz);
    if (t == "NFC") {
      impl.normalizer = detail::Normalizer::kNfc;
    } else if (!(t == "Sequence" && nz.contains("normalizers") && nz["normalizers"].is_array() &&
                 nz["normalizers"].empty())) {
      fail(src, "normalizer", "normalizer type '" + t + "' is not supported (supported: null, NFC)");
    }
  }
  if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null()) {
    fail(src, "pre_tokenizer", "null: only byte-level BPE (a ByteLevel pre-tokenizer) is supported");
  }
  bool seen_bytelevel = false;
  add_pre_steps(src, j["pre_tokenizer"], "pre_tokenizer", impl.pre, seen_bytelevel);
  if (!seen_bytelevel) {
    fail(src, "pre_tokenizer", "has no ByteLevel step: only byte-level BPE tokenizer.json files are supported");
  }

  if (j.contains("decoder") && !j["decoder"].is_null() && type_of(j["decoder"]) != "ByteLevel") {
    fail(src, "decoder", "decoder type '" + type_of(j["decoder"]) + "' is not supported (supported: null, ByteLevel)");
  }
}

void read_pipeline(const std::string& src, const json& j, Tokenizer::Impl& impl) {
  if (j.contains("post_processor")) read_post_processor(src, j["post_processor"], "post_processor", impl);
  if (is_spm_style(j)) {
    read_spm_pipeline(src, j, impl);
  } else {
    read_bytelevel_pipeline(src, j, impl);
  }
}

// model.merges: "left right" strings or [left, right] pairs, in rank order.
void read_merges(const std::string& src, const json& model, Tokenizer::Impl& impl) {
  if (!model.contains("merges") || !model["merges"].is_array()) fail(src, "model.merges", "missing or not an array");
  const auto& merges = model["merges"];
  impl.merges.by_rank.reserve(merges.size());
  impl.merges.map.reserve(merges.size() * 2);
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string where = "model.merges[" + std::to_string(i) + "]";
    const auto& mg = merges[i];
    if (mg.is_string()) {
      // "a b": exactly two parts (HF splits on ' ' and requires two).
      const std::string s = mg.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 >= s.size() || s.find(' ', sp + 1) != std::string::npos) {
        fail(src, where, "'" + s + "' is not of the form \"left right\"");
      }
      impl.add_merge(s.substr(0, sp), s.substr(sp + 1), where);
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      impl.add_merge(mg[0].get<std::string>(), mg[1].get<std::string>(), where);
    } else {
      fail(src, where, "expected \"left right\" or [\"left\", \"right\"], got " + mg.dump().substr(0, 200));
    }
  }
}

}  // namespace

Tokenizer Tokenizer::from_hf_json(const json& j, const std::string& src) {
  if (!j.is_object()) fail(src, "(root)", "expected a JSON object");
  auto impl = std::make_shared<Impl>();
  impl->source = src;
  impl->kind = ModelKind::kByteLevelBpe;
  if (!j.contains("model") || !j["model"].is_object()) fail(src, "model", "missing or not an object");
  const json& model = j["model"];
  read_bpe_options(src, model, *impl);
  read_vocabulary(src, j, model, *impl);
  read_pipeline(src, j, *impl);
  mark_byte_tokens(*impl);
  // Unknown token (HF: characters missing from the vocabulary become it; without one they are dropped).
  std::string unk_text;
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    if (!model["unk_token"].is_string()) fail(src, "model.unk_token", "expected a string or null");
    unk_text = model["unk_token"].get<std::string>();
  }

  impl->finalize();
  if (!unk_text.empty()) {
    auto it = impl->token_to_id.find(unk_text);
    if (it == impl->token_to_id.end()) fail(src, "model.unk_token", "'" + unk_text + "' is not in the vocabulary");
    impl->unk = it->second;
    impl->unk_for_missing = true;
  }

  read_merges(src, model, *impl);
  return make_tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_hf_json_file(const std::string& path) { return from_hf_json(parse_json_file(path), path); }

Tokenizer Tokenizer::from_gpt2_files(const std::string& encoder_json_path, const std::string& vocab_bpe_path) {
  const json enc = parse_json_file(encoder_json_path);
  if (!enc.is_object()) fail(encoder_json_path, "(root)", "expected an object mapping token → id");
  // GPT-2's files are the same data as HF's gpt2 tokenizer.json: build that and reuse its loader.
  json j;
  j["model"] = {{"type", "BPE"}, {"vocab", enc}, {"merges", json::array()}};
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}};
  j["added_tokens"] = json::array();
  if (enc.contains("<|endoftext|>") && enc["<|endoftext|>"].is_number_integer()) {
    j["added_tokens"].push_back({{"id", enc["<|endoftext|>"]}, {"content", "<|endoftext|>"}, {"special", true}});
  }
  std::istringstream lines(read_file(vocab_bpe_path));
  std::string line;
  size_t lineno = 0;
  auto& merges = j["model"]["merges"];
  while (std::getline(lines, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (lineno == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() || line.find(' ', sp + 1) != std::string::npos) {
      fail(vocab_bpe_path, "line " + std::to_string(lineno), "'" + line + "' is not of the form \"left right\"");
    }
    merges.push_back(json::array({line.substr(0, sp), line.substr(sp + 1)}));
  }
  auto t = from_hf_json(j, encoder_json_path + " + " + vocab_bpe_path);
  auto impl = std::make_shared<Impl>(*t.impl_);
  if (enc.contains("<|endoftext|>")) {
    impl->bos = impl->eos = enc["<|endoftext|>"].get<int32_t>();  // GPT-2 uses one token for both
  }
  return make_tokenizer(std::move(impl));
}

}  // namespace qeval::tokenizer
