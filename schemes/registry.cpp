// schemes/registry.cpp — expands schemes/schemes.def into the registry, and the shared Scheme code.
#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "quant/quantize.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {

const char* to_string(Target t) {
  switch (t) {
    case Target::weight: return "weight";
    case Target::activation: return "activation";
    case Target::kv_cache: return "kv_cache";
    case Target::linear: return "linear";
  }
  return "?";
}

const char* to_string(ActivationQuant a) {
  switch (a) {
    case ActivationQuant::none: return "none";
    case ActivationQuant::dynamic: return "dynamic";
    case ActivationQuant::frozen: return "frozen";
  }
  return "?";
}

const std::vector<SchemeInfo>& scheme_list() {
  static const std::vector<SchemeInfo> list = {
#define QEVAL_SCHEME(id, target, bits, group, summary, options) \
  SchemeInfo{#id, Target::target, bits, group, summary, options},
#include "schemes/schemes.def"
#undef QEVAL_SCHEME
  };
  return list;
}

const SchemeInfo* find_scheme(const std::string& id) {
  for (const auto& s : scheme_list())
    if (id == s.id) return &s;
  return nullptr;
}

namespace {
std::string known_ids() {
  std::string out;
  for (const auto& s : scheme_list()) {
    if (!out.empty()) out += ", ";
    out += s.id;
  }
  return out;
}
}  // namespace

SchemeConfig default_config(const std::string& id) {
  const SchemeInfo* info = find_scheme(id);
  if (!info)
    throw std::invalid_argument("unknown scheme '" + id + "' (registered: " + known_ids() +
                                "; `qeval list-schemes` describes them)");
  SchemeConfig c;
  c.scheme = id;
  c.params.bits = info->default_bits;
  c.params.group_size = info->default_group_size;
  return c;
}

std::unique_ptr<Scheme> make_scheme(const SchemeConfig& cfg) {
#define QEVAL_SCHEME(id, target, bits, group, summary, options) \
  if (cfg.scheme == #id) {                                      \
    cfg.params.validate();                                      \
    return make_scheme_##id(cfg);                               \
  }
#include "schemes/schemes.def"
#undef QEVAL_SCHEME
  throw std::invalid_argument("unknown scheme '" + cfg.scheme + "' (registered: " + known_ids() +
                              "; `qeval list-schemes` describes them)");
}

std::string SchemeConfig::label() const {
  std::ostringstream os;
  os << scheme << ' ' << params.to_string();
  for (const auto& [k, v] : options.items()) os << ' ' << k << '=' << v;
  return os.str();
}

void require_code_book_params(const SchemeConfig& cfg, int format_bits) {
  const std::string who = "scheme '" + cfg.scheme + "': ";
  if (cfg.params.bits != format_bits)
    throw std::invalid_argument(who + "bits=" + std::to_string(cfg.params.bits) + " but its codes are " +
                                std::to_string(format_bits) + " bits; use --bits " + std::to_string(format_bits));
  if (cfg.params.mapping != quant::Mapping::symmetric)
    throw std::invalid_argument(who + "a code book scaled by the group's absmax is symmetric; use --sym "
                                "(asymmetric ranges exist only for the integer schemes, e.g. rtn)");
  if (cfg.params.range != quant::RangeMethod::minmax)
    throw std::invalid_argument(who + "range method '" + quant::to_string(cfg.params.range) +
                                "' is not implemented for code books; use minmax");
}

void Scheme::dequantize(const quant::QuantizedMatrix& q, quant::MutableMatrixView out) const {
  quant::dequantize(q, out);
}

void Scheme::fake_quantize(quant::MatrixView in, quant::MutableMatrixView out,
                           const Calibration* calib) const {
  const quant::QuantizedMatrix q = quantize(in, calib);
  dequantize(q, out);
}

}  // namespace qeval::schemes
