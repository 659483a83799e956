// schemes/mixed/mixed.cpp — mixed-precision bit allocation (exact DP over the budget, Lagrangian bound) and the
// `mixed` weight scheme that quantizes each layer with the bit width an allocation file assigns to it.
#include "schemes/mixed/mixed.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "quant/matrix.hpp"
#include "schemes/common/calib_common.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes {

int64_t layer_cost_bits(const quant::QuantParams& p, int64_t rows, int64_t cols) {
  p.validate();
  p.validate_for_row_length(cols);
  quant::QuantizedMatrix q;
  q.format = quant::Format::int_affine;
  q.params = p;
  q.rows = rows;
  q.cols = cols;
  // bits_per_weight·n = bits·n + groups·(16 + zero-point bits): an integer, exact in double below 2^53.
  return std::llround(q.bits_per_weight() * static_cast<double>(rows) * static_cast<double>(cols));
}

namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("mixed precision: " + what); }

// max_λ≥0 Σ_l min_c (s_lc + λ·e_lc) − λ·budget (weak duality: a lower bound on the constrained optimum).
double lagrangian_bound(const std::vector<std::vector<double>>& s, const std::vector<std::vector<int64_t>>& e,
                        int64_t budget) {
  auto phi = [&](double lambda, double* subgrad) {
    double v = 0.0, used = 0.0;
    for (size_t l = 0; l < s.size(); ++l) {
      double best = std::numeric_limits<double>::infinity();
      double best_e = 0.0;
      for (size_t c = 0; c < s[l].size(); ++c) {
        const double x = s[l][c] + lambda * static_cast<double>(e[l][c]);
        if (x < best || (x == best && e[l][c] < best_e)) {
          best = x;
          best_e = static_cast<double>(e[l][c]);
        }
      }
      v += best;
      used += best_e;
    }
    if (subgrad) *subgrad = used - static_cast<double>(budget);
    return v - lambda * static_cast<double>(budget);
  };
  double g = 0.0;
  double best = phi(0.0, &g);
  if (g <= 0.0) return best;  // the unconstrained optimum fits: it is the optimum
  // At λ_hi one unit of extra cost outweighs every sensitivity difference, so each layer takes a cheapest
  // candidate and the subgradient is −budget ≤ 0.
  double spread = 0.0;
  int64_t min_e = std::numeric_limits<int64_t>::max();
  for (size_t l = 0; l < s.size(); ++l) {
    const auto [lo, hi] = std::minmax_element(s[l].begin(), s[l].end());
    spread += *hi - *lo;
    for (int64_t v : e[l])
      if (v > 0) min_e = std::min(min_e, v);
  }
  double lo = 0.0, hi = (spread + 1.0) / static_cast<double>(min_e) * 2.0;
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    const double v = phi(mid, &g);
    best = std::max(best, v);
    if (g > 0.0) lo = mid; else hi = mid;
  }
  return std::max(best, std::max(phi(lo, nullptr), phi(hi, nullptr)));
}

}  // namespace

