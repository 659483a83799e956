// eval/sweep/journal.cpp — the sweep journal: durable appends, reading back (dropping a cut-short last line).
#include "eval/sweep/journal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "eval/report/report.hpp"
#include "quant/json_text.hpp"

namespace qeval::sweep {

using nlohmann::json;

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

void Journal::open(const json& header, long long truncate_at) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create journal");
  if (truncate_at >= 0 && ::ftruncate(fd_, truncate_at) != 0) fail("cannot truncate the cut-short last line of journal");
  struct stat st {};
  if (::fstat(fd_, &st) != 0) fail("cannot stat journal");
  if (st.st_size == 0) append(header);
}

void Journal::append(const json& j) {
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

void Journal::close_and_remove() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(path_.c_str());
}

void Journal::fail(const std::string& what) {
  const int e = errno;
  throw std::runtime_error("cannot write report '" + report_ + "': " + what + " '" + path_ + "' (" + std::strerror(e) + ")");
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

}  // namespace qeval::sweep
