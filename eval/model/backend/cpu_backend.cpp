// eval/model/backend/cpu_backend.cpp — the `cpu` backend: exact int8 GEMM per k-block + fp32 epilogue (see .hpp).
#include "eval/model/backend/cpu_backend.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>

#include "eval/model/backend/integer_support.hpp"
#include "eval/model/backend/outlier_split.hpp"
#include "quant/cpu/dispatch.hpp"
#include "quant/pack.hpp"
#include "quant/quantize.hpp"
#include "quant/ref/gemm_ref.hpp"

namespace qeval::model {

namespace {

using quant::MatrixView;
using quant::MutableMatrixView;

// ---- operands ------------------------------------------------------------------------------------------------

// The int8 value of storage code u: q = u − 2^(b−1) (symmetric) or u (asymmetric); 8-bit asymmetric shifted by −128.
struct CodeShift {
  int32_t to_q = 0;    // q = u + to_q
  int32_t to_v = 0;    // v = q − to_v
};
CodeShift code_shift(const quant::QuantParams& p) {
  CodeShift s;
  if (p.mapping == quant::Mapping::symmetric) s.to_q = -(1 << (p.bits - 1));
  if (p.mapping == quant::Mapping::asymmetric && p.bits == 8) s.to_v = 128;
  return s;
}

void unpack_values(const quant::QuantizedMatrix& q, const CodeShift& sh, std::vector<int8_t>& v) {
  v.resize(static_cast<size_t>(q.rows * q.cols));
  std::vector<uint8_t> u(static_cast<size_t>(q.cols));
  const int32_t add = sh.to_q - sh.to_v;
  for (int64_t r = 0; r < q.rows; ++r) {
    quant::unpack_codes(q.codes.data() + r * q.row_bytes(), q.cols, q.params.bits, u.data());
    int8_t* out = v.data() + r * q.cols;
    for (int64_t c = 0; c < q.cols; ++c) out[c] = static_cast<int8_t>(static_cast<int32_t>(u[c]) + add);
  }
}

// Per-thread row ranges: rows split evenly over up to hardware_concurrency threads, ≥ kMinRows rows each.
template <typename F>
void parallel_rows(int64_t rows, F&& fn) {
  constexpr int64_t kMinRows = 32;  // below this a thread's start (~20 µs) outweighs its share of the work
  const int64_t hw = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  const int64_t n = std::max<int64_t>(1, std::min(hw, rows / kMinRows));
  if (n == 1) return fn(int64_t{0}, rows);
  std::vector<std::thread> ts;
  const int64_t per = (rows + n - 1) / n;
  for (int64_t i = 1; i < n; ++i)
    ts.emplace_back([&, i] { fn(std::min(rows, i * per), std::min(rows, (i + 1) * per)); });
  fn(0, std::min(rows, per));
  for (auto& t : ts) t.join();
}

// C [m, n] (row stride n) = Σ_{k∈[k0,k1)} a.v·w.v over rows [r0, r1) of a: the fast kernel, else the reference.
void block_gemm(const IntOperand& a, const IntOperand& w, int64_t r0, int64_t r1, int64_t k0, int64_t k1,
                int32_t* c) {
  const int8_t* pa = a.v.data() + r0 * a.k + k0;
  const int8_t* pw = w.v.data() + k0;
  const cpu::FastResult fr = cpu::try_gemm_s8s8_s32(r1 - r0, w.rows, k1 - k0, pa, a.k, pw, w.k, c, w.rows);
  if (fr.status != cpu::FastStatus::done) ref::gemm_s8s8_s32_ref(r1 - r0, w.rows, k1 - k0, pa, a.k, pw, w.k, c, w.rows);
}

// Σ_{k∈[k0,k1)} v[r][k] for every row r of `o` in [r0, r1).
std::vector<int64_t> row_sums(const IntOperand& o, int64_t r0, int64_t r1, int64_t k0, int64_t k1) {
  std::vector<int64_t> s(static_cast<size_t>(r1 - r0), 0);
  for (int64_t r = r0; r < r1; ++r) {
    const int8_t* p = o.v.data() + r * o.k;
    int64_t t = 0;
    for (int64_t k = k0; k < k1; ++k) t += p[k];
    s[static_cast<size_t>(r - r0)] = t;
  }
  return s;
}

// One block's exact sums Σ (v_a − o_a)(v_w − o_w) = C − o_w·Σv_a − o_a·Σv_w + kb·o_a·o_w for rows [r0, r1) of a,
// handed to `emit(row, out, exact, group of a, group of w)`.
template <typename Emit>
void block_sums(const IntOperand& a, const IntOperand& w, int64_t r0, int64_t r1, int64_t k0, int64_t k1,
                std::vector<int32_t>& c, Emit&& emit) {
  const int64_t n = w.rows, kb = k1 - k0, ga = k0 / a.group, gw = k0 / w.group;
  c.resize(static_cast<size_t>((r1 - r0) * n));
  block_gemm(a, w, r0, r1, k0, k1, c.data());
  const bool oa = !a.offset.empty(), ow = !w.offset.empty();
  const std::vector<int64_t> sa = ow ? row_sums(a, r0, r1, k0, k1) : std::vector<int64_t>();
  const std::vector<int64_t> sw = oa ? row_sums(w, 0, n, k0, k1) : std::vector<int64_t>();
  for (int64_t r = r0; r < r1; ++r) {
    const int32_t* cr = c.data() + (r - r0) * n;
    const int64_t za = oa ? a.offset[static_cast<size_t>(r * a.groups + ga)] : 0;
    for (int64_t o = 0; o < n; ++o) {
      int64_t e = cr[o];
      if (oa || ow) {
        const int64_t zw = ow ? w.offset[static_cast<size_t>(o * w.groups + gw)] : 0;
        e -= (ow ? zw * sa[static_cast<size_t>(r - r0)] : 0) + (oa ? za * sw[static_cast<size_t>(o)] : 0);
        e += kb * za * zw;
      }
      emit(r, o, e, ga, gw);
    }
  }
}

void check_pair(const IntOperand& a, const IntOperand& w) {
  if (a.k != w.k)
    throw std::invalid_argument("cpu backend: activation width " + std::to_string(a.k) +
                                " does not match the weight's input width " + std::to_string(w.k));
}

}  // namespace

IntOperand int_operand(const quant::QuantizedMatrix& q) {
  if (q.format != quant::Format::int_affine)
    throw std::invalid_argument(std::string("cpu backend: no integer kernel for ") + quant::to_string(q.format) +
                                " codes (int_affine only; run it on backend ref)");
  if (!q.col_scale.empty() || !q.non_finite.empty())
    throw std::invalid_argument("cpu backend: codes with column scales (an unfolded migration) or non-finite "
                                "entries have no integer kernel; run them on backend ref");
  IntOperand o;
  o.rows = q.rows;
  o.k = q.cols;
  o.group = std::max<int64_t>(1, q.params.group_length(q.cols));
  o.groups = q.params.group_size > 0 ? q.params.groups_per_row(q.cols) : 1;
  const CodeShift sh = code_shift(q.params);
  unpack_values(q, sh, o.v);
  const bool asym = q.params.mapping == quant::Mapping::asymmetric;
  o.scale.resize(static_cast<size_t>(o.rows * o.groups));
  if (asym) o.offset.resize(o.scale.size());
  for (int64_t r = 0; r < o.rows; ++r)
    for (int64_t j = 0; j < o.groups; ++j) {
      const auto gi = static_cast<size_t>(q.group_index(r, j * o.group));
      const auto oi = static_cast<size_t>(r * o.groups + j);
      o.scale[oi] = q.scales[gi];
      if (asym) o.offset[oi] = q.zero_points[gi] - sh.to_v;
    }
  return o;
}

std::vector<int64_t> block_edges(int64_t k, int64_t group_a, int64_t group_w) {
  std::vector<int64_t> e = {0, k};
  for (int64_t g : {group_a, group_w})
    for (int64_t b = g; g > 0 && b < k; b += g) e.push_back(b);
  std::sort(e.begin(), e.end());
  e.erase(std::unique(e.begin(), e.end()), e.end());
  if (k == 0) e.resize(1);
  return e;
}

std::vector<int64_t> exact_block_sums(const IntOperand& a, const IntOperand& w) {
  check_pair(a, w);
  const std::vector<int64_t> edges = block_edges(a.k, a.group, w.group);
  const int64_t m = a.rows, n = w.rows;
  std::vector<int64_t> out(static_cast<size_t>((edges.size() - 1) * m * n));
  std::vector<int32_t> c;
  for (size_t b = 0; b + 1 < edges.size(); ++b)
    block_sums(a, w, 0, m, edges[b], edges[b + 1], c, [&](int64_t r, int64_t o, int64_t e, int64_t, int64_t) {
      out[static_cast<size_t>((static_cast<int64_t>(b) * m + r) * n + o)] = e;
    });
  return out;
}

void int_linear(const IntOperand& a, const IntOperand& w, MutableMatrixView y) {
  check_pair(a, w);
  if (y.rows != a.rows || y.cols != w.rows)
    throw std::invalid_argument("cpu backend: output is " + std::to_string(y.rows) + "x" + std::to_string(y.cols) +
                                ", expected " + std::to_string(a.rows) + "x" + std::to_string(w.rows));
  const std::vector<int64_t> edges = block_edges(a.k, a.group, w.group);
  parallel_rows(a.rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::fill(y.row(r), y.row(r) + y.cols, 0.0f);
    std::vector<int32_t> c;
    for (size_t b = 0; b + 1 < edges.size(); ++b)
      block_sums(a, w, r0, r1, edges[b], edges[b + 1], c,
                 [&](int64_t r, int64_t o, int64_t e, int64_t ga, int64_t gw) {
                   const float s = a.scale[static_cast<size_t>(r * a.groups + ga)] *
                                   w.scale[static_cast<size_t>(o * w.groups + gw)];
                   y(r, o) += s * static_cast<float>(e);
                 });
  });
}

