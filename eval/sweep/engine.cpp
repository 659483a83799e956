// eval/sweep/engine.cpp — sweep execution in stages: resume from the journal, worker threads, signals, report.
#include "eval/sweep/engine.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "eval/common/files.hpp"
#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"
#include "eval/report/views.hpp"

namespace qeval::sweep {

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

}  // namespace

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
  if (o.inject_rounding || o.inject_scale_error != 0.0) {
    j["fault_injection"] = {{"note", "test-only: executed with a fault, the specs say otherwise"}};
    if (o.inject_rounding) j["fault_injection"]["rounding"] = quant::to_string(*o.inject_rounding);
    if (o.inject_scale_error != 0.0) j["fault_injection"]["scale_error"] = o.inject_scale_error;
  }
  if (o.twin) j["twin"] = true;
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

namespace {

// One execution of a plan's shard, in stages: resume (journal + finished report), header, workers, outcome.
class EngineRun {
 public:
  EngineRun(const SweepPlan& plan, const EngineOptions& o, std::ostream& out, std::ostream& err)
      : plan_(plan), o_(o), out_(out), err_(err), mine_(shard_runs(plan, o.shard_index, o.shard_count)),
        durable_(!o.out.empty()), jpath_(durable_ ? journal_path(o.out) : "") {}

  EngineResult run() {
    res_.planned = mine_.size();
    if (durable_) open_journal();
    res_.skipped = done_.size();
    for (const Run* r : mine_)
      if (!done_.count(r->id)) {
        todo_.push_back(r);
        total_cost_ += r->cost;
        ++remaining_per_resource_[r->resource];
      }
    mode_ = o_.progress;
    if (mode_ == ProgressMode::automatic) mode_ = ::isatty(2) ? ProgressMode::bar : ProgressMode::lines;
    print_header();
    SignalGuard signals(o_.handle_signals);  // until the report is written
    execute_all();
    if (first_error_) rethrow_first_error();
    if (done_.size() != mine_.size()) return interrupted();
    return finish();
  }

 private:
  // Finished runs of this shard from the journal (and a finished report at <out>) when resuming; the journal
  // (re)opened with every one of them in it, so the final report is built from the journal alone.
  void open_journal() {
    const bool have_journal = common::file_exists(jpath_);
    if (have_journal && !o_.resume)
      throw std::runtime_error("a journal of an interrupted sweep exists at '" + jpath_ +
                               "': pass --resume to continue it, or delete it to start over");
    long long trunc = -1;
    if (o_.resume) collect_finished(have_journal, &trunc);
    json header = {{"qeval_journal", 1},          {"created", report::utc_now_iso()},
                   {"report", o_.out},            {"command_line", o_.command_line},
                   {"config", plan_.config},      {"plan_runs", plan_.runs.size()}};
    if (o_.shard_count > 1) header["shard"] = {{"index", o_.shard_index}, {"count", o_.shard_count}};
    journal_ = std::make_unique<Journal>(o_.out, jpath_);
    journal_->open(header, trunc);
    std::set<std::string> in_journal;
    if (have_journal)
      for (const auto& e : read_journal(jpath_)) in_journal.insert(e["id"].get<std::string>());
    for (const auto& [id, e] : done_)
      if (!in_journal.count(id)) journal_->append({{"run", e}});
  }

  void collect_finished(bool have_journal, long long* trunc) {
    std::set<std::string> mine_ids;
    for (const Run* r : mine_) mine_ids.insert(r->id);
    size_t foreign = 0;
    if (have_journal)
      for (auto& e : read_journal(jpath_, trunc)) {
        const std::string id = e["id"].get<std::string>();
        if (mine_ids.count(id)) done_.emplace(id, std::move(e));
        else ++foreign;
      }
    if (common::file_exists(o_.out)) {
      // A finished report at <out>: its runs count as done too (resuming a complete sweep is a no-op).
      try {
        const json rep = report::load_report(o_.out);
        for (const auto& e : rep["runs"])
          if (mine_ids.count(e["id"].get<std::string>())) done_.emplace(e["id"].get<std::string>(), e);
      } catch (const std::exception& ex) {
        err_ << "qeval sweep: note: ignoring '" << o_.out << "' for --resume (" << ex.what() << ")\n";
      }
    }
    if (foreign)
      err_ << "qeval sweep: note: the journal holds " << foreign
           << " finished run(s) that are not in this sweep (config changed?); they are left out\n";
  }

  void print_header() {
    out_ << "qeval sweep: " << mine_.size() << " run(s)";
    if (o_.shard_count > 1) out_ << " (shard " << o_.shard_index << "/" << o_.shard_count << " of " << plan_.runs.size() << ")";
    if (res_.skipped) out_ << ", " << res_.skipped << " already finished (resume)";
    if (plan_.duplicates) out_ << ", " << plan_.duplicates << " duplicate(s) collapsed";
    if (o_.jobs > 1) out_ << ", " << o_.jobs << " jobs";
    if (o_.inject_rounding) out_ << " [FAULT INJECTION: rounding " << quant::to_string(*o_.inject_rounding) << "]";
    if (o_.inject_scale_error != 0.0) out_ << " [FAULT INJECTION: weight scales x (1 + " << o_.inject_scale_error << ")]";
    if (o_.twin) out_ << " (with reassociation twins)";
    out_ << "\n";
    std::set<std::string> kinds_shown;
    for (const Run* r : todo_)
      if (kinds_shown.insert(r->kind).second)
        out_ << Progress::prefix_blank(mode_, mine_.size()) << find_executor(r->kind)->table_header() << "\n";
    out_.flush();
  }

