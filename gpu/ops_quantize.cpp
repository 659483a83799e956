// gpu/ops_quantize.cpp — host glue of dynamic quantization (quantize.cl quantize_codes): the kernel variant and
// launch geometry, the device- or host-computed group parameters, and the non-finite policy.
#include <cmath>
#include <limits>
#include <stdexcept>

#include "gpu/ops.hpp"
#include "gpu/ops_internal.hpp"
#include "gpu/tuning.hpp"
#include "quant/choose_qparams.hpp"
#include "quant/quantize.hpp"
#include "quant/ref/quantize_ref.hpp"

namespace qeval::gpu {

using detail::ceil_div;
using detail::check_int;
using detail::launch;
using detail::next_pow2;
using detail::opt;
using detail::round_up;
using quant::Mapping;

bool group_params_on_device(const DeviceInfo& i) { return i.fp64 && i.correctly_rounded_div; }

namespace {

// Elements a work-item keeps in registers between the range and the code pass before the launch widens the
// segment's thread count instead (64 floats: registers, not spills, on GPUs).
constexpr int64_t kMaxElemsPerThread = 64;
constexpr int kMaxVectorsPerThread = 128;  // the kernel's hard limit (QEVAL_MAX_NV)

// How one quantize_codes launch covers the rows: threads per segment, vectors per thread, work-group size.
struct QuantizeLaunch {
  QuantizeVariant v;
  int tps = 1, nv = 1, max_nv = 1;
  int64_t glen = 0, gpr = 0;
  int spw() const { return v.lws / tps; }  // segments per work-group
};

// The vector width must divide the row stride, the row length and the group length: quantize.cl's vector loads
// and stores are then aligned (buffers are 128-byte aligned).
QuantizeLaunch plan_quantize(const QuantizeVariant& v_in, int64_t ld, int64_t cols, int64_t glen, int64_t gpr) {
  QuantizeLaunch l;
  l.v = v_in;
  while (l.v.vec > 1 && (ld % l.v.vec != 0 || cols % l.v.vec != 0 || glen % l.v.vec != 0))
    l.v.vec = l.v.vec == 8 ? 4 : 1;
  l.glen = glen;
  l.gpr = gpr;
  const int64_t nvec = ceil_div(glen, l.v.vec);
  int tps = std::min<int>(std::min(l.v.tps, l.v.lws), next_pow2(nvec));
  while (tps < l.v.lws && ceil_div(nvec, tps) * l.v.vec > kMaxElemsPerThread) tps *= 2;
  l.tps = tps;
  l.nv = static_cast<int>(ceil_div(nvec, tps));
  l.max_nv = next_pow2(l.nv);
  if (l.nv > kMaxVectorsPerThread)
    throw std::invalid_argument("quantize_rows: a group of " + std::to_string(glen) +
                                " elements exceeds the kernel's limit of " +
                                std::to_string(int64_t{l.v.lws} * kMaxVectorsPerThread * l.v.vec) +
                                "; use a group size");
  return l;
}

QuantizeVariant table_or_default(Device& d, int64_t gpr, const QuantizeVariant* variant) {
  if (variant) return *variant;
  const ShapeClass c = gpr == 1 ? ShapeClass::quantize_per_token : ShapeClass::quantize_grouped;
  if (std::optional<QuantizeVariant> t = d.tuning().quantize_for(c)) return *t;
  return default_quantize_variant();
}

std::string quantize_options(const QuantizeLaunch& l, const Device& d, ElemType t) {
  return l.v.defines() + " -DQEVAL_MAX_NV=" + std::to_string(l.max_nv) +
         " -DQEVAL_IN_HALF=" + std::string(t == ElemType::f16 ? "1" : "0") +
         (group_params_on_device(d.info()) ? " -DQEVAL_PARAMS_DEVICE=1" : "");
}

float half_to_float(uint16_t h) {
  // exact binary16 → binary32 (only used to locate non-finite values for error messages)
  const uint32_t s = (h >> 15) & 1u, e = (h >> 10) & 31u, m = h & 1023u;
  float v;
  if (e == 31) v = m ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else if (e == 0) v = std::ldexp(static_cast<float>(m), -24);
  else v = std::ldexp(static_cast<float>(m + 1024), static_cast<int>(e) - 25);
  return s ? -v : v;
}

// Row r of x as floats (host copy; error paths only).
std::vector<float> read_row(Device& d, const DevMatrix& x, int64_t r) {
  std::vector<float> out(static_cast<size_t>(x.cols));
  if (x.type == ElemType::f32) {
    x.buf.read(d.queue(), out.data(), out.size() * 4, static_cast<size_t>(r * x.ld) * 4);
  } else {
    std::vector<uint16_t> h(out.size());
    x.buf.read(d.queue(), h.data(), h.size() * 2, static_cast<size_t>(r * x.ld) * 2);
    for (size_t i = 0; i < h.size(); ++i) out[i] = half_to_float(h[i]);
  }
  return out;
}

// The arguments of one quantize_codes launch besides the options.
struct QuantizeArgs {
  const DevMatrix* x;
  const ActQuantSpec* s;
  const DevQuantized* q;
  const Buffer* out_codes;
  int out_row_bytes;
  bool packed;
  const Buffer* col_mask;
  const Buffer* nonfinite;
};

void launch_quantize_codes(Device& d, const QuantizeLaunch& l, const QuantizeArgs& a, const std::string& opts,
                           cl_mem minmax, Event* ev) {
  cl_kernel k = d.kernel("quantize.cl", opts, "quantize_codes");
  const ActQuantSpec& s = *a.s;
  cl_uint i = 0;
  set_arg(k, i++, a.x->buf);
  for (int64_t v : {a.x->rows, a.x->cols, a.x->ld, l.glen, l.gpr}) set_arg(k, i++, static_cast<int>(v));
  set_arg(k, i++, s.bits);
  set_arg(k, i++, s.mapping == Mapping::asymmetric ? 1 : 0);
  set_arg(k, i++, static_cast<int>(s.rounding));  // nearest_even 0, nearest_away 1, toward_zero 2 (quantize.cl)
  if (d.info().fp64) set_arg(k, i++, s.clip_ratio);
  else set_arg(k, i++, static_cast<float>(s.clip_ratio));
  set_arg(k, i++, l.tps);
  set_arg(k, i++, l.nv);
  set_arg(k, i++, *a.out_codes);
  set_arg(k, i++, a.out_row_bytes);
  set_arg(k, i++, a.packed ? 1 : 0);
  set_arg(k, i++, a.q->scales);
  set_arg(k, i++, opt(a.q->zps));
  set_arg(k, i++, opt(a.q->sums));
  set_arg(k, i++, opt(a.col_mask));
  set_arg(k, i++, *a.nonfinite);
  set_arg(k, i++, minmax);
  for (int j = 0; j < 3; ++j) set_arg(k, i++, LocalBytes{static_cast<size_t>(l.v.lws) * 4});
  const int64_t nseg = a.x->rows * l.gpr;
  launch(d, k, static_cast<size_t>(ceil_div(nseg, l.spw())) * static_cast<size_t>(l.v.lws), 1,
         static_cast<size_t>(l.v.lws), 1, ev, "quantize_codes");
}

// Devices that cannot replicate the reference's divisions: the device's min/max (first launch), the parameters
// by quant::group_params_from_range on the host, the codes (second launch).
void quantize_with_host_params(Device& d, const QuantizeLaunch& l, const QuantizeArgs& a, const std::string& opts,
                               Event* ev) {
  const ActQuantSpec& s = *a.s;
  const int64_t nseg = a.x->rows * l.gpr;
  Buffer mm(d.context(), static_cast<size_t>(nseg) * 8);
  launch_quantize_codes(d, l, a, opts, mm.get(), nullptr);
  std::vector<float> lohi(static_cast<size_t>(nseg) * 2), sc(static_cast<size_t>(nseg));
  std::vector<int32_t> zp(static_cast<size_t>(nseg));
  mm.read(d.queue(), lohi.data(), lohi.size() * 4);
  for (int64_t i = 0; i < nseg; ++i) {
    const quant::ClipRange c = quant::clip_min_max(lohi[2 * i], lohi[2 * i + 1], s.clip_ratio);
    const quant::GroupParams g = quant::group_params_from_range(c.lo, c.hi, s.bits, s.mapping);
    sc[i] = g.scale;
    zp[i] = g.zero_point;
    lohi[2 * i] = g.inv_scale;
  }
  a.q->scales.write(d.queue(), sc.data(), sc.size() * 4);
  if (s.mapping == Mapping::asymmetric) a.q->zps.write(d.queue(), zp.data(), zp.size() * 4);
  mm.write(d.queue(), lohi.data(), lohi.size() * 4);
  launch_quantize_codes(d, l, a, opts + " -DQEVAL_PARAMS_IN=1", mm.get(), ev);
}

// The kernel counted non-finite inputs (outside masked columns). Error policy → the reference's exception for
// the first one in row-major order; propagate → list them like the reference does.
void apply_non_finite_policy(Device& d, const DevMatrix& x, const ActQuantSpec& s, const Buffer* col_mask,
                             const Buffer& nonfinite, DevQuantized& q) {
  int32_t bad = 0;
  nonfinite.read(d.queue(), &bad, 4);
  if (bad == 0) return;
  std::vector<uint8_t> mask;
  if (col_mask && *col_mask) {
    mask.resize(static_cast<size_t>(x.cols));
    col_mask->read(d.queue(), mask.data(), mask.size());
  }
  std::vector<int64_t> idx;
  for (int64_t r = 0; r < x.rows; ++r) {
    const std::vector<float> row = read_row(d, x, r);
    for (int64_t c = 0; c < x.cols; ++c) {
      if (std::isfinite(row[static_cast<size_t>(c)]) || (!mask.empty() && mask[static_cast<size_t>(c)])) continue;
      if (s.non_finite == quant::NonFinitePolicy::error)
        throw quant::NonFiniteError(ref::non_finite_message("quantize_affine input", r, c, row[static_cast<size_t>(c)]));
      idx.push_back(r * x.cols + c);
    }
  }
  q.n_non_finite = static_cast<int64_t>(idx.size());
  q.non_finite = Buffer(d.context(), idx.size() * sizeof(int64_t));
  q.non_finite.write(d.queue(), idx.data(), idx.size() * sizeof(int64_t));
}

DevQuantized allocate_quantized(Device& d, const DevMatrix& x, const ActQuantSpec& s, const quant::QuantParams& p) {
  DevQuantized q;
  q.format = quant::Format::int_affine;
  q.params = p;
  q.rows = x.rows;
  q.cols = x.cols;
  q.row_bytes = (x.cols * s.bits + 7) / 8;
  q.glen = s.group_size > 0 ? s.group_size : x.cols;
  q.gpr = x.cols == 0 ? 1 : ceil_div(x.cols, q.glen);  // ceil: a partial last group (partial_last_group)
  const size_t nseg = static_cast<size_t>(x.rows * q.gpr);
  q.codes = Buffer(d.context(), static_cast<size_t>(x.rows * q.row_bytes));
  q.scales = Buffer(d.context(), nseg * 4);
  if (s.mapping == Mapping::asymmetric) q.zps = Buffer(d.context(), nseg * 4);
  if (s.with_sums) q.sums = Buffer(d.context(), nseg * 4);
  return q;
}

}  // namespace

QuantizeVariant quantize_variant_for(Device& d, const DevMatrix& x, const ActQuantSpec& s,
                                     const QuantizeVariant* variant) {
  const int64_t glen = s.group_size > 0 ? s.group_size : x.cols;
  const int64_t gpr = x.cols == 0 ? 1 : ceil_div(x.cols, glen);
  return plan_quantize(table_or_default(d, gpr, variant), x.ld, x.cols, glen, gpr).v;
}

DevQuantized quantize_rows(Device& d, const DevMatrix& x, const ActQuantSpec& s, const Buffer* col_mask, Event* ev,
                           const QuantizeVariant* variant) {
  s.to_params().validate();
  if (s.group_size == quant::kPerTensor)
    throw std::invalid_argument("quantize_rows: group_size -1 (per tensor) is not supported on OpenCL");
  if (!(s.clip_ratio > 0.0 && s.clip_ratio <= 1.0))
    throw std::invalid_argument("quantize_rows: clip_ratio must be in (0, 1]");
  const quant::QuantParams p = s.to_params();
  p.validate_for_row_length(x.cols);
  check_int(x.rows * x.ld, "rows × ld");
  if (variant && !variant_unfit(*variant, d.info()).empty())
    throw std::invalid_argument("quantize_rows: variant " + variant->name() + ": " + variant_unfit(*variant, d.info()));
  auto lk = d.lock();
  DevQuantized q = allocate_quantized(d, x, s, p);
  if (x.rows == 0 || x.cols == 0) return q;

  const QuantizeLaunch l = plan_quantize(table_or_default(d, q.gpr, variant), x.ld, x.cols, q.glen, q.gpr);
  // int8 and vector-aligned int4 are written in place; other widths one code per byte, then packed.
  const bool direct = s.bits == 8 || (s.bits == 4 && l.v.vec >= 4);
  Buffer tmp;
  if (!direct) tmp = Buffer(d.context(), static_cast<size_t>(x.rows * x.cols));
  Buffer nonfinite(d.context(), 4);
  nonfinite.fill_bytes(d.queue(), 0);
  const QuantizeArgs a{&x, &s, &q, direct ? &q.codes : &tmp, static_cast<int>(direct ? q.row_bytes : x.cols),
                       direct, col_mask, &nonfinite};
  const std::string opts = quantize_options(l, d, x.type);
  if (group_params_on_device(d.info())) launch_quantize_codes(d, l, a, opts, nullptr, ev);
  else quantize_with_host_params(d, l, a, opts, ev);
  if (!direct) {
    cl_kernel k = d.kernel("quantize.cl", opts, "pack_rows");
    set_args(k, tmp, static_cast<int>(x.rows), static_cast<int>(x.cols), s.bits, q.codes,
             static_cast<int>(q.row_bytes));
    launch(d, k, round_up(q.row_bytes, 64), static_cast<size_t>(x.rows), 64, 1, nullptr, "pack_rows");
  }
  apply_non_finite_policy(d, x, s, col_mask, nonfinite, q);
  return q;
}

}  // namespace qeval::gpu
