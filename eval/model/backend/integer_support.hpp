// eval/model/backend/integer_support.hpp — the plan-time checks every integer-kernel backend (cpu, opencl) shares;
// each backend adds only what its own kernels differ in (which weight codes, a device).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "eval/model/backend/linear_backend.hpp"
#include "schemes/scheme.hpp"

namespace qeval::model {

// The weight side: fp weights, Target::linear schemes (only LLM.int8's outlier split runs, alone), other targets.
// A value when these decide the pair; nullopt when it is a Target::weight scheme whose codes the backend judges.
inline std::optional<Support> integer_weight_support(const schemes::SchemeTraits* w, const schemes::SchemeTraits* a) {
  using schemes::Target;
  if (!w) return Support{false, "activation quantization over fp weights has no integer kernel"};
  if (w->target == Target::linear) {
    if (!w->outlier_columns)
      return Support{false, "a Target::linear scheme without outlier columns quantizes inside its own linear() "
                            "(SmoothQuant): no integer kernel"};
    if (a) return Support{false, "an activation scheme on top of a Target::linear scheme has no integer kernel"};
    return Support{};
  }
  if (w->target != Target::weight)
    return Support{false, std::string("no kernel for target ") + schemes::to_string(w->target)};
  return std::nullopt;
}

// The activation side: a scheme that quantizes the layer's input with scales constant along the reduction axis.
inline Support integer_activation_support(const schemes::SchemeTraits& a) {
  if (a.target != schemes::Target::activation || a.activation == schemes::ActivationQuant::none)
    return {false, "the activation scheme does not quantize a linear layer's input"};
  if (a.activation_per_feature)
    return {false, "per-input-feature activation scales vary along the reduction axis: no integer kernel"};
  return {};
}

// Prepare-time (before any forward): an act-order (permuted) weight with activations in groups shorter than the row.
// Its stored column j holds input feature perm[j], so an activation group's columns are scattered over the stored
// row and no segment of the integer product lies inside one group of each side.
inline void check_act_order_groups(const std::string& backend, const QuantizedLinear& layer) {
  if (!layer.codes || layer.codes->perm.empty() || !layer.act_scheme) return;
  const int64_t g = layer.act_scheme->params().group_size, k = layer.codes->cols;
  if (g > 0 && g < k)
    throw std::invalid_argument(backend + " backend: layer " + layer.layer + ": activations in groups of " +
                                std::to_string(g) + " with an act-order (permuted) weight have no integer kernel "
                                "(the groups differ in stored order); use per-token activations (group size 0), "
                                "a weight without act-order, or run it on backend ref");
}

}  // namespace qeval::model
