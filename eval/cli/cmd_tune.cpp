// eval/cli/cmd_tune.cpp — `qeval tune`: times every kernel variant of the OpenCL backend on one device, keeps the
// fastest verified one per shape class, and writes the device's tuning table (gpu/tuner.hpp; qeval_tune is the same
// without the rest of the CLI).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "eval/cli/command.hpp"

#if QEVAL_HAVE_OPENCL
#include "gpu/tuner.hpp"
#endif

namespace qeval::cli {

namespace {

struct TuneArgs {
  std::string device, out, budget = "120", reps;
  std::vector<std::string> classes;
};

// Exit status: 0 table written, 1 error, 2 bad option, 77 no OpenCL device.
int run_tune(const TuneArgs& a) {
#if QEVAL_HAVE_OPENCL
  std::vector<std::string> args{"--budget", a.budget};
  if (!a.device.empty()) args.insert(args.end(), {"--device", a.device});
  if (!a.out.empty()) args.insert(args.end(), {"--out", a.out});
  if (!a.reps.empty()) args.insert(args.end(), {"--reps", a.reps});
  for (const std::string& c : a.classes) args.insert(args.end(), {"--class", c});
  return gpu::tune_main(args, std::cout, std::cerr);
#else
  (void)a;
  std::cerr << "qeval tune: this qeval was built without OpenCL (configure with -DQEVAL_OPENCL=ON)\n";
  return 1;
#endif
}

}  // namespace

Command add_tune_command(CLI::App& app, const Invocation&) {
  auto a = std::make_shared<TuneArgs>();
  CLI::App* c = app.add_subcommand(
      "tune",
      "Tune the OpenCL kernels on one device (CLBlast's approach): compile every variant of each kernel\n"
      "(work-group shape, tile, vector width, rows per work-group, loads in flight, local-memory staging,\n"
      "reduction), reject any that is not bit-exact against the reference, time the rest against the copy\n"
      "bandwidth and dot4 peak measured in the same run, and write the fastest per shape class into the\n"
      "device's tuning table, which the OpenCL backend then reads (gpu/tuning.hpp).");
  c->add_option("--device", a->device, "p:d index or name substring (default: $QEVAL_CL_DEVICE, else the first GPU)");
  c->add_option("--budget", a->budget, "Wall-clock seconds for the whole run (default 120)");
  c->add_option("--out", a->out, "Table file (default: the cache folder the backend reads)");
  c->add_option("--class", a->classes, "Only these shape classes (repeatable)");
  c->add_option("--reps", a->reps, "Timed runs per variant (default 10 on GPUs, 2 elsewhere)");
  return {c, [a] { return run_tune(*a); }};
}

}  // namespace qeval::cli
