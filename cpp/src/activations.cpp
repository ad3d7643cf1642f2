// Activations and maxout (see activations.h). Hot loops are "leaves": plain functions compiled
// per ISA (FASTNN_CLONES) that parallel_for calls on contiguous chunks.
#include "fastnn/activations.h"

#include <cmath>
#include <vector>

#include "fastnn/isa.h"
#include "fastnn/threads.h"
#include "fastnn/vecmath.h"

namespace fastnn {

namespace {

constexpr index_t kCheap = 16384;  // elements per thread for one-flop-per-element ops
constexpr index_t kTransc = 4096;  // elements per thread for exp/tanh ops

// Write or accumulate one gradient element.
template <class T>
FASTNN_INLINE void put(T& dst, T v, bool acc) {
  dst = acc ? dst + v : v;
}

template <class T>
FASTNN_INLINE void relu_fwd_body(T* FASTNN_RESTRICT y, const T* FASTNN_RESTRICT x, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];  // NaN propagates
}
template <class T>
FASTNN_INLINE void relu_bwd_body(T* FASTNN_RESTRICT dx, const T* FASTNN_RESTRICT dy,
                                 const T* FASTNN_RESTRICT x, index_t n, bool acc) {
  // dy[i] is read unconditionally: read only on one side of the select, it kept the baseline
  // (SSE2, no masked loads) clone scalar with a branch per element
  if (acc) {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) {
      const T g = dy[i];
      dx[i] += x[i] > T(0) ? g : T(0);
    }
  } else {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) {
      const T g = dy[i];
      dx[i] = x[i] > T(0) ? g : T(0);
    }
  }
}
template <class T>
FASTNN_INLINE void leaky_fwd_body(T* FASTNN_RESTRICT y, const T* FASTNN_RESTRICT x, T s, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : s * x[i];
}
template <class T>
FASTNN_INLINE void leaky_bwd_body(T* FASTNN_RESTRICT dx, const T* FASTNN_RESTRICT dy,
                                  const T* FASTNN_RESTRICT x, T s, index_t n, bool acc) {
  if (acc) {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) dx[i] += x[i] > T(0) ? dy[i] : s * dy[i];
  } else {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) dx[i] = x[i] > T(0) ? dy[i] : s * dy[i];
  }
}
// One row of PReLU with per-feature slopes a (D) or a shared slope (a_stride 0).
template <class T>
FASTNN_INLINE void prelu_fwd_body(T* FASTNN_RESTRICT y, const T* FASTNN_RESTRICT x,
                                  const T* FASTNN_RESTRICT a, index_t D, index_t a_stride) {
  // a shared slope and per-feature slopes as two loops: a[j * a_stride] read as a gather kept the
  // baseline clone scalar
  if (a_stride == 0) {
    const T s = a[0];
#pragma omp simd
    for (index_t j = 0; j < D; ++j) y[j] = x[j] > T(0) ? x[j] : s * x[j];
  } else {
#pragma omp simd
    for (index_t j = 0; j < D; ++j) y[j] = x[j] > T(0) ? x[j] : a[j] * x[j];
  }
}
template <class T>
FASTNN_INLINE void prelu_bwd_body(T* FASTNN_RESTRICT dx, const T* FASTNN_RESTRICT dy,
                                  const T* FASTNN_RESTRICT x, const T* FASTNN_RESTRICT a, index_t D,
                                  index_t a_stride, bool acc) {
  const T s = a[0];
  if (acc && a_stride == 0) {
#pragma omp simd
    for (index_t j = 0; j < D; ++j) dx[j] += x[j] > T(0) ? dy[j] : s * dy[j];
  } else if (acc) {
#pragma omp simd
    for (index_t j = 0; j < D; ++j) dx[j] += x[j] > T(0) ? dy[j] : a[j] * dy[j];
  } else if (a_stride == 0) {
#pragma omp simd
    for (index_t j = 0; j < D; ++j) dx[j] = x[j] > T(0) ? dy[j] : s * dy[j];
  } else {
#pragma omp simd
    for (index_t j = 0; j < D; ++j) dx[j] = x[j] > T(0) ? dy[j] : a[j] * dy[j];
  }
}
template <class T>
FASTNN_INLINE void elu_fwd_body(T* FASTNN_RESTRICT y, const T* FASTNN_RESTRICT x, T alpha, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T e = alpha * vm::expm1(x[i] < T(0) ? x[i] : T(0));
    y[i] = x[i] <= T(0) ? e : x[i];  // (not `x > 0 ? x : e`: a NaN input must stay NaN, not become 0)
  }
}
template <class T>
FASTNN_INLINE void elu_bwd_body(T* FASTNN_RESTRICT dx, const T* FASTNN_RESTRICT dy,
                                const T* FASTNN_RESTRICT y, T alpha, index_t n, bool acc) {
  // d/dx = 1 for x > 0 (where y > 0), else alpha * exp(x) = y + alpha.
  if (acc) {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) dx[i] += y[i] > T(0) ? dy[i] : dy[i] * (y[i] + alpha);
  } else {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) dx[i] = y[i] > T(0) ? dy[i] : dy[i] * (y[i] + alpha);
  }
}
template <class T>
FASTNN_INLINE void tanh_fwd_body(T* FASTNN_RESTRICT y, const T* FASTNN_RESTRICT x, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) y[i] = vm::tanh(x[i]);
}
template <class T>
FASTNN_INLINE void tanh_bwd_body(T* FASTNN_RESTRICT dx, const T* FASTNN_RESTRICT dy,
                                 const T* FASTNN_RESTRICT y, index_t n, bool acc) {
  if (acc) {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) dx[i] += dy[i] * (T(1) - y[i] * y[i]);
  } else {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) dx[i] = dy[i] * (T(1) - y[i] * y[i]);
  }
}
template <class T>
FASTNN_INLINE void sigmoid_fwd_body(T* FASTNN_RESTRICT y, const T* FASTNN_RESTRICT x, index_t n) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) y[i] = vm::sigmoid(x[i]);
}
template <class T>
FASTNN_INLINE void sigmoid_bwd_body(T* FASTNN_RESTRICT dx, const T* FASTNN_RESTRICT dy,
                                    const T* FASTNN_RESTRICT y, index_t n, bool acc) {
  if (acc) {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) dx[i] += dy[i] * y[i] * (T(1) - y[i]);
  } else {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) dx[i] = dy[i] * y[i] * (T(1) - y[i]);
  }
}

