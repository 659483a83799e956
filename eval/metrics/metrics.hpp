// eval/metrics/metrics.hpp — tensor-level quantization error metrics, the 6.02·b bound and the gap decomposition.
//
// All sums are accumulated in double. Definitions (docs/metrics.md derives each one):
//   MSE            mean((x − x̂)²) over finite input elements
//   SQNR           10·log10(Σx² / Σ(x − x̂)²) dB (+inf when the error is exactly zero)
//   bound          20·log10(2^b) = 6.0206·b dB: a full-scale uniform signal under a quantizer with
//                  2^b steps of range/2^b (24.08 dB at 4 bits)
//   grid-adjusted  20·log10(2^b − 1) = bound + 20·log10((2^b − 1)/2^b): the same signal under the
//                  min/max affine grid, which has 2^b − 1 steps (9.54 / 23.52 / 48.13 dB at 2 / 4 / 8)
//   expected       10·log10(σ² / mean(s²/12)), σ² = mean(x²) (the signal power, = variance for a
//                  zero-mean source), s = each element's effective step (its group's scale): what the
//                  measured SQNR would be if every element's error were uniform in ±s/2
//   gap            bound − measured = grid loss + range loss + clipping/other, where
//                  grid loss  = bound − grid-adjusted     (fixed by b: 2.50 dB at 2 bits, 0.56 at 4)
//                  range loss = grid-adjusted − expected  (group range vs σ: crest factor; for the
//                               symmetric grid it includes 20·log10((2^b − 1)/(2^b − 2)), its one
//                               unused level: 0.58 dB at 4 bits)
//                  other      = expected − measured       (clipping, and departures from the uniform
//                               error model: exact absmax elements, few levels)
// Worked example, N(0,1), 4-bit symmetric absmax, g128: bound 24.08, grid-adjusted 23.52, expected
// ≈ 18.58, measured ≈ 18.61 → grid loss 0.56 + range loss ≈ 4.94 + other ≈ −0.03 dB.
// The expected figure (and so range loss / other) is defined for Format::int_affine only; code-book
// formats (fp4, nf4, fp8) have non-uniform steps, and those fields are NaN (null in reports).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quant/matrix.hpp"

