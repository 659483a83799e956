// eval/model/backend/opencl_backend.cpp — the `opencl` backend: gpu/ kernels behind the LinearBackend seam (see .hpp).
#include "eval/model/backend/opencl_backend.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "eval/model/backend/integer_support.hpp"
#include "eval/model/backend/outlier_split.hpp"
#include "gpu/backend.hpp"
#include "gpu/ops.hpp"
#include "quant/pack.hpp"
#include "quant/quantize.hpp"

namespace qeval::model {

using quant::MatrixView;
using quant::MutableMatrixView;
using quant::QuantizedMatrix;

QuantizedMatrix widen_to_int8(const QuantizedMatrix& q) {
  if (q.format != quant::Format::int_affine)
    throw std::invalid_argument(std::string("opencl backend: no integer kernel for ") + quant::to_string(q.format) +
                                " codes (int_affine only; run it on backend ref)");
  if (q.params.bits == 8) return q;
  QuantizedMatrix o = q;
  o.params.bits = 8;
  o.codes.assign(static_cast<size_t>(q.rows * q.cols), 0);
  // symmetric storage is q + 2^(b−1): re-centre on 128; asymmetric storage is q itself (zero points unchanged)
  const int add = q.params.mapping == quant::Mapping::symmetric ? 128 - (1 << (q.params.bits - 1)) : 0;
  std::vector<uint8_t> u(static_cast<size_t>(q.cols));
  for (int64_t r = 0; r < q.rows; ++r) {
    quant::unpack_codes(q.codes.data() + r * q.row_bytes(), q.cols, q.params.bits, u.data());
    for (int64_t c = 0; c < q.cols; ++c)
      o.codes[static_cast<size_t>(r * q.cols + c)] = static_cast<uint8_t>(u[static_cast<size_t>(c)] + add);
  }
  return o;
}

namespace {

const char* const kNoDevice =
    "no OpenCL device was found (install an ICD, e.g. pocl-opencl-icd, and check `clinfo`; QEVAL_CL_DEVICE picks one)";

enum class Path : uint8_t { int_act, fp_act, outlier_split };

// Device data is made in prepare() (the weight's codes or its fp32 matrix: once per layer per run) and, for LLM.int8,
// the weight's codes re-made when a call's outlier set differs from the last one; linear() holds the device's lock,
// so the mutable members change under it.
struct ClLinear final : PreparedLinear {
  QuantizedLinear layer;  // schemes, calibrations, views (codes dropped: valid only during prepare)
  Path path = Path::fp_act;
  std::shared_ptr<gpu::Device> dev;
  gpu::Tier tier = gpu::Tier::t0;
  mutable gpu::DevQuantized w;        // int_act: the weight's codes (perm cleared); fp_act: codes for matmul_a16;
                                      // outlier_split: the weight's codes for the outlier set `mask`
  bool a16 = false;                   // w holds codes in input order that matmul_a16 takes
  mutable std::optional<gpu::DevMatrix> wf;  // fp32 matrix: LLM.int8's weight, or the effective weight
  std::vector<int32_t> perm;          // int_act: stored column j holds input feature perm[j] (GPTQ act-order)
  int64_t passthrough_rows = -1;      // int_act: inputs of at most this many rows are multiplied in fp32
  int outlier_bits = 8;               // outlier_split: code width of the int8 part
  mutable std::optional<std::vector<uint8_t>> mask;  // outlier_split: the set w was made for
};

std::shared_ptr<gpu::Device> device_or_throw() {
  std::shared_ptr<gpu::Device> d = gpu::default_device();
  if (!d) throw std::runtime_error(std::string("opencl backend: ") + kNoDevice);
  return d;
}

// The fp32 matrix of the layer on the device (LLM.int8: its weight; otherwise its effective weight), uploaded once.
const gpu::DevMatrix& float_weight(const ClLinear& p) {
  if (!p.wf) p.wf.emplace(gpu::upload(*p.dev, p.path == Path::outlier_split ? p.layer.weight : p.layer.effective));
  return *p.wf;
}

void store(gpu::Device& d, const gpu::DevMatrix& dy, MutableMatrixView y) {
  const quant::Matrix h = gpu::download(d, dy);
  for (int64_t r = 0; r < y.rows; ++r)
    std::memcpy(y.row(r), h.data.data() + r * h.cols, static_cast<size_t>(y.cols) * sizeof(float));
}

gpu::GemmOptions gemm_options(const ClLinear& p) {
  gpu::GemmOptions o;
  o.tier = p.tier;
  return o;
}

// The activation's codes in the weight's stored order (GPTQ act-order): column j ← feature perm[j]. 8-bit codes.
void permute_columns(QuantizedMatrix& a, const std::vector<int32_t>& perm) {
  if (perm.empty()) return;
  if (a.params.group_size > 0)
    throw std::invalid_argument("opencl backend: grouped activations with an act-order (permuted) weight have no "
                                "integer kernel (their groups differ in stored order); run it on backend ref");
  std::vector<uint8_t> row(static_cast<size_t>(a.cols));
  for (int64_t r = 0; r < a.rows; ++r) {
    uint8_t* p = a.codes.data() + r * a.cols;
    for (int64_t j = 0; j < a.cols; ++j) row[static_cast<size_t>(j)] = p[perm[static_cast<size_t>(j)]];
    std::memcpy(p, row.data(), row.size());
  }
}

// ---- the three paths ---------------------------------------------------------------------------------------------

void fp_linear(const ClLinear& p, MatrixView x, MutableMatrixView y) {
  gpu::Device& d = *p.dev;
  const gpu::DevMatrix dx = gpu::upload(d, x);
  gpu::DevMatrix dy = gpu::alloc_matrix(d, x.rows, y.cols);
  if (p.a16) gpu::matmul_a16(d, dx, p.w, dy.buf, dy.ld);
  else gpu::matmul_f32(d, dx, float_weight(p), dy.buf, dy.ld);
  store(d, dy, y);
}

void int_linear_cl(const ClLinear& p, MatrixView x, MutableMatrixView y, MutableMatrixView seen) {
  const QuantizedLinear& L = p.layer;
  const QuantizedMatrix a = L.act_scheme->quantize(x, L.act_calib.get());
  if (!a.col_scale.empty() || !a.non_finite.empty())
    throw std::invalid_argument("opencl backend: activation codes with column scales or non-finite entries have no "
                                "integer kernel; run layer " + L.layer + " on backend ref");
  if (seen.data) quant::dequantize(a, seen);
  QuantizedMatrix a8 = widen_to_int8(a);
  permute_columns(a8, p.perm);
  gpu::Device& d = *p.dev;
  const gpu::DevQuantized da = gpu::upload(d, a8);
  gpu::DevMatrix dy = gpu::alloc_matrix(d, x.rows, y.cols);
  gpu::matmul_quantized(d, da, p.w, dy.buf, dy.ld, gemm_options(p));
  store(d, dy, y);
}

// LLM.int8: int8 part over the scheme's regular features (masked quantize of x and w, int8 GEMM) + fp32 outlier part.
void outlier_split_cl(const ClLinear& p, MatrixView x, MutableMatrixView y) {
  gpu::Device& d = *p.dev;
  const FeatureSplit f = split_features(*p.layer.weight_scheme, x, p.layer.linear_calib.get());
  std::vector<uint8_t> mask(static_cast<size_t>(x.cols), 0);
  for (int64_t j : f.outliers) mask[static_cast<size_t>(j)] = 1;
  gpu::Buffer bm(d.context(), std::max<size_t>(1, mask.size()));
  if (!mask.empty()) bm.write(d.queue(), mask.data(), mask.size());
  gpu::ActQuantSpec s = gpu::ActQuantSpec::from_params(outlier_split_params(p.outlier_bits));
  s.with_sums = false;
  const gpu::DevMatrix& wf = float_weight(p);
  if (!p.mask || *p.mask != mask) {
    p.w = gpu::quantize_rows(d, wf, s, &bm);
    p.mask = mask;
  }
  const gpu::DevMatrix dx = gpu::upload(d, x);
  const gpu::DevQuantized a = gpu::quantize_rows(d, dx, s, &bm);
  gpu::DevMatrix dy = gpu::alloc_matrix(d, x.rows, y.cols);
  gpu::matmul_quantized(d, a, p.w, dy.buf, dy.ld, gemm_options(p));
  if (!f.outliers.empty()) {
    const std::vector<int32_t> cols(f.outliers.begin(), f.outliers.end());
    gpu::Buffer bc(d.context(), cols.size() * sizeof(int32_t));
    bc.write(d.queue(), cols.data(), cols.size() * sizeof(int32_t));
    gpu::outlier_accumulate(d, dx, wf, bc, static_cast<int64_t>(cols.size()), dy.buf, dy.ld);
  }
  store(d, dy, y);
}

// ---- prepare ---------------------------------------------------------------------------------------------------

void prepare_outlier_split(ClLinear& p) {
  p.path = Path::outlier_split;
  p.outlier_bits = p.layer.weight_scheme->params().bits;
  if (p.outlier_bits != 8)
    throw std::invalid_argument("opencl backend: layer " + p.layer.layer + ": LLM.int8 with " +
                                std::to_string(p.outlier_bits) + "-bit codes has no kernel (the device's int8 part "
                                "takes 8-bit activations); use bits 8, or run it on backend cpu or ref");
  float_weight(p);
}

// The device's epilogue needs one K segment inside a group of each side (gpu::quantized_segment_length): refused here,
// before any forward, with the layer and the backends that run the pair.
void check_segments(const QuantizedLinear& layer) {
  const int64_t k = layer.codes->cols;
  const auto glen = [k](int64_t g) { return g > 0 ? std::min(g, k) : k; };
  try {
    gpu::quantized_segment_length(glen(layer.act_scheme->params().group_size), glen(layer.codes->params.group_size), k);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("opencl backend: layer " + layer.layer + ": " + e.what() +
                                "; or run this pair on backend cpu or ref");
  }
}

void prepare_int(ClLinear& p, const QuantizedLinear& layer) {
  if (!layer.codes) throw std::invalid_argument("opencl backend: layer " + layer.layer + " has no weight codes");
  const QuantizedMatrix& c = *layer.codes;
  if (!c.col_scale.empty() || !c.non_finite.empty())
    throw std::invalid_argument("opencl backend: layer " + layer.layer + ": weight codes with column scales (an "
                                "unfolded migration) or non-finite entries have no integer kernel; run it on backend ref");
  check_act_order_groups("opencl", layer);
  check_segments(layer);
  p.path = Path::int_act;
  QuantizedMatrix wc = c.params.bits == 4 ? c : widen_to_int8(c);  // W4A8 unpacks int4 in the kernel
  p.perm = wc.perm;
  wc.perm.clear();
  p.w = gpu::upload(*p.dev, wc);
  p.a16 = p.perm.empty();  // pass-through rows multiply the same codes in fp32 (matmul_a16) unless permuted
  p.passthrough_rows = layer.act_scheme->traits().activation_passthrough_rows;
  // as the ComputeBackend does: 4-bit weights run the tiled T0 kernel where T2/T3 would widen them in the VNNI packing
  if (wc.params.bits == 4 && (p.tier == gpu::Tier::t2 || p.tier == gpu::Tier::t3)) p.tier = gpu::Tier::t0;
}

void prepare_fp(ClLinear& p, const QuantizedLinear& layer) {
  p.path = Path::fp_act;
  const QuantizedMatrix* c = layer.codes;
  p.a16 = c && c->perm.empty() && c->col_scale.empty() && c->non_finite.empty();
  if (p.a16) p.w = gpu::upload(*p.dev, *c);
  else float_weight(p);
}

class OpenClBackend final : public LinearBackend {
 public:
  std::string name() const override { return "opencl"; }

