// eval/cli/cmd_devices.cpp — `qeval devices`: OpenCL platforms and devices, the tiers each supports and the
// result of each tier's known-answer probe (eval/cli/devices_report.hpp), saying which tier the GEMMs run on. Listing
// compiles nothing (cached probe results); --probe probes the device in use.
#include <iostream>
#include <memory>

#include "eval/cli/command.hpp"

#if QEVAL_HAVE_OPENCL
#include "eval/cli/devices_report.hpp"
#endif

namespace qeval::cli {

namespace {

struct DevicesArgs {
  bool as_json = false;
#if QEVAL_HAVE_OPENCL
  DevicesOptions opts;
#endif
};

// Exit status: 0 when at least one device was listed, 1 when none (or OpenCL is not built in).
int run_devices(const DevicesArgs& a) {
#if QEVAL_HAVE_OPENCL
  return print_devices(std::cout, a.as_json, a.opts);
#else
  std::cout << (a.as_json ? "{\"devices\": [], \"error\": \"built without OpenCL\"}\n"
                          : "This qeval was built without OpenCL (configure with -DQEVAL_OPENCL=ON).\n");
  return 1;
#endif
}

}  // namespace

Command add_devices_command(CLI::App& app, const Invocation&) {
  auto a = std::make_shared<DevicesArgs>();
  CLI::App* c = app.add_subcommand(
      "devices",
      "List OpenCL platforms and devices, the capability tiers each supports (T0 portable OpenCL C 1.2,\n"
      "T1 cl_khr_integer_dot_product, T2 cl_intel_subgroups, T3 XMX matrix multiply-accumulate, T3-emulated)\n"
      "and the result of each tier's known-answer probe; a tier whose probe fails is not used.\n"
      "Listing compiles nothing: probe results come from the cache (QEVAL_CL_CACHE_DIR, default\n"
      "~/.cache/qeval/opencl); --probe probes the device in use now.");
  c->add_flag("--json", a->as_json, "Print the list as JSON");
#if QEVAL_HAVE_OPENCL
  c->add_flag("--probe", a->opts.probe, "Probe every supported tier of the device in use (compiles kernels)");
  c->add_option("--device", a->opts.device,
                "Device to probe: p:d index or a name substring (default: $QEVAL_CL_DEVICE, else the first GPU)");
#endif
  return {c, [a] { return run_devices(*a); }};
}

}  // namespace qeval::cli
