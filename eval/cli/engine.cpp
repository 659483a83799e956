// eval/cli/engine.cpp — sweep execution: worker threads, fsync'ed journal, resume, signals, progress, report.
#include "eval/cli/engine.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"
#include "eval/report/views.hpp"
#include "quant/json_text.hpp"

namespace qeval::cli {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---- signals -------------------------------------------------------------------------------------------
std::atomic<int> g_signals{0};

extern "C" void on_interrupt(int) {
  const int n = g_signals.fetch_add(1) + 1;
  if (n == 1) {
    static const char msg[] =
        "\nqeval: interrupted: no new runs start; finishing the running ones (interrupt again to abandon them)\n";
    (void)!::write(2, msg, sizeof msg - 1);
  } else {
    static const char msg[] = "\nqeval: abandoned the running runs; the journal holds every finished run (--resume)\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(130);
  }
}

class SignalGuard {
 public:
  explicit SignalGuard(bool on) : on_(on) {
    if (!on_) return;
    g_signals = 0;
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
    // `qeval sweep | head` must not kill a long sweep: with SIGPIPE ignored the table output just stops
    // (the stream goes bad) while runs, journal and report carry on.
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old_pipe_);
  }
  ~SignalGuard() {
    if (!on_) return;
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGPIPE, &old_pipe_, nullptr);
  }

 private:
  bool on_;
  struct sigaction old_int_ {}, old_term_ {}, old_pipe_ {};
};

// ---- journal -------------------------------------------------------------------------------------------
class Journal {
 public:
  Journal(const std::string& report_path, const std::string& path) : report_(report_path), path_(path) {}
  ~Journal() {
    if (fd_ >= 0) ::close(fd_);
  }
  // Opens for appending (creating it with a header when absent or empty).
  void open(const json& header, long long truncate_at) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot create journal");
    if (truncate_at >= 0 && ::ftruncate(fd_, truncate_at) != 0) fail("cannot truncate the cut-short last line of journal");
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail("cannot stat journal");
    if (st.st_size == 0) append(header);
  }
  // One line, one write(2), then fsync: durable before the run counts as finished.
  void append(const json& j) {
    const std::string line = j.dump() + "\n";
    std::lock_guard<std::mutex> lk(mu_);
    size_t off = 0;
    while (off < line.size()) {
      const ssize_t w = ::write(fd_, line.data() + off, line.size() - off);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("cannot append to journal");
      }
      off += static_cast<size_t>(w);
    }
    if (::fdatasync(fd_) != 0) fail("cannot fsync journal");
  }
  void close_and_remove() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ::unlink(path_.c_str());
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    const int e = errno;
    throw std::runtime_error("cannot write report '" + report_ + "': " + what + " '" + path_ + "' (" + std::strerror(e) + ")");
  }
  std::string report_, path_;
  int fd_ = -1;
  std::mutex mu_;
};

bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

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

