// eval/sweep/journal.hpp — the sweep's durable progress: <out>.jsonl next to the report. Line 1 is a header
// {"qeval_journal": 1, ...}; then one line per finished run, {"run": <its complete runs[] entry>}, each written with
// a single write(2) and fdatasync'ed before the run counts as done, so a crash (even SIGKILL) loses at most the runs
// in flight; a line cut short by the crash is detected and dropped on --resume.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qeval::sweep {

// The journal's path for a report path.
std::string journal_path(const std::string& out);

// Reads a journal: the finished entries, in file order. A final line without '\n' or that does not parse
// (a write cut short by a crash) is dropped and *truncated_at set to the byte offset where it starts
// (else −1). Throws std::runtime_error naming the file and line for corruption elsewhere.
std::vector<nlohmann::json> read_journal(const std::string& path, long long* truncated_at = nullptr);

// Appends to a journal; errors name the report it belongs to.
class Journal {
 public:
  Journal(const std::string& report_path, const std::string& path) : report_(report_path), path_(path) {}
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;
  // Opens for appending (creating it with `header` when absent or empty), first cutting it at `truncate_at` (≥ 0).
  void open(const nlohmann::json& header, long long truncate_at);
  // One line, one write(2), then fdatasync: durable before the run counts as finished. Thread-safe.
  void append(const nlohmann::json& j);
  void close_and_remove();

 private:
  [[noreturn]] void fail(const std::string& what);
  std::string report_, path_;
  int fd_ = -1;
  std::mutex mu_;
};

}  // namespace qeval::sweep
