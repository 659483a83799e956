// eval/model/inspect.hpp — what a model file holds and what qeval can do with it, without loading the weights.
//
// The logic behind `qeval inspect FILE|DIR` (the CLI wiring lives in eval/cli): architecture, hyper-parameters,
// tokenizer, every tensor (name, shape, storage type, bytes), bits per weight by type and overall, and a list of
// findings — what qeval will read, what it will not and why (a type without a dequantizer, a config the forward
// cannot express, a tensor no layer reads, a dtype the safetensors reader does not take). Only headers and
// metadata are read: a 100 GB file is inspected in milliseconds. Malformed files throw CheckpointError as the
// loaders do.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qeval::model {

struct InspectTensor {
  std::string name;            // as stored (GGUF canonical names; HF names for safetensors)
  std::vector<int64_t> shape;  // PyTorch order
  std::string type;            // "Q4_K", "BF16", …
  uint64_t elements = 0;
  uint64_t bytes = 0;
};

struct InspectTypeSummary {
  std::string type;
  uint64_t tensors = 0, elements = 0, bytes = 0;
  double bits_per_weight() const { return elements ? 8.0 * static_cast<double>(bytes) / static_cast<double>(elements) : 0; }
};

struct InspectFinding {
  enum class Level { ok, warning, unsupported };
  Level level = Level::ok;
  std::string what;  // one line
};

struct InspectReport {
  std::string path;
  std::string format;          // "gguf" or "safetensors"
  std::string architecture;    // GGUF general.architecture | config.json architectures[0] (else model_type)
  nlohmann::json hyperparameters = nlohmann::json::object();  // GGUF {arch}.* keys | config.json scalars
  nlohmann::json tokenizer = nlohmann::json::object();        // model, pre, vocab size, special ids | files present
  std::vector<InspectTensor> tensors;                         // file order (shards in name order)
  std::vector<InspectTypeSummary> by_type;                    // by bytes, largest first
  uint64_t total_elements = 0, total_bytes = 0;
  std::vector<InspectFinding> findings;
  bool loadable = false;  // load_checkpoint() would succeed (as far as headers tell: values are not read)

  double bits_per_weight() const {
    return total_elements ? 8.0 * static_cast<double>(total_bytes) / static_cast<double>(total_elements) : 0;
  }
};

// FILE: a GGUF (by magic) or a .safetensors file (config.json beside it); DIR: a safetensors checkpoint directory.
InspectReport inspect_model(const std::string& path);
// Bytes of a GGUF already in memory (`name` for messages).
InspectReport inspect_gguf_bytes(const uint8_t* data, size_t size, const std::string& name);

nlohmann::json inspect_to_json(const InspectReport& r);  // `qeval inspect --json`
std::string inspect_to_text(const InspectReport& r);     // the human-readable form, aligned columns

}  // namespace qeval::model
