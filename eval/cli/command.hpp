// eval/cli/command.hpp — what a `qeval` subcommand is: one file eval/cli/cmd_<name>.cpp defining
// add_<name>_command, listed on one line of main.cpp's QEVAL_CLI_COMMANDS. It registers its CLI11 options on the
// app and returns what runs when the subcommand was given (the exit status; exceptions become one error line).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace qeval::cli {

// The process's command line, for commands that record it (reports) or pass it on (train).
struct Invocation {
  int argc = 0;
  char** argv = nullptr;
  std::vector<std::string> command_line;  // argv as strings
};

struct Command {
  CLI::App* app = nullptr;   // the subcommand (its name is the hint of usage errors: 'qeval <name> --help')
  std::function<int()> run;  // called when app->parsed()
};

// Prints "qeval: error: <msg>" as ONE line on stderr (newlines in msg become "; ").
void print_error(const std::string& msg);

}  // namespace qeval::cli
