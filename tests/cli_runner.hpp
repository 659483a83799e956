// tests/cli_runner.hpp — the one fixture of the end-to-end tests of the built `qeval` binary (QEVAL_CLI_PATH): runs it
// in a fresh temporary working directory, captures status, stdout and stderr, and checks the bad-input contract.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace qeval::test {

struct CliResult {
  int status = -1;  // the exit status; 128 + signal when killed
  std::string out, err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/qeval_cli_test_XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }

  // Runs `qeval <args>` with the temporary directory as working directory.
  CliResult run(const std::string& args) {
    const std::string cmd = "cd '" + dir_ + "' && '" QEVAL_CLI_PATH "' " + args + " > out.txt 2> err.txt";
    const int rc = std::system(cmd.c_str());
    CliResult r;
    r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
    r.out = slurp(dir_ + "/out.txt");
    r.err = slurp(dir_ + "/err.txt");
    return r;
  }

  // A bad input: non-zero status (not a crash), exactly one stderr line "qeval: error: ..." containing `want`.
  void expect_one_line_error(const std::string& args, const std::string& want) {
    SCOPED_TRACE("qeval " + args);
    const CliResult r = run(args);
    EXPECT_NE(r.status, 0);
    EXPECT_LT(r.status, 128) << "killed by a signal";
    EXPECT_EQ(r.err.rfind("qeval: error: ", 0), 0u) << r.err;
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line:\n" << r.err;
    EXPECT_NE(r.err.find(want), std::string::npos) << "message does not mention '" << want << "': " << r.err;
    EXPECT_EQ(r.err.find("terminate called"), std::string::npos);
  }

  std::string dir_;
};

}  // namespace qeval::test
