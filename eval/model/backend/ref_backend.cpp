// eval/model/backend/ref_backend.cpp — the `ref` backend: fake quantization, LibTorch fp32 products (see .hpp).
#include "eval/model/backend/ref_backend.hpp"

#include <ATen/ATen.h>

#include <cstring>
#include <stdexcept>

namespace qeval::model {

namespace {

// A tensor over a view's storage (no copy). `keep` (optional) owns the storage for the tensor's lifetime.
at::Tensor tensor_of(quant::MatrixView v, std::shared_ptr<const void> keep = nullptr) {
  float* p = const_cast<float*>(v.data);
  if (!keep) return at::from_blob(p, {v.rows, v.cols}, {v.row_stride, 1}, at::kFloat);
  return at::from_blob(p, {v.rows, v.cols}, {v.row_stride, 1}, [keep](void*) {}, at::kFloat);
}

struct RefLinear final : PreparedLinear {
  QuantizedLinear layer;  // schemes, calibrations, views (codes dropped: valid only during prepare)
  at::Tensor effective;   // the dequantized codes, over layer.storage; undefined when layer.compact is kept
};

// The weight a compact layer multiplies by: its codes dequantized by its scheme into this thread's buffer (one
// layer at a time; reused across layers and calls, so no fresh pages per call), as a [rows, cols] tensor.
at::Tensor dequantized(const QuantizedLinear& L) {
  thread_local at::Tensor buffer;
  const quant::QuantizedMatrix& q = *L.compact;
  if (!buffer.defined() || buffer.numel() < q.rows * q.cols) buffer = at::empty({q.rows * q.cols}, at::kFloat);
  quant::MutableMatrixView out(buffer.data_ptr<float>(), q.rows, q.cols);
  L.weight_scheme->dequantize(q, out);
  return buffer.narrow(0, 0, q.rows * q.cols).view({q.rows, q.cols});
}

class RefBackend final : public LinearBackend {
 public:
  std::string name() const override { return "ref"; }

  // Fake quantization runs every scheme: each quantizes through its own code.
  Support supports(const schemes::SchemeTraits*, const schemes::SchemeTraits*) const override { return {}; }

  std::shared_ptr<const PreparedLinear> prepare(const QuantizedLinear& layer) const override {
    auto p = std::make_shared<RefLinear>();
    p->layer = layer;
    p->layer.codes = nullptr;
    if (layer.compact) {  // keep the codes only: the fp32 effective weight (layer.storage) is released
      p->layer.effective = quant::MatrixView();
      p->layer.weight = quant::MatrixView();  // a Target::weight scheme's linear() never reads it
      p->layer.storage = nullptr;
      return p;
    }
    p->effective = tensor_of(layer.effective, layer.storage);
    return p;
  }

  void linear(const PreparedLinear& prepared, quant::MatrixView x, quant::MutableMatrixView y,
              const LinearCall& call) const override {
    const auto& p = static_cast<const RefLinear&>(prepared);
    const QuantizedLinear& L = p.layer;
    quant::MatrixView xin = x;
    at::Tensor xq;  // the fake-quantized input, when there is an activation scheme
    if (L.act_scheme) {
      quant::MutableMatrixView out = call.input_seen;
      if (!out.data) {
        xq = at::empty({x.rows, x.cols}, at::kFloat);
        out = quant::MutableMatrixView(xq.data_ptr<float>(), x.rows, x.cols);
      }
      L.act_scheme->fake_quantize(x, out, L.act_calib.get());
      xin = out;
    } else if (call.input_seen.data) {
      for (int64_t r = 0; r < x.rows; ++r)
        std::memcpy(call.input_seen.row(r), x.row(r), static_cast<size_t>(x.cols) * sizeof(float));
    }
    if (L.weight_scheme && L.weight_scheme->linear(xin, L.weight, y, L.linear_calib.get())) return;
    at::Tensor yt = tensor_of(y);
    matmul_t_out(yt, tensor_of(xin), L.compact ? dequantized(L) : p.effective, call.order);
  }
};

}  // namespace

int64_t split_point(int64_t k) { return (k / 2) / 16 * 16; }

at::Tensor matmul_t(const at::Tensor& x, const at::Tensor& w, Reassociation order) {
  const int64_t in = x.size(1), h = split_point(in);
  if (order == Reassociation::native || h == 0) return at::mm(x, w.t());
  return at::mm(x.slice(1, 0, h), w.slice(1, 0, h).t()).add_(at::mm(x.slice(1, h, in), w.slice(1, h, in).t()));
}

void matmul_t_out(at::Tensor& y, const at::Tensor& x, const at::Tensor& w, Reassociation order) {
  const int64_t in = x.size(1), h = split_point(in);
  if (order == Reassociation::native || h == 0) {
    at::mm_out(y, x, w.t());
    return;
  }
  at::mm_out(y, x.slice(1, 0, h), w.slice(1, 0, h).t());
  y.add_(at::mm(x.slice(1, h, in), w.slice(1, h, in).t()));
}

std::shared_ptr<const LinearBackend> make_ref_backend() { return std::make_shared<const RefBackend>(); }

}  // namespace qeval::model
