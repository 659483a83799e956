// schemes/scheme.hpp — the plug-in interface every quantization scheme implements, and the registry.
//
// A scheme is a value (SchemeConfig: name + QuantParams + options) plus three functions:
// calibrate (optional; calibration data is an explicit argument), quantize, dequantize. Schemes are
// listed once in schemes/schemes.def; make_scheme() validates a config and builds the scheme. Each scheme
// states what it needs and produces in its traits() (SchemeTraits below): eval/ dispatches on those, never on a
// scheme's name (docs/ARCHITECTURE.md has the table of every scheme's traits).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "quant/affine.hpp"
#include "quant/matrix.hpp"

namespace qeval::schemes {

// What a scheme quantizes.
enum class Target : uint8_t {
  weight,      // a linear layer's [out, in] weight matrix, once
  activation,  // a linear layer's input [tokens, in], at every forward
  kv_cache,    // attention keys/values [tokens, head_dim·heads], inside attention
  linear,      // the whole product Y = X·Wᵀ (weights and activations jointly, e.g. LLM.int8)
};
const char* to_string(Target t);

// Scheme-specific settings beyond QuantParams, as key → value text. Each scheme reads its keys with
// the typed getters (which name the scheme, the key and the accepted values on a bad value) and
// calls check_known() so a misspelt key is an error, never silently ignored.
class Options {
 public:
  Options() = default;
  explicit Options(std::map<std::string, std::string> kv) : kv_(std::move(kv)) {}

  void set(const std::string& key, const std::string& value) { kv_[key] = value; }
  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  const std::map<std::string, std::string>& items() const { return kv_; }

  double get_double(const std::string& scheme, const std::string& key, double def) const;
  int64_t get_int(const std::string& scheme, const std::string& key, int64_t def) const;
  bool get_bool(const std::string& scheme, const std::string& key, bool def) const;
  // `allowed` empty: any text.
  std::string get_string(const std::string& scheme, const std::string& key, const std::string& def,
                         const std::vector<std::string>& allowed = {}) const;
  // Throws std::invalid_argument on a key not in `known`, listing the known keys.
  void check_known(const std::string& scheme, const std::vector<std::string>& known) const;

  bool operator==(const Options& o) const { return kv_ == o.kv_; }

 private:
  std::map<std::string, std::string> kv_;
};

// Everything needed to rebuild a scheme: serialized into every report.
struct SchemeConfig {
  std::string scheme;          // an id from schemes.def
  quant::QuantParams params;
  Options options;

  bool operator==(const SchemeConfig& o) const {
    return scheme == o.scheme && params == o.params && options == o.options;
  }
  std::string label() const;  // e.g. "rtn int4 sym g128" — used in tables and run ids
};

// Calibration data for one layer. eval/ captures it through hooks; schemes that need it say so
// with needs_calibration() and throw a clear error when it is missing.
struct Calibration {
  // The layer's captured inputs, [samples, in_features] (tokens of the calibration windows).
  quant::MatrixView inputs;
  // Optional statistics precomputed while capturing (so a scheme need not keep every sample).
  // Each is empty when not captured.
  std::vector<double> hessian;      // in × in, row-major: H = 2·XᵀX / n (GPTQ)
  std::vector<float> act_absmax;    // per input feature: max |x| (SmoothQuant, LLM.int8, static)
  std::vector<float> act_absmean;   // per input feature: mean |x| (AWQ)
  int64_t n_samples = 0;            // rows that contributed to the statistics
  std::string layer_name;           // for error messages and reports

  // Per-layer state a scheme computes once in calibrate() and uses at every later call (e.g. the
  // frozen scales of static activation quantization). Empty until calibrate() fills it.
  std::vector<float> frozen_scales;
  std::vector<int32_t> frozen_zero_points;