namespace {

// ---- the backend ---------------------------------------------------------------------------------------------

enum class Path : uint8_t { int_act, fp_act, outlier_split };

struct CpuLinear final : PreparedLinear {
  QuantizedLinear layer;          // schemes, calibrations, views (codes dropped: valid only during prepare)
  Path path = Path::fp_act;
  IntOperand w;                   // int_act: the weight's codes as int8
  std::vector<int32_t> perm;      // int_act: stored column j holds input feature perm[j] (GPTQ act-order)
  int64_t passthrough_rows = -1;  // int_act: inputs of at most this many rows are multiplied in fp32
  int outlier_bits = 8;           // outlier_split: code width of the regular part
};

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;

// y = x · effᵀ in fp32 (Eigen's GEMM).
void fp_linear(MatrixView x, MatrixView eff, MutableMatrixView y) {
  Eigen::Map<const RowMajor, 0, Stride> X(x.data, x.rows, x.cols, Stride(x.row_stride));
  Eigen::Map<const RowMajor, 0, Stride> W(eff.data, eff.rows, eff.cols, Stride(eff.row_stride));
  Eigen::Map<RowMajor, 0, Stride> Y(y.data, y.rows, y.cols, Stride(y.row_stride));
  Y.noalias() = X * W.transpose();
}

// What the product multiplied: scale · (v − offset), the values the activation scheme's fake_quantize writes.
void write_seen(const IntOperand& a, MutableMatrixView out) {
  if (!out.data) return;
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t c = 0; c < a.k; ++c) {
      const auto gi = static_cast<size_t>(r * a.groups + c / a.group);
      const int32_t q = a.v[static_cast<size_t>(r * a.k + c)] - (a.offset.empty() ? 0 : a.offset[gi]);
      out(r, c) = quant::dequantize_one(q, quant::GroupParams{a.scale[gi], 0.0f, 0});
    }
}