  Support supports(const schemes::SchemeTraits* w, const schemes::SchemeTraits* a) const override {
    if (!gpu::default_device()) return {false, kNoDevice};
    if (auto decided = integer_weight_support(w, a)) return *decided;
    if (!a) return {};  // W·A16: matmul_a16 dequantizes every code format in registers
    if (w->codes != quant::Format::int_affine)
      return {false, std::string("no integer kernel for ") + quant::to_string(w->codes) +
                         " weight codes × int activations (weight-only " + quant::to_string(w->codes) + " runs)"};
    return integer_activation_support(*a);
  }

  std::shared_ptr<const PreparedLinear> prepare(const QuantizedLinear& layer) const override {
    auto p = std::make_shared<ClLinear>();
    p->layer = layer;
    p->layer.codes = nullptr;
    p->dev = device_or_throw();
    auto lk = p->dev->lock();
    p->tier = gpu::default_gemm_tier(*p->dev);
    const schemes::SchemeTraits wt = layer.weight_scheme ? layer.weight_scheme->traits() : schemes::SchemeTraits{};
    if (layer.weight_scheme && wt.target == schemes::Target::linear) prepare_outlier_split(*p);
    else if (layer.act_scheme) prepare_int(*p, layer);
    else prepare_fp(*p, layer);
    return p;
  }

