// eval/sweep/model_kind.hpp — the "model" run kind (model_kind.cpp; built with LibTorch): its typed run and the
// project root model paths resolve against. The executor itself is make_model_executor() in run_kinds.def.
#pragma once

#include <string>
#include <vector>

#include "eval/model/model_run.hpp"
#include "eval/sweep/run_kind.hpp"

namespace qeval::sweep {

// One model run, typed: eval/model's ModelRunSpec (model, protocol, QuantPlan of SchemeConfigs, calibration, ...)
// plus the model file's SHA-256 at planning time. What ModelExecutor::execute hands to model::run_model().
struct ModelSweepRun final : RunSpec {
  model::ModelRunSpec spec;
  std::string model_sha256;
  std::vector<std::string> axes;  // config paths of the axis values that made this run

  nlohmann::json to_json() const override;  // spec.to_json() + "kind": "model" + "model_sha256"
  nlohmann::json explain() const override;
};

// $QEVAL_ROOT, else the nearest directory above the working directory holding configs/default-model.json, else
// the source tree qeval was built from, else ".".
std::string model_project_root();

}  // namespace qeval::sweep