// The per-ISA leaves, for float and double.
#define FASTNN_ACTIVATION_LEAVES(T)                                                              \
  FASTNN_LEAF void relu_fwd_leaf(T* y, const T* x, index_t n) { relu_fwd_body(y, x, n); }     \
  FASTNN_LEAF void relu_bwd_leaf(T* dx, const T* dy, const T* x, index_t n, bool acc) {       \
    relu_bwd_body(dx, dy, x, n, acc);                                                          \
  }                                                                                            \
  FASTNN_LEAF void leaky_fwd_leaf(T* y, const T* x, T s, index_t n) {                         \
    leaky_fwd_body(y, x, s, n);                                                                \
  }                                                                                            \
  FASTNN_LEAF void leaky_bwd_leaf(T* dx, const T* dy, const T* x, T s, index_t n, bool acc) {   \
    leaky_bwd_body(dx, dy, x, s, n, acc);                                                      \
  }                                                                                            \
  FASTNN_LEAF void prelu_fwd_leaf(T* y, const T* x, const T* a, index_t rows, index_t D,      \
                                    index_t as) {                                              \
    for (index_t r = 0; r < rows; ++r) prelu_fwd_body(y + r * D, x + r * D, a, D, as);         \
  }                                                                                            \
  FASTNN_LEAF void prelu_bwd_leaf(T* dx, const T* dy, const T* x, const T* a, index_t rows,    \
                                    index_t D, index_t as, bool acc) {                         \
    for (index_t r = 0; r < rows; ++r)                                                         \
      prelu_bwd_body(dx + r * D, dy + r * D, x + r * D, a, D, as, acc);                        \
  }                                                                                            \
  FASTNN_LEAF void elu_fwd_leaf(T* y, const T* x, T alpha, index_t n) {                       \
    elu_fwd_body(y, x, alpha, n);                                                              \
  }                                                                                            \
  FASTNN_LEAF void elu_bwd_leaf(T* dx, const T* dy, const T* y, T alpha, index_t n, bool acc) {   \
    elu_bwd_body(dx, dy, y, alpha, n, acc);                                                    \
  }                                                                                            \
  FASTNN_LEAF void tanh_fwd_leaf(T* y, const T* x, index_t n) { tanh_fwd_body(y, x, n); }     \
  FASTNN_LEAF void tanh_bwd_leaf(T* dx, const T* dy, const T* y, index_t n, bool acc) {       \
    tanh_bwd_body(dx, dy, y, n, acc);                                                          \
  }                                                                                            \
  FASTNN_LEAF void sigmoid_fwd_leaf(T* y, const T* x, index_t n) { sigmoid_fwd_body(y, x, n); }   \
  FASTNN_LEAF void sigmoid_bwd_leaf(T* dx, const T* dy, const T* y, index_t n, bool acc) {    \
    sigmoid_bwd_body(dx, dy, y, n, acc);                                                       \
  }

