// quant/rng.hpp — reproducible random numbers: our own distributions on raw mt19937_64 output.
//
// The C++ standard pins mt19937_64's output but not how std::normal_distribution & co. turn it into
// values, so results differ between standard libraries. Every random number in qeval (tests,
// synthetic sweep inputs, calibration sampling) comes from here. The default seed can be overridden
// with the environment variable QEVAL_SEED; tests print the seed on failure.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>

namespace qeval {

inline constexpr uint64_t kDefaultSeed = 20240229;

// QEVAL_SEED from the environment if set (decimal), else `fallback`.
inline uint64_t seed_from_env(uint64_t fallback = kDefaultSeed) {
  const char* s = std::getenv("QEVAL_SEED");
  if (!s || !*s) return fallback;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s, &end, 10);
  return (end && *end == '\0') ? static_cast<uint64_t>(v) : fallback;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : eng_(seed) {}

  uint64_t next_u64() { return eng_(); }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(eng_() >> 11) * 0x1.0p-53; }
  // Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n) (n > 0), by rejection so every value is equally likely.
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = eng_(); while (v >= limit);
    return v % n;
  }

  // Standard normal by the Marsaglia polar method (exact in distribution; caches the second value).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u, v, s;
    do {
      u = 2.0 * uniform() - 1.0;
      v = 2.0 * uniform() - 1.0;
      s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double m = std::sqrt(-2.0 * std::log(s) / s);
    spare_ = v * m;
    has_spare_ = true;
    return u * m;
  }
  double normal(double mean, double sd) { return mean + sd * normal(); }

  // Laplace(0, b): variance 2b²; by inversion of the CDF.
  double laplace(double b = 1.0) {
    double u = uniform() - 0.5;  // (−0.5, 0.5)
    while (u == -0.5) u = uniform() - 0.5;
    return -b * (u < 0 ? -1.0 : 1.0) * std::log(1.0 - 2.0 * std::fabs(u));
  }

  // Chi-squared with k degrees of freedom (integer k ≥ 1) as a sum of squared normals.
  double chi_squared(int k) {
    double s = 0.0;
    for (int i = 0; i < k; ++i) {
      const double z = normal();
      s += z * z;
    }
    return s;
  }

  // Student-t with nu (integer ≥ 1) degrees of freedom: Z / sqrt(χ²_ν / ν). Heavy tails for small ν.
  double student_t(int nu) { return normal() / std::sqrt(chi_squared(nu) / nu); }

 private:
  std::mt19937_64 eng_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace qeval
