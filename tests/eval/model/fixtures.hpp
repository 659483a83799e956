// tests/eval/model/fixtures.hpp — what the eval_quant tests share: small models (the tiny Llama fixture, random
// multi-head models), scheme configs, calibration windows, tokens, and a Spy scheme that records what eval/ calls.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "eval/model/checkpoint.hpp"
#include "eval/model/llama.hpp"
#include "eval/model/quantize_model.hpp"
#include "quant/rng.hpp"

namespace qeval::model {

inline const std::string kTiny = std::string(QEVAL_SOURCE_DIR) + "/tests/data/tiny_llama";
inline constexpr double kEps = 0x1.0p-23;  // fp32 machine epsilon

// A multi-head (n_heads == n_kv_heads) random model, so that every input group — o ← v included — can be folded.
inline ModelConfig mha_config() {
  ModelConfig c;
  c.arch = "llama";
  c.n_layers = 2;
  c.d_model = 64;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.d_ff = 96;
  c.vocab_size = 101;
  c.rope_theta = 10000.0;
  c.rms_eps = 1e-5;
  c.bos_id = 1;
  return c;
}

inline schemes::SchemeConfig cfg(const std::string& id, int bits, int64_t group,
                          std::map<std::string, std::string> opts = {}) {
  schemes::SchemeConfig c = schemes::default_config(id);
  c.params.bits = bits;
  c.params.group_size = group;
  c.options = schemes::Options(std::move(opts));
  return c;
}

inline LayerOverride skip(const std::string& pattern) {
  LayerOverride o;
  o.pattern = pattern;
  o.skip = true;
  return o;
}

// Random token windows (ids 2..V−1) → calibration windows.
inline CalibrationWindows calib_windows(int64_t count, int64_t length, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>((count + 2) * length));
  for (auto& t : ids) t = static_cast<int32_t>(2 + rng.below(static_cast<uint64_t>(vocab - 2)));
  CalibrationSpec s;
  s.count = count;
  s.seed = seed;
  return calibration_windows_from_ids(ids, s, length, BosMode::replace_first, 1, "random ids");
}

inline at::Tensor toks(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  Rng rng(seed);
  at::Tensor t = at::empty({B, T}, at::kLong);
  int64_t* p = t.data_ptr<int64_t>();
  for (int64_t i = 0; i < B * T; ++i) p[i] = static_cast<int64_t>(2 + rng.below(static_cast<uint64_t>(V - 2)));
  p[0] = 1;
  return t;
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Wraps a scheme and records what eval/ calls.
struct SpyLog {
  std::map<std::string, int> calibrate_calls;  // by layer
  int input_channel_scales_calls = 0;
  int fake_quantize_calls = 0, fake_quantize_with_frozen = 0;
  struct Kv {
    schemes::KvPart part;
    int64_t rows, cols;
  };
  std::vector<Kv> kv;
};

class Spy final : public schemes::Scheme {
 public:
  Spy(std::shared_ptr<const schemes::Scheme> inner, SpyLog* log) : Scheme(inner->config()), in_(std::move(inner)), log_(log) {}
  schemes::SchemeTraits traits() const override { return in_->traits(); }
  schemes::Calibration calibrate(schemes::Calibration c) const override {
    ++log_->calibrate_calls[c.layer_name];
    return in_->calibrate(std::move(c));
  }
  std::vector<float> input_channel_scales(const schemes::Calibration& c,
                                          const std::vector<quant::MatrixView>& w) const override {
    ++log_->input_channel_scales_calls;
    return in_->input_channel_scales(c, w);
  }
  bool linear(quant::MatrixView x, quant::MatrixView w, quant::MutableMatrixView y,
              const schemes::Calibration* c) const override {
    return in_->linear(x, w, y, c);
  }
  quant::QuantizedMatrix quantize(quant::MatrixView x, const schemes::Calibration* c) const override {
    return in_->quantize(x, c);
  }
  void dequantize(const quant::QuantizedMatrix& q, quant::MutableMatrixView out) const override {
    in_->dequantize(q, out);
  }
  void fake_quantize(quant::MatrixView in, quant::MutableMatrixView out, const schemes::Calibration* c) const override {
    ++log_->fake_quantize_calls;
    if (c && !c->frozen_scales.empty()) ++log_->fake_quantize_with_frozen;
    in_->fake_quantize(in, out, c);
  }
  void fake_quantize_kv(schemes::KvPart part, quant::MatrixView in, quant::MutableMatrixView out) const override {
    log_->kv.push_back({part, in.rows, in.cols});
    in_->fake_quantize_kv(part, in, out);
  }
  std::map<std::string, std::map<std::string, double>> run_stats() const override { return in_->run_stats(); }

 private:
  std::shared_ptr<const schemes::Scheme> in_;
  SpyLog* log_;
};

inline SchemeFactory spy_factory(SpyLog* log, const std::string& only) {
  return [log, only](const schemes::SchemeConfig& c) -> std::shared_ptr<const schemes::Scheme> {
    std::shared_ptr<const schemes::Scheme> s(schemes::make_scheme(c));
    if (c.scheme != only) return s;
    return std::make_shared<Spy>(s, log);
  };
}

inline QuantizeOptions quiet() {
  QuantizeOptions o;
  o.progress = false;
  return o;
}

}  // namespace qeval::model