FASTNN_ISA_PASSES(FASTNN_ACTIVATION_LEAVES(float) FASTNN_ACTIVATION_LEAVES(double))
#undef FASTNN_ACTIVATION_LEAVES

// Rows per chunk so that a chunk holds about `elems` elements.
inline index_t rows_for(index_t elems, index_t D) { return std::max<index_t>(1, elems / std::max<index_t>(1, D)); }

}  // namespace

template <class T>
void relu_forward(T* out, const T* x, index_t n) {
  parallel_for(n, kCheap, [&](index_t lo, index_t hi) { FASTNN_SIMD_CALL(relu_fwd_leaf, out + lo, x + lo, hi - lo); });
}
template <class T>
void relu_backward(T* dx, const T* dout, const T* x, index_t n, bool acc) {
  parallel_for(n, kCheap, [&](index_t lo, index_t hi) {
    FASTNN_SIMD_CALL(relu_bwd_leaf, dx + lo, dout + lo, x + lo, hi - lo, acc);
  });
}
template <class T>
void leaky_relu_forward(T* out, const T* x, T slope, index_t n) {
  parallel_for(n, kCheap, [&](index_t lo, index_t hi) { FASTNN_SIMD_CALL(leaky_fwd_leaf, out + lo, x + lo, slope, hi - lo); });
}
template <class T>
void leaky_relu_backward(T* dx, const T* dout, const T* x, T slope, index_t n, bool acc) {
  parallel_for(n, kCheap, [&](index_t lo, index_t hi) {
    FASTNN_SIMD_CALL(leaky_bwd_leaf, dx + lo, dout + lo, x + lo, slope, hi - lo, acc);
  });
}

template <class T>
void prelu_forward(T* out, const T* x, const T* a, index_t N, index_t D, index_t n_a) {
  const index_t as = n_a == 1 ? 0 : 1;
  parallel_for(N, rows_for(kCheap, D), [&](index_t r0, index_t r1) {
    FASTNN_SIMD_CALL(prelu_fwd_leaf, out + r0 * D, x + r0 * D, a, r1 - r0, D, as);
  }, 1);
}

template <class T>
void prelu_backward(T* dx, T* da, const T* dout, const T* x, const T* a, index_t N, index_t D,
                    index_t n_a, bool acc) {
  const index_t as = n_a == 1 ? 0 : 1;
  if (dx)
    parallel_for(N, rows_for(kCheap, D), [&](index_t r0, index_t r1) {
      FASTNN_SIMD_CALL(prelu_bwd_leaf, dx + r0 * D, dout + r0 * D, x + r0 * D, a, r1 - r0, D, as, acc);
    }, 1);
  if (!da) return;
  if (n_a == 1) {
    // d/da = sum over all elements with x <= 0 of dout * x
    const double s = parallel_sum(N * D, kCheap, [&](index_t lo, index_t hi) {
      double acc_s = 0.0;
      for (index_t i = lo; i < hi; ++i) acc_s += x[i] > T(0) ? 0.0 : double(dout[i]) * double(x[i]);
      return acc_s;
    });
    da[0] = acc ? T(da[0] + s) : T(s);
    return;
  }
  parallel_columns(N, D, [&](index_t j0, index_t j1) {
    double s[256] = {0};
    for (index_t r = 0; r < N; ++r) {
      const T* xr = x + r * D;
      const T* gr = dout + r * D;
      for (index_t j = j0; j < j1; ++j) s[j - j0] += xr[j] > T(0) ? 0.0 : double(gr[j]) * double(xr[j]);
    }
    for (index_t j = j0; j < j1; ++j) da[j] = acc ? T(da[j] + s[j - j0]) : T(s[j - j0]);
  });
}