// ---- progress ------------------------------------------------------------------------------------------
class Progress {
 public:
  Progress(ProgressMode mode, size_t total, size_t skipped, double total_cost, std::ostream& out, std::ostream& err)
      : mode_(mode), total_(total), done_(skipped), total_cost_(total_cost), out_(out), err_(err), t0_(Clock::now()) {
    if (mode_ == ProgressMode::bar) ticker_ = std::thread([this] { tick(); });
  }
  ~Progress() { stop(); }
  void stop() {
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
  // Column prefix the lines mode puts before each table row (so the header lines up).
  static std::string prefix_blank(ProgressMode m, size_t total) {
    if (m != ProgressMode::lines) return "";
    return std::string(2 * std::to_string(total).size() + 4, ' ');
  }
  void started(const std::string& name) {
    std::lock_guard<std::mutex> lk(mu_);
    running_.insert(name);
    if (mode_ == ProgressMode::bar) draw();
  }
  void abandoned(const std::string& name) {
    std::lock_guard<std::mutex> lk(mu_);
    running_.erase(running_.find(name));
  }
  void finished(const std::string& name, const std::string& row, double cost, double seconds) {
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

 private:
  double eta_seconds() const {
    if (done_cost_ <= 0) return -1;
    const double el = std::chrono::duration<double>(Clock::now() - t0_).count();
    return el / done_cost_ * std::max(0.0, total_cost_ - done_cost_);
  }
  void draw() {
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
  void tick() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!stopped_) {
      cv_.wait_for(lk, std::chrono::milliseconds(500));
      if (!stopped_) draw();
    }
  }

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

}  // namespace

ProgressMode parse_progress_mode(const std::string& s) {
  if (s == "auto") return ProgressMode::automatic;
  if (s == "bar") return ProgressMode::bar;
  if (s == "lines") return ProgressMode::lines;
  if (s == "none") return ProgressMode::none;
  throw std::invalid_argument("--progress: '" + s + "' is not auto, bar, lines or none");
}

std::string journal_path(const std::string& out) { return out + ".jsonl"; }

std::vector<json> read_journal(const std::string& path, long long* truncated_at) {
  if (truncated_at) *truncated_at = -1;
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open journal '" + path + "' (" + std::strerror(errno) + ")");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  std::vector<json> out;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    ++line_no;
    const bool complete = nl != std::string::npos;
    const std::string line = text.substr(pos, complete ? nl - pos : std::string::npos);
    json j;
    bool ok = true;
    try {
      j = parse_json_text(line);
    } catch (const std::invalid_argument&) {  // a syntax error, a number beyond double, nesting too deep
      ok = false;
    }
    const bool last = !complete || nl + 1 >= text.size();
    if (!ok || !complete) {
      if (last) {  // a write cut short by a crash: drop it
        if (truncated_at) *truncated_at = static_cast<long long>(pos);
        break;
      }
      throw std::runtime_error("journal '" + path + "' line " + std::to_string(line_no) +
                               " is corrupt (not a JSON line); delete the journal to start the sweep over");
    }
    if (line_no == 1) {
      if (!j.is_object() || !j.contains("qeval_journal"))
        throw std::runtime_error("'" + path + "' is not a qeval sweep journal (no header line)");
      if (j["qeval_journal"] != 1)
        throw std::runtime_error("journal '" + path + "' has version " + j["qeval_journal"].dump() + "; this qeval reads 1");
    } else {
      if (!j.is_object() || !j.contains("run") || !j["run"].is_object() || !j["run"].contains("id") ||
          !j["run"].contains("spec"))
        throw std::runtime_error("journal '" + path + "' line " + std::to_string(line_no) + " is not a run entry");
      if (report::run_id(j["run"]["spec"]) != j["run"]["id"])
        throw std::runtime_error("journal '" + path + "' line " + std::to_string(line_no) +
                                 ": the run's id does not match its spec (edited?); delete the journal to start over");
      out.push_back(j["run"]);
    }
    pos = complete ? nl + 1 : text.size();
  }
  return out;
}

json build_report(const SweepPlan& plan, const std::vector<json>& entries, const EngineOptions& o) {
  json j = report::new_report(o.command_line);
  for (const auto& [k, v] : o.extra_libraries) j["environment"]["libraries"][k] = v;
  j["seed"] = plan.seed;
  j["config"] = plan.config;
  j["protocol"] = plan.protocol;
  j["inputs"] = plan.inputs;
  if (plan.inputs.size() == 1) j["input"] = plan.inputs[0];  // schema v1's single input, kept for readers
  json ids = json::array();
  for (const auto& r : plan.runs) ids.push_back(r.id);
  j["plan"] = {{"runs", plan.runs.size()}, {"ids", ids}};
  if (o.shard_count > 1) j["shard"] = {{"index", o.shard_index}, {"count", o.shard_count}};
  if (o.inject_rounding)
    j["fault_injection"] = {{"rounding", quant::to_string(*o.inject_rounding)},
                            {"note", "test-only: executed with this rounding, the specs say otherwise"}};
  std::map<std::string, const json*> by_id;
  for (const auto& e : entries) by_id.emplace(e.at("id").get<std::string>(), &e);
  json runs = json::array();
  for (const auto& r : plan.runs) {
    auto it = by_id.find(r.id);
    if (it != by_id.end()) runs.push_back(*it->second);
  }
  j["runs"] = runs;
  j["views"] = report::compute_views(j["runs"]);
  return j;
}

