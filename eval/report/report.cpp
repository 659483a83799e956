// eval/report/report.cpp — report header, environment capture, metric/config serialization and atomic writes.
#include "eval/report/report.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <xxhash.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "quant/json_text.hpp"

#include <Eigen/Core>

#include "build_info.hpp"
#include "quant/cpu/dispatch.hpp"
#include "quant/params_json.hpp"

namespace qeval::report {

const BuildInfo& build_info() {
  static const BuildInfo bi = [] {
    BuildInfo b;
    b.tool_version = QEVAL_BI_VERSION;
    b.git_sha = QEVAL_BI_GIT_SHA;
    b.git_dirty = QEVAL_BI_GIT_DIRTY != 0;
    b.git_known = QEVAL_BI_GIT_KNOWN != 0;
    b.compiler_id = QEVAL_BI_COMPILER_ID;
    b.compiler_version = QEVAL_BI_COMPILER_VERSION;
    b.build_type = QEVAL_BI_BUILD_TYPE;
    b.libraries["eigen"] = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                           std::to_string(EIGEN_MINOR_VERSION);
    b.libraries["nlohmann_json"] = std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
                                   std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." +
                                   std::to_string(NLOHMANN_JSON_VERSION_PATCH);
    if (*QEVAL_BI_TORCH_VERSION) b.libraries["libtorch"] = QEVAL_BI_TORCH_VERSION;
    if (*QEVAL_BI_OPENCL_VERSION) b.libraries["opencl_headers"] = QEVAL_BI_OPENCL_VERSION;
    return b;
  }();
  return bi;
}

std::string version_string() {
  const BuildInfo& b = build_info();
  std::string git = b.git_known ? b.git_sha.substr(0, 12) + (b.git_dirty ? "-dirty" : "") : "unknown";
  return "qeval " + b.tool_version + " (git " + git + ", " + b.build_type + ", " + b.compiler_id + " " +
         b.compiler_version + ")";
}

std::string utc_now_iso() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {
// The brand string from /proc/cpuinfo, for when the dispatcher does not report one.
std::string proc_cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string v = line.substr(colon + 1);
        const size_t b = v.find_first_not_of(" \t");
        return b == std::string::npos ? "" : v.substr(b);
      }
    }
  return "";
}
}  // namespace

nlohmann::json environment_json() {
  nlohmann::json env;
  const cpu::CpuFeatures& f = cpu::cpu_features();
  nlohmann::json cpu;
  cpu["model"] = f.model_name.empty() ? proc_cpu_model() : f.model_name;
  nlohmann::json flags = nlohmann::json::array();
  std::istringstream ss(f.summary());
  for (std::string w; ss >> w;) flags.push_back(w);
  cpu["flags"] = flags;
  cpu["fast_kernels"] = f.has_avx512() ? "avx512" : "reference";
  env["cpu"] = cpu;
  struct utsname u {};
  if (uname(&u) == 0) env["os"] = {{"sysname", u.sysname}, {"release", u.release}, {"machine", u.machine}};
  env["hardware_threads"] = std::thread::hardware_concurrency();
  const BuildInfo& b = build_info();
  env["compiler"] = {{"id", b.compiler_id}, {"version", b.compiler_version}};
  env["build_type"] = b.build_type;
  env["git"] = {{"sha", b.git_known ? nlohmann::json(b.git_sha) : nlohmann::json(nullptr)}, {"dirty", b.git_dirty}};
  nlohmann::json libs = nlohmann::json::object();
  for (const auto& [k, v] : b.libraries) libs[k] = v;
  env["libraries"] = libs;
  return env;
}

nlohmann::json new_report(const std::vector<std::string>& command_line) {
  nlohmann::json j;
  j["schema_version"] = kSchemaVersion;
  j["tool"] = {{"name", "qeval"}, {"version", build_info().tool_version}};
  j["created"] = utc_now_iso();
  j["command_line"] = command_line;
  j["producer"] = producer_json(command_line);
  j["environment"] = environment_json();
  j["runs"] = nlohmann::json::array();
  return j;
}

namespace {
// A command line as one shell-pastable string: arguments with characters outside [A-Za-z0-9_./,:=+@%-]
// are single-quoted.
std::string shell_join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty();
    for (char c : a)
      plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_./,:=+@%-", c) != nullptr);
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}
}  // namespace

nlohmann::json producer_json(const std::vector<std::string>& command_line) {
  nlohmann::json p;
  p["command"] = shell_join(command_line);
  std::string user;
  if (const char* u = std::getenv("USER"); u && *u) user = u;
  if (user.empty())
    if (const passwd* pw = ::getpwuid(::getuid())) user = pw->pw_name;
  p["user"] = user;
  char host[256] = {0};
  p["host"] = ::gethostname(host, sizeof host - 1) == 0 ? std::string(host) : std::string();
  p["date"] = utc_now_iso();
  const BuildInfo& b = build_info();
  p["git_sha"] = b.git_known ? nlohmann::json(b.git_sha) : nlohmann::json(nullptr);
  p["git_dirty"] = b.git_dirty;
  p["tool_version"] = b.tool_version;
  return p;
}

std::string xxh64_hex(const std::string& bytes) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(XXH64(bytes.data(), bytes.size(), 0)));
  return buf;
}

std::string run_id(const nlohmann::json& spec) { return xxh64_hex(spec.dump()); }

