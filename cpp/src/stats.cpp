// Reductions for data checks and monitors (see stats.h).
#include "fastnn/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "fastnn/isa.h"
#include "fastnn/threads.h"

namespace fastnn {

namespace {

// A value is not finite when its exponent bits are all ones (NaN or infinity).
template <class T>
FASTNN_INLINE bool any_nonfinite_body(const T* FASTNN_RESTRICT x, index_t n) {
  // x - x is 0 for a finite x and NaN for NaN and inf, and a sum with a NaN in it is NaN (in any
  // order): a plain float reduction, which every clone vectorises (an int |= of double compares
  // kept the baseline clone scalar)
  T acc = T(0);
#pragma omp simd reduction(+ : acc)
  for (index_t i = 0; i < n; ++i) acc += x[i] - x[i];
  return acc != acc;
}
FASTNN_ISA_PASSES(
    FASTNN_LEAF bool any_nonfinite_leaf(const float* x, index_t n) { return any_nonfinite_body(x, n); }
    FASTNN_LEAF bool any_nonfinite_leaf(const double* x, index_t n) { return any_nonfinite_body(x, n); })

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
      if (FASTNN_SIMD_CALL(any_nonfinite_leaf, x + lo, len)) {
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

namespace {

// One block of summarize / sum_sq_diff. Branch-free (selects instead of `continue`) with
// `omp simd` reductions, so they vectorise (ISA chosen at run time): the monitors run these over
// every activation, gradient and parameter of a monitored step, and the scalar loops they
// replace made Monitor(every=10) cost 5-23 % of the training time (now ~1-5 %, see
// benchmarks/RESULTS.md, Monitors). NaN/inf are recognised by x - x != 0, which needs no
// floating-point classification calls. The arithmetic runs in T over runs of kRun elements (full
// vectors of T and 32-bit counters: twice the lanes of double, no mask-register traffic; perf
// showed the double-precision version at 18 % of a monitor-every-step run on a small MLP), and
// each run's partial sums are added in double: T's rounding over a run of 1024 stays ~1e-5
// relative for float, ample for statistics that are read to a few digits.
constexpr index_t kRun = 1024;

template <class T>
FASTNN_INLINE Summary summarize_body(const T* FASTNN_RESTRICT x, index_t n, double sat_abs, double sat_lo,
                                     double sat_hi) {
  const T a = T(sat_abs), lo = T(sat_lo), hi = T(sat_hi);  // +-inf stay +-inf (no saturation test)
  double sum = 0.0, sumsq = 0.0;
  index_t zeros = 0, sat = 0, bad = 0;
  for (index_t i0 = 0; i0 < n; i0 += kRun) {
    const index_t m = std::min(kRun, n - i0);
    const T* FASTNN_RESTRICT xr = x + i0;
    T s = T(0), q = T(0);
    std::int32_t z = 0, st = 0, b = 0;
#pragma omp simd reduction(+ : s, q, z, st, b)
    for (index_t i = 0; i < m; ++i) {
      const T v = xr[i];
      const bool fin = v - v == T(0);
      const T d = fin ? v : T(0);
      s += d;
      q += d * d;
      z += v == T(0);
      st += fin && ((d >= a) | (-d >= a) | (d <= lo) | (d >= hi));
      b += !fin;
    }
    sum += double(s);
    sumsq += double(q);
    zeros += z;
    sat += st;
    bad += b;
  }
  Summary s;
  s.count = double(n);
  s.sum = sum;
  s.sumsq = sumsq;
  s.zeros = double(zeros);
  s.saturated = double(sat);
  s.nonfinite = double(bad);
  return s;
}
FASTNN_ISA_PASSES(
    FASTNN_LEAF Summary summarize_leaf(const float* x, index_t n, double a, double lo, double hi) {
      return summarize_body(x, n, a, lo, hi);
    }
    FASTNN_LEAF Summary summarize_leaf(const double* x, index_t n, double a, double lo, double hi) {
      return summarize_body(x, n, a, lo, hi);
    })

template <class T>
FASTNN_INLINE double sum_sq_diff_body(const T* FASTNN_RESTRICT a, const T* FASTNN_RESTRICT b, index_t n) {
  double total = 0.0;
  for (index_t i0 = 0; i0 < n; i0 += kRun) {  // in T over runs, as summarize_body
    const index_t m = std::min(kRun, n - i0);
    T s = T(0);
    if (b) {
#pragma omp simd reduction(+ : s)
      for (index_t i = 0; i < m; ++i) {
        const T d = a[i0 + i] - b[i0 + i];
        s += d * d;
      }
    } else {
#pragma omp simd reduction(+ : s)
      for (index_t i = 0; i < m; ++i) s += a[i0 + i] * a[i0 + i];
    }
    total += double(s);
  }
  return total;
}
FASTNN_ISA_PASSES(
    FASTNN_LEAF double sum_sq_diff_leaf(const float* a, const float* b, index_t n) { return sum_sq_diff_body(a, b, n); }
    FASTNN_LEAF double sum_sq_diff_leaf(const double* a, const double* b, index_t n) { return sum_sq_diff_body(a, b, n); })

}  // namespace

template <class T>
Summary summarize(const T* x, index_t n, double sat_abs, double sat_lo, double sat_hi) {
  constexpr index_t kBlocks = 256;
  const index_t nb = std::max<index_t>(1, std::min<index_t>(kBlocks, (n + 4095) / 4096));
  Summary part[kBlocks];
  parallel_for(nb, 1, [&](index_t b0, index_t b1) {
    for (index_t b = b0; b < b1; ++b) {
      const index_t lo = n * b / nb, hi = n * (b + 1) / nb;
      part[b] = FASTNN_SIMD_CALL(summarize_leaf, x + lo, hi - lo, sat_abs, sat_lo, sat_hi);
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
    return FASTNN_SIMD_CALL(sum_sq_diff_leaf, a + lo, b ? b + lo : nullptr, hi - lo);
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
