// eval/inputs/synthetic.hpp — synthetic test tensors: gaussian, laplace, student-t, uniform, outlier channels.
//
// Every distribution is scaled to unit variance (σ = 1), so SQNR tables of different distributions
// compare range/crest-factor effects only; SQNR itself is scale-invariant. Values are drawn in
// row-major order from one qeval::Rng(seed) (quant/rng.hpp), so a (spec, seed) pair gives the same
// tensor on every platform and standard library.
//
//   gaussian   N(0, 1)
//   laplace    Laplace(0, b = 1/√2)                       variance 2b² = 1
//   student-t  t_ν · sqrt((ν − 2)/ν), default ν = 3        variance ν/(ν − 2) scaled to 1; heavy tails
//              (kurtosis infinite at ν ≤ 4; ν ≤ 2 has no variance and is left unscaled)
//   uniform    U(−√3, √3)                                 variance (2√3)²/12 = 1
//   outliers   N(0, 1), then `outlier_channels` input columns (default 8, picked uniformly without
//              replacement from the seed) multiplied by `outlier_scale` (default 20). Models the
//              outlier features of LLM activations, which LLM.int8 (Dettmers et al., 2022, §3) reports as
//              a few hidden dimensions with magnitudes up to ~20× the others.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "eval/inputs/source.hpp"
#include "quant/matrix.hpp"
#include "quant/rng.hpp"

namespace qeval::inputs {

enum class Distribution : uint8_t { gaussian, laplace, student_t, uniform, outliers };
const char* to_string(Distribution d);  // "gaussian", "laplace", "student-t", "uniform", "outliers"
// Accepts the names above (and "student_t"); throws std::invalid_argument listing them.
Distribution parse_distribution(const std::string& s);
// True when s names a distribution (so a CLI can tell a distribution from a file path).
bool is_distribution_name(const std::string& s);

inline constexpr int kDefaultStudentNu = 3;
inline constexpr int64_t kDefaultOutlierChannels = 8;
inline constexpr double kDefaultOutlierScale = 20.0;

struct SyntheticSpec {
  Distribution dist = Distribution::gaussian;
  int64_t rows = 1024;
  int64_t cols = 4096;
  uint64_t seed = kDefaultSeed;
  int student_nu = kDefaultStudentNu;              // ≥ 1
  int64_t outlier_channels = kDefaultOutlierChannels;  // ≥ 0, ≤ cols
  double outlier_scale = kDefaultOutlierScale;      // > 0

  // Throws std::invalid_argument naming the field and the accepted values.
  void validate() const;
};

// The columns the outlier distribution scales up (sorted); empty for other distributions.
std::vector<int64_t> outlier_columns(const SyntheticSpec& spec);

// Generates the tensor (validates the spec first).
quant::Matrix generate(const SyntheticSpec& spec);

// A source offering one tensor named "synthetic" (generated on load).
std::unique_ptr<TensorSource> make_synthetic_source(const SyntheticSpec& spec);

}  // namespace qeval::inputs
