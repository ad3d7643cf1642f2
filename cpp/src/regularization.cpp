// L1 / L2 weight penalties (see regularization.h).
#include "fastnn/regularization.h"

#include <cmath>

#include "fastnn/isa.h"
#include "fastnn/threads.h"

namespace fastnn {

namespace {
constexpr index_t kGrain = 16384;

template <class T>
FASTNN_INLINE double l2_body(T* FASTNN_RESTRICT g, const T* FASTNN_RESTRICT w, index_t n, T lam, bool acc) {
  double s = 0.0;
  if (g && acc) {
#pragma omp simd reduction(+ : s)
    for (index_t i = 0; i < n; ++i) {
      s += double(w[i]) * double(w[i]);
      g[i] += lam * w[i];
    }
  } else if (g) {
#pragma omp simd reduction(+ : s)
    for (index_t i = 0; i < n; ++i) {
      s += double(w[i]) * double(w[i]);
      g[i] = lam * w[i];
    }
  } else {
#pragma omp simd reduction(+ : s)
    for (index_t i = 0; i < n; ++i) s += double(w[i]) * double(w[i]);
  }
  return s;
}
template <class T>
FASTNN_INLINE double l1_body(T* FASTNN_RESTRICT g, const T* FASTNN_RESTRICT w, index_t n, T lam, bool acc) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (index_t i = 0; i < n; ++i) {
    const T a = w[i] < T(0) ? -w[i] : w[i];
    s += double(a);
    if (g) {
      const T sg = w[i] > T(0) ? lam : (w[i] < T(0) ? -lam : T(0));
      g[i] = acc ? g[i] + sg : sg;
    }
  }
  return s;
}
#define FASTNN_REG_LEAVES(T)                                                                  \
  FASTNN_LEAF double l2_leaf(T* g, const T* w, index_t n, T lam, bool acc) {                  \
    return l2_body(g, w, n, lam, acc);                                                        \
  }                                                                                           \
  FASTNN_LEAF double l1_leaf(T* g, const T* w, index_t n, T lam, bool acc) {                  \
    return l1_body(g, w, n, lam, acc);                                                        \
  }
FASTNN_ISA_PASSES(FASTNN_REG_LEAVES(float) FASTNN_REG_LEAVES(double))
#undef FASTNN_REG_LEAVES
}  // namespace

template <class T>
double l2_penalty(T* grad, const T* w, index_t n, double lambda, bool acc) {
  const double s = parallel_sum(n, kGrain, [&](index_t lo, index_t hi) {
    return FASTNN_SIMD_CALL(l2_leaf, grad ? grad + lo : nullptr, w + lo, hi - lo, T(lambda), acc);
  });
  return 0.5 * lambda * s;
}

template <class T>
double l1_penalty(T* grad, const T* w, index_t n, double lambda, bool acc) {
  const double s = parallel_sum(n, kGrain, [&](index_t lo, index_t hi) {
    return FASTNN_SIMD_CALL(l1_leaf, grad ? grad + lo : nullptr, w + lo, hi - lo, T(lambda), acc);
  });
  return lambda * s;
}

namespace ref {
template <class T>
double l2_penalty(T* grad, const T* w, index_t n, double lambda, bool acc) {
  double s = 0;
  for (index_t i = 0; i < n; ++i) {
    s += double(w[i]) * w[i];
    if (grad) grad[i] = acc ? T(grad[i] + lambda * w[i]) : T(lambda * w[i]);
  }
  return 0.5 * lambda * s;
}
template <class T>
double l1_penalty(T* grad, const T* w, index_t n, double lambda, bool acc) {
  double s = 0;
  for (index_t i = 0; i < n; ++i) {
    s += std::fabs(double(w[i]));
    const double sg = w[i] > 0 ? lambda : (w[i] < 0 ? -lambda : 0.0);
    if (grad) grad[i] = acc ? T(grad[i] + sg) : T(sg);
  }
  return lambda * s;
}
}  // namespace ref
}  // namespace fastnn

using fastnn::index_t;
#define FASTNN_INSTANTIATE_REG(NS, T)                                          \
  template double NS::l2_penalty<T>(T*, const T*, index_t, double, bool);      \
  template double NS::l1_penalty<T>(T*, const T*, index_t, double, bool);
FASTNN_INSTANTIATE_REG(fastnn, float)
FASTNN_INSTANTIATE_REG(fastnn, double)
FASTNN_INSTANTIATE_REG(fastnn::ref, float)
FASTNN_INSTANTIATE_REG(fastnn::ref, double)
