// gpu/tuner.hpp — `qeval tune` (and the standalone qeval_tune): CLBlast-style tuning of the OpenCL kernels on one
// device. For every shape class (gpu/variants.hpp) it compiles each catalogue variant, checks it bit-exact against
// the reference (quantize: every code, scale, zero point and sum of the timed shape and of a ragged one; GEMMs:
// a ragged shape in full and sampled elements of the timed shape; W4A8: the float bits of gpu/epilogue_ref.hpp),
// rejects it otherwise, times it (kernel profiling events, median), relates it to baselines measured in the same
// run (clEnqueueCopyBuffer bandwidth, the dot4 peak of bench.cl), and writes the fastest verified variant per
// class into a tuning table (gpu/tuning.hpp) keyed by device name + driver version.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gpu/variants.hpp"

namespace qeval::gpu {

struct TuneOptions {
  std::string device;              // selector ("" = $QEVAL_CL_DEVICE, else the first GPU)
  double budget_s = 120.0;         // wall-clock seconds; every class's safe default is measured regardless
  std::string out;                 // table path ("" = default_tuning_path of the device)
  std::vector<ShapeClass> classes; // empty = all
  int reps = 0;                    // timed runs per variant (0: 10 on GPUs, 2 on other devices)
};

// Runs the tuner and writes the table; returns it. Progress and the summary go to `log`. Throws
// std::runtime_error or std::invalid_argument with a one-line message for an unknown device, a missing OpenCL
// device, an unwritable table path or a bad option.
nlohmann::json run_tuner(const TuneOptions& o, std::ostream& log);

// The command line of qeval_tune (qeval tune parses the same options with CLI11, eval/cli/cmd_tune.cpp):
//   [--device D] [--budget S] [--out F] [--class NAME]... [--reps N]
// Returns the exit status: 0 = table written, 1 = error (one line "qeval tune: ..." on err), 2 = bad usage,
// 77 = no OpenCL device (CTest's skip code).
int tune_main(const std::vector<std::string>& args, std::ostream& log, std::ostream& err);

}  // namespace qeval::gpu
