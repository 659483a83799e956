// eval/cli/cmd_tokenize.cpp — `qeval tokenize --model FILE TEXT|--file F`: token ids and pieces, to check a tokenizer against another tool.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "eval/cli/command.hpp"
#include "eval/cli/model_inputs.hpp"

namespace qeval::cli {

namespace {

struct TokenizeArgs {
  std::string model, text, file;
  bool json = false, no_bos = false, no_special = false;
};

std::string text_of(const TokenizeArgs& a) {
  if (a.text.empty() == a.file.empty())
    throw std::invalid_argument("tokenize: give the text either as an argument or with --file (exactly one)");
  return a.file.empty() ? a.text : read_input_file(a.file, "--file");
}

std::string escaped_bytes(const std::string& b) {
  std::string out;
  for (unsigned char c : b) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  return out;
}

int run_tokenize(const TokenizeArgs& a) {
  const std::string text = text_of(a);
  const tokenizer::Tokenizer tok = tokenizer_for_model(a.model);
  tokenizer::EncodeOptions o;
  if (a.no_bos) o.add_bos = false;
  o.parse_special = !a.no_special;
  const std::vector<int32_t> ids = tok.encode(text, o);
  using nlohmann::json;
  const auto bytes_json = [](const std::string& s) { return json(s).dump(-1, ' ', true, json::error_handler_t::replace); };
  if (a.json) {
    json j = {{"tokenizer", tok.content_hash_hex()}, {"pre_tokenizer", tok.pre_tokenizer_name()}, {"ids", ids}};
    j["pieces"] = json::array();
    for (int32_t id : ids) j["pieces"].push_back(tok.token_text(id));
    std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return 0;
  }
  // One token a line: id, the piece as the vocabulary stores it (JSON string), the bytes it stands for (printable
  // ASCII as is, every other byte and '\\' as \xNN — lossless even where a token holds part of a UTF-8 character).
  std::cout << "# " << ids.size() << " tokens, tokenizer " << tok.content_hash_hex() << " (" << tok.pre_tokenizer_name()
            << ")\n# id\tpiece\tbytes\n";
  for (int32_t id : ids)
    std::cout << id << "\t" << bytes_json(tok.token_text(id)) << "\t" << escaped_bytes(tok.token_bytes(id)) << "\n";
  return 0;
}

}  // namespace

Command add_tokenize_command(CLI::App& app, const Invocation&) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* c = app.add_subcommand(
      "tokenize",
      "Token ids and pieces of a text under a model's tokenizer (GGUF metadata or tokenizer.json), to compare\n"
      "with another tool; BOS is added when the tokenizer says so, special-token text is matched");
  c->add_option("--model", a->model, "GGUF file, checkpoint directory or tokenizer.json")->required();
  c->add_option("text", a->text, "The text (or --file)");
  c->add_option("--file", a->file, "Read the text from this file (bytes as they are)");
  c->add_flag("--json", a->json, "Print {ids, pieces} as JSON");
  c->add_flag("--no-bos", a->no_bos, "Do not add BOS even if the tokenizer adds it");
  c->add_flag("--no-special", a->no_special, "Do not turn special-token text (e.g. <|endoftext|>) into its id");
  return {c, [a] { return run_tokenize(*a); }};
}

}  // namespace qeval::cli
