// eval/model/backend/backends.cpp — the registry of LinearBackends (by name) and the plan-time support check.
#include <stdexcept>

#include "eval/model/backend/cpu_backend.hpp"
#include "eval/model/backend/linear_backend.hpp"
#include "eval/model/backend/ref_backend.hpp"
#if QEVAL_HAVE_OPENCL
#include "eval/model/backend/opencl_backend.hpp"
#endif

namespace qeval::model {

namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string label(const schemes::Scheme* s) { return s ? "'" + s->config().label() + "'" : "none (fp)"; }

}  // namespace

std::vector<std::string> linear_backend_names() {
#if QEVAL_HAVE_OPENCL
  return {"ref", "cpu", "opencl"};
#else
  return {"ref", "cpu"};
#endif
}

std::shared_ptr<const LinearBackend> make_linear_backend(const std::string& name) {
  if (name == "ref") return make_ref_backend();
  if (name == "cpu") return make_cpu_backend();
#if QEVAL_HAVE_OPENCL
  if (name == "opencl") return make_opencl_backend();
#else
  if (name == "opencl")
    throw std::invalid_argument("model backend 'opencl': qeval was built without OpenCL (configure with "
                                "-DQEVAL_OPENCL=ON; needs ocl-icd-opencl-dev opencl-headers)");
#endif
  throw std::invalid_argument("unknown model backend '" + name + "' (this build has: " +
                              joined(linear_backend_names()) + ")");
}

void require_supported(const LinearBackend& backend, const std::string& layer, const schemes::Scheme* weight,
                       const schemes::Scheme* act) {
  const schemes::SchemeTraits wt = weight ? weight->traits() : schemes::SchemeTraits{};
  const schemes::SchemeTraits at = act ? act->traits() : schemes::SchemeTraits{};
  const Support s = backend.supports(weight ? &wt : nullptr, act ? &at : nullptr);
  if (s.ok) return;
  std::vector<std::string> others;
  for (const auto& n : linear_backend_names()) {
    if (n == backend.name()) continue;
    if (make_linear_backend(n)->supports(weight ? &wt : nullptr, act ? &at : nullptr).ok) others.push_back(n);
  }
  throw std::invalid_argument("quant plan: backend '" + backend.name() + "' cannot run layer " + layer +
                              " (weight scheme " + label(weight) + ", activation scheme " + label(act) + "): " +
                              s.reason + (others.empty() ? "" : "; backends that run it: " + joined(others)));
}

}  // namespace qeval::model