namespace qeval::metrics {

// The 6.02·b bound: 20·log10(2^b) dB.
double bound_db(int bits);
// 20·log10(2^b − 1) dB: the bound on the min/max affine grid (2^b − 1 steps).
double grid_adjusted_db(int bits);
// 10·log10(signal_power / noise_power); +inf when noise is 0, NaN when either is NaN or both are 0.
double db_ratio(double signal_power, double noise_power);

// Error statistics of x̂ against x (same shape). Elements whose input is NaN/±Inf are skipped and
// counted (the NonFinitePolicy::propagate case); a non-finite output for a finite input is counted
// in non_finite_output and makes mse/sqnr NaN (a scheme bug, never hidden).
struct ErrorStats {
  int64_t n = 0;                  // finite input elements compared
  int64_t non_finite_input = 0;   // skipped
  int64_t non_finite_output = 0;  // x finite, x̂ not
  double signal_power = 0;        // mean(x²)
  double mean = 0;                // mean(x)
  double max_abs_x = 0;           // max |x|
  double crest_factor = 0;        // max|x| / sqrt(mean(x²)); √3 = 1.73 for uniform, ~5 for 1e6 Gaussians
  double mse = 0;
  double sqnr_db = 0;
  double max_abs_error = 0;
  int64_t max_abs_row = -1, max_abs_col = -1;  // where max_abs_error occurs (first occurrence)
  double cosine = 0;  // <x, x̂>/(‖x‖·‖x̂‖); 1 when both are all zero, 0 when exactly one is
};
ErrorStats compare(quant::MatrixView x, quant::MatrixView xhat);

// What the quantized matrix's scales say (int_affine: its step sizes), against x and x̂.
struct ScaleStats {
  bool uniform_grid = false;     // Format::int_affine: the s²/12 model and the expectation apply
  double mean_step_sq_12 = NAN;  // mean over elements of s_eff²/12 (s_eff = scale / col_scale)
  double expected_sqnr_db = NAN;
  // Range vs σ: sqrt(mean over elements of R²)/σ, R = the step times the number of steps of the grid
  // (2^b − 1 for asymmetric, 2^b − 2 for the restricted symmetric grid): 2√3 = 3.46 for a uniform
  // signal over its own range, larger when groups hold peaks. NaN for code-book formats.
  double range_over_sigma = NAN;
  // Clipping: an element is clipped when it lies more than half a step outside its group's grid
  // (int_affine: x/s + zp ∉ [qmin − ½, qmax + ½]; code books: |x| > s·max|code|), i.e. when its error
  // can exceed the rounding error. error_share = Σe² over clipped / Σe² over all.
  int64_t clipped = 0;
  double clipped_fraction = 0;
  double clipped_error_share = 0;
  // Elements (unclipped, int_affine) whose error exceeds the rounding bound (s/2)(1 + 1e-4): must be 0
  // for a correct quantizer (STYLE.md 9: float32 rounding reaches 1.0000118·s/2, hence the 1e-4).
  int64_t half_step_violations = 0;
};

// The gap between the 6.02·b bound and the measured SQNR, split into its causes (see the header).
struct Gap {
  double bound_db = NAN, grid_adjusted_db = NAN, expected_db = NAN, measured_db = NAN;
  double total_db = NAN;       // bound − measured
  double grid_loss_db = NAN;   // bound − grid-adjusted
  double range_loss_db = NAN;  // grid-adjusted − expected (NaN for code-book formats)
  double other_db = NAN;       // expected − measured: clipping and model departures (NaN for code books)
};
Gap decompose(int bits, double expected_db, double measured_db);

// Everything the evaluator reports for one quantized tensor.
struct TensorMetrics {
  int bits = 0;
  double bits_per_weight = 0;  // QuantizedMatrix::bits_per_weight(): codes + fp16 scales + zero points
  int64_t rows = 0, cols = 0;
  ErrorStats error;
  ScaleStats scales;
  Gap gap;
};

// x: the input; q: what the scheme produced from it; xhat: the dequantized matrix (rows × cols).
// Throws std::invalid_argument when the shapes disagree.
TensorMetrics evaluate(quant::MatrixView x, const quant::QuantizedMatrix& q, quant::MatrixView xhat);

// Per-element step lookup over a QuantizedMatrix in the input's (original) column order: undoes
// `perm` and divides by `col_scale`, so step(r, j) is the grid spacing x(r, j) was rounded on.
class StepLookup {
 public:
  explicit StepLookup(const quant::QuantizedMatrix& q);
  int64_t group(int64_t r, int64_t j) const;           // index into q.scales / q.zero_points
  double scale(int64_t r, int64_t j) const;            // the group's stored scale
  double col_factor(int64_t j) const;                  // col_scale[j], or 1
  double step(int64_t r, int64_t j) const { return scale(r, j) / col_factor(j); }
  double zero_point(int64_t r, int64_t j) const;       // 0 when the format has none

 private:
  const quant::QuantizedMatrix& q_;
  std::vector<int64_t> inv_;  // original column → stored column (empty: identity)
};

// How one element fared (shared by evaluate() and the tester's diagnostics).
struct ElementClass {
  bool clipped = false;              // beyond half a step outside its group's grid
  bool half_step_violation = false;  // int_affine, unclipped, |x − x̂| > (s/2)(1 + 1e-4)
};
// grid_max: for code books, the largest |code| (see codebook_grid_max); ignored for int_affine.
ElementClass classify(const StepLookup& lk, const quant::QuantizedMatrix& q, double grid_max, int64_t r, int64_t j,
                      double x, double xhat);
// For code-book formats: the largest |code| (quant::format_max); 0 for int_affine. (Takes the
// matrices so a future format with per-group code books can look at them.)
double codebook_grid_max(const StepLookup& lk, const quant::QuantizedMatrix& q, quant::MatrixView xhat);

// Largest |code| of a code-book format relative to its scale (quant::format_max: e2m1 6, bnb fp4 /
// nf4 1, e4m3 448, e5m2 57344); 0 for int_affine.
double codebook_max_abs(quant::Format f);

}  // namespace qeval::metrics
