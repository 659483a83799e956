// eval/model/calibration_windows.cpp — calibration data: CalibrationSpec's JSON and the fixed-seed sample of
// calibration windows from a text other than the evaluated part (quantize_model.hpp).
#include <sys/stat.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "eval/model/model_util.hpp"
#include "eval/model/quantize_model.hpp"
#include "eval/model/checkpoint.hpp"
#include "eval/model/tokens.hpp"
#include "quant/rng.hpp"

namespace qeval::model {

nlohmann::json CalibrationSpec::to_json() const {
  return {{"text", text},   {"text_bytes", text_bytes}, {"count", count},           {"length", length},
          {"seed", seed},   {"max_rows", max_rows},     {"batch", batch},           {"sequential", sequential}};
}

CalibrationSpec CalibrationSpec::from_json(const nlohmann::json& j) {
  if (!j.is_object())
    throw std::invalid_argument("calibration: expected an object {\"text\", \"count\", \"length\", ...}, got " + j.dump());
  CalibrationSpec s;
  auto integer = [](const nlohmann::json& v, const std::string& k) {
    if (!v.is_number_integer())
      throw std::invalid_argument("calibration: \"" + k + "\" must be an integer, got " + v.dump());
    return v.get<int64_t>();
  };
  for (const auto& [k, v] : j.items()) {
    if (k == "text") {
      if (!v.is_string()) throw std::invalid_argument("calibration: \"text\" must be a path string");
      s.text = v.get<std::string>();
    } else if (k == "text_bytes") {
      s.text_bytes = integer(v, k);
    } else if (k == "count") {
      s.count = integer(v, k);
      if (s.count < 1) throw std::invalid_argument("calibration: \"count\" must be ≥ 1 (windows), got " + v.dump());
    } else if (k == "length") {
      s.length = integer(v, k);
      if (s.length != -1 && s.length < 4)
        throw std::invalid_argument("calibration: \"length\" must be ≥ 4 tokens or -1 (the protocol's n_ctx), got " +
                                    v.dump());
    } else if (k == "seed") {
      if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
        throw std::invalid_argument("calibration: \"seed\" must be a non-negative integer, got " + v.dump());
      s.seed = v.get<uint64_t>();
    } else if (k == "max_rows") {
      s.max_rows = integer(v, k);
      if (s.max_rows < 1) throw std::invalid_argument("calibration: \"max_rows\" must be ≥ 1, got " + v.dump());
    } else if (k == "batch") {
      s.batch = integer(v, k);
      if (s.batch < 1) throw std::invalid_argument("calibration: \"batch\" must be ≥ 1, got " + v.dump());
    } else if (k == "sequential") {
      if (!v.is_boolean()) throw std::invalid_argument("calibration: \"sequential\" must be true or false");
      s.sequential = v.get<bool>();
    } else {
      throw std::invalid_argument("calibration: unknown key \"" + k +
                                  "\" (accepted: text, text_bytes, count, length, seed, max_rows, batch, sequential)");
    }
  }
  return s;
}

CalibrationWindows calibration_windows_from_ids(const std::vector<int32_t>& ids, const CalibrationSpec& spec,
                                                int64_t length, BosMode bos, int64_t bos_id, const std::string& source) {
  if (length < 4) throw std::invalid_argument("calibration: window length " + std::to_string(length) + " < 4 tokens");
  if (spec.count < 1) throw std::invalid_argument("calibration: count must be ≥ 1");
  Protocol p;
  p.name = "calibration:" + source;
  p.n_ctx = length;
  p.n_chunks = -1;
  p.bos = bos;
  const Windows all = make_windows(p, ids, bos_id);
  const int64_t avail = all.n_windows();
  if (spec.count > avail)
    throw std::invalid_argument("calibration text " + source + ": " + std::to_string(avail) + " windows of " +
                                std::to_string(length) + " tokens available (" + std::to_string(all.n_stream_tokens) +
                                " tokens), " + std::to_string(spec.count) +
                                " requested; raise calibration.text_bytes or lower count / length");
  // Partial Fisher–Yates: the first `count` entries of a uniformly shuffled 0..avail−1.
  Rng rng(spec.seed);
  std::vector<int64_t> idx(static_cast<size_t>(avail));
  std::iota(idx.begin(), idx.end(), 0);
  for (int64_t i = 0; i < spec.count; ++i) {
    const int64_t j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(avail - i)));
    std::swap(idx[static_cast<size_t>(i)], idx[static_cast<size_t>(j)]);
  }
  std::vector<int64_t> chosen(idx.begin(), idx.begin() + spec.count);
  std::sort(chosen.begin(), chosen.end());
  CalibrationWindows w;
  w.count = spec.count;
  w.length = length;
  const int64_t S = all.scored_per_window();
  for (int64_t c : chosen) {
    // make_windows with first_chunk 0 and stride 1: window row c is chunk c.
    w.tokens.insert(w.tokens.end(), all.tokens.begin() + c * length, all.tokens.begin() + (c + 1) * length);
    w.targets.insert(w.targets.end(), all.targets.begin() + c * S, all.targets.begin() + (c + 1) * S);
  }
  w.window_ids = chosen;
  w.record = {{"source", source},
              {"count", w.count},
              {"length", w.length},
              {"tokens", w.count * w.length},
              {"stream_tokens", all.n_stream_tokens},
              {"available_windows", avail},
              {"seed", spec.seed},
              {"bos", to_string(bos)},
              {"window_ids", chosen},
              {"tokens_xxh64", xxh64_hex(w.tokens.data(), w.tokens.size() * sizeof(int32_t))}};
  return w;
}

