// eval/train/train_main.cpp — `qeval-train`: trains the embedded default model (train), times the default
// sweep's evaluation on a model (eval), measures throughput (bench), re-renders a README (readme).
// One-line errors; exit status 1 (run failed) or 2 (usage).
#include <CLI/CLI.hpp>

#include <cstdint>
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

// `qeval-train eval`: times the default sweep on a model.
struct EvalArgs {
  std::string model, protocol, root = ".", groups = "32,128,256";
};

CLI::App* add_eval_command(CLI::App& app, EvalArgs& a) {
  CLI::App* ev = app.add_subcommand("eval", "Time a default sweep: fp reference + RTN int4 sym at each group size");
  ev->add_option("--model", a.model, "Model file (default: the one configs/default-model.json names)");
  ev->add_option("--protocol", a.protocol, "Protocol JSON")->required();
  ev->add_option("--root", a.root, "Project root (default .)");
  ev->add_option("--group-sizes", a.groups, "Group sizes (default 32,128,256)");
  return ev;
}

// `qeval-train bench`: training and forward throughput of a configuration.
struct BenchArgs {
  qeval::train::TrainConfig config;
  int64_t steps = 3, windows = 8;
};

CLI::App* add_bench_command(CLI::App& app, BenchArgs& a) {
  CLI::App* be = app.add_subcommand("bench", "Measure training and forward throughput of a model configuration "
                                             "(random tokens; no corpus, no files)");
  qeval::train::TrainConfig& bc = a.config;
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
  be->add_option("--steps", a.steps, "Optimizer steps to time (default 3)");
  be->add_option("--windows", a.windows, "Windows of the forward-only measurement, batch 1 (default 8)");
  return be;
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

  EvalArgs ea;
  CLI::App* ev = add_eval_command(app, ea);
  BenchArgs ba;
  CLI::App* be = add_bench_command(app, ba);

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
    std::cout << qeval::train::throughput(ba.config, ba.steps, ba.windows).dump(1) << std::endl;
    return 0;
  }
  if (!ev->parsed()) return 2;  // require_subcommand(1) makes this unreachable
  if (ea.model.empty()) ea.model = qeval::train::default_model_path(ea.root);
  std::cout << qeval::train::sweep_timing(ea.model, ea.protocol, ea.root, qeval::train::parse_group_sizes(ea.groups))
                   .dump(1)
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
