// eval/cli/model_run.hpp — the "model" run kind (model_run.cpp; built with LibTorch): the project root model
// paths resolve against. The executor itself is make_model_executor() in run_kinds.def.
#pragma once

#include <string>

#include "eval/cli/run_kind.hpp"

namespace qeval::cli {

// $QEVAL_ROOT, else the nearest directory above the working directory holding configs/default-model.json, else
// the source tree qeval was built from, else ".".
std::string model_project_root();

}  // namespace qeval::cli