template <class T>
void elu_forward(T* out, const T* x, T alpha, index_t n) {
  parallel_for(n, kTransc, [&](index_t lo, index_t hi) { FASTNN_SIMD_CALL(elu_fwd_leaf, out + lo, x + lo, alpha, hi - lo); });
}
template <class T>
void elu_backward(T* dx, const T* dout, const T* out, T alpha, index_t n, bool acc) {
  parallel_for(n, kCheap, [&](index_t lo, index_t hi) {
    FASTNN_SIMD_CALL(elu_bwd_leaf, dx + lo, dout + lo, out + lo, alpha, hi - lo, acc);
  });
}
template <class T>
void tanh_forward(T* out, const T* x, index_t n) {
  parallel_for(n, kTransc, [&](index_t lo, index_t hi) { FASTNN_SIMD_CALL(tanh_fwd_leaf, out + lo, x + lo, hi - lo); });
}
template <class T>
void tanh_backward(T* dx, const T* dout, const T* out, index_t n, bool acc) {
  parallel_for(n, kCheap, [&](index_t lo, index_t hi) {
    FASTNN_SIMD_CALL(tanh_bwd_leaf, dx + lo, dout + lo, out + lo, hi - lo, acc);
  });
}
template <class T>
void sigmoid_forward(T* out, const T* x, index_t n) {
  parallel_for(n, kTransc, [&](index_t lo, index_t hi) { FASTNN_SIMD_CALL(sigmoid_fwd_leaf, out + lo, x + lo, hi - lo); });
}
template <class T>
void sigmoid_backward(T* dx, const T* dout, const T* out, index_t n, bool acc) {
  parallel_for(n, kCheap, [&](index_t lo, index_t hi) {
    FASTNN_SIMD_CALL(sigmoid_bwd_leaf, dx + lo, dout + lo, out + lo, hi - lo, acc);
  });
}

template <class T>
void maxout_forward(T* out, std::int32_t* argmax, const T* x, index_t N, index_t D, index_t k) {
  parallel_for(N, rows_for(kCheap, D * k), [&](index_t r0, index_t r1) {
    for (index_t r = r0; r < r1; ++r)
      for (index_t j = 0; j < D; ++j) {
        const T* g = x + (r * D + j) * k;
        T best = g[0];
        std::int32_t arg = 0;
        for (index_t p = 1; p < k; ++p)
          if (best == best && !(g[p] <= best)) {  // larger, or NaN (which then sticks)
            best = g[p];
            arg = static_cast<std::int32_t>(p);
          }
        out[r * D + j] = best;
        if (argmax) argmax[r * D + j] = arg;
      }
  }, 1);
}

template <class T>
void maxout_backward(T* dx, const T* dout, const std::int32_t* argmax, index_t N, index_t D,
                     index_t k, bool acc) {
  parallel_for(N, rows_for(kCheap, D * k), [&](index_t r0, index_t r1) {
    for (index_t r = r0; r < r1; ++r)
      for (index_t j = 0; j < D; ++j) {
        T* g = dx + (r * D + j) * k;
        const std::int32_t w = argmax[r * D + j];
        const T d = dout[r * D + j];
        for (index_t p = 0; p < k; ++p) put(g[p], p == w ? d : T(0), acc);
      }
  }, 1);
}

