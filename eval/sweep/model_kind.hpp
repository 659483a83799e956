// eval/sweep/model_kind.hpp — the "model" run kind (model_run.cpp; built with LibTorch): the project root model
// paths resolve against. The executor itself is make_model_executor() in run_kinds.def.
#pragma once

#include <string>

#include "eval/sweep/run_kind.hpp"

namespace qeval::sweep {

// $QEVAL_ROOT, else the nearest directory above the working directory holding configs/default-model.json, else
// the source tree qeval was built from, else ".".
std::string model_project_root();

}  // namespace qeval::sweep
