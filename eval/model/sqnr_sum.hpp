// eval/model/sqnr_sum.hpp — Σref² and Σ(ref − got)² of two fp32 buffers in one pass, summed in LibTorch 1.13's
// at::sum order for a contiguous double tensor, so sqnr_db needs no double buffer and gives the same bits.
//
// The order (a fact about LibTorch's CPU sum, aten/src/ATen/native/cpu/SumKernel.cpp and TensorIteratorReduce.cpp
// of 1.13, re-implemented here, not copied): with T threads and n ≥ 32768 (the grain) the range is cut into
// min(T, ⌈n/32768⌉) chunks of ⌈n/chunks⌉ elements; each chunk is summed by the cascade below, and the T per-thread
// partials (0 for idle threads) are summed by the same cascade. A cascade over m doubles with vectors of W lanes:
// m ≥ W → ⌊m/W⌋ vectors, taken 4 at a time ("rows"), are added lane-wise into 4 accumulators at 4 levels (level 0
// takes 2^p rows, p = max(4, ⌈log2 rows⌉/4), then carries up; level j carries when the row count is a multiple of
// 2^(j·p)); leftover vectors go to accumulator 0, accumulators 1–3 are added into 0, then the scalar tail
// (m mod W elements) and the W lanes in order are added to 0. m < W: the same with W = 1. W is the width of
// LibTorch's Vectorized<double> on this CPU (8 with AVX-512, 4 with AVX2): sqnr_db finds it with a known-answer
// probe against at::sum and falls back to a double buffer when neither width matches (another LibTorch).
// Built with -ffp-contract=off: x·x + acc must round twice, as LibTorch's separate multiply and add do.
#pragma once

#include <cstdint>
#include <vector>

namespace qeval::model {

struct SquareSums {
  double sig = 0.0;  // Σ ref²
  double err = 0.0;  // Σ (ref − got)²
};

// The sums of ref[0..n) and got[0..n) in the order above, for `lanes` ∈ {1, 4, 8} and `threads` ≥ 1 (the chunks
// run on LibTorch's threads when parallel is true; the order does not depend on it). Throws
// std::invalid_argument for another lane count.
SquareSums cascade_square_sums(const float* ref, const float* got, int64_t n, int lanes, int threads, bool parallel);

// The same order over doubles already squared (sig[i], err[i]): what at::sum of each buffer gives.
SquareSums cascade_sums(const double* sig, const double* err, int64_t n, int lanes, int threads);

}  // namespace qeval::model
