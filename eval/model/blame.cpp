// eval/model/blame.cpp — per-layer blame of a quantize_model result: each quantized layer's output SQNR on the fp
// model's inputs (quantize_model.hpp).
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "eval/model/model_util.hpp"
#include "eval/model/quantize_model.hpp"

namespace qeval::model {

nlohmann::json BlameEntry::to_json() const {
  return {{"layer", layer},
          {"scheme", scheme},
          {"act_scheme", act_scheme},
          {"bits_per_weight", bits_per_weight},
          {"weight_sqnr_db", finite_or_null(weight_sqnr_db)},
          {"output_sqnr_db", finite_or_null(output_sqnr_db)}};
}

double OutputError::sqnr_db() const {
  return err > 0 ? 10.0 * std::log10(sig / err) : std::numeric_limits<double>::infinity();
}

std::map<std::string, OutputError> quantized_output_errors(LlamaModel& m, const std::function<void()>& run,
                                                           const std::shared_ptr<std::atomic<bool>>& kv_enabled) {
  std::map<std::string, OutputError> acc;
  struct Scope {
    LlamaModel& m;
    const std::shared_ptr<std::atomic<bool>>& kv;
    ~Scope() {
      m.set_observer(nullptr);
      m.set_bypass_plan(false);
      if (kv) kv->store(true);
    }
  } scope{m, kv_enabled};
  if (kv_enabled) kv_enabled->store(false);
  m.set_bypass_plan(true);
  m.set_observer([&](const LinearLayer& L, const at::Tensor& x, const at::Tensor& y) {
    if (!L.prepared) return;
    const at::Tensor yq = m.quantized_product(L, x);
    const at::Tensor yd = y.to(at::kDouble);
    OutputError& a = acc[L.name];
    a.sig += yd.pow(2).sum().item<double>();
    a.err += (yd - yq.to(at::kDouble)).pow(2).sum().item<double>();
  });
  run();
  return acc;
}

std::vector<BlameEntry> blame_layers(LlamaModel& m, const QuantizedModel& q, const std::vector<int32_t>& tokens,
                                     int64_t n_ctx, int64_t windows, int64_t batch) {
  if (n_ctx <= 0 || tokens.size() % static_cast<size_t>(n_ctx) != 0)
    throw std::invalid_argument("blame_layers: " + std::to_string(tokens.size()) + " tokens are not windows of " +
                                std::to_string(n_ctx));
  const int64_t nW = std::min<int64_t>(windows, static_cast<int64_t>(tokens.size()) / n_ctx);
  const int64_t step = std::max<int64_t>(1, batch);
  const auto acc = quantized_output_errors(m, [&] {
    for (int64_t b0 = 0; b0 < nW; b0 += step) {
      const int64_t nb = std::min<int64_t>(step, nW - b0);
      const at::Tensor tok =
          at::from_blob(const_cast<int32_t*>(tokens.data() + b0 * n_ctx), {nb, n_ctx}, at::kInt).to(at::kLong);
      (void)m.forward(tok);
    }
  }, q.kv_enabled);
  std::vector<BlameEntry> outv;
  for (const auto& l : q.layers) {
    auto it = acc.find(l.layer);
    if (it == acc.end()) continue;
    BlameEntry b;
    b.layer = l.layer;
    b.scheme = l.scheme;
    b.act_scheme = l.act_scheme;
    b.bits_per_weight = l.role == "act" ? 32.0 : l.bits_per_weight;
    b.weight_sqnr_db = l.weight_sqnr_db;
    b.output_sqnr_db = it->second.sqnr_db();
    outv.push_back(b);
  }
  std::stable_sort(outv.begin(), outv.end(),
                   [](const BlameEntry& a, const BlameEntry& b) { return a.output_sqnr_db < b.output_sqnr_db; });
  return outv;
}

}  // namespace qeval::model
