// Fused optimizer steps (see optim.h).
#include "fastnn/optim.h"

#include <cmath>

#include "fastnn/threads.h"

namespace fastnn {

namespace {

constexpr index_t kGrain = 16384;

template <class T>
FASTNN_INLINE void sgd_body(T* FASTNN_RESTRICT w, const T* FASTNN_RESTRICT g, index_t n, T lr, T wd) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) w[i] -= lr * (g[i] + wd * w[i]);
}
template <class T>
FASTNN_INLINE void momentum_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT v,
                                 const T* FASTNN_RESTRICT g, index_t n, T lr, T mu, T wd) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T vi = mu * v[i] - lr * (g[i] + wd * w[i]);
    v[i] = vi;
    w[i] += vi;
  }
}
template <class T>
FASTNN_INLINE void nesterov_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT v,
                                 const T* FASTNN_RESTRICT g, index_t n, T lr, T mu, T wd) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T vp = v[i];
    const T vi = mu * vp - lr * (g[i] + wd * w[i]);
    v[i] = vi;
    w[i] += -mu * vp + (T(1) + mu) * vi;
  }
}
template <class T>
FASTNN_INLINE void adagrad_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT c,
                                const T* FASTNN_RESTRICT g, index_t n, T lr, T eps, T wd) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T gi = g[i] + wd * w[i];
    const T ci = c[i] + gi * gi;
    c[i] = ci;
    w[i] -= lr * gi / (std::sqrt(ci) + eps);
  }
}
template <class T>
FASTNN_INLINE void rmsprop_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT c,
                                const T* FASTNN_RESTRICT g, index_t n, T lr, T decay, T eps, T wd) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T gi = g[i] + wd * w[i];
    const T ci = decay * c[i] + (T(1) - decay) * gi * gi;
    c[i] = ci;
    w[i] -= lr * gi / (std::sqrt(ci) + eps);
  }
}
// c1 = 1 / (1 - b1^t), c2 = 1 / (1 - b2^t); wd_c: coupled decay, shrink: decoupled factor.
template <class T>
FASTNN_INLINE void adam_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT m, T* FASTNN_RESTRICT v,
                             const T* FASTNN_RESTRICT g, index_t n, T lr, T b1, T b2, T eps, T c1,
                             T c2, T wd_c, T shrink) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T gi = g[i] + wd_c * w[i];
    const T mi = b1 * m[i] + (T(1) - b1) * gi;
    const T vi = b2 * v[i] + (T(1) - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = w[i] * shrink - lr * (mi * c1) / (std::sqrt(vi * c2) + eps);
  }
}

#define FASTNN_OPTIM_LEAVES(T)                                                                  \
  FASTNN_CLONES void sgd_leaf(T* w, const T* g, index_t n, T lr, T wd) { sgd_body(w, g, n, lr, wd); } \
  FASTNN_CLONES void momentum_leaf(T* w, T* v, const T* g, index_t n, T lr, T mu, T wd) {      \
    momentum_body(w, v, g, n, lr, mu, wd);                                                      \
  }                                                                                             \
  FASTNN_CLONES void nesterov_leaf(T* w, T* v, const T* g, index_t n, T lr, T mu, T wd) {      \
    nesterov_body(w, v, g, n, lr, mu, wd);                                                      \
  }                                                                                             \
  FASTNN_CLONES void adagrad_leaf(T* w, T* c, const T* g, index_t n, T lr, T eps, T wd) {      \
    adagrad_body(w, c, g, n, lr, eps, wd);                                                      \
  }                                                                                             \
  FASTNN_CLONES void rmsprop_leaf(T* w, T* c, const T* g, index_t n, T lr, T d, T eps, T wd) { \
    rmsprop_body(w, c, g, n, lr, d, eps, wd);                                                   \
  }                                                                                             \
  FASTNN_CLONES void adam_leaf(T* w, T* m, T* v, const T* g, index_t n, T lr, T b1, T b2,      \
                               T eps, T c1, T c2, T wd_c, T shrink) {                           \
    adam_body(w, m, v, g, n, lr, b1, b2, eps, c1, c2, wd_c, shrink);                            \
  }
FASTNN_OPTIM_LEAVES(float)
FASTNN_OPTIM_LEAVES(double)
#undef FASTNN_OPTIM_LEAVES

}  // namespace