  // Difficulty migration decided for this layer (SmoothQuant, AWQ): the factors s (size in_features) that
  // input_channel_scales() returned for the group of layers sharing this input, and whether eval/ folded them.
  // Empty: none decided (the scheme then computes s for this layer alone, from this calibration).
  // inputs / hessian / act_* always describe the input as CAPTURED (unscaled X), whatever the fold.
  //   migration_folded = true:  eval/ multiplied 1/s into the op producing the input (RMSNorm weight, rows of
  //                             the previous linear) and s into the weight's columns, so quantize()/linear()
  //                             receive W·diag(s) and, at run time, X·diag(1/s).
  //   migration_folded = false: nothing could be folded; quantize()/linear() receive the original W and X
  //                             and apply s themselves (quantize() returns col_scale = s, so that
  //                             dequantize() gives the effective weight Q(W·diag(s))·diag(1/s)).
  std::vector<float> migration_scales;
  bool migration_folded = false;
};

// Which half of the KV cache a kv_cache scheme is quantizing (schemes may treat them differently: KIVI
// quantizes keys per channel and values per token).
enum class KvPart : uint8_t { key, value };

// ---- traits: what a scheme needs and produces ---------------------------------------------------------------

// The calibration data a scheme reads (Calibration's fields); eval/ captures exactly the union of what the schemes
// of a layer group need. Statistics (hessian, act_*) cover every calibration token; `rows` is a bounded sample of
// the raw input rows (CalibrationSpec::max_rows), for what statistics cannot give (percentiles, output errors).
struct CalibrationNeeds {
  bool hessian = false;      // Calibration::hessian, 2·XᵀX/n (GPTQ; AWQ's output-error metric)
  bool act_absmax = false;   // per-feature max|x| (SmoothQuant, static activations)
  bool act_absmean = false;  // per-feature mean|x| (AWQ)
  bool rows = false;         // raw input rows (SmoothQuant's α search; static activations other than sym min/max)
  bool layer_name = false;   // a Calibration only for its layer_name (mixed precision with an allocation file)
  bool any_statistics() const { return hessian || act_absmax || act_absmean || rows; }
  bool any() const { return any_statistics() || layer_name; }
};

// How a scheme quantizes a linear layer's input.
enum class ActivationQuant : uint8_t {
  none,     // it does not (weight-only schemes, KV cache)
  dynamic,  // ranges from each call's x (dynamic_per_token; the W8A8 inside SmoothQuant's and LLM.int8's linear())
  frozen,   // ranges frozen once by calibrate() (static activations)
};
const char* to_string(ActivationQuant a);

// A setting the scheme's reference implementation uses on some layers (AWQ: no clip search for q and k).
// eval/ turns each into a plan override ahead of the user's own, so the user's overrides still refine them.
struct ReferenceOverride {
  std::string pattern;  // glob over layer names ("blk.*.attn_q": GGUF tensor names without ".weight")
  Options options;      // set on the scheme's config for the matching layers
  std::string why;      // one line, for reports and docs
};

// A scheme that applies a base scheme per layer with per-layer bit widths (mixed precision).
struct WrapperTraits {
  SchemeConfig base;               // the base scheme as configured (mixed: base=<id>, base.<key>=<value>)
  SchemeConfig sensitivity;        // what eval/ measures per-layer sensitivity with: `base` when it needs no
                                   // calibration, else the calibration-free stand-in the wrapper names
  std::string allocation_option;   // the option naming the allocation file (per-layer bits)
  bool allocated = false;          // that option is set; when not, eval/ measures and writes the allocation
};

// Everything eval/ may ask about a scheme. Filled by each scheme in schemes/<id>/ from its config.
struct SchemeTraits {
  Target target = Target::weight;
  // quantize() is exactly quant::quantize_affine(w, params()) and nothing else (RTN). eval/ may then run that
  // formula elsewhere (the OpenCL quantize kernel of a tensor sweep) or vary its params (fault injection).
  bool plain_affine = false;
  CalibrationNeeds calibration;             // what quantize() / calibrate() / input_channel_scales() read
  bool calibrates_once = false;             // calibrate() freezes per-layer state that every later call reads
  bool migrates = false;                    // input_channel_scales(): per-input-channel factors eval/ folds
  bool outlier_columns = false;             // linear() keeps some input features in fp32: outlier_columns(x)
  ActivationQuant activation = ActivationQuant::none;  // how it treats the layer's input
  // Activation schemes: batches of at most this many rows pass through in full precision (dynamic_per_token's
  // OpenVINO threshold, 64 by default; INT64_MAX when disabled). A real-kernel backend multiplies them in fp32.
  int64_t activation_passthrough_rows = 0;
  // Activation schemes: one scale per input feature (static_act granularity=channel). That scale varies along the
  // reduction axis, so it cannot be applied after an integer sum: only fake quantization runs it.
  bool activation_per_feature = false;
  quant::Format codes = quant::Format::int_affine;     // the format quantize() stores (weights and linear)
  std::optional<WrapperTraits> wrapper;     // set for a wrapper around a base scheme (mixed)
  std::vector<ReferenceOverride> reference_overrides;
};

// The interface. Implementations live in schemes/<id>/ and are constructed by make_scheme().
class Scheme {
 public:
  explicit Scheme(SchemeConfig cfg) : cfg_(std::move(cfg)) {}
  virtual ~Scheme() = default;
  Scheme(const Scheme&) = delete;
  Scheme& operator=(const Scheme&) = delete;

  const SchemeConfig& config() const { return cfg_; }
  const quant::QuantParams& params() const { return cfg_.params; }
  const std::string& name() const { return cfg_.scheme; }

  // What the scheme needs and produces (see SchemeTraits); eval/ decides from these alone.
  virtual SchemeTraits traits() const = 0;
  Target target() const { return traits().target; }
  // True when quantize() requires a non-null Calibration (GPTQ, AWQ, SmoothQuant, static, mixed with an
  // allocation, ...): traits().calibration.any().
  bool needs_calibration() const { return traits().calibration.any(); }

