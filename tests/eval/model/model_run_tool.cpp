// tests/eval/model/model_run_tool.cpp — runs model-run specs (eval/model/model_run.hpp) from JSON files and writes
// the results: the stand-in for `qeval sweep` with the "model" run kind until the CLI wires run_model() in.
//
//   model_run_tool [--root DIR] [--cache DIR] [--no-progress] [-o results.json] spec.json [spec.json ...]
// A spec file holds one spec object or an array of them; runs share one ModelRunContext (one loaded model, one fp
// reference per protocol). Output: {"runs": [{"spec": ..., "result": ...}, ...]}; a summary line per run on stdout.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/model/model_run.hpp"

int main(int argc, char** argv) {
  std::string root = QEVAL_SOURCE_DIR, cache = qeval::model::default_cache_dir(), out;
  bool progress = true;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&](const char* what) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs %s\n", a.c_str(), what);
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (a == "--root") root = next("a directory");
    else if (a == "--cache") cache = next("a directory");
    else if (a == "-o") out = next("a file");
    else if (a == "--no-progress") progress = false;
    else if (a == "-h" || a == "--help") {
      std::printf("usage: %s [--root DIR] [--cache DIR] [--no-progress] [-o results.json] spec.json...\n", argv[0]);
      return 0;
    } else files.push_back(a);
  }
  if (files.empty()) {
    std::fprintf(stderr, "no spec files (see --help)\n");
    return 2;
  }
  try {
    qeval::model::ModelRunContext ctx(root, cache);
    ctx.progress = progress;
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& f : files) {
      std::ifstream in(f);
      if (!in) throw std::runtime_error(f + ": cannot open");
      nlohmann::json j;
      in >> j;
      const nlohmann::json specs = j.is_array() ? j : nlohmann::json::array({j});
      for (const auto& spec : specs) {
        const nlohmann::json r = qeval::model::run_model(spec, ctx);
        std::printf("%-60s bpw %6.3f  ppl %8.4f ± %.4f (fp %.4f)  KL %.5f  p99 %.4f  top1 %.4f  quantize %.1fs  total %.1fs\n",
                    r["plan"].dump().substr(0, 60).c_str(),
                    r["bits_per_weight"].is_null() ? 32.0 : r["bits_per_weight"].get<double>(),
                    r["ppl"]["ppl"].get<double>(), r["ppl"]["ppl_se"].get<double>(), r["fp_ppl"]["ppl"].get<double>(),
                    r["kl"]["mean"].get<double>(), r["kl"]["p99"].get<double>(), r["top1"].get<double>(),
                    r["timings"]["quantize_s"].get<double>(), r["timings"]["total_s"].get<double>());
        std::fflush(stdout);
        runs.push_back({{"spec", spec}, {"result", r}});
        if (!out.empty()) {  // rewritten after every run: a crash keeps the finished ones
          std::ofstream o(out);
          o << nlohmann::json({{"runs", runs}}).dump(1) << "\n";
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
