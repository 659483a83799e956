// eval/cli/main.cpp — the `qeval` command line: registers the subcommands (one line each below), parses, dispatches.
//
// Exit status: 0 success; 1 a run could not be done (bad input data, file, scheme config, malformed report)
// or `qeval check` found a regression; 2 a usage error (unknown option, bad value); 130 a sweep was
// interrupted (SIGINT/SIGTERM; resumable). Every error is ONE line on stderr, "qeval: error: ...".
#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "eval/cli/command.hpp"
#include "eval/report/report.hpp"
#if QEVAL_HAVE_TRAIN
#include "eval/train/train_cli.hpp"
#endif

// The subcommands, in --help order; eval/cli/cmd_<name>.cpp defines add_<name>_command (command.hpp).
#define QEVAL_CLI_COMMANDS(X) X(sweep) X(list_schemes) X(report) X(diff) X(check) X(merge) X(devices) X(train) X(tune) \
  X(inspect) X(tokenize) X(logits)

namespace qeval::cli {

#define QEVAL_DECLARE_COMMAND(name) Command add_##name##_command(CLI::App& app, const Invocation& inv);
QEVAL_CLI_COMMANDS(QEVAL_DECLARE_COMMAND)
#undef QEVAL_DECLARE_COMMAND

void print_error(const std::string& msg) {
  std::string line;
  for (char c : msg) {
    if (c != '\n' && c != '\r') line += c;
    else if (!line.empty() && line.back() != ' ') line += "; ";
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == ';')) line.pop_back();
  std::cerr << "qeval: error: " << line << std::endl;
}

namespace {

void describe_app(CLI::App& app) {
  app.name("qeval");
  app.set_version_flag("--version", report::version_string(), "Print the version, git SHA and build, then exit");
  app.require_subcommand(1);
  app.footer(
      "Examples:\n"
      "  qeval sweep --group-sizes 32,128,256\n"
      "  qeval sweep --scheme rtn,nf4,fp4 --bits 4 --group-sizes 64 --input student-t\n"
      "  qeval sweep --config configs/sweep-ci.json --out cur.json --jobs 2\n"
      "  qeval sweep --config configs/sweep-ci.json --explain     (each run's typed spec and where it came from)\n"
      "  qeval report cur.json -o cur.html\n"
      "  qeval diff old.json cur.json\n"
      "  qeval check --baseline reports/baseline/ci.json cur.json\n"
      "  qeval merge part-*.json -o merged.json\n"
      "  qeval list-schemes\n"
      "  qeval inspect model.gguf --json\n"
      "  qeval tokenize --model model.gguf \"Hello world\"\n"
      "  qeval logits --model ckpt_dir --ids 1,2,3 --out logits.safetensors\n"
      "Run 'qeval <subcommand> --help' for the subcommand's options.");
}

int qeval_main(int argc, char** argv) {
  CLI::App app{
      "qeval — quantization research toolkit: quantize tensors with pluggable schemes and measure the error\n"
      "against the information-theoretic bound (6.02 dB per bit), explaining the gap."};
  describe_app(app);
  const Invocation inv{argc, argv, std::vector<std::string>(argv, argv + argc)};
  std::vector<Command> commands;
#define QEVAL_ADD_COMMAND(name) commands.push_back(add_##name##_command(app, inv));
  QEVAL_CLI_COMMANDS(QEVAL_ADD_COMMAND)
#undef QEVAL_ADD_COMMAND
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::string hint = "qeval --help";
    for (const Command& c : commands)
      if (c.app->parsed()) hint = "qeval " + c.app->get_name() + " --help";
    print_error(std::string(e.what()) + " (see '" + hint + "')");
    return 2;
  }
  for (const Command& c : commands)
    if (c.app->parsed()) return c.run();
  return 0;
}

}  // namespace
}  // namespace qeval::cli

int main(int argc, char** argv) {
#if QEVAL_HAVE_TRAIN
  // `train` and model runs in `sweep` use LibTorch's OpenMP threads; spinning waiters starve each other on a
  // shared machine (measured: a training step 42 s spinning vs 5–8 s passive under load 6 on 2 cores,
  // eval/train/train_cli.hpp). Re-exec once with OMP_WAIT_POLICY=PASSIVE. Results do not depend on the wait policy.
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "sweep" || std::string(argv[i]) == "train") {
      qeval::train::reexec_with_passive_omp(argv);
      break;
    }
#endif
  try {
    return qeval::cli::qeval_main(argc, argv);
  } catch (const std::bad_alloc&) {
    qeval::cli::print_error("out of memory (try a smaller --rows/--cols)");
  } catch (const std::exception& e) {
    qeval::cli::print_error(e.what());
  } catch (...) {
    qeval::cli::print_error("unexpected error of unknown type");
  }
  return 1;
}
