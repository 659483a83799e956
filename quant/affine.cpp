// quant/affine.cpp — QuantParams validation, naming and parsing (the formula itself is inline in affine.hpp).
#include "quant/affine.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace qeval::quant {

namespace {

// Shortest text that reads back as the same double ("0.9", "99.99", "1e-05").
std::string num(double v) {
  std::string s;
  for (int p = 6; p <= 17; ++p) {  // 17 significant digits always round-trip a double
    std::ostringstream t;
    t.precision(p);
    t << v;
    s = t.str();
    if (std::strtod(s.c_str(), nullptr) == v) break;
  }
  return s;
}

[[noreturn]] void bad_field(const std::string& field, const std::string& value, const std::string& accepted) {
  throw std::invalid_argument("QuantParams." + field + " = " + value + " is invalid; accepted: " + accepted);
}

// Up to three divisors of `cols` to suggest when group_size does not divide it: the common group sizes
// (powers of two 16..1024) that divide cols, nearest to the requested size first; failing those, the
// divisors of cols nearest to the requested size. Worked number: cols 4096, asked 100 → 32, 64, 128
// (distances 68, 36, 28; 256 is 156 away), listed ascending.
std::vector<int64_t> suggest_divisors(int64_t cols, int64_t asked) {
  std::vector<int64_t> cand;
  for (int64_t d = 16; d <= 1024; d *= 2)
    if (d <= cols && cols % d == 0) cand.push_back(d);
  if (cand.empty()) {
    for (int64_t d = 2; d * d <= cols && d <= (int64_t{1} << 20); ++d) {
      if (cols % d != 0) continue;
      cand.push_back(d);
      if (d != cols / d) cand.push_back(cols / d);
    }
  }
  std::sort(cand.begin(), cand.end(), [asked](int64_t a, int64_t b) {
    const int64_t da = std::llabs(a - asked), db = std::llabs(b - asked);
    return da != db ? da < db : a < b;
  });
  if (cand.size() > 3) cand.resize(3);
  std::sort(cand.begin(), cand.end());
  return cand;
}

}  // namespace

void QuantParams::validate() const {
  if (bits < kMinBits || bits > kMaxBits)
    bad_field("bits", std::to_string(bits),
              std::to_string(kMinBits) + ".." + std::to_string(kMaxBits) +
                  " (integer formats; the fp4/nf4 formats need 4 and fp8 needs 8)");
  if (group_size < kPerTensor)
    bad_field("group_size", std::to_string(group_size),
              "a positive group length (e.g. 32, 64, 128), 0 (kPerRow: one group per row, i.e. per-channel "
              "or per-token) or -1 (kPerTensor: one group for the whole tensor)");
  if (static_cast<unsigned>(mapping) > static_cast<unsigned>(Mapping::asymmetric))
    bad_field("mapping", std::to_string(static_cast<unsigned>(mapping)), "symmetric, asymmetric");
  if (static_cast<unsigned>(rounding) > static_cast<unsigned>(Rounding::toward_zero))
    bad_field("rounding", std::to_string(static_cast<unsigned>(rounding)), "nearest_even, nearest_away, toward_zero");
  if (static_cast<unsigned>(range) > static_cast<unsigned>(RangeMethod::mse))
    bad_field("range", std::to_string(static_cast<unsigned>(range)), "minmax, percentile, mse");
  if (static_cast<unsigned>(non_finite) > static_cast<unsigned>(NonFinitePolicy::propagate))
    bad_field("non_finite", std::to_string(static_cast<unsigned>(non_finite)), "error, propagate");
  // Written as !(inside) so that NaN is rejected too.
  if (!(clip_ratio > 0.0 && clip_ratio <= 1.0))
    bad_field("clip_ratio", num(clip_ratio), "a number in (0, 1] (1 = no clipping)");
  if (!(clip_percentile > 50.0 && clip_percentile <= 100.0))
    bad_field("clip_percentile", num(clip_percentile), "a number in (50, 100] (100 = the group's own max)");
  if (version != kVersion)
    bad_field("version", std::to_string(version),
              std::to_string(kVersion) + " (this build's QuantParams::kVersion; the value was written by a "
              "different version of qeval — re-create the config with this one)");
}

