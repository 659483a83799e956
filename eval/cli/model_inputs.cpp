// eval/cli/model_inputs.cpp — finds and loads the tokenizer of a model file or checkpoint directory; reads input files.
#include "eval/cli/model_inputs.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <stdexcept>

#include "eval/common/files.hpp"
#include "eval/model/gguf.hpp"
#include "eval/model/mapped_file.hpp"

namespace qeval::cli {

namespace fs = std::filesystem;

namespace {

bool is_gguf(const model::MappedFile& m) {
  return m.size() >= 4 && std::memcmp(m.data(), "GGUF", 4) == 0;
}

}  // namespace

tokenizer::Tokenizer tokenizer_for_model(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw std::invalid_argument(path + ": no such file or directory (--model)");
  std::string json_path;
  if (fs::is_directory(path, ec)) {
    json_path = (fs::path(path) / "tokenizer.json").string();
  } else if (common::ends_with(path, ".json")) {
    json_path = path;
  } else {
    const model::MappedFile m(path);
    if (is_gguf(m)) {
      const model::GgufFile g = model::parse_gguf(m.data(), m.size(), path);
      std::map<std::string, nlohmann::json> meta;
      for (const auto& kv : g.kv) meta[kv.key] = kv.value;
      if (!meta.count("tokenizer.ggml.tokens"))
        throw std::invalid_argument(path + ": this GGUF holds no tokenizer (no tokenizer.ggml.tokens); give token ids");
      return tokenizer::Tokenizer::from_gguf_metadata(meta, path);
    }
    json_path = (fs::path(path).parent_path() / "tokenizer.json").string();
  }
  if (!fs::is_regular_file(json_path, ec))
    throw std::invalid_argument(path + ": no tokenizer found (looked for " + json_path +
                                "); give token ids (--ids) or a model with a tokenizer");
  return tokenizer::Tokenizer::from_hf_json_file(json_path);
}

std::string read_input_file(const std::string& path, const std::string& option) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::invalid_argument(option + " " + path + ": cannot open the file");
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

}  // namespace qeval::cli
