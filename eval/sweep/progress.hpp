// eval/sweep/progress.hpp — the sweep's progress display: on a terminal a bar with runs done, elapsed time and an
// ETA weighted by each run's cost, redrawn twice a second; otherwise plain lines, one per finished run
// ("[ 3/16] <table row>  0.41s  ETA 0:05"); or table rows only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <thread>

namespace qeval::sweep {

enum class ProgressMode { automatic, bar, lines, none };
ProgressMode parse_progress_mode(const std::string& s);  // auto, bar, lines, none

// Thread-safe: workers report started / finished / abandoned runs.
class Progress {
 public:
  Progress(ProgressMode mode, size_t total, size_t skipped, double total_cost, std::ostream& out, std::ostream& err);
  ~Progress() { stop(); }
  void stop();
  // Column prefix the lines mode puts before each table row (so the header lines up).
  static std::string prefix_blank(ProgressMode m, size_t total);
  void started(const std::string& name);
  void abandoned(const std::string& name);
  void finished(const std::string& name, const std::string& row, double cost, double seconds);

 private:
  using Clock = std::chrono::steady_clock;
  double eta_seconds() const;
  void draw();
  void tick();

  ProgressMode mode_;
  size_t total_, done_;
  double total_cost_, done_cost_ = 0;
  std::ostream& out_;
  std::ostream& err_;
  Clock::time_point t0_;
  std::multiset<std::string> running_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::thread ticker_;
};

}  // namespace qeval::sweep
