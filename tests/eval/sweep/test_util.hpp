// tests/eval/sweep/test_util.hpp — helpers of the sweep/report tests: temporary directories, files, running `qeval`.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace qeval::testing {

inline std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_text(const std::string& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

inline bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

// A fresh directory under /tmp, removed by the destructor.
class TempDir {
 public:
  explicit TempDir(const char* prefix = "qeval_sweep_test") {
    std::string t = std::string("/tmp/") + prefix + "_XXXXXX";
    path_ = ::mkdtemp(t.data()) ? t : std::string();
  }
  ~TempDir() {
    if (!path_.empty() && !keep_) std::system(("rm -rf '" + path_ + "'").c_str());
  }
  const std::string& path() const { return path_; }
  void keep() { keep_ = true; }  // leave the directory for inspection (e.g. the logs of a failed test)
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
  bool keep_ = false;
};

struct CmdResult {
  int status = -1;
  std::string out, err;
};

// Runs a shell command line in `dir`, capturing stdout/stderr (into files under /tmp, never into `dir`, which
// may be the source tree).
inline CmdResult run_in(const std::string& dir, const std::string& cmd) {
  char tmpl[] = "/tmp/qeval_cmd_XXXXXX";
  const std::string cap = ::mkdtemp(tmpl) ? std::string(tmpl) : std::string("/tmp");
  const std::string full = "cd '" + dir + "' && " + cmd + " > '" + cap + "/out' 2> '" + cap + "/err'";
  const int rc = std::system(full.c_str());
  CmdResult r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
  r.out = slurp(cap + "/out");
  r.err = slurp(cap + "/err");
  std::system(("rm -rf '" + cap + "'").c_str());
  return r;
}

}  // namespace qeval::testing
