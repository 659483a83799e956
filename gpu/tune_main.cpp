// gpu/tune_main.cpp — the command line of the tuner (gpu/tuner.hpp tune_main), shared by the standalone qeval_tune
// (gpu/tools/qeval_tune.cpp: no LibTorch, no BLAS — what runs on a bare GPU machine) and the summary it prints.
#include <iomanip>
#include <stdexcept>

#include "gpu/device.hpp"
#include "gpu/tuner.hpp"

namespace qeval::gpu {

namespace {

const char* kUsage =
    "usage: qeval_tune [--device D] [--budget S] [--out F] [--class NAME]... [--reps N]\n"
    "  --device D   OpenCL device: p:d index or a name substring (default: $QEVAL_CL_DEVICE, else the first GPU)\n"
    "  --budget S   wall-clock seconds for the whole run (default 120; each class's default is always measured)\n"
    "  --out F      table file (default: the cache folder, where the backend looks for this device's table)\n"
    "  --class C    only these shape classes (quantize_per_token, quantize_grouped, gemm_prefill, matmul_w4a8,\n"
    "               gemm_decode_m1, gemm_decode_m16)\n"
    "  --reps N     timed runs per variant (default 10 on GPUs, 2 elsewhere)\n";

double parse_number(const std::string& flag, const std::string& v) {
  size_t pos = 0;
  double x = 0;
  try {
    x = std::stod(v, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (pos != v.size() || v.empty()) throw std::invalid_argument(flag + " expects a number, got '" + v + "'");
  return x;
}

TuneOptions parse_options(const std::vector<std::string>& args) {
  TuneOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (i + 1 >= args.size()) throw std::invalid_argument("unknown option or missing value: " + a);
    const std::string& v = args[++i];
    if (a == "--device") o.device = v;
    else if (a == "--budget") o.budget_s = parse_number(a, v);
    else if (a == "--out") o.out = v;
    else if (a == "--class") o.classes.push_back(parse_shape_class(v));
    else if (a == "--reps") o.reps = static_cast<int>(parse_number(a, v));
    else throw std::invalid_argument("unknown option " + a);
  }
  return o;
}

}  // namespace

int tune_main(const std::vector<std::string>& args, std::ostream& log, std::ostream& err) {
  TuneOptions o;
  try {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
      log << kUsage;
      return 0;
    }
    o = parse_options(args);
  } catch (const std::exception& e) {
    err << "qeval tune: " << e.what() << "\n" << kUsage;
    return 2;
  }
  try {
    if (list_devices().empty()) {
      err << "qeval tune: no OpenCL device found (install PoCL or a GPU driver)\n";
      return 77;
    }
    run_tuner(o, log);
    return 0;
  } catch (const std::exception& e) {
    err << "qeval tune: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace qeval::gpu