template <class T>
void sgd_step(T* w, const T* g, index_t n, T lr, T wd) {
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) { sgd_leaf(w + lo, g + lo, hi - lo, lr, wd); });
}
template <class T>
void sgd_momentum_step(T* w, T* v, const T* g, index_t n, T lr, T mu, T wd) {
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    momentum_leaf(w + lo, v + lo, g + lo, hi - lo, lr, mu, wd);
  });
}
template <class T>
void nesterov_step(T* w, T* v, const T* g, index_t n, T lr, T mu, T wd) {
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    nesterov_leaf(w + lo, v + lo, g + lo, hi - lo, lr, mu, wd);
  });
}
template <class T>
void adagrad_step(T* w, T* c, const T* g, index_t n, T lr, T eps, T wd) {
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    adagrad_leaf(w + lo, c + lo, g + lo, hi - lo, lr, eps, wd);
  });
}
template <class T>
void rmsprop_step(T* w, T* c, const T* g, index_t n, T lr, T decay, T eps, T wd) {
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    rmsprop_leaf(w + lo, c + lo, g + lo, hi - lo, lr, decay, eps, wd);
  });
}
template <class T>
void adam_step(T* w, T* m, T* v, const T* g, index_t n, T lr, T b1, T b2, T eps, std::int64_t t,
               T wd, bool decoupled) {
  const T c1 = T(1.0 / (1.0 - std::pow(double(b1), double(t))));
  const T c2 = T(1.0 / (1.0 - std::pow(double(b2), double(t))));
  const T wd_c = decoupled ? T(0) : wd;
  const T shrink = decoupled ? T(1) - lr * wd : T(1);
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    adam_leaf(w + lo, m + lo, v + lo, g + lo, hi - lo, lr, b1, b2, eps, c1, c2, wd_c, shrink);
  });
}

namespace ref {
template <class T>
void sgd_step(T* w, const T* g, index_t n, T lr, T wd) {
  for (index_t i = 0; i < n; ++i) w[i] = w[i] - lr * (g[i] + wd * w[i]);
}
template <class T>
void sgd_momentum_step(T* w, T* v, const T* g, index_t n, T lr, T mu, T wd) {
  for (index_t i = 0; i < n; ++i) {
    v[i] = mu * v[i] - lr * (g[i] + wd * w[i]);
    w[i] = w[i] + v[i];
  }
}
template <class T>
void nesterov_step(T* w, T* v, const T* g, index_t n, T lr, T mu, T wd) {
  for (index_t i = 0; i < n; ++i) {
    const T v_prev = v[i];
    v[i] = mu * v[i] - lr * (g[i] + wd * w[i]);
    w[i] = w[i] - mu * v_prev + (1 + mu) * v[i];
  }
}
template <class T>
void adagrad_step(T* w, T* c, const T* g, index_t n, T lr, T eps, T wd) {
  for (index_t i = 0; i < n; ++i) {
    const T gi = g[i] + wd * w[i];
    c[i] = c[i] + gi * gi;
    w[i] = w[i] - lr * gi / (std::sqrt(c[i]) + eps);
  }
}
template <class T>
void rmsprop_step(T* w, T* c, const T* g, index_t n, T lr, T decay, T eps, T wd) {
  for (index_t i = 0; i < n; ++i) {
    const T gi = g[i] + wd * w[i];
    c[i] = decay * c[i] + (1 - decay) * gi * gi;
    w[i] = w[i] - lr * gi / (std::sqrt(c[i]) + eps);
  }
}
template <class T>
void adam_step(T* w, T* m, T* v, const T* g, index_t n, T lr, T b1, T b2, T eps, std::int64_t t,
               T wd, bool decoupled) {
  for (index_t i = 0; i < n; ++i) {
    if (decoupled) w[i] = w[i] - lr * wd * w[i];
    const T gi = decoupled ? g[i] : g[i] + wd * w[i];
    m[i] = b1 * m[i] + (1 - b1) * gi;
    v[i] = b2 * v[i] + (1 - b2) * gi * gi;
    const double mt = m[i] / (1 - std::pow(double(b1), double(t)));
    const double vt = v[i] / (1 - std::pow(double(b2), double(t)));
    w[i] = T(w[i] - lr * mt / (std::sqrt(vt) + eps));
  }
}
}  // namespace ref
}  // namespace fastnn

using fastnn::index_t;
#define FASTNN_INSTANTIATE_OPTIM(NS, T)                                                         \
  template void NS::sgd_step<T>(T*, const T*, index_t, T, T);                                  \
  template void NS::sgd_momentum_step<T>(T*, T*, const T*, index_t, T, T, T);                  \
  template void NS::nesterov_step<T>(T*, T*, const T*, index_t, T, T, T);                      \
  template void NS::adagrad_step<T>(T*, T*, const T*, index_t, T, T, T);                       \
  template void NS::rmsprop_step<T>(T*, T*, const T*, index_t, T, T, T, T);                    \
  template void NS::adam_step<T>(T*, T*, T*, const T*, index_t, T, T, T, T, std::int64_t, T, bool);
FASTNN_INSTANTIATE_OPTIM(fastnn, float)
FASTNN_INSTANTIATE_OPTIM(fastnn, double)
FASTNN_INSTANTIATE_OPTIM(fastnn::ref, float)
FASTNN_INSTANTIATE_OPTIM(fastnn::ref, double)