  // Optional, once per layer before any quantize/fake_quantize: returns `calib` with the scheme's
  // per-layer state filled in (Calibration::frozen_*); eval/ keeps the result per layer and passes
  // it to every later call. The default returns calib unchanged.
  virtual Calibration calibrate(Calibration calib) const { return calib; }

  // Difficulty migration (SmoothQuant, AWQ): per-input-channel factors s (size in_features) for the
  // linear layers in `weights` that all consume the same input. eval/ folds 1/s into the op that
  // produces that input (the RMSNorm weight, or the rows of the previous linear) and s into each
  // weight's columns — exact in full precision — and then quantizes the scaled weights. Empty (the
  // default) means no migration.
  virtual std::vector<float> input_channel_scales(const Calibration& calib,
                                                  const std::vector<quant::MatrixView>& weights) const {
    return {};
  }

  // Schemes that replace the whole linear product (Target::linear, e.g. LLM.int8's decomposition into
  // an int8 part and full-precision outlier columns) compute y[tokens, out] = x[tokens, in] · wᵀ here
  // from the full-precision weight and return true. The default returns false: eval/ then uses the
  // weight and activation fake-quant path.
  virtual bool linear(quant::MatrixView x, quant::MatrixView w, quant::MutableMatrixView y,
                      const Calibration* calib) const {
    return false;
  }

  // Schemes with traits().outlier_columns: the input features of x that the product keeps in full precision,
  // ascending (LLM.int8: every feature with some |x| above the threshold). A real-kernel backend asks this, runs
  // the rest through its integer kernel and adds the outlier part. `calib`: the layer's, as linear() receives it
  // (null outside a model): a scheme that keeps run_stats() counts the call under calib->layer_name as linear()
  // would, so a real-kernel backend's report carries the same statistics as the reference path. Default: none.
  virtual std::vector<int64_t> outlier_columns(quant::MatrixView x, const Calibration* calib = nullptr) const {
    return {};
  }

  // Quantizes a matrix: [out, in] weights, or [tokens, features] activations. `calib` may be null
  // unless needs_calibration(). Throws std::invalid_argument for a shape the params do not fit
  // (e.g. group size not dividing the row) and quant::NonFiniteError for NaN/Inf under the default
  // policy.
  virtual quant::QuantizedMatrix quantize(quant::MatrixView x, const Calibration* calib) const = 0;

  // Writes the effective fp32 matrix of `q` (permutation and column scales undone) into `out`,
  // which must be rows × cols. The default handles every quant::Format through the reference code.
  virtual void dequantize(const quant::QuantizedMatrix& q, quant::MutableMatrixView out) const;

  // out = dequantize(quantize(in)). `out` may alias `in`. Activation schemes override this where
  // the semantics differ (dynamic per-token passes small batches through unchanged).
  virtual void fake_quantize(quant::MatrixView in, quant::MutableMatrixView out,
                             const Calibration* calib) const;

  // The attention hook's entry point for Target::kv_cache schemes: fake-quantizes the keys or the values
  // [tokens, heads·head_dim] of one sequence. The default ignores `part` and calls fake_quantize().
  virtual void fake_quantize_kv(KvPart part, quant::MatrixView in, quant::MutableMatrixView out) const {
    fake_quantize(in, out, nullptr);
  }

  // Statistics a scheme accumulated while running, keyed by layer (Calibration::layer_name; "" for calls
  // made without a Calibration), then by statistic name — e.g. LLM.int8's "outlier_fraction". eval/ copies
  // them into the report after a run. Thread-safe. The default has none.
  virtual std::map<std::string, std::map<std::string, double>> run_stats() const { return {}; }

 private:
  SchemeConfig cfg_;
};

// One row of schemes.def, for --help, list-schemes and parameterized tests.
struct SchemeInfo {
  const char* id;
  Target target;
  int default_bits;
  int64_t default_group_size;
  const char* summary;
  const char* options;
};
const std::vector<SchemeInfo>& scheme_list();
// nullptr when unknown.
const SchemeInfo* find_scheme(const std::string& id);

// The config a scheme gets when a user names only the scheme: its default bits and group size,
// symmetric, round to nearest even.
SchemeConfig default_config(const std::string& id);

// Validates cfg (QuantParams::validate() and the scheme's own options) and builds the scheme.
// Unknown ids throw std::invalid_argument listing the registered ids.
std::unique_ptr<Scheme> make_scheme(const SchemeConfig& cfg);

// For schemes with a code book and an absmax scale (fp4, nf4, fp8): bits must equal the format's
// width, the mapping symmetric and the range minmax; throws naming the bad field and the fix.
void require_code_book_params(const SchemeConfig& cfg, int format_bits);

// Factories, one per row of schemes.def, defined in schemes/<id>/<id>.cpp.
#define QEVAL_SCHEME(id, target, bits, group, summary, options) \
  std::unique_ptr<Scheme> make_scheme_##id(const SchemeConfig& cfg);
#include "schemes/schemes.def"
#undef QEVAL_SCHEME

}  // namespace qeval::schemes