// The activation's columns in the weight's stored order (GPTQ act-order): column j ← feature perm[j].
void permute_columns(IntOperand& a, const std::vector<int32_t>& perm) {
  if (perm.empty()) return;
  if (a.groups != 1)
    throw std::invalid_argument("cpu backend: grouped activations with an act-order (permuted) weight have no "
                                "integer kernel (their groups differ in stored order); run it on backend ref");
  std::vector<int8_t> row(static_cast<size_t>(a.k));
  for (int64_t r = 0; r < a.rows; ++r) {
    int8_t* p = a.v.data() + r * a.k;
    for (int64_t j = 0; j < a.k; ++j) row[static_cast<size_t>(j)] = p[perm[static_cast<size_t>(j)]];
    std::memcpy(p, row.data(), row.size());
  }
}

// The codes of the columns `cols` of m, one group per row (LLM.int8's vector-wise quantization: outlier_split_params).
IntOperand row_codes(MatrixView m, const std::vector<int64_t>& cols, int bits) {
  quant::Matrix sub(m.rows, static_cast<int64_t>(cols.size()));
  for (int64_t r = 0; r < m.rows; ++r)
    for (size_t j = 0; j < cols.size(); ++j) sub(r, static_cast<int64_t>(j)) = m(r, cols[j]);
  return int_operand(quant::quantize_affine(sub.view(), outlier_split_params(bits)));
}