std::string file_xxh64(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open file '" + path + "' to hash it (" + std::strerror(errno) + ")");
  XXH64_state_t* st = XXH64_createState();
  XXH64_reset(st, 0);
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (f.gcount() > 0) XXH64_update(st, buf.data(), static_cast<size_t>(f.gcount()));
  }
  const bool bad = f.bad();
  const unsigned long long h = XXH64_digest(st);
  XXH64_freeState(st);
  if (bad) throw std::runtime_error("error reading file '" + path + "' while hashing it");
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", h);
  return out;
}

nlohmann::json strip_volatile(const nlohmann::json& report) {
  nlohmann::json j = report;
  if (!j.is_object()) return j;
  for (const char* k : {"created", "command_line", "producer", "environment", "shard", "merged_from", "baseline"})
    j.erase(k);
  if (j.contains("runs") && j["runs"].is_array())
    for (auto& r : j["runs"])
      if (r.is_object()) r.erase("timing_ms");
  return j;
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open '" + path + "' (" + std::strerror(errno) + ")");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return parse_json_text(ss.str());
  } catch (const std::invalid_argument& e) {  // a syntax error, a number beyond double, nesting too deep
    throw std::runtime_error("'" + path + "' is not valid JSON: " + e.what());
  }
}

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json config_json(const schemes::SchemeConfig& cfg) {
  nlohmann::json j;
  j["scheme"] = cfg.scheme;
  j["label"] = cfg.label();
  nlohmann::json p;
  quant::to_json(p, cfg.params);
  j["params"] = p;
  nlohmann::json o = nlohmann::json::object();
  for (const auto& [k, v] : cfg.options.items()) o[k] = v;
  j["options"] = o;
  return j;
}

nlohmann::json metrics_json(const metrics::TensorMetrics& m) {
  const auto& e = m.error;
  const auto& s = m.scales;
  const auto& g = m.gap;
  nlohmann::json j;
  j["elements"] = e.n;
  j["non_finite_inputs"] = e.non_finite_input;
  j["non_finite_outputs"] = e.non_finite_output;
  j["bits"] = m.bits;
  j["bits_per_weight"] = num(m.bits_per_weight);
  j["mse"] = num(e.mse);
  j["sqnr_db"] = num(e.sqnr_db);
  j["max_abs_error"] = num(e.max_abs_error);
  j["max_abs_error_at"] = {e.max_abs_row, e.max_abs_col};
  j["cosine"] = num(e.cosine);
  j["bound_db"] = num(g.bound_db);
  j["grid_adjusted_db"] = num(g.grid_adjusted_db);
  j["expected_sqnr_db"] = num(g.expected_db);
  j["gap_db"] = {{"total", num(g.total_db)},
                 {"grid", num(g.grid_loss_db)},
                 {"range", num(g.range_loss_db)},
                 {"other", num(g.other_db)}};
  j["signal"] = {{"power", num(e.signal_power)},
                 {"mean", num(e.mean)},
                 {"max_abs", num(e.max_abs_x)},
                 {"crest_factor", num(e.crest_factor)},
                 {"range_over_sigma", num(s.range_over_sigma)}};
  j["noise_model"] = {{"uniform_grid", s.uniform_grid},
                      {"mean_step_sq_over_12", num(s.mean_step_sq_12)},
                      {"mse_over_step_sq_12", num(e.mse / s.mean_step_sq_12)},
                      {"half_step_violations", s.half_step_violations}};
  j["clipping"] = {{"elements", s.clipped},
                   {"fraction", num(s.clipped_fraction)},
                   {"error_share", num(s.clipped_error_share)}};
  return j;
}

nlohmann::json tensor_run_json(const TensorRunRecord& r) {
  nlohmann::json j;
  j["kind"] = "tensor";
  j["id"] = r.id;
  j["config"] = config_json(r.config);
  j["target"] = r.target;
  j["tensor"] = {{"name", r.tensor_name}, {"rows", r.rows}, {"cols", r.cols}, {"dtype", r.dtype}};
  j["seed"] = r.seed;
  j["path"] = "quantize+dequantize";
  j["metrics"] = metrics_json(r.metrics);
  nlohmann::json t = nlohmann::json::object();
  for (const auto& [k, v] : r.timing_ms) t[k] = num(v);
  j["timing_ms"] = t;
  return j;
}

void write_json_atomic(const std::string& path, const nlohmann::json& j, int indent) {
  if (path.empty()) throw std::runtime_error("report path is empty");
  const std::string text = j.dump(indent) + "\n";
  // Same directory as the target, so rename(2) stays within one file system (and is atomic).
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  auto sys_fail = [&](const std::string& what, const std::string& p) {
    const int e = errno;
    throw std::runtime_error("cannot write report '" + path + "': " + what + " '" + p + "' failed (" +
                             std::strerror(e) + ")");
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) sys_fail("creating", tmp);
  size_t off = 0;
  while (off < text.size()) {
    const ssize_t w = ::write(fd, text.data() + off, text.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      errno = e;
      sys_fail("writing", tmp);
    }
    off += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    errno = e;
    sys_fail("fsync of", tmp);
  }
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    errno = e;
    sys_fail("closing", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    errno = e;
    sys_fail("renaming onto", path);
  }
}

}  // namespace qeval::report