// ---------------------------------------------------------------------------------------------
// Scalar references: the definitions, written as plainly as possible.
// ---------------------------------------------------------------------------------------------
namespace ref {

template <class T>
void relu_forward(T* out, const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i) out[i] = std::isnan(x[i]) ? x[i] : std::max(x[i], T(0));
}
template <class T>
void relu_backward(T* dx, const T* dout, const T* x, index_t n, bool acc) {
  for (index_t i = 0; i < n; ++i) put(dx[i], x[i] > 0 ? dout[i] : T(0), acc);
}
template <class T>
void leaky_relu_forward(T* out, const T* x, T slope, index_t n) {
  for (index_t i = 0; i < n; ++i) out[i] = x[i] > 0 ? x[i] : slope * x[i];
}
template <class T>
void leaky_relu_backward(T* dx, const T* dout, const T* x, T slope, index_t n, bool acc) {
  for (index_t i = 0; i < n; ++i) put(dx[i], x[i] > 0 ? dout[i] : slope * dout[i], acc);
}
template <class T>
void prelu_forward(T* out, const T* x, const T* a, index_t N, index_t D, index_t n_a) {
  for (index_t r = 0; r < N; ++r)
    for (index_t j = 0; j < D; ++j) {
      const T s = a[n_a == 1 ? 0 : j], v = x[r * D + j];
      out[r * D + j] = v > 0 ? v : s * v;
    }
}
template <class T>
void prelu_backward(T* dx, T* da, const T* dout, const T* x, const T* a, index_t N, index_t D,
                    index_t n_a, bool acc) {
  std::vector<double> s(n_a, 0.0);  // the reference may allocate; it accumulates in double
  for (index_t r = 0; r < N; ++r)
    for (index_t j = 0; j < D; ++j) {
      const index_t k = n_a == 1 ? 0 : j;
      const T v = x[r * D + j], g = dout[r * D + j];
      if (dx) put(dx[r * D + j], v > 0 ? g : a[k] * g, acc);
      if (!(v > 0)) s[k] += double(g) * double(v);
    }
  if (da)
    for (index_t k = 0; k < n_a; ++k) da[k] = acc ? T(da[k] + s[k]) : T(s[k]);
}
template <class T>
void elu_forward(T* out, const T* x, T alpha, index_t n) {
  for (index_t i = 0; i < n; ++i) out[i] = x[i] > 0 ? x[i] : alpha * std::expm1(x[i]);
}
template <class T>
void elu_backward(T* dx, const T* dout, const T* out, T alpha, index_t n, bool acc) {
  for (index_t i = 0; i < n; ++i) put(dx[i], out[i] > 0 ? dout[i] : dout[i] * (out[i] + alpha), acc);
}
template <class T>
void tanh_forward(T* out, const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i) out[i] = std::tanh(x[i]);
}
template <class T>
void tanh_backward(T* dx, const T* dout, const T* out, index_t n, bool acc) {
  for (index_t i = 0; i < n; ++i) put(dx[i], dout[i] * (1 - out[i] * out[i]), acc);
}
template <class T>
void sigmoid_forward(T* out, const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i) out[i] = T(1) / (T(1) + std::exp(-x[i]));
}
template <class T>
void sigmoid_backward(T* dx, const T* dout, const T* out, index_t n, bool acc) {
  for (index_t i = 0; i < n; ++i) put(dx[i], dout[i] * out[i] * (1 - out[i]), acc);
}
template <class T>
void maxout_forward(T* out, std::int32_t* argmax, const T* x, index_t N, index_t D, index_t k) {
  for (index_t r = 0; r < N; ++r)
    for (index_t j = 0; j < D; ++j) {
      index_t arg = 0;
      for (index_t p = 1; p < k; ++p) {
        const T b = x[(r * D + j) * k + arg], v = x[(r * D + j) * k + p];
        if (!std::isnan(b) && (std::isnan(v) || v > b)) arg = p;
      }
      out[r * D + j] = x[(r * D + j) * k + arg];
      if (argmax) argmax[r * D + j] = static_cast<std::int32_t>(arg);
    }
}
template <class T>
void maxout_backward(T* dx, const T* dout, const std::int32_t* argmax, index_t N, index_t D,
                     index_t k, bool acc) {
  for (index_t r = 0; r < N; ++r)
    for (index_t j = 0; j < D; ++j)
      for (index_t p = 0; p < k; ++p)
        put(dx[(r * D + j) * k + p], p == argmax[r * D + j] ? dout[r * D + j] : T(0), acc);
}

}  // namespace ref
}  // namespace fastnn

// ---------------------------------------------------------------------------------------------
// Instantiations
// ---------------------------------------------------------------------------------------------
using fastnn::index_t;
#define FASTNN_INSTANTIATE_ACTIVATIONS(NS, T)                                                  \
  template void NS::relu_forward<T>(T*, const T*, index_t);                                   \
  template void NS::relu_backward<T>(T*, const T*, const T*, index_t, bool);                  \
  template void NS::leaky_relu_forward<T>(T*, const T*, T, index_t);                          \
  template void NS::leaky_relu_backward<T>(T*, const T*, const T*, T, index_t, bool);         \
  template void NS::prelu_forward<T>(T*, const T*, const T*, index_t, index_t, index_t);      \
  template void NS::prelu_backward<T>(T*, T*, const T*, const T*, const T*, index_t, index_t, \
                                      index_t, bool);                                         \
  template void NS::elu_forward<T>(T*, const T*, T, index_t);                                 \
  template void NS::elu_backward<T>(T*, const T*, const T*, T, index_t, bool);                \
  template void NS::tanh_forward<T>(T*, const T*, index_t);                                   \
  template void NS::tanh_backward<T>(T*, const T*, const T*, index_t, bool);                  \
  template void NS::sigmoid_forward<T>(T*, const T*, index_t);                                \
  template void NS::sigmoid_backward<T>(T*, const T*, const T*, index_t, bool);               \
  template void NS::maxout_forward<T>(T*, std::int32_t*, const T*, index_t, index_t, index_t); \
  template void NS::maxout_backward<T>(T*, const T*, const std::int32_t*, index_t, index_t,   \
                                       index_t, bool);
FASTNN_INSTANTIATE_ACTIVATIONS(fastnn, float)
FASTNN_INSTANTIATE_ACTIVATIONS(fastnn, double)
FASTNN_INSTANTIATE_ACTIVATIONS(fastnn::ref, float)
FASTNN_INSTANTIATE_ACTIVATIONS(fastnn::ref, double)