EngineResult run_engine(const SweepPlan& plan, const EngineOptions& o, std::ostream& out, std::ostream& err) {
  EngineResult res;
  const std::vector<const Run*> mine = shard_runs(plan, o.shard_index, o.shard_count);
  res.planned = mine.size();
  std::set<std::string> mine_ids;
  for (const Run* r : mine) mine_ids.insert(r->id);

  // ---- finished runs (resume) and the journal
  std::map<std::string, json> done;
  std::unique_ptr<Journal> journal;
  const bool durable = !o.out.empty();
  const std::string jpath = durable ? journal_path(o.out) : "";
  long long trunc = -1;
  if (durable) {
    const bool have_journal = file_exists(jpath);
    if (have_journal && !o.resume)
      throw std::runtime_error("a journal of an interrupted sweep exists at '" + jpath +
                               "': pass --resume to continue it, or delete it to start over");
    size_t foreign = 0;
    if (o.resume) {
      if (have_journal)
        for (auto& e : read_journal(jpath, &trunc)) {
          const std::string id = e["id"].get<std::string>();
          if (mine_ids.count(id)) done.emplace(id, std::move(e));
          else ++foreign;
        }
      if (file_exists(o.out)) {
        // A finished report at <out>: its runs count as done too (resuming a complete sweep is a no-op).
        try {
          const json rep = report::load_report(o.out);
          for (const auto& e : rep["runs"]) {
            const std::string id = e["id"].get<std::string>();
            if (mine_ids.count(id)) done.emplace(id, e);
          }
        } catch (const std::exception& ex) {
          err << "qeval sweep: note: ignoring '" << o.out << "' for --resume (" << ex.what() << ")\n";
        }
      }
      if (foreign)
        err << "qeval sweep: note: the journal holds " << foreign
            << " finished run(s) that are not in this sweep (config changed?); they are left out\n";
    }
    json header = {{"qeval_journal", 1},
                   {"created", report::utc_now_iso()},
                   {"report", o.out},
                   {"command_line", o.command_line},
                   {"config", plan.config},
                   {"plan_runs", plan.runs.size()}};
    if (o.shard_count > 1) header["shard"] = {{"index", o.shard_index}, {"count", o.shard_count}};
    journal = std::make_unique<Journal>(o.out, jpath);
    journal->open(header, trunc);
    // Runs taken over from an old report are journaled, so the final report is built from the journal alone.
    std::set<std::string> in_journal;
    if (have_journal)
      for (const auto& e : read_journal(jpath)) in_journal.insert(e["id"].get<std::string>());
    for (const auto& [id, e] : done)
      if (!in_journal.count(id)) journal->append({{"run", e}});
  }
  res.skipped = done.size();

  std::vector<const Run*> todo;
  double total_cost = 0;
  for (const Run* r : mine)
    if (!done.count(r->id)) {
      todo.push_back(r);
      total_cost += r->cost;
    }
  std::map<std::string, size_t> remaining_per_resource;
  for (const Run* r : todo) ++remaining_per_resource[r->resource];

  // ---- header lines
  ProgressMode mode = o.progress;
  if (mode == ProgressMode::automatic) mode = ::isatty(2) ? ProgressMode::bar : ProgressMode::lines;
  out << "qeval sweep: " << mine.size() << " run(s)";
  if (o.shard_count > 1) out << " (shard " << o.shard_index << "/" << o.shard_count << " of " << plan.runs.size() << ")";
  if (res.skipped) out << ", " << res.skipped << " already finished (resume)";
  if (plan.duplicates) out << ", " << plan.duplicates << " duplicate(s) collapsed";
  if (o.jobs > 1) out << ", " << o.jobs << " jobs";
  if (o.inject_rounding) out << " [FAULT INJECTION: rounding " << quant::to_string(*o.inject_rounding) << "]";
  out << "\n";
  std::set<std::string> kinds_shown;
  for (const Run* r : todo)
    if (kinds_shown.insert(r->kind).second)
      out << Progress::prefix_blank(mode, mine.size()) << find_executor(r->kind)->table_header() << "\n";
  out.flush();

  // ---- execute
  SignalGuard signals(o.handle_signals);
  ExecContext ctx;
  ctx.inject_rounding = o.inject_rounding;
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::exception_ptr first_error;
  std::string first_error_run;
  auto stop_requested = [&] { return g_signals.load() > 0 || (o.stop && o.stop->load()); };
  {
    Progress progress(mode, mine.size(), res.skipped, total_cost, out, err);
    auto worker = [&] {
      while (!failed.load() && !stop_requested()) {
        const size_t i = next.fetch_add(1);
        if (i >= todo.size()) break;
        const Run& run = *todo[i];
        const RunExecutor* ex = find_executor(run.kind);
        progress.started(run.name);
        const auto t0 = Clock::now();
        try {
          json entry = {{"kind", run.kind}, {"id", run.id}, {"name", run.name}, {"spec", run.spec}};
          json fields = ex->execute(run, ctx);
          for (auto it = fields.begin(); it != fields.end(); ++it) entry[it.key()] = it.value();
          if (journal) journal->append({{"run", entry}});
          const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
          progress.finished(run.name, ex->table_row(entry), run.cost, secs);
          std::lock_guard<std::mutex> lk(mu);
          done.emplace(run.id, std::move(entry));
          ++res.executed;
        } catch (...) {
          std::lock_guard<std::mutex> lk(mu);
          if (!first_error) {
            first_error = std::current_exception();
            first_error_run = run.name;
          }
          failed = true;
          progress.abandoned(run.name);
        }
        bool release = false;
        {
          std::lock_guard<std::mutex> lk(mu);
          release = --remaining_per_resource[run.resource] == 0;
        }
        if (release) ctx.release(run.resource);
      }
    };
    const int jobs = std::max(1, std::min<int>(o.jobs, static_cast<int>(std::max<size_t>(todo.size(), 1))));
    std::vector<std::thread> pool;
    for (int t = 1; t < jobs; ++t) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
    progress.stop();
  }

  if (first_error) {
    if (journal && done.empty()) journal->close_and_remove();  // nothing worth resuming
    try {
      std::rethrow_exception(first_error);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (journal && !done.empty())
        msg += " [run " + first_error_run + "; " + std::to_string(done.size()) + " finished run(s) are in '" + jpath +
               "': fix the cause and add --resume]";
      throw std::runtime_error(msg);
    }
  }

  const bool complete = done.size() == mine.size();
  if (!complete) {
    res.interrupted = true;
    res.exit_code = 130;
    std::string cmd;
    for (const auto& a : o.command_line) cmd += (cmd.empty() ? "" : " ") + a;
    bool has_resume = false;
    for (const auto& a : o.command_line) has_resume = has_resume || a == "--resume";
    err << "qeval sweep: interrupted after " << done.size() << " of " << mine.size() << " run(s)";
    if (durable)
      err << "; the finished runs are in '" << jpath << "'; continue with:\n  " << cmd << (has_resume ? "" : " --resume");
    err << "\n";
    return res;
  }

  std::vector<json> entries;
  if (durable) {
    entries = read_journal(jpath);  // the journal is the record; the report is built from it
  } else {
    for (auto& [id, e] : done) entries.push_back(e);
  }
  res.report = build_report(plan, entries, o);
  // Every run of this shard must be in the report exactly once (the journal can hold no duplicates of a
  // finished id: resume skips them; a duplicate line would be the same run's identical result).
  if (res.report["runs"].size() != mine.size())
    throw std::runtime_error("internal error: the report has " + std::to_string(res.report["runs"].size()) +
                             " runs, the plan " + std::to_string(mine.size()));
  const std::string legend = mine.empty() ? "" : find_executor(mine.front()->kind)->table_legend();
  if (!legend.empty()) out << legend << "\n";
  if (durable) {
    report::write_json_atomic(o.out, res.report);
    journal->close_and_remove();
    out << "report: " << res.report["runs"].size() << " run(s) written to " << o.out << "\n";
  }
  return res;
}

}  // namespace qeval::cli
