// eval/train/train_cli.hpp — the command-line front end of the trainer, shared by `qeval-train` (train_main.cpp)
// and `qeval train` (eval/cli/cmd_train.cpp): option registration and the run, so both accept the same
// options and record the same command.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "eval/train/embedded.hpp"

namespace qeval::train {

struct TrainCli {
  EmbeddedOptions o;
  std::string groups = "32,128,256";
};

// Adds every `train` option to `cmd` (bound to cli).
void add_train_options(CLI::App* cmd, TrainCli& cli);

// Runs the training the options describe; `command_line` is recorded in training.json / README.md.
// Throws std::invalid_argument for a bad --group-sizes and whatever run_embedded_training throws.
void run_train_cli(TrainCli& cli, const std::string& command_line);

// "32,128,256" → {32, 128, 256}; throws std::invalid_argument naming the bad item.
std::vector<int64_t> parse_group_sizes(const std::string& s);

// OpenMP (libgomp, under ATen) spins while waiting at the end of every parallel region. On a machine
// shared with other jobs a spinning thread burns the time slice its partner needs: measured here with 2
// threads under load 6 on 2 cores, a training step took 42 s spinning and 5–8 s with OMP_WAIT_POLICY=PASSIVE
// (1 thread: 10 s). libgomp reads the variable when it is loaded, before main(), so this re-executes the
// program (/proc/self/exe, same argv) once with it set, unless the caller set it. Results do not depend on
// the wait policy. Returns only when no re-exec happened (variable already set, or exec failed).
void reexec_with_passive_omp(char** argv);

}  // namespace qeval::train
