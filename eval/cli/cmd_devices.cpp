// eval/cli/cmd_devices.cpp — `qeval devices`: OpenCL platforms and devices, the tiers each supports and the
// result of each tier's known-answer probe (gpu/devices_report.hpp), saying which tier the GEMMs run on.
#include <iostream>
#include <memory>

#include "eval/cli/command.hpp"

#if QEVAL_HAVE_OPENCL
#include "gpu/devices_report.hpp"
#endif

namespace qeval::cli {

namespace {

// Exit status: 0 when at least one device was listed, 1 when none (or OpenCL is not built in).
int run_devices(bool as_json) {
#if QEVAL_HAVE_OPENCL
  return gpu::print_devices(std::cout, as_json);
#else
  std::cout << (as_json ? "{\"devices\": [], \"error\": \"built without OpenCL\"}\n"
                        : "This qeval was built without OpenCL (configure with -DQEVAL_OPENCL=ON).\n");
  return 1;
#endif
}

}  // namespace

Command add_devices_command(CLI::App& app, const Invocation&) {
  auto as_json = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand(
      "devices",
      "List OpenCL platforms and devices, the capability tiers each supports (T0 portable OpenCL C 1.2,\n"
      "T1 cl_khr_integer_dot_product, T2 cl_intel_subgroups, T3 XMX matrix multiply-accumulate, T3-emulated)\n"
      "and the result of each tier's known-answer probe; a tier whose probe fails is not used.");
  c->add_flag("--json", *as_json, "Print the list as JSON");
  return {c, [as_json] { return run_devices(*as_json); }};
}

}  // namespace qeval::cli
