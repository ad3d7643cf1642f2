// Batch normalisation (see batchnorm.h). Work is split over blocks of features; each block makes
// a few passes over its columns of the batch while they sit in cache.
#include "fastnn/batchnorm.h"

#include <algorithm>
#include <cmath>

#include "fastnn/isa.h"
#include "fastnn/threads.h"

namespace fastnn {

namespace {

constexpr index_t kW = 256;  // widest feature block (stack accumulators)

// Column reductions run over strips of kStrip columns whose double accumulators stay in
// registers for the whole pass over the rows (measured 2x faster than accumulating into memory);
// every column is still summed in row order, so the result does not depend on the blocking.
constexpr int kStrip = 16;

// Per-column moments in one pass, shifted by the first row (the "shifted data" algorithm:
// s1 = sum (x - x0), s2 = sum (x - x0)^2, so var = (s2 - s1^2 / N) / N without the cancellation
// that plain sums of squares suffer when |mean| >> std).
template <class T>
FASTNN_INLINE void col_moments_body(double* FASTNN_RESTRICT s1, double* FASTNN_RESTRICT s2,
                                    const T* FASTNN_RESTRICT x, index_t N, index_t D, index_t j0,
                                    index_t w) {
  index_t j = 0;
  for (; j + kStrip <= w; j += kStrip) {
    double a1[kStrip] = {0}, a2[kStrip] = {0}, k0[kStrip];
    const T* xc = x + j0 + j;
    for (int k = 0; k < kStrip; ++k) k0[k] = double(xc[k]);
    for (index_t r = 0; r < N; ++r) {
#pragma omp simd
      for (int k = 0; k < kStrip; ++k) {
        const double d = double(xc[r * D + k]) - k0[k];
        a1[k] += d;
        a2[k] += d * d;
      }
    }
    for (int k = 0; k < kStrip; ++k) {
      s1[j + k] = a1[k];
      s2[j + k] = a2[k];
    }
  }
  for (; j < w; ++j) {
    const double k0 = double(x[j0 + j]);
    double a1 = 0, a2 = 0;
    for (index_t r = 0; r < N; ++r) {
      const double d = double(x[r * D + j0 + j]) - k0;
      a1 += d;
      a2 += d * d;
    }
    s1[j] = a1;
    s2[j] = a2;
  }
}
// out = (x - center) * scale + shift, per column (centred first: no cancellation for large means).
template <class T>
FASTNN_INLINE void affine_cols_body(T* FASTNN_RESTRICT out, const T* FASTNN_RESTRICT x,
                                    const T* FASTNN_RESTRICT center, const T* FASTNN_RESTRICT scale,
                                    const T* FASTNN_RESTRICT shift, index_t N, index_t D, index_t j0,
                                    index_t w) {
  for (index_t r = 0; r < N; ++r) {
    const T* xr = x + r * D + j0;
    T* yr = out + r * D + j0;
#pragma omp simd
    for (index_t j = 0; j < w; ++j) yr[j] = (xr[j] - center[j]) * scale[j] + shift[j];
  }
}
// s1 += dout, s2 += dout * (x - mean) (later scaled by invstd), in register strips as above.
template <class T>
FASTNN_INLINE void bwd_sums_body(double* FASTNN_RESTRICT s1, double* FASTNN_RESTRICT s2,
                                 const T* FASTNN_RESTRICT dy, const T* FASTNN_RESTRICT x,
                                 const T* FASTNN_RESTRICT mean, index_t N, index_t D, index_t j0,
                                 index_t w) {
  index_t j = 0;
  for (; j + kStrip <= w; j += kStrip) {
    double a1[kStrip] = {0}, a2[kStrip] = {0}, mu[kStrip];
    for (int k = 0; k < kStrip; ++k) mu[k] = double(mean[j + k]);
    const T* xc = x + j0 + j;
    const T* gc = dy + j0 + j;
    for (index_t r = 0; r < N; ++r) {
#pragma omp simd
      for (int k = 0; k < kStrip; ++k) {
        const double g = double(gc[r * D + k]);
        a1[k] += g;
        a2[k] += g * (double(xc[r * D + k]) - mu[k]);
      }
    }
    for (int k = 0; k < kStrip; ++k) {
      s1[j + k] += a1[k];
      s2[j + k] += a2[k];
    }
  }
  for (index_t r = 0; r < N; ++r)
    for (index_t jj = j; jj < w; ++jj) {
      const double g = double(dy[r * D + j0 + jj]);
      s1[jj] += g;
      s2[jj] += g * (double(x[r * D + j0 + jj]) - double(mean[jj]));
    }
}
// dx = a * dout + b * (x - mean) + c, per column (the closed form, expanded).
template <class T>
FASTNN_INLINE void bwd_dx_body(T* FASTNN_RESTRICT dx, const T* FASTNN_RESTRICT dy,
                               const T* FASTNN_RESTRICT x, const T* FASTNN_RESTRICT m,
                               const T* FASTNN_RESTRICT a, const T* FASTNN_RESTRICT b,
                               const T* FASTNN_RESTRICT c, index_t N, index_t D, index_t j0,
                               index_t w, bool acc) {
  for (index_t r = 0; r < N; ++r) {
    const T* xr = x + r * D + j0;
    const T* gr = dy + r * D + j0;
    T* dr = dx + r * D + j0;
    if (acc) {
#pragma omp simd
      for (index_t j = 0; j < w; ++j) dr[j] += a[j] * gr[j] + b[j] * (xr[j] - m[j]) + c[j];
    } else {
#pragma omp simd
      for (index_t j = 0; j < w; ++j) dr[j] = a[j] * gr[j] + b[j] * (xr[j] - m[j]) + c[j];
    }
  }
}

#define FASTNN_BN_LEAVES(T)                                                                     \
  FASTNN_LEAF void col_moments_leaf(double* s1, double* s2, const T* x, index_t N, index_t D,   \
                                      index_t j0, index_t w) {                                  \
    col_moments_body(s1, s2, x, N, D, j0, w);                                                   \
  }                                                                                             \
  FASTNN_LEAF void affine_cols_leaf(T* out, const T* x, const T* center, const T* scale,       \
                                      const T* shift, index_t N, index_t D, index_t j0,         \
                                      index_t w) {                                              \
    affine_cols_body(out, x, center, scale, shift, N, D, j0, w);                                \
  }                                                                                             \
  FASTNN_LEAF void bwd_sums_leaf(double* s1, double* s2, const T* dy, const T* x,               \
                                   const T* mean, index_t N, index_t D, index_t j0, index_t w) { \
    bwd_sums_body(s1, s2, dy, x, mean, N, D, j0, w);                                            \
  }                                                                                             \
  FASTNN_LEAF void bwd_dx_leaf(T* dx, const T* dy, const T* x, const T* m, const T* a,          \
                                 const T* b, const T* c, index_t N, index_t D, index_t j0,      \
                                 index_t w, bool acc) {                                         \
    bwd_dx_body(dx, dy, x, m, a, b, c, N, D, j0, w, acc);                                       \
  }
FASTNN_ISA_PASSES(FASTNN_BN_LEAVES(float) FASTNN_BN_LEAVES(double))
#undef FASTNN_BN_LEAVES

}  // namespace

template <class T>
void batchnorm_forward_train(T* out, T* mean, T* invstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, index_t N, index_t D,
                             T eps, T momentum, bool unbiased) {
  parallel_columns(N, D, [&](index_t j0, index_t j1) {
    const index_t w = j1 - j0;
    double s1[kW], s2[kW], m[kW];
    FASTNN_SIMD_CALL(col_moments_leaf, s1, s2, x, N, D, j0, w);
    T center[kW], scale[kW], shift[kW];
    for (index_t j = 0; j < w; ++j) {
      m[j] = double(x[j0 + j]) + s1[j] / double(N);
      const double var = std::max(0.0, (s2[j] - s1[j] * s1[j] / double(N)) / double(N));
      const double is = 1.0 / std::sqrt(var + double(eps));
      const double g = gamma ? double(gamma[j0 + j]) : 1.0;
      const double b = beta ? double(beta[j0 + j]) : 0.0;
      mean[j0 + j] = T(m[j]);
      invstd[j0 + j] = T(is);
      center[j] = T(m[j]);
      scale[j] = T(g * is);
      shift[j] = T(b);
      if (running_mean)
        running_mean[j0 + j] = T(double(momentum) * running_mean[j0 + j] + (1.0 - double(momentum)) * m[j]);
      if (running_var) {
        const double rv = unbiased && N > 1 ? var * double(N) / double(N - 1) : var;
        running_var[j0 + j] = T(double(momentum) * running_var[j0 + j] + (1.0 - double(momentum)) * rv);
      }
    }
    FASTNN_SIMD_CALL(affine_cols_leaf, out, x, center, scale, shift, N, D, j0, w);
  });
}

template <class T>
void batchnorm_forward_eval(T* out, const T* x, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, index_t N, index_t D,
                            T eps) {
  parallel_columns(N, D, [&](index_t j0, index_t j1) {
    const index_t w = j1 - j0;
    T scale[kW], shift[kW];
    for (index_t j = 0; j < w; ++j) {
      const double is = 1.0 / std::sqrt(double(running_var[j0 + j]) + double(eps));
      const double g = gamma ? double(gamma[j0 + j]) : 1.0;
      scale[j] = T(g * is);
      shift[j] = beta ? beta[j0 + j] : T(0);
    }
    FASTNN_SIMD_CALL(affine_cols_leaf, out, x, running_mean + j0, scale, shift, N, D, j0, w);
  });
}

template <class T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                        const T* mean, const T* invstd, index_t N, index_t D, bool acc) {
  parallel_columns(N, D, [&](index_t j0, index_t j1) {
    const index_t w = j1 - j0;
    double s1[kW] = {0}, s2[kW] = {0};
    FASTNN_SIMD_CALL(bwd_sums_leaf, s1, s2, dout, x, mean + j0, N, D, j0, w);
    T a[kW], b[kW], c[kW];
    for (index_t j = 0; j < w; ++j) {
      const double is = double(invstd[j0 + j]);
      const double db = s1[j], dg = s2[j] * is;  // sum dout, sum dout * xhat
      if (dbeta) dbeta[j0 + j] = acc ? T(dbeta[j0 + j] + db) : T(db);
      if (dgamma) dgamma[j0 + j] = acc ? T(dgamma[j0 + j] + dg) : T(dg);
      // dx = k * (dout - db/N - xhat * dg/N), k = gamma * invstd, xhat = (x - mean) * invstd
      const double k = (gamma ? double(gamma[j0 + j]) : 1.0) * is;
      a[j] = T(k);
      b[j] = T(-k * is * dg / double(N));
      c[j] = T(-k * db / double(N));
    }
    if (dx) FASTNN_SIMD_CALL(bwd_dx_leaf, dx, dout, x, mean + j0, a, b, c, N, D, j0, w, acc);
  });
}