CalibrationWindows make_calibration_windows(const CalibrationSpec& spec, int64_t length, const TokenSource& ts,
                                            BosMode bos, const std::string& root, const std::string& forbidden_sha256,
                                            int64_t eval_begin_byte) {
  const std::string path = resolve_path(root, spec.text);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    throw std::runtime_error("calibration text " + path + " not found (default data/sotu/sotu.txt under the project "
                             "root; set calibration.text)");
  const std::string sha = sha256_file_hex(path);
  std::string text = read_text_file(path);
  const int64_t file_bytes = static_cast<int64_t>(text.size());
  if (spec.text_bytes > 0 && file_bytes > spec.text_bytes) {
    // Cut back to the last line end inside the limit, so no line (nor UTF-8 sequence) is split.
    const size_t nl = text.rfind('\n', static_cast<size_t>(spec.text_bytes) - 1);
    text.resize(nl == std::string::npos ? static_cast<size_t>(spec.text_bytes) : nl + 1);
  }
  // Never calibrate on evaluated text: another file, or a part of the same file that ends before the evaluated
  // part begins (a protocol's text_begin_byte).
  if (!forbidden_sha256.empty() && sha == forbidden_sha256 && static_cast<int64_t>(text.size()) > eval_begin_byte)
    throw std::invalid_argument(
        "calibration text " + path + " is the evaluation text (" + sha + ")" +
        (eval_begin_byte > 0 ? ", and its first " + std::to_string(text.size()) + " bytes reach into the evaluated part (from byte " +
                                   std::to_string(eval_begin_byte) + " on); set calibration.text_bytes ≤ " +
                                   std::to_string(eval_begin_byte) + " or"
                             : ";") +
        " calibrate on another text (default data/sotu/sotu.txt)");
  const std::vector<int32_t> ids = ts.encode(text);
  CalibrationWindows w = calibration_windows_from_ids(ids, spec, length, bos, ts.bos_id, spec.text);
  w.record["text"] = spec.text;
  w.record["text_sha256"] = sha;
  w.record["file_bytes"] = file_bytes;
  w.record["bytes_used"] = static_cast<int64_t>(text.size());
  w.record["text_bytes_limit"] = spec.text_bytes;
  w.record["tokenizer"] = ts.name;
  w.record["tokenizer_hash"] = ts.hash;
  return w;
}

}  // namespace qeval::model