namespace {

// The problem's costs, validated: per layer and candidate the storage in bits, the extra over the layer's cheapest,
// the sensitivities; the cheapest total (base) and the weight count.
struct Costs {
  std::vector<std::vector<int64_t>> cost, extra;
  std::vector<std::vector<double>> sens;
  int64_t base = 0;
  long double n_total = 0.0L;
};

Costs costs_of(const MixedProblem& pr) {
  const size_t L = pr.layers.size(), C = pr.candidates.size();
  Costs k;
  k.cost.assign(L, std::vector<int64_t>(C));
  k.extra.assign(L, std::vector<int64_t>(C));
  k.sens.resize(L);
  for (size_t l = 0; l < L; ++l) {
    const MixedLayer& ly = pr.layers[l];
    if (ly.sensitivity.size() != C)
      bad("layer '" + ly.name + "' has " + std::to_string(ly.sensitivity.size()) + " sensitivities for " +
          std::to_string(C) + " candidates");
    for (double v : ly.sensitivity)
      if (!std::isfinite(v)) bad("layer '" + ly.name + "' has a non-finite sensitivity");
    if (ly.rows <= 0 || ly.cols <= 0)
      bad("layer '" + ly.name + "' has shape " + std::to_string(ly.rows) + " x " + std::to_string(ly.cols));
    k.sens[l] = ly.sensitivity;
    for (size_t c = 0; c < C; ++c) {
      try {
        k.cost[l][c] = layer_cost_bits(pr.candidates[c], ly.rows, ly.cols);
      } catch (const std::invalid_argument& e) {
        bad("layer '" + ly.name + "', candidate " + pr.candidates[c].to_string() + ": " + e.what());
      }
    }
    const int64_t mn = *std::min_element(k.cost[l].begin(), k.cost[l].end());
    for (size_t c = 0; c < C; ++c) k.extra[l][c] = k.cost[l][c] - mn;
    k.base += mn;
    k.n_total += static_cast<long double>(ly.rows) * static_cast<long double>(ly.cols);
  }
  return k;
}

// The DP's budget quantum u (exact: the gcd of the extra costs; else enlarged so that ≤ `cap` states remain, setting
// a.exact = false) and each extra cost in units of u (rounded up when inexact); returns the budget in units.
int64_t discretize(const Costs& k, int64_t room, int64_t max_table, MixedAllocation& a,
                   std::vector<std::vector<int64_t>>& d) {
  const size_t L = k.extra.size();
  int64_t max_extra = 0;  // spending more than this buys nothing
  int64_t g = 0;
  for (size_t l = 0; l < L; ++l) {
    max_extra += *std::max_element(k.extra[l].begin(), k.extra[l].end());
    for (int64_t e : k.extra[l]) g = std::gcd(g, e);
  }
  room = std::min(room, max_extra);
  int64_t u = std::max<int64_t>(g, 1);
  const int64_t cap = std::max<int64_t>(2, max_table / static_cast<int64_t>(L));
  if (room / u + 1 > cap) {
    a.exact = false;
    u = std::max<int64_t>((room + (cap - 2)) / (cap - 1), 1);  // ⌈room/(cap − 1)⌉
  }
  a.unit_bits = u;
  d.assign(L, std::vector<int64_t>(k.extra.empty() ? 0 : k.extra[0].size()));
  int64_t dmax = 0;
  for (size_t l = 0; l < L; ++l) {
    int64_t m = 0;
    for (size_t c = 0; c < d[l].size(); ++c) {
      d[l][c] = a.exact ? k.extra[l][c] / u : (k.extra[l][c] + u - 1) / u;  // exact: divisible; else round up
      m = std::max(m, d[l][c]);
    }
    dmax += m;
  }
  return std::min(room / u, dmax);
}

// D_l(b) over budgets b = 0..bu (see the header), then the choices read back from the last layer.
std::vector<int> solve_dp(const std::vector<std::vector<double>>& sens, const std::vector<std::vector<int64_t>>& d,
                          int64_t bu) {
  const size_t L = sens.size(), C = sens[0].size();
  const size_t states = static_cast<size_t>(bu + 1);
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> prev(states, 0.0), cur(states);
  std::vector<uint8_t> pick(L * states);
  for (size_t l = 0; l < L; ++l) {
    uint8_t* pk = pick.data() + l * states;
    for (int64_t b = 0; b <= bu; ++b) {
      double best = inf;
      uint8_t bc = 0;
      for (size_t c = 0; c < C; ++c) {
        if (d[l][c] > b) continue;
        const double v = prev[static_cast<size_t>(b - d[l][c])] + sens[l][c];
        if (v < best) {  // strict: ties keep the lower candidate index
          best = v;
          bc = static_cast<uint8_t>(c);
        }
      }
      cur[static_cast<size_t>(b)] = best;
      pk[b] = bc;
    }
    std::swap(prev, cur);
  }
  std::vector<int> choice(L, 0);
  int64_t b = bu;
  for (size_t l = L; l-- > 0;) {
    const int c = pick[l * states + static_cast<size_t>(b)];
    choice[l] = c;
    b -= d[l][static_cast<size_t>(c)];
  }
  return choice;
}

}  // namespace

