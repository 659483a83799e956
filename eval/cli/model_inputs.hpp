// eval/cli/model_inputs.hpp — inputs of the model commands: the tokenizer that belongs to a model path (`qeval tokenize`,
// `qeval logits --text`) and whole input files.
#pragma once

#include <string>

#include "eval/tokenizer/tokenizer.hpp"

namespace qeval::cli {

// A GGUF (by its magic; only the header is parsed, not the weights) → its tokenizer.ggml.* metadata; a
// directory or a .safetensors file → tokenizer.json beside it; a .json file → that tokenizer.json. Throws
// std::invalid_argument naming the path and what was looked for when there is none.
tokenizer::Tokenizer tokenizer_for_model(const std::string& path);

// The bytes of a file; std::invalid_argument naming it and `option` (e.g. "--file") when it cannot be read.
std::string read_input_file(const std::string& path, const std::string& option);

}  // namespace qeval::cli
