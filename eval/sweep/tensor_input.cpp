// eval/sweep/tensor_input.cpp — tensor-run inputs: parsing (synthetic or file, selected tensors), opening, NaN check.
#include "eval/sweep/tensor_input.hpp"

#include <unistd.h>

#include <cmath>
#include <set>
#include <sstream>

#include "eval/common/files.hpp"
#include "eval/inputs/file.hpp"
#include "eval/report/report.hpp"
#include "eval/sweep/config.hpp"

namespace qeval::sweep {

namespace {

using nlohmann::json;

using common::ends_with;

std::string stem(const std::string& path) {
  std::string s = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  const size_t dot = s.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? s : s.substr(0, dot);
}

void check_keys(const json& v, const std::string& path, const std::set<std::string>& keys) {
  for (const auto& [k, x] : v.items())
    if (!keys.count(k)) {
      std::string known;
      for (const auto& kk : keys) known += (known.empty() ? "" : ", ") + kk;
      throw ConfigError(key_path(path, k), "unknown key for this input (known: " + known + ")");
    }
}

// {"distribution": ..., "rows", "cols", "seed", "nu", "outlier_channels", "outlier_scale"} onto in.synth.
void read_synthetic_object(const json& v, const std::string& path, TensorInput& in) {
  check_keys(v, path, {"distribution", "rows", "cols", "seed", "nu", "outlier_channels", "outlier_scale"});
  inputs::SyntheticSpec& s = in.synth;
  const std::string dp = key_path(path, "distribution");
  const std::string d = as_string(v["distribution"], dp, "a distribution name");
  s.dist = at_path(dp, [&] { return inputs::parse_distribution(d); });
  if (v.contains("rows")) s.rows = as_int(v["rows"], key_path(path, "rows"), "an integer");
  if (v.contains("cols")) s.cols = as_int(v["cols"], key_path(path, "cols"), "an integer");
  if (v.contains("seed")) s.seed = as_seed(v["seed"], key_path(path, "seed"));
  if (v.contains("nu")) s.student_nu = static_cast<int>(as_int(v["nu"], key_path(path, "nu"), "an integer"));
  if (v.contains("outlier_channels"))
    s.outlier_channels = as_int(v["outlier_channels"], key_path(path, "outlier_channels"), "an integer");
  if (v.contains("outlier_scale")) s.outlier_scale = as_double(v["outlier_scale"], key_path(path, "outlier_scale"), "a number");
}

// {"file": ..., "shape", "tensors"}: the file, its raw shape text and the tensor names wanted.
void read_file_object(const json& v, const std::string& path, TensorInput& in, std::string* shape,
                      std::vector<std::string>* wanted) {
  check_keys(v, path, {"file", "shape", "tensors"});
  in.file = as_string(v["file"], key_path(path, "file"), "a file path");
  if (v.contains("shape")) *shape = as_string(v["shape"], key_path(path, "shape"), "a shape such as \"4096x4096\"");
  if (!v.contains("tensors")) return;
  const json& t = v["tensors"];
  const std::string tp = key_path(path, "tensors");
  if (!t.is_array() || t.empty()) throw ConfigError(tp, "is not a non-empty list of names");
  for (size_t i = 0; i < t.size(); ++i) wanted->push_back(as_string(t[i], index_path(tp, i), "a tensor name"));
}

void finish_synthetic(TensorInput& in, uint64_t config_seed) {
  const inputs::SyntheticSpec& s = in.synth;
  s.validate();
  const auto src = inputs::make_synthetic_source(s);
  const std::string dist = inputs::to_string(s.dist), shape = std::to_string(s.rows) + "x" + std::to_string(s.cols);
  in.short_name = dist + "-" + shape + (s.seed != config_seed ? "-s" + std::to_string(s.seed) : "");
  in.display = dist + " " + shape;
  in.description = src->describe();
  in.tensors = src->tensors();
}

void finish_file(TensorInput& in, const std::string& given, const std::string& shape, const std::string& base_dir) {
  const bool known_ext = ends_with(given, ".npy") || ends_with(given, ".f32");
  in.file = (given.empty() || given[0] == '/' || base_dir.empty()) ? given : base_dir + "/" + given;
  if (!known_ext && ::access(in.file.c_str(), F_OK) != 0)
    throw ConfigError(in.path, "'" + given +
                                   "' is neither a distribution (gaussian, laplace, student-t, uniform, outliers) nor "
                                   "an existing file (.npy, or .f32 with a shape)");
  if (!shape.empty()) {
    if (!ends_with(given, ".f32"))
      throw ConfigError(key_path(in.path, "shape"), "applies to raw .f32 files only ('" + given + "' carries its own shape)");
    inputs::parse_shape(shape, &in.raw_rows, &in.raw_cols);
  }
  const auto src = inputs::open_file_source(in.file, in.raw_rows, in.raw_cols);
  in.short_name = stem(given);
  in.display = given;
  in.description = src->describe();
  in.description["path"] = in.file;
  in.description["xxh64"] = report::file_xxh64(in.file);
  in.tensors = src->tensors();
}

void select_tensors(TensorInput& in, const std::vector<std::string>& wanted) {
  if (wanted.empty()) return;
  std::vector<inputs::TensorInfo> sel;
  for (size_t i = 0; i < wanted.size(); ++i) {
    const size_t before = sel.size();
    for (const auto& t : in.tensors)
      if (t.name == wanted[i]) sel.push_back(t);
    if (sel.size() == before) {
      std::string names;
      for (const auto& t : in.tensors) names += (names.empty() ? "" : ", ") + t.name;
      throw ConfigError(index_path(key_path(in.path, "tensors"), i),
                        "'" + wanted[i] + "' is not a tensor of '" + in.display + "' (it has: " + names + ")");
    }
  }
  in.tensors = sel;
}

}  // namespace

TensorInput parse_tensor_input(const json& v, const std::string& path, uint64_t seed, const std::string& base_dir) {
  TensorInput in;
  in.path = path;
  in.synth.rows = kDefaultRows;
  in.synth.cols = kDefaultCols;
  in.synth.seed = seed;
  std::string given, shape;
  std::vector<std::string> wanted;
  at_path(path, [&] {
    if (v.is_string() && inputs::is_distribution_name(v.get<std::string>())) {
      in.synthetic = true;
      in.synth.dist = inputs::parse_distribution(v.get<std::string>());
    } else if (v.is_string()) {
      given = v.get<std::string>();
    } else if (v.is_object()) {
      if (v.contains("distribution") == v.contains("file"))
        throw ConfigError(path, "an input object has either \"distribution\" (synthetic) or \"file\" (.npy/.f32)");
      in.synthetic = v.contains("distribution");
      if (in.synthetic) read_synthetic_object(v, path, in);
      else read_file_object(v, path, in, &shape, &wanted);
      if (!in.synthetic) given = in.file;
    } else {
      throw ConfigError(path, shown_value(v) + " is not an input (a distribution name, a file path, or an object)");
    }
    if (in.synthetic) finish_synthetic(in, seed);
    else finish_file(in, given, shape, base_dir);
    return 0;
  });
  select_tensors(in, wanted);
  return in;
}

std::unique_ptr<inputs::TensorSource> TensorInput::open() const {
  if (synthetic) return inputs::make_synthetic_source(synth);
  auto src = inputs::open_file_source(file, raw_rows, raw_cols);
  const std::string planned = description.value("xxh64", std::string());
  const std::string h = report::file_xxh64(file);
  if (h != planned)
    throw std::runtime_error("input file '" + file + "' changed since the sweep was planned (xxh64 " + h + ", planned " +
                             planned + "); re-plan the sweep (without --resume) or restore the file");
  return src;
}

std::string TensorInput::source_name() const {
  return synthetic ? "synthetic " + std::string(inputs::to_string(synth.dist)) : file;
}

void check_input_finite(const inputs::Tensor& t, const std::string& source_name, quant::NonFinitePolicy p) {
  if (p != quant::NonFinitePolicy::error) return;
  const quant::MatrixView v = t.view;
  for (int64_t r = 0; r < v.rows; ++r) {
    const float* row = v.row(r);
    for (int64_t c = 0; c < v.cols; ++c)
      if (!std::isfinite(row[c])) {
        std::ostringstream os;
        os << "input '" << source_name << "' holds " << (std::isnan(row[c]) ? "NaN" : (row[c] > 0 ? "+Inf" : "-Inf"))
           << " at row " << r << ", col " << c << "; clean the input or pass --non-finite propagate";
        throw quant::NonFiniteError(os.str());
      }
  }
}

}  // namespace qeval::sweep
