// eval/sweep/run_kind.cpp — the run-kind registry (run_kinds.def + registered executors) and ExecContext.
#include "eval/sweep/run_kind.hpp"

#include <algorithm>
#include <cstdio>

#include "eval/report/report.hpp"

namespace qeval::sweep {

Run make_run(const std::string& kind, std::shared_ptr<const RunSpec> typed) {
  Run r;
  r.kind = kind;
  r.spec = typed->to_json();
  r.id = report::run_id(r.spec);
  r.typed = std::move(typed);
  return r;
}

std::string table_number(const nlohmann::json& v, int prec) {
  if (!v.is_number()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v.get<double>());
  return buf;
}

const nlohmann::json& json_at(const nlohmann::json& j, const char* pointer) {
  static const nlohmann::json null;
  const nlohmann::json::json_pointer p(pointer);
  return j.contains(p) ? j.at(p) : null;
}

namespace {
struct Registry {
  std::mutex mu;
  std::vector<std::shared_ptr<RunExecutor>> list;
  Registry() {
#define QEVAL_RUN_KIND(id, factory, summary) list.push_back(factory());
#include "eval/sweep/run_kinds.def"
#undef QEVAL_RUN_KIND
  }
};
Registry& registry() {
  static Registry r;
  return r;
}
}  // namespace

const RunExecutor* find_executor(const std::string& kind) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lk(r.mu);
  for (const auto& e : r.list)
    if (e->kind() == kind) return e.get();
  return nullptr;
}

std::vector<std::string> executor_kinds() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lk(r.mu);
  std::vector<std::string> out;
  for (const auto& e : r.list) out.push_back(e->kind());
  return out;
}

void register_executor(std::shared_ptr<RunExecutor> e) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lk(r.mu);
  for (auto& x : r.list)
    if (x->kind() == e->kind()) {
      x = std::move(e);
      return;
    }
  r.list.push_back(std::move(e));
}

std::shared_ptr<const void> ExecContext::get_or_load(const std::string& key,
                                                     const std::function<std::shared_ptr<const void>()>& make) {
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto& s = slots_[key];
    if (!s) s = std::make_shared<Slot>();
    slot = s;
  }
  // Loaded once even when several threads ask at the same time; the others wait for it.
  std::call_once(slot->once, [&] {
    try {
      slot->value = make();
    } catch (...) {
      slot->error = std::current_exception();
    }
  });
  if (slot->error) std::rethrow_exception(slot->error);
  return slot->value;
}

void ExecContext::release(const std::string& key) {
  std::lock_guard<std::mutex> lk(mu_);
  slots_.erase(key);
}

}  // namespace qeval::sweep
