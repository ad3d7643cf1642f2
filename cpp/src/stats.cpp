// Reductions for data checks and monitors (see stats.h).
#include "fastnn/stats.h"

#include <cmath>
#include <cstring>
#include <algorithm>
#include <limits>

#include "fastnn/threads.h"

namespace fastnn {

namespace {

// A value is not finite when its exponent bits are all ones (NaN or infinity).
template <class T>
FASTNN_INLINE bool any_nonfinite_body(const T* FASTNN_RESTRICT x, index_t n) {
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (index_t i = 0; i < n; ++i) bad |= !(x[i] - x[i] == T(0));  // x - x is NaN for NaN and inf
  return bad != 0;
}
FASTNN_CLONES bool any_nonfinite_leaf(const float* x, index_t n) { return any_nonfinite_body(x, n); }
FASTNN_CLONES bool any_nonfinite_leaf(const double* x, index_t n) { return any_nonfinite_body(x, n); }

constexpr index_t kChunk = 1 << 14;

}  // namespace

template <class T>
index_t first_nonfinite(const T* x, index_t n) {
  const index_t nchunks = (n + kChunk - 1) / kChunk;
  index_t first_bad_chunk = std::numeric_limits<index_t>::max();
  // chunk flags in fixed chunks; then the exact index inside the first flagged chunk
  parallel_for(nchunks, 4, [&](index_t c0, index_t c1) {
    for (index_t c = c0; c < c1; ++c) {
      const index_t lo = c * kChunk, len = std::min(kChunk, n - lo);
      if (any_nonfinite_leaf(x + lo, len)) {
#pragma omp critical(fastnn_first_nonfinite)
        if (c < first_bad_chunk) first_bad_chunk = c;
        return;
      }
    }
  }, 1);
  if (first_bad_chunk == std::numeric_limits<index_t>::max()) return -1;
  const index_t lo = first_bad_chunk * kChunk, hi = std::min(n, lo + kChunk);
  for (index_t i = lo; i < hi; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

double Summary::var() const {
  const double m = count - nonfinite;
  if (m <= 0) return 0.0;
  const double mu = sum / m;
  return std::max(0.0, sumsq / m - mu * mu);
}

template <class T>
Summary summarize(const T* x, index_t n, double sat_abs, double sat_lo, double sat_hi) {
  constexpr index_t kBlocks = 256;
  const index_t nb = std::max<index_t>(1, std::min<index_t>(kBlocks, (n + 4095) / 4096));
  Summary part[kBlocks];
  parallel_for(nb, 1, [&](index_t b0, index_t b1) {
    for (index_t b = b0; b < b1; ++b) {
      Summary s;
      for (index_t i = n * b / nb; i < n * (b + 1) / nb; ++i) {
        const double v = double(x[i]);
        s.count += 1;
        if (!std::isfinite(v)) {
          s.nonfinite += 1;
          continue;
        }
        s.sum += v;
        s.sumsq += v * v;
        s.zeros += v == 0.0;
        s.saturated += (std::fabs(v) >= sat_abs) || v <= sat_lo || v >= sat_hi;
      }
      part[b] = s;
    }
  }, 1);
  Summary t;
  for (index_t b = 0; b < nb; ++b) {
    t.count += part[b].count;
    t.sum += part[b].sum;
    t.sumsq += part[b].sumsq;
    t.zeros += part[b].zeros;
    t.saturated += part[b].saturated;
    t.nonfinite += part[b].nonfinite;
  }
  return t;
}

template <class T>
double sum_sq_diff(const T* a, const T* b, index_t n) {
  return parallel_sum(n, 16384, [&](index_t lo, index_t hi) {
    double s = 0;
    for (index_t i = lo; i < hi; ++i) {
      const double d = double(a[i]) - (b ? double(b[i]) : 0.0);
      s += d * d;
    }
    return s;
  });
}

namespace ref {
template <class T>
index_t first_nonfinite(const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}
}  // namespace ref

}  // namespace fastnn

using fastnn::index_t;
template index_t fastnn::first_nonfinite<float>(const float*, index_t);
template index_t fastnn::first_nonfinite<double>(const double*, index_t);
template index_t fastnn::ref::first_nonfinite<float>(const float*, index_t);
template index_t fastnn::ref::first_nonfinite<double>(const double*, index_t);
template fastnn::Summary fastnn::summarize<float>(const float*, index_t, double, double, double);
template fastnn::Summary fastnn::summarize<double>(const double*, index_t, double, double, double);
template double fastnn::sum_sq_diff<float>(const float*, const float*, index_t);
template double fastnn::sum_sq_diff<double>(const double*, const double*, index_t);
