// fastnn/stats.h — reductions over buffers for data checks and training monitors.
//
//   first_nonfinite: index of the first NaN or infinity in x (n values), or -1. Split over
//   threads in fixed chunks; the smallest index wins, so the answer does not depend on them.
//   summarize: one pass of moments and counts over x (n values) for the training monitors. Sums
//   are taken over fixed blocks in a fixed order: the same result for any thread count.
#pragma once

#include "fastnn/common.h"

namespace fastnn {

template <class T>
index_t first_nonfinite(const T* x, index_t n);

struct Summary {
  double count = 0;       // values
  double sum = 0;         // sum of the finite values
  double sumsq = 0;       // sum of their squares
  double zeros = 0;       // values == 0 (dead ReLU units)
  double saturated = 0;   // |x| >= sat_abs, or x <= sat_lo or x >= sat_hi (tanh, sigmoid)
  double nonfinite = 0;   // NaN or infinity
  double mean() const { return count > nonfinite ? sum / (count - nonfinite) : 0.0; }
  double var() const;
};

// sat_abs: |x| at or above it counts as saturated (tanh: 0.99); sat_lo/sat_hi: x at or below /
// at or above them counts as saturated (sigmoid: 0.01 / 0.99). Pass infinities to switch a test off.
template <class T>
Summary summarize(const T* x, index_t n, double sat_abs, double sat_lo, double sat_hi);

// sum (a - b)^2 over n values (b may be null: sum a^2), in a fixed order.
template <class T>
double sum_sq_diff(const T* a, const T* b, index_t n);

namespace ref {
template <class T>
index_t first_nonfinite(const T* x, index_t n);
}  // namespace ref

}  // namespace fastnn