MixedAllocation allocate_bits(const MixedProblem& pr, int64_t max_table) {
  const size_t L = pr.layers.size(), C = pr.candidates.size();
  if (L == 0) bad("no layers to allocate bits to");
  if (C == 0) bad("no candidate bit widths");
  if (C > 255) bad(std::to_string(C) + " candidates; at most 255");
  if (!(pr.target_bits_per_weight > 0.0) || !std::isfinite(pr.target_bits_per_weight))
    bad("target bits/weight " + std::to_string(pr.target_bits_per_weight) + " must be a positive number");
  const Costs k = costs_of(pr);
  const int64_t budget =
      static_cast<int64_t>(std::floor(static_cast<long double>(pr.target_bits_per_weight) * k.n_total));
  if (budget < k.base)
    bad("target " + std::to_string(pr.target_bits_per_weight) + " bits/weight is below the cheapest allocation (" +
        std::to_string(static_cast<double>(k.base) / static_cast<double>(k.n_total)) +
        " bits/weight with every layer at its cheapest candidate)");
  MixedAllocation a;
  a.budget_bits = budget;
  std::vector<std::vector<int64_t>> d;
  const int64_t bu = discretize(k, budget - k.base, max_table, a, d);
  a.choice = solve_dp(k.sens, d, bu);
  for (size_t l = 0; l < L; ++l) {
    a.total_sensitivity += k.sens[l][static_cast<size_t>(a.choice[l])];
    a.total_bits += k.cost[l][static_cast<size_t>(a.choice[l])];
  }
  a.bits_per_weight = static_cast<double>(a.total_bits) / static_cast<double>(k.n_total);
  a.lower_bound = lagrangian_bound(k.sens, k.extra, budget - k.base);
  return a;
}

nlohmann::json allocation_to_json(const MixedProblem& pr, const MixedAllocation& a) {
  nlohmann::json j;
  j["target_bits_per_weight"] = pr.target_bits_per_weight;
  j["bits_per_weight"] = a.bits_per_weight;
  j["total_bits"] = a.total_bits;
  j["budget_bits"] = a.budget_bits;
  j["total_sensitivity"] = a.total_sensitivity;
  j["lower_bound"] = a.lower_bound;
  j["exact"] = a.exact;
  j["unit_bits"] = a.unit_bits;
  nlohmann::json layers = nlohmann::json::object();
  for (size_t l = 0; l < pr.layers.size(); ++l) {
    const quant::QuantParams& p = pr.candidates[static_cast<size_t>(a.choice[l])];
    layers[pr.layers[l].name] = {{"bits", p.bits}, {"group_size", p.group_size}};
  }
  j["layers"] = layers;
  return j;
}

