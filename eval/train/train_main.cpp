// eval/train/train_main.cpp — `qeval-train`: trains the embedded default model (train), times the default
// sweep's evaluation on a model (eval), measures throughput (bench), re-renders a README (readme).
// One-line errors; exit status 1 (run failed) or 2 (usage).
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "eval/train/embedded.hpp"
#include "eval/train/train_cli.hpp"

namespace {

void print_error(const std::string& msg) {
  std::string line;
  for (char c : msg) line += (c == '\n' || c == '\r') ? ' ' : c;
  std::cerr << "qeval-train: error: " << line << std::endl;
}

int run(int argc, char** argv) {
  std::string command_line = "qeval-train";
  for (int i = 1; i < argc; ++i) command_line += std::string(" ") + argv[i];

  CLI::App app{"qeval-train — trains qeval's embedded default model (Llama architecture, fp32, LibTorch) on "
               "the State of the Union corpus, and times the default sweep's evaluation"};
  app.require_subcommand(1);
  qeval::train::TrainCli cli;
  CLI::App* tr = app.add_subcommand("train", "Train the model and write <out>/{model.gguf, tokenizer.json, "
                                             "training.json, README.md}");
  qeval::train::add_train_options(tr, cli);

  std::string model, protocol, root = ".", groups = "32,128,256";
  CLI::App* ev = app.add_subcommand("eval", "Time a default sweep: fp reference + RTN int4 sym at each group size");
  ev->add_option("--model", model, "Model file (default: the one configs/default-model.json names)");
  ev->add_option("--protocol", protocol, "Protocol JSON")->required();
  ev->add_option("--root", root, "Project root (default .)");
  ev->add_option("--group-sizes", groups, "Group sizes (default 32,128,256)");

  qeval::train::TrainConfig bc;
  int64_t bench_steps = 3, bench_windows = 8;
  CLI::App* be = app.add_subcommand("bench", "Measure training and forward throughput of a model configuration "
                                             "(random tokens; no corpus, no files)");
  be->add_option("--layers", bc.n_layers, "Transformer blocks");
  be->add_option("--d-model", bc.d_model, "Model width");
  be->add_option("--heads", bc.n_heads, "Query heads");
  be->add_option("--kv-heads", bc.n_kv_heads, "Key/value heads");
  be->add_option("--d-ff", bc.d_ff, "SwiGLU hidden width");
  be->add_option("--vocab", bc.vocab_size, "Vocabulary size");
  be->add_option("--ctx", bc.seq_len, "Window length");
  be->add_option("--batch", bc.batch, "Windows per optimizer step");
  be->add_option("--micro-batch", bc.micro_batch, "Windows per forward/backward");
  be->add_option("--threads", bc.threads, "ATen threads");
  be->add_option("--steps", bench_steps, "Optimizer steps to time (default 3)");
  be->add_option("--windows", bench_windows, "Windows of the forward-only measurement, batch 1 (default 8)");

  std::string readme_dir;
  CLI::App* rd = app.add_subcommand("readme", "Re-render <dir>/README.md from <dir>/training.json");
  rd->add_option("--dir", readme_dir, "Model directory")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    print_error(std::string(e.what()) + " (see 'qeval-train --help')");
    return 2;
  }
  if (tr->parsed()) {
    qeval::train::run_train_cli(cli, command_line);
    return 0;
  }
  if (rd->parsed()) {
    qeval::train::rerender_readme(readme_dir);
    return 0;
  }
  if (be->parsed()) {
    std::cout << qeval::train::throughput(bc, bench_steps, bench_windows).dump(1) << std::endl;
    return 0;
  }
  if (model.empty()) model = qeval::train::default_model_path(root);
  std::cout << qeval::train::sweep_timing(model, protocol, root, qeval::train::parse_group_sizes(groups)).dump(1)
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  qeval::train::reexec_with_passive_omp(argv);
  try {
    return run(argc, argv);
  } catch (const std::invalid_argument& e) {
    print_error(e.what());
  } catch (const std::exception& e) {
    print_error(e.what());
  }
  return 1;
}