template <class T>
void batchnorm_backward_eval(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                             const T* rm, const T* rv, index_t N, index_t D, T eps, bool acc) {
  parallel_columns(N, D, [&](index_t j0, index_t j1) {
    const index_t w = j1 - j0;
    double s1[kW] = {0}, s2[kW] = {0};
    FASTNN_SIMD_CALL(bwd_sums_leaf, s1, s2, dout, x, rm + j0, N, D, j0, w);  // sum dout, sum dout * (x - rm)
    T a[kW], zero[kW];
    for (index_t j = 0; j < w; ++j) {
      const double is = 1.0 / std::sqrt(double(rv[j0 + j]) + double(eps));
      if (dbeta) dbeta[j0 + j] = acc ? T(dbeta[j0 + j] + s1[j]) : T(s1[j]);
      if (dgamma) dgamma[j0 + j] = acc ? T(dgamma[j0 + j] + s2[j] * is) : T(s2[j] * is);
      a[j] = T((gamma ? double(gamma[j0 + j]) : 1.0) * is);
      zero[j] = T(0);
    }
    if (dx) FASTNN_SIMD_CALL(bwd_dx_leaf, dx, dout, x, rm + j0, a, zero, zero, N, D, j0, w, acc);
  });
}

namespace ref {
template <class T>
void batchnorm_backward_eval(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                             const T* rm, const T* rv, index_t N, index_t D, T eps, bool acc) {
  for (index_t j = 0; j < D; ++j) {
    const double is = 1.0 / std::sqrt(double(rv[j]) + eps), g = gamma ? gamma[j] : 1.0;
    double db = 0, dg = 0;
    for (index_t r = 0; r < N; ++r) {
      db += dout[r * D + j];
      dg += double(dout[r * D + j]) * (double(x[r * D + j]) - double(rm[j])) * is;
      if (dx) {
        const double v = double(dout[r * D + j]) * g * is;
        dx[r * D + j] = acc ? T(dx[r * D + j] + v) : T(v);
      }
    }
    if (dbeta) dbeta[j] = acc ? T(dbeta[j] + db) : T(db);
    if (dgamma) dgamma[j] = acc ? T(dgamma[j] + dg) : T(dg);
  }
}

template <class T>
void batchnorm_forward_train(T* out, T* mean, T* invstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, index_t N, index_t D,
                             T eps, T momentum, bool unbiased) {
  for (index_t j = 0; j < D; ++j) {
    double m = 0, v = 0;
    for (index_t r = 0; r < N; ++r) m += x[r * D + j];
    m /= N;
    for (index_t r = 0; r < N; ++r) v += (x[r * D + j] - m) * (x[r * D + j] - m);
    v /= N;
    const double is = 1.0 / std::sqrt(v + eps);
    for (index_t r = 0; r < N; ++r)
      out[r * D + j] = T((gamma ? gamma[j] : 1.0) * (x[r * D + j] - m) * is + (beta ? beta[j] : 0.0));
    mean[j] = T(m);
    invstd[j] = T(is);
    if (running_mean) running_mean[j] = T(momentum * running_mean[j] + (1 - momentum) * m);
    if (running_var)
      running_var[j] = T(momentum * running_var[j] + (1 - momentum) * (unbiased && N > 1 ? v * N / (N - 1) : v));
  }
}
template <class T>
void batchnorm_forward_eval(T* out, const T* x, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, index_t N, index_t D,
                            T eps) {
  for (index_t r = 0; r < N; ++r)
    for (index_t j = 0; j < D; ++j)
      out[r * D + j] = T((gamma ? gamma[j] : 1.0) * (x[r * D + j] - double(running_mean[j])) /
                             std::sqrt(double(running_var[j]) + eps) + (beta ? beta[j] : 0.0));
}
template <class T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                        const T* mean, const T* invstd, index_t N, index_t D, bool acc) {
  for (index_t j = 0; j < D; ++j) {
    double db = 0, dg = 0;
    for (index_t r = 0; r < N; ++r) {
      db += dout[r * D + j];
      dg += dout[r * D + j] * (x[r * D + j] - double(mean[j])) * invstd[j];
    }
    if (dbeta) dbeta[j] = acc ? T(dbeta[j] + db) : T(db);
    if (dgamma) dgamma[j] = acc ? T(dgamma[j] + dg) : T(dg);
    if (!dx) continue;
    const double g = gamma ? gamma[j] : 1.0;
    for (index_t r = 0; r < N; ++r) {
      const double xhat = (x[r * D + j] - double(mean[j])) * invstd[j];
      const double v = g * invstd[j] / N * (N * double(dout[r * D + j]) - db - xhat * dg);
      dx[r * D + j] = acc ? T(dx[r * D + j] + v) : T(v);
    }
  }
}
}  // namespace ref
}  // namespace fastnn

using fastnn::index_t;
#define FASTNN_INSTANTIATE_BN(NS, T)                                                           \
  template void NS::batchnorm_forward_train<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*, \
                                               index_t, index_t, T, T, bool);                   \
  template void NS::batchnorm_forward_eval<T>(T*, const T*, const T*, const T*, const T*,      \
                                              const T*, index_t, index_t, T);                   \
  template void NS::batchnorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,  \
                                          const T*, index_t, index_t, bool);                    \
  template void NS::batchnorm_backward_eval<T>(T*, T*, T*, const T*, const T*, const T*,       \
                                               const T*, const T*, index_t, index_t, T, bool);
FASTNN_INSTANTIATE_BN(fastnn, float)
FASTNN_INSTANTIATE_BN(fastnn, double)
FASTNN_INSTANTIATE_BN(fastnn::ref, float)
FASTNN_INSTANTIATE_BN(fastnn::ref, double)
