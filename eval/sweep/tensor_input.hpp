// eval/sweep/tensor_input.hpp — the input of "tensor" runs, parsed once from a sweep entry's inputs[i]: a synthetic
// distribution (eval/inputs/synthetic.hpp) or a file (.npy, raw .f32 with a shape), with the tensors it offers.
//
//   "gaussian" | {"distribution": "outliers", "rows": 256, "cols": 1024, "seed": 7, "outlier_channels": 8,
//                 "outlier_scale": 20, "nu": 3} | "w.npy" | {"file": "w.f32", "shape": "4096x4096", "tensors": ["w"]}
// Synthetic inputs default to kDefaultRows × kDefaultCols and the config's seed. The run spec's "input" is the
// source's describe() (+ "path" and the "xxh64" of a file's bytes, checked again when a run opens it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/inputs/source.hpp"
#include "eval/inputs/synthetic.hpp"
#include "quant/affine.hpp"

namespace qeval::sweep {

inline constexpr int64_t kDefaultRows = 1024;  // 1024 × 4096 = 4.2M values: ~1 s a run on one core
inline constexpr int64_t kDefaultCols = 4096;  // a typical LLM hidden size: groups of 32..4096 all divide it

struct TensorInput {
  std::string path;                 // JSON path in the config ("sweeps[0].inputs[1]")
  bool synthetic = false;
  inputs::SyntheticSpec synth;      // synthetic inputs
  std::string file;                 // files: the path as resolved (base_dir + given)
  int64_t raw_rows = 0, raw_cols = 0;  // raw .f32: the given shape (0: from the file)
  nlohmann::json description;       // the run spec's "input"
  std::vector<inputs::TensorInfo> tensors;  // the tensors runs are made for (all, or the "tensors" named)
  std::string short_name;           // for run names: "gaussian-1024x4096", "w"
  std::string display;              // for messages: "gaussian 1024x4096", "w.npy"

  // Opens the source again (a file's content hash must still be the planned one: an error naming it otherwise).
  std::unique_ptr<inputs::TensorSource> open() const;
  // How errors of a loaded tensor name the input: "synthetic gaussian", or the file path.
  std::string source_name() const;
};

// Parses inputs[i] (`v` at JSON path `path`); relative files resolve against `base_dir` ("" = cwd), synthetic
// inputs without a seed take `seed`. Throws ConfigError naming the path.
TensorInput parse_tensor_input(const nlohmann::json& v, const std::string& path, uint64_t seed, const std::string& base_dir);

// Applies the non-finite policy to a whole input tensor up front, so the error names the input
// ("input 'w.npy' holds NaN at row 3, col 7; clean it or pass --non-finite propagate").
void check_input_finite(const inputs::Tensor& t, const std::string& source_name, quant::NonFinitePolicy p);

}  // namespace qeval::sweep
