// eval/model/progress.cpp — the progress bar with ETA that quantization and sensitivity runs print on stderr.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "eval/model/model_util.hpp"
#include "eval/model/quantize_model.hpp"

namespace qeval::model {

namespace {

std::string fmt_time(double s) {
  if (!std::isfinite(s) || s < 0) return "--";
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) / 60) % 60);
  }
  return buf;
}

}  // namespace

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(std::max<int64_t>(total, 1)), enabled_(enabled),
      tty_(enabled && ::isatty(STDERR_FILENO)), t0_(now_s()) {}

double Progress::seconds() const { return now_s() - t0_; }

void Progress::step(int64_t done, const std::string& note) {
  if (!enabled_) return;
  const double el = seconds();
  const double eta = done > 0 ? el / static_cast<double>(done) * static_cast<double>(total_ - done) : NAN;
  const double frac = static_cast<double>(done) / static_cast<double>(total_);
  if (tty_) {
    constexpr int kWidth = 24;
    const int fill = static_cast<int>(frac * kWidth + 0.5);
    std::string bar(static_cast<size_t>(fill), '#');
    bar.append(static_cast<size_t>(kWidth - fill), '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %3.0f%% elapsed %s ETA %s %s\x1b[K", label_.c_str(), bar.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), 100.0 * frac, fmt_time(el).c_str(),
                 fmt_time(eta).c_str(), note.c_str());
  } else {
    std::fprintf(stderr, "%s %lld/%lld (%.0f%%) elapsed %s ETA %s %s\n", label_.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total_), 100.0 * frac, fmt_time(el).c_str(), fmt_time(eta).c_str(),
                 note.c_str());
  }
  std::fflush(stderr);
}

void Progress::finish(const std::string& note) {
  if (!enabled_) return;
  if (tty_) std::fprintf(stderr, "\n");
  std::fprintf(stderr, "%s done in %s %s\n", label_.c_str(), fmt_time(seconds()).c_str(), note.c_str());
  std::fflush(stderr);
}

}  // namespace qeval::model
