// schemes/kv_cache/kv_cache.cpp — KV-cache quantization: attention keys and values [tokens, heads·head_dim] of one
// sequence, quantized per token or per channel, int8/int4 (any 2..8), with grouping; applied inside attention so
// that perplexity reflects it.
//
// Axis (option axis = token | channel; key_axis / value_axis override it for keys / values — KIVI (Liu et al.
// 2024) quantizes keys per channel, because key outliers sit in fixed channels, and values per token):
//   token    groups run along the features of one token: group size 0 = one scale per token, g = groups of g
//            features (e.g. g = head_dim: one scale per head per token). Causal: a token's codes depend on that
//            token only, so fake-quantizing the whole window equals quantizing each token as it is appended.
//   channel  groups run along the tokens of one feature: group size 0 = one scale per channel over all tokens of
//            the call, g = blocks of g consecutive tokens (tokens must be a multiple of g; the error names both).
//            NOT causal within a group: a token's codes depend on later tokens of its group. Fake-quantizing a
//            whole prefill window therefore lets early positions see scales set by later ones — the standard
//            evaluation approximation (KIVI keeps the incomplete last group in full precision while decoding).
//            quantize() stores the TRANSPOSE [features, tokens] (a channel is a row); dequantize() transposes back.
// fake_quantize semantics for the attention hook: eval/ calls fake_quantize_kv(KvPart::key, K, K) and
// fake_quantize_kv(KvPart::value, V, V) on the cached K (after RoPE, as the cache holds it) and V of each
// sequence, [tokens, n_kv_heads·head_dim], before the scores and the weighted sum read them; out may alias in.
#include <stdexcept>
#include <string>

#include "quant/quantize.hpp"
#include "schemes/common/calib_common.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {
namespace {

enum class Axis : uint8_t { token, channel };

class KvCache final : public Scheme {
 public:
  explicit KvCache(const SchemeConfig& cfg) : Scheme(cfg) {
    const std::string id = cfg.scheme;
    cfg.options.check_known(id, {"axis", "key_axis", "value_axis"});
    const std::vector<std::string> axes = {"token", "channel"};
    const std::string a = cfg.options.get_string(id, "axis", "token", axes);
    axis_ = parse(a);
    key_axis_ = parse(cfg.options.get_string(id, "key_axis", a, axes));
    value_axis_ = parse(cfg.options.get_string(id, "value_axis", a, axes));
    if (cfg.params.group_size == quant::kPerTensor)
      throw std::invalid_argument("scheme 'kv_cache': group size -1 (one scale for the whole cache) is not a KV-cache "
                                  "granularity; use 0 (per token / per channel) or a group size");
  }
  SchemeTraits traits() const override {
    SchemeTraits t;
    t.target = Target::kv_cache;
    return t;
  }

  quant::QuantizedMatrix quantize(quant::MatrixView x, const Calibration*) const override {
    if (axis_ == Axis::token) return quant::quantize_affine(x, params());
    check_tokens(x.rows);
    const quant::Matrix t = calib::transpose(x);
    return quant::quantize_affine(t.view(), params());
  }

  void dequantize(const quant::QuantizedMatrix& q, quant::MutableMatrixView out) const override {
    if (axis_ == Axis::token) {
      quant::dequantize(q, out);
      return;
    }
    calib::dequantize_transposed(name(), "axis=channel", q, out);
  }

  void fake_quantize_kv(KvPart part, quant::MatrixView in, quant::MutableMatrixView out) const override {
    const Axis ax = part == KvPart::key ? key_axis_ : value_axis_;
    if (ax == Axis::token) {
      quant::fake_quantize_affine(in, params(), out);
      return;
    }
    check_tokens(in.rows);
    quant::Matrix t = calib::transpose(in);
    quant::fake_quantize_affine(t.view(), params(), t.mut());
    calib::transpose_into(t.view(), out);
  }

 private:
  static Axis parse(const std::string& s) { return s == "channel" ? Axis::channel : Axis::token; }

  void check_tokens(int64_t tokens) const {
    const int64_t g = params().group_size;
    if (g > 0 && tokens % g != 0)
      throw std::invalid_argument("scheme 'kv_cache': axis=channel groups run along the tokens, and group size " +
                                  std::to_string(g) + " does not divide the " + std::to_string(tokens) +
                                  " tokens of this call; use a window length that is a multiple of " +
                                  std::to_string(g) + " or group size 0 (one scale per channel)");
  }

  Axis axis_ = Axis::token, key_axis_ = Axis::token, value_axis_ = Axis::token;
};

}  // namespace

std::unique_ptr<Scheme> make_scheme_kv_cache(const SchemeConfig& cfg) { return std::make_unique<KvCache>(cfg); }

}  // namespace qeval::schemes