  bool stop_requested() const { return g_signals.load() > 0 || (o_.stop && o_.stop->load()); }

  // Runs todo_[next_++] until none is left, a run failed or a stop was requested; journals each finished run.
  void worker(Progress& progress) {
    while (!failed_.load() && !stop_requested()) {
      const size_t i = next_.fetch_add(1);
      if (i >= todo_.size()) break;
      const Run& run = *todo_[i];
      progress.started(run.name);
      execute_one(run, progress);
      bool release = false;
      {
        std::lock_guard<std::mutex> lk(mu_);
        release = --remaining_per_resource_[run.resource] == 0;
      }
      if (release) ctx_.release(run.resource);
    }
  }

  void execute_one(const Run& run, Progress& progress) {
    const RunExecutor* ex = find_executor(run.kind);
    const auto t0 = Clock::now();
    try {
      json entry = {{"kind", run.kind}, {"id", run.id}, {"name", run.name}, {"spec", run.spec}};
      json fields = ex->execute(run, ctx_);
      for (auto it = fields.begin(); it != fields.end(); ++it) entry[it.key()] = it.value();
      if (journal_) journal_->append({{"run", entry}});
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      progress.finished(run.name, ex->table_row(entry), run.cost, secs);
      std::lock_guard<std::mutex> lk(mu_);
      done_.emplace(run.id, std::move(entry));
      ++res_.executed;
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!first_error_) {
        first_error_ = std::current_exception();
        first_error_run_ = run.name;
      }
      failed_ = true;
      progress.abandoned(run.name);
    }
  }

  void execute_all() {
    ctx_.inject_rounding = o_.inject_rounding;
    ctx_.inject_scale_error = o_.inject_scale_error;
    ctx_.twin = o_.twin;
    Progress progress(mode_, mine_.size(), res_.skipped, total_cost_, out_, err_);
    const int jobs = std::max(1, std::min<int>(o_.jobs, static_cast<int>(std::max<size_t>(todo_.size(), 1))));
    std::vector<std::thread> pool;
    for (int t = 1; t < jobs; ++t) pool.emplace_back([&] { worker(progress); });
    worker(progress);
    for (auto& t : pool) t.join();
    progress.stop();
  }

  [[noreturn]] void rethrow_first_error() {
    if (journal_ && done_.empty()) journal_->close_and_remove();  // nothing worth resuming
    try {
      std::rethrow_exception(first_error_);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (journal_ && !done_.empty())
        msg += " [run " + first_error_run_ + "; " + std::to_string(done_.size()) + " finished run(s) are in '" + jpath_ +
               "': fix the cause and add --resume]";
      throw std::runtime_error(msg);
    }
  }

  EngineResult interrupted() {
    res_.interrupted = true;
    res_.exit_code = 130;
    std::string cmd;
    bool has_resume = false;
    for (const auto& a : o_.command_line) {
      cmd += (cmd.empty() ? "" : " ") + a;
      has_resume = has_resume || a == "--resume";
    }
    err_ << "qeval sweep: interrupted after " << done_.size() << " of " << mine_.size() << " run(s)";
    if (durable_)
      err_ << "; the finished runs are in '" << jpath_ << "'; continue with:\n  " << cmd << (has_resume ? "" : " --resume");
    err_ << "\n";
    return res_;
  }

  // The report, from the journal (the record) or the runs in memory; the legend and each kind's summary.
  EngineResult finish() {
    std::vector<json> entries;
    if (durable_) entries = read_journal(jpath_);
    else
      for (auto& [id, e] : done_) entries.push_back(e);
    res_.report = build_report(plan_, entries, o_);
    // Every run of this shard must be in the report exactly once (the journal can hold no duplicates of a
    // finished id: resume skips them; a duplicate line would be the same run's identical result).
    if (res_.report["runs"].size() != mine_.size())
      throw std::runtime_error("internal error: the report has " + std::to_string(res_.report["runs"].size()) +
                               " runs, the plan " + std::to_string(mine_.size()));
    const std::string legend = mine_.empty() ? "" : find_executor(mine_.front()->kind)->table_legend();
    if (!legend.empty()) out_ << legend << "\n";
    std::map<std::string, std::vector<json>> by_kind;
    for (const auto& e : res_.report["runs"]) by_kind[e.value("kind", std::string())].push_back(e);
    for (const auto& [kind, es] : by_kind)
      if (const RunExecutor* ex = find_executor(kind))
        if (const std::string s = ex->table_summary(es); !s.empty()) out_ << s;
    if (durable_) {
      report::write_json_atomic(o_.out, res_.report);
      journal_->close_and_remove();
      out_ << "report: " << res_.report["runs"].size() << " run(s) written to " << o_.out << "\n";
    }
    return res_;
  }

  const SweepPlan& plan_;
  const EngineOptions& o_;
  std::ostream& out_;
  std::ostream& err_;
  const std::vector<const Run*> mine_;
  const bool durable_;
  const std::string jpath_;
  EngineResult res_;
  ProgressMode mode_ = ProgressMode::lines;
  std::map<std::string, json> done_;
  std::unique_ptr<Journal> journal_;
  std::vector<const Run*> todo_;
  double total_cost_ = 0;
  std::map<std::string, size_t> remaining_per_resource_;
  ExecContext ctx_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  std::exception_ptr first_error_;
  std::string first_error_run_;
};

}  // namespace

EngineResult run_engine(const SweepPlan& plan, const EngineOptions& o, std::ostream& out, std::ostream& err) {
  return EngineRun(plan, o, out, err).run();
}

}  // namespace qeval::sweep