  void linear(const PreparedLinear& prepared, MatrixView x, MutableMatrixView y, const LinearCall& call) const override {
    const auto& p = static_cast<const ClLinear&>(prepared);
    auto lk = p.dev->lock();
    if (p.path == Path::outlier_split) {
      copy_rows(x, call.input_seen);
      return outlier_split_cl(p, x, y);
    }
    if (p.path == Path::fp_act || x.rows <= p.passthrough_rows) {
      copy_rows(x, call.input_seen);
      return fp_linear(p, x, y);
    }
    int_linear_cl(p, x, y, call.input_seen);
  }

  std::vector<std::pair<std::string, std::string>> environment() const override {
    const std::shared_ptr<gpu::Device> d = gpu::default_device();
    if (!d) return {{"device", "none"}};
    const gpu::DeviceInfo& i = d->info();
    const gpu::Tier t = gpu::default_gemm_tier(*d);
    const gpu::TierState& s = d->tier(t);
    return {{"device", i.name},
            {"device_type", i.type_string()},
            {"platform", i.platform_name},
            {"driver", i.driver_version},
            {"opencl_version", i.version},
            {"tier", std::string(gpu::to_string(t)) + (s.variant.empty() ? "" : "/" + s.variant)},
            {"activations_quantized_on", "host (the activation scheme's own codes)"}};
  }
};

}  // namespace

std::shared_ptr<const LinearBackend> make_opencl_backend() { return std::make_shared<const OpenClBackend>(); }

}  // namespace qeval::model
