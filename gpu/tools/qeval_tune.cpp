// gpu/tools/qeval_tune.cpp — standalone `qeval tune` (gpu/tuner.hpp): links only qeval_gpu, so it runs where the
// qeval CLI's libraries are absent (the lent GPU machine: reports/perf/run_opencl_gpu.sh).
#include <iostream>
#include <string>
#include <vector>

#include "gpu/tuner.hpp"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  return qeval::gpu::tune_main(args, std::cout, std::cerr);
}