void QuantParams::validate_for_row_length(int64_t cols) const {
  if (cols < 0) throw std::invalid_argument("row length " + std::to_string(cols) + " is negative");
  if (group_size <= 0 || cols % group_size == 0 || partial_last_group) return;
  std::string msg = "group size " + std::to_string(group_size) + " does not divide the row length " +
                    std::to_string(cols) + "; use a divisor of " + std::to_string(cols);
  const std::vector<int64_t> d = suggest_divisors(cols, group_size);
  if (!d.empty()) {
    msg += " such as ";
    for (size_t i = 0; i < d.size(); ++i) msg += std::to_string(d[i]) + ", ";
    msg += "or 0 for one group per row";
  } else {
    msg += " (its only divisors are 1 and " + std::to_string(cols) + "), or 0 for one group per row";
  }
  msg += "; or allow a shorter last group with partial_last_group (CLI: --partial-groups)";
  throw std::invalid_argument(msg);
}

int64_t QuantParams::groups_per_row(int64_t cols) const {
  if (group_size <= 0) return 1;  // kPerRow, kPerTensor
  validate_for_row_length(cols);
  return (cols + group_size - 1) / group_size;
}

bool QuantParams::operator==(const QuantParams& o) const {
  return bits == o.bits && group_size == o.group_size && mapping == o.mapping && rounding == o.rounding &&
         range == o.range && clip_ratio == o.clip_ratio && clip_percentile == o.clip_percentile &&
         non_finite == o.non_finite && partial_last_group == o.partial_last_group && version == o.version;
}

std::string QuantParams::to_string() const {
  std::string s = "int" + std::to_string(bits) + (mapping == Mapping::symmetric ? " sym" : " asym");
  if (group_size == kPerRow)
    s += " per-channel";
  else if (group_size == kPerTensor)
    s += " per-tensor";
  else
    s += " g" + std::to_string(group_size) + (partial_last_group ? "+tail" : "");
  // Non-default fields are appended so that two different configs never share a label.
  if (range == RangeMethod::percentile)
    s += " p" + num(clip_percentile);
  else if (range == RangeMethod::mse)
    s += " mse";
  if (clip_ratio != 1.0) s += std::string(range == RangeMethod::mse ? " clip<=" : " clip=") + num(clip_ratio);
  if (rounding != Rounding::nearest_even) s += std::string(" round=") + quant::to_string(rounding);
  if (non_finite != NonFinitePolicy::error) s += " nan=propagate";
  if (version != kVersion) s += " v" + std::to_string(version);
  return s;
}

const char* to_string(Mapping m) {
  switch (m) {
    case Mapping::symmetric: return "symmetric";
    case Mapping::asymmetric: return "asymmetric";
  }
  return "?";
}
const char* to_string(Rounding r) {
  switch (r) {
    case Rounding::nearest_even: return "nearest_even";
    case Rounding::nearest_away: return "nearest_away";
    case Rounding::toward_zero: return "toward_zero";
  }
  return "?";
}
const char* to_string(RangeMethod r) {
  switch (r) {
    case RangeMethod::minmax: return "minmax";
    case RangeMethod::percentile: return "percentile";
    case RangeMethod::mse: return "mse";
  }
  return "?";
}
const char* to_string(NonFinitePolicy p) {
  switch (p) {
    case NonFinitePolicy::error: return "error";
    case NonFinitePolicy::propagate: return "propagate";
  }
  return "?";
}

Mapping parse_mapping(const std::string& s) {
  if (s == "symmetric" || s == "sym") return Mapping::symmetric;
  if (s == "asymmetric" || s == "asym") return Mapping::asymmetric;
  throw std::invalid_argument("unknown mapping '" + s + "'; accepted: symmetric (sym), asymmetric (asym)");
}
Rounding parse_rounding(const std::string& s) {
  if (s == "nearest_even") return Rounding::nearest_even;
  if (s == "nearest_away") return Rounding::nearest_away;
  if (s == "toward_zero") return Rounding::toward_zero;
  throw std::invalid_argument("unknown rounding '" + s + "'; accepted: nearest_even, nearest_away, toward_zero");
}
RangeMethod parse_range_method(const std::string& s) {
  if (s == "minmax") return RangeMethod::minmax;
  if (s == "percentile") return RangeMethod::percentile;
  if (s == "mse") return RangeMethod::mse;
  throw std::invalid_argument("unknown range method '" + s + "'; accepted: minmax, percentile, mse");
}
NonFinitePolicy parse_non_finite_policy(const std::string& s) {
  if (s == "error") return NonFinitePolicy::error;
  if (s == "propagate") return NonFinitePolicy::propagate;
  throw std::invalid_argument("unknown non-finite policy '" + s + "'; accepted: error, propagate");
}

}  // namespace qeval::quant
