// eval/sweep/progress.cpp — the progress bar / lines of a running sweep (thread-safe), with a cost-weighted ETA.
#include "eval/sweep/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace qeval::sweep {

namespace {

std::string hms(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "--:--";
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

}  // namespace

ProgressMode parse_progress_mode(const std::string& s) {
  if (s == "auto") return ProgressMode::automatic;
  if (s == "bar") return ProgressMode::bar;
  if (s == "lines") return ProgressMode::lines;
  if (s == "none") return ProgressMode::none;
  throw std::invalid_argument("--progress: '" + s + "' is not auto, bar, lines or none");
}

Progress::Progress(ProgressMode mode, size_t total, size_t skipped, double total_cost, std::ostream& out,
                   std::ostream& err)
    : mode_(mode), total_(total), done_(skipped), total_cost_(total_cost), out_(out), err_(err), t0_(Clock::now()) {
  if (mode_ == ProgressMode::bar) ticker_ = std::thread([this] { tick(); });
}

void Progress::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  std::lock_guard<std::mutex> lk(mu_);
  if (mode_ == ProgressMode::bar) err_ << "\r\033[K" << std::flush;
}

std::string Progress::prefix_blank(ProgressMode m, size_t total) {
  if (m != ProgressMode::lines) return "";
  return std::string(2 * std::to_string(total).size() + 4, ' ');
}

void Progress::started(const std::string& name) {
  std::lock_guard<std::mutex> lk(mu_);
  running_.insert(name);
  if (mode_ == ProgressMode::bar) draw();
}

void Progress::abandoned(const std::string& name) {
  std::lock_guard<std::mutex> lk(mu_);
  running_.erase(running_.find(name));
}

void Progress::finished(const std::string& name, const std::string& row, double cost, double seconds) {
  std::lock_guard<std::mutex> lk(mu_);
  running_.erase(running_.find(name));
  ++done_;
  done_cost_ += cost;
  const double eta = eta_seconds();
  if (mode_ == ProgressMode::bar) {
    err_ << "\r\033[K" << std::flush;
    out_ << row << "\n" << std::flush;
    draw();
  } else if (mode_ == ProgressMode::lines) {
    const std::string n = std::to_string(total_);
    std::string k = std::to_string(done_);
    k = std::string(n.size() - std::min(n.size(), k.size()), ' ') + k;
    char tail[64];
    std::snprintf(tail, sizeof tail, "  %6.2fs  ETA %s", seconds, hms(eta).c_str());
    out_ << "[" << k << "/" << n << "] " << row << tail << "\n" << std::flush;
  } else {
    out_ << row << "\n" << std::flush;
  }
}

double Progress::eta_seconds() const {
  if (done_cost_ <= 0) return -1;
  const double el = std::chrono::duration<double>(Clock::now() - t0_).count();
  return el / done_cost_ * std::max(0.0, total_cost_ - done_cost_);
}

void Progress::draw() {
  int width = 80;
  winsize ws {};
  if (::ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) width = ws.ws_col;
  const double frac = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  const int barw = 24;
  const int fill = static_cast<int>(frac * barw + 1e-9);
  std::string bar = "[" + std::string(static_cast<size_t>(fill), '=') + (fill < barw ? ">" : "") +
                    std::string(static_cast<size_t>(std::max(0, barw - fill - 1)), ' ') + "]";
  const double el = std::chrono::duration<double>(Clock::now() - t0_).count();
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s %zu/%zu runs %3.0f%%  elapsed %s  ETA %s", bar.c_str(), done_, total_,
                100.0 * frac, hms(el).c_str(), hms(eta_seconds()).c_str());
  std::string line = buf;
  if (!running_.empty()) line += "  " + *running_.begin() + (running_.size() > 1 ? " +" + std::to_string(running_.size() - 1) : "");
  if (line.size() > static_cast<size_t>(width - 1)) line = line.substr(0, static_cast<size_t>(width - 1));
  err_ << "\r\033[K" << line << std::flush;
}

void Progress::tick() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!stopped_) {
    cv_.wait_for(lk, std::chrono::milliseconds(500));
    if (!stopped_) draw();
  }
}

}  // namespace qeval::sweep