// LLM.int8: y = int8 part over the regular features + Σ_{j∈outliers} x_j·w_j (accumulated in double, added once).
void outlier_split(const CpuLinear& p, MatrixView x, MutableMatrixView y) {
  const QuantizedLinear& L = p.layer;
  const FeatureSplit f = split_features(*L.weight_scheme, x, L.linear_calib.get());
  int_linear(row_codes(x, f.regular, p.outlier_bits), row_codes(L.weight, f.regular, p.outlier_bits), y);
  if (f.outliers.empty()) return;
  parallel_rows(x.rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t o = 0; o < y.cols; ++o) {
        double v = 0.0;
        for (int64_t j : f.outliers) v += static_cast<double>(x(r, j)) * static_cast<double>(L.weight(o, j));
        y(r, o) += static_cast<float>(v);
      }
  });
}

class CpuBackend final : public LinearBackend {
 public:
  std::string name() const override { return "cpu"; }
  std::vector<std::pair<std::string, std::string>> environment() const override {
    return {{"gemm_isa", cpu::active_gemm_isa()}};
  }

  Support supports(const schemes::SchemeTraits* w, const schemes::SchemeTraits* a) const override {
    if (auto decided = integer_weight_support(w, a)) return *decided;
    if (w->codes != quant::Format::int_affine)
      return {false, std::string("no integer kernel for ") + quant::to_string(w->codes) + " weight codes"};
    return a ? integer_activation_support(*a) : Support{};
  }

  std::shared_ptr<const PreparedLinear> prepare(const QuantizedLinear& layer) const override {
    auto p = std::make_shared<CpuLinear>();
    p->layer = layer;
    p->layer.codes = nullptr;
    const schemes::SchemeTraits wt = layer.weight_scheme ? layer.weight_scheme->traits() : schemes::SchemeTraits{};
    if (layer.weight_scheme && wt.target == schemes::Target::linear) {
      p->path = Path::outlier_split;
      p->outlier_bits = layer.weight_scheme->params().bits;
    } else if (layer.act_scheme) {
      if (!layer.codes) throw std::invalid_argument("cpu backend: layer " + layer.layer + " has no weight codes");
      check_act_order_groups("cpu", layer);
      p->path = Path::int_act;
      p->w = int_operand(*layer.codes);
      p->perm = layer.codes->perm;
      p->passthrough_rows = layer.act_scheme->traits().activation_passthrough_rows;
    }
    return p;
  }

  void linear(const PreparedLinear& prepared, MatrixView x, MutableMatrixView y, const LinearCall& call) const override {
    const auto& p = static_cast<const CpuLinear&>(prepared);
    const QuantizedLinear& L = p.layer;
    if (p.path == Path::outlier_split) {
      copy_rows(x, call.input_seen);
      return outlier_split(p, x, y);
    }
    if (p.path == Path::fp_act || x.rows <= p.passthrough_rows) {
      copy_rows(x, call.input_seen);
      return fp_linear(x, L.effective, y);
    }
    IntOperand a = int_operand(L.act_scheme->quantize(x, L.act_calib.get()));
    write_seen(a, call.input_seen);
    permute_columns(a, p.perm);
    int_linear(a, p.w, y);
  }
};

}  // namespace

std::shared_ptr<const LinearBackend> make_cpu_backend() { return std::make_shared<const CpuBackend>(); }

}  // namespace qeval::model
