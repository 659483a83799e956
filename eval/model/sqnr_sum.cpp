// eval/model/sqnr_sum.cpp — the sums of sqnr_db in LibTorch's at::sum order, one pass, no buffer (see .hpp).
#include "eval/model/sqnr_sum.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace qeval::model {

namespace {

constexpr int kIlp = 4;              // vectors per row (LibTorch's ilp_factor)
constexpr int kLevels = 4;           // cascade levels
constexpr int64_t kGrain = 32768;    // at::internal::GRAIN_SIZE: below it the sum runs on one thread

// The squared terms of element i: ref² and (ref − got)², each rounded to double once.
struct Squares {
  const float* r;
  const float* g;
  void at(int64_t i, double& s, double& e) const {
    const double x = r[i];
    const double d = x - static_cast<double>(g[i]);
    s = x * x;
    e = d * d;
  }
};

// Terms already squared.
struct Pairs {
  const double* s;
  const double* e;
  void at(int64_t i, double& a, double& b) const {
    a = s[i];
    b = e[i];
  }
};

// W lanes of the two sums.
template <int W>
struct Acc {
  double s[W] = {}, e[W] = {};
  template <class Src>
  void load_add(const Src& src, int64_t first) {  // lanes += elements [first, first + W)
    for (int l = 0; l < W; ++l) {
      double a, b;
      src.at(first + l, a, b);
      s[l] += a;
      e[l] += b;
    }
  }
  void add(const Acc& o) {
    for (int l = 0; l < W; ++l) s[l] += o.s[l], e[l] += o.e[l];
  }
};

int64_t ceil_log2(int64_t x) {  // c10's CeilLog2: 1 for x ≤ 2, else the bit width of x − 1
  if (x <= 2) return 1;
  int64_t b = 0;
  for (uint64_t u = static_cast<uint64_t>(x - 1); u; u >>= 1) ++b;
  return b;
}

// `rows` rows of kIlp vectors from element `base`: the 4-level cascade; returns the kIlp accumulators in acc[0].
template <int W, class Src>
void multi_row_sum(const Src& src, int64_t base, int64_t rows, Acc<W> (&acc)[kLevels][kIlp]) {
  const int64_t power = std::max<int64_t>(4, ceil_log2(rows) / kLevels);
  const int64_t step = int64_t{1} << power, mask = step - 1;
  auto row = [&](int64_t i) {
    for (int k = 0; k < kIlp; ++k) acc[0][k].load_add(src, base + (i * kIlp + k) * W);
  };
  int64_t i = 0;
  while (i + step <= rows) {
    for (int64_t j = 0; j < step; ++j, ++i) row(i);
    for (int j = 1; j < kLevels; ++j) {
      for (int k = 0; k < kIlp; ++k) {
        acc[j][k].add(acc[j - 1][k]);
        acc[j - 1][k] = Acc<W>();
      }
      if ((i & (mask << (j * power))) != 0) break;
    }
  }
  for (; i < rows; ++i) row(i);
  for (int j = 1; j < kLevels; ++j)
    for (int k = 0; k < kIlp; ++k) acc[0][k].add(acc[j][k]);
}

// One contiguous range [base, base + m) summed as LibTorch's inner sum does with W lanes (W = 1: its scalar path).
template <int W, class Src>
SquareSums inner_sum(const Src& src, int64_t base, int64_t m) {
  const int64_t nvec = m / W, rows = nvec / kIlp;
  Acc<W> acc[kLevels][kIlp];
  multi_row_sum<W>(src, base, rows, acc);
  Acc<W>& a = acc[0][0];
  for (int64_t v = rows * kIlp; v < nvec; ++v) a.load_add(src, base + v * W);
  for (int k = 1; k < kIlp; ++k) a.add(acc[0][k]);
  SquareSums out;
  for (int64_t i = nvec * W; i < m; ++i) {
    double s, e;
    src.at(base + i, s, e);
    out.sig += s;
    out.err += e;
  }
  for (int l = 0; l < W; ++l) out.sig += a.s[l], out.err += a.e[l];
  return out;
}

template <class Src>
SquareSums range_sum(const Src& src, int64_t base, int64_t m, int lanes) {
  if (lanes == 8 && m >= 8) return inner_sum<8>(src, base, m);
  if (lanes == 4 && m >= 4) return inner_sum<4>(src, base, m);
  return inner_sum<1>(src, base, m);
}

// Chunks as at::parallel_for cuts [0, n) for `threads`, each summed, then the per-thread partials summed.
template <class Src>
SquareSums chunked_sum(const Src& src, int64_t n, int lanes, int threads, bool parallel) {
  if (lanes != 1 && lanes != 4 && lanes != 8)
    throw std::invalid_argument("cascade_square_sums: lanes " + std::to_string(lanes) + " (use 1, 4 or 8)");
  if (n < kGrain || threads <= 1) return range_sum(src, 0, n, lanes);
  const int64_t chunks = std::min<int64_t>(threads, (n + kGrain - 1) / kGrain);
  const int64_t size = (n + chunks - 1) / chunks;
  std::vector<double> sig(static_cast<size_t>(threads), 0.0), err(sig.size(), 0.0);
  auto one = [&](int64_t t) {
    const int64_t b = t * size;
    if (b >= n) return;
    const SquareSums p = range_sum(src, b, std::min(n, b + size) - b, lanes);
    sig[static_cast<size_t>(t)] = p.sig;
    err[static_cast<size_t>(t)] = p.err;
  };
  if (parallel) {
    at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) one(t);
    });
  } else {
    for (int64_t t = 0; t < chunks; ++t) one(t);
  }
  return range_sum(Pairs{sig.data(), err.data()}, 0, threads, lanes);
}

}  // namespace

SquareSums cascade_square_sums(const float* ref, const float* got, int64_t n, int lanes, int threads, bool parallel) {
  return chunked_sum(Squares{ref, got}, n, lanes, threads, parallel);
}

SquareSums cascade_sums(const double* sig, const double* err, int64_t n, int lanes, int threads) {
  return chunked_sum(Pairs{sig, err}, n, lanes, threads, false);
}

}  // namespace qeval::model
