// eval/cli/cmd_train.cpp — `qeval train`: trains the embedded default model (eval/train; the same options and
// outputs as the standalone `qeval-train train`). Built with the LibTorch trainer (QEVAL_HAVE_TRAIN); without
// it the command exists and says how to get it.
#include <iostream>
#include <string>

#include "eval/cli/command.hpp"

#if QEVAL_HAVE_TRAIN
#include "eval/train/train_cli.hpp"
#endif

namespace qeval::cli {

namespace {
#if QEVAL_HAVE_TRAIN
train::TrainCli g_train;
#endif
std::string g_command_line;

int run_train() {
#if QEVAL_HAVE_TRAIN
  train::run_train_cli(g_train, g_command_line);
  return 0;
#else
  std::cerr << "qeval: error: this qeval was built without the LibTorch trainer (configure with "
               "-DQEVAL_TORCH=ON), or use build-*/eval/train/qeval-train" << std::endl;
  return 1;
#endif
}

}  // namespace

Command add_train_command(CLI::App& app, const Invocation& inv) {
  CLI::App* c = app.add_subcommand(
      "train",
      "Train qeval's embedded default model (Llama architecture, fp32, LibTorch) on the State of the Union\n"
      "corpus: BPE tokenizer, AdamW with warmup + cosine decay, validation on the last addresses, resumable;\n"
      "writes <out>/{model.gguf, tokenizer.json, training.json, README.md} (models/qeval-sotu-4l256 is one)");
#if QEVAL_HAVE_TRAIN
  train::add_train_options(c, g_train);  // OMP_WAIT_POLICY=PASSIVE: main() re-execs for train and sweep
#else
  c->allow_extras();
#endif
  g_command_line = "qeval";
  for (int i = 1; i < inv.argc; ++i) g_command_line += std::string(" ") + inv.argv[i];
  return {c, run_train};
}

}  // namespace qeval::cli