std::map<std::string, LayerBits> read_allocation(const std::string& path) {
  std::ifstream f(path);
  if (!f)
    throw std::invalid_argument("mixed precision: cannot open the allocation file '" + path +
                                "' (write one with allocation_to_json from measured sensitivities)");
  nlohmann::json j;
  try {
    f >> j;
  } catch (const std::exception& e) {
    throw std::invalid_argument("mixed precision: allocation file '" + path + "' is not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("layers") || !j["layers"].is_object())
    throw std::invalid_argument("mixed precision: allocation file '" + path +
                                "' has no \"layers\" object ({\"layers\": {\"blk.0.attn_q\": {\"bits\": 4, "
                                "\"group_size\": 128}, ...}})");
  std::map<std::string, LayerBits> out;
  for (const auto& [name, v] : j["layers"].items()) {
    LayerBits lb;
    if (v.is_number_integer()) {
      lb.bits = v.get<int>();
      lb.group_size = -2;  // "the scheme's own group size"
    } else if (v.is_object() && v.contains("bits") && v["bits"].is_number_integer()) {
      lb.bits = v["bits"].get<int>();
      lb.group_size = v.contains("group_size") ? v["group_size"].get<int64_t>() : -2;
    } else {
      throw std::invalid_argument("mixed precision: allocation file '" + path + "', layer '" + name +
                                  "': expected {\"bits\": b, \"group_size\": g} or a bit width");
    }
    out[name] = lb;
  }
  return out;
}

namespace {

class Mixed final : public Scheme {
 public:
  static constexpr const char* kAllocation = "allocation";  // the option naming the allocation file

  explicit Mixed(const SchemeConfig& cfg) : Scheme(cfg) {
    const std::string id = cfg.scheme;
    SchemeConfig inner;
    inner.scheme = cfg.options.get_string(id, "base", "rtn");
    for (const auto& [k, v] : cfg.options.items()) {
      if (k == "base" || k == kAllocation) continue;
      if (k.rfind("base.", 0) == 0) {
        inner.options.set(k.substr(5), v);
        continue;
      }
      throw std::invalid_argument("scheme 'mixed' has no option '" + k +
                                  "' (its options: allocation, base, base.<option of the base scheme>)");
    }
    const SchemeInfo* info = find_scheme(inner.scheme);
    if (!info || info->target != Target::weight || inner.scheme == "mixed")
      throw std::invalid_argument("scheme 'mixed': base='" + inner.scheme +
                                  "' must be a weight scheme other than mixed (e.g. rtn, gptq, awq)");
    inner.params = cfg.params;
    default_ = make_scheme(inner);
    if (cfg.options.has(kAllocation)) {
      path_ = cfg.options.get_string(id, kAllocation, "");
      alloc_ = read_allocation(path_);
      if (alloc_.empty())
        throw std::invalid_argument("scheme 'mixed': allocation file '" + path_ + "' lists no layers");
      for (auto& [layer, lb] : alloc_) {
        if (lb.group_size == -2) lb.group_size = cfg.params.group_size;
        const auto key = std::make_pair(lb.bits, lb.group_size);
        if (inner_.count(key)) continue;
        SchemeConfig c = inner;
        c.params.bits = lb.bits;
        c.params.group_size = lb.group_size;
        try {
          inner_[key] = make_scheme(c);
        } catch (const std::invalid_argument& e) {
          throw std::invalid_argument("scheme 'mixed': allocation file '" + path_ + "', layer '" + layer +
                                      "': " + e.what());
        }
      }
    }
  }
  SchemeTraits traits() const override {
    const SchemeTraits b = default_->traits();
    SchemeTraits t;
    t.calibration = b.calibration;
    t.calibration.layer_name = !alloc_.empty();  // the bit width is looked up by layer name
    t.codes = b.codes;
    WrapperTraits w;
    w.base = default_->config();  // base=<id>, base.<key>=<value>, the mixed config's params
    // Sensitivity is measured with each layer quantized alone, without per-layer calibration data: a base that
    // needs it (gptq, awq) is stood in for by rtn with the same params.
    w.sensitivity = w.base;
    if (b.calibration.any()) {
      w.sensitivity = default_config("rtn");
      w.sensitivity.params = config().params;
    }
    w.allocation_option = kAllocation;
    w.allocated = config().options.has(kAllocation);
    t.wrapper = w;
    return t;
  }

  quant::QuantizedMatrix quantize(quant::MatrixView w, const Calibration* c) const override {
    if (alloc_.empty()) return default_->quantize(w, c);
    const Calibration& cal =
        calib::require(name(), c, "the layer name (Calibration::layer_name), to look up its bit width");
    const auto it = alloc_.find(cal.layer_name);
    if (it == alloc_.end())
      throw std::invalid_argument("scheme 'mixed': layer '" + cal.layer_name + "' is not in the allocation file '" +
                                  path_ + "' (" + std::to_string(alloc_.size()) + " layers, e.g. '" +
                                  alloc_.begin()->first + "'); allocate bits for every quantized layer");
    return inner_.at(std::make_pair(it->second.bits, it->second.group_size))->quantize(w, c);
  }

 private:
  std::unique_ptr<Scheme> default_;
  std::string path_;
  std::map<std::string, LayerBits> alloc_;
  std::map<std::pair<int, int64_t>, std::unique_ptr<Scheme>> inner_;
};

}  // namespace

std::unique_ptr<Scheme> make_scheme_mixed(const SchemeConfig& cfg) { return std::make_unique<Mixed>(cfg); }

}  // namespace qeval::schemes
