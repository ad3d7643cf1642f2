// Fused optimizer steps (see optim.h). Each kind is one loop body (a *_body template); the leaves
// compile it per ISA, and optimizer_step splits the buffer over threads.
#include "fastnn/optim.h"

#include <algorithm>
#include <cmath>

#include "fastnn/isa.h"
#include "fastnn/threads.h"

namespace fastnn {

namespace {

constexpr index_t kGrain = 16384;

// Scalars of a step in the working precision.
template <class T>
struct H {
  // one_minus_* are computed in double from the user's value: 1 - beta2 evaluated in float from
  // an already rounded beta2 = 0.999 gives 0.00099998713, not 0.001, and Adam's second moment then
  // drifts from the reference by ~1.3e-5 relative per step.
  T lr, mu, b1, b2, eps, decay, rho, l2, l1, shrink, c1, c2;
  T eta_plus, eta_minus, step_min, step_max, gain_add, gain_mul, gain_min, gain_max;
  T one_minus_b1, one_minus_b2, one_minus_decay, one_minus_rho;
  explicit H(const StepHyper& h)
      : lr(T(h.lr)), mu(T(h.momentum)), b1(T(h.beta1)), b2(T(h.beta2)), eps(T(h.eps)),
        decay(T(h.decay)), rho(T(h.rho)), l2(T(h.l2)), l1(T(h.l1)),
        shrink(T(1.0 - h.lr * h.weight_decay)),
        c1(T(1.0 / (1.0 - std::pow(h.beta1, double(h.t))))),
        c2(T(1.0 / (1.0 - std::pow(h.beta2, double(h.t))))), eta_plus(T(h.eta_plus)),
        eta_minus(T(h.eta_minus)), step_min(T(h.step_min)), step_max(T(h.step_max)),
        gain_add(T(h.gain_add)), gain_mul(T(h.gain_mul)), gain_min(T(h.gain_min)),
        gain_max(T(h.gain_max)), one_minus_b1(T(1.0 - h.beta1)), one_minus_b2(T(1.0 - h.beta2)),
        one_minus_decay(T(1.0 - h.decay)), one_minus_rho(T(1.0 - h.rho)) {}
};

// sign(x) in {-1, 0, 1} (0 for NaN), branch-free: a nested conditional here kept the loops of the
// AVX2 and baseline clones scalar ("control flow in loop"), ~7 ns per element for every rule.
template <class T>
FASTNN_INLINE T sgn(T x) {
  return T(x > T(0)) - T(x < T(0));
}

// The gradient with the coupled penalties.
template <class T>
FASTNN_INLINE T geff(T g, T w, T l2, T l1) {
  return g + l2 * w + l1 * sgn(w);
}

template <class T>
FASTNN_INLINE void sgd_body(T* FASTNN_RESTRICT w, const T* FASTNN_RESTRICT g, index_t n, const H<T>& h) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) w[i] -= h.lr * geff(g[i], w[i], h.l2, h.l1);
}
template <class T>
FASTNN_INLINE void momentum_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT v,
                                 const T* FASTNN_RESTRICT g, index_t n, const H<T>& h) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T vi = h.mu * v[i] - h.lr * geff(g[i], w[i], h.l2, h.l1);
    v[i] = vi;
    w[i] += vi;
  }
}
template <class T>
FASTNN_INLINE void nesterov_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT v,
                                 const T* FASTNN_RESTRICT g, index_t n, const H<T>& h) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T vp = v[i];
    const T vi = h.mu * vp - h.lr * geff(g[i], w[i], h.l2, h.l1);
    v[i] = vi;
    w[i] += -h.mu * vp + (T(1) + h.mu) * vi;
  }
}
template <class T>
FASTNN_INLINE void adagrad_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT c,
                                const T* FASTNN_RESTRICT g, index_t n, const H<T>& h) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T gi = geff(g[i], w[i], h.l2, h.l1);
    const T ci = c[i] + gi * gi;
    c[i] = ci;
    w[i] -= h.lr * gi / (std::sqrt(ci) + h.eps);
  }
}
template <class T>
FASTNN_INLINE void rmsprop_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT c,
                                const T* FASTNN_RESTRICT g, index_t n, const H<T>& h) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T gi = geff(g[i], w[i], h.l2, h.l1);
    const T ci = h.decay * c[i] + h.one_minus_decay * gi * gi;
    c[i] = ci;
    w[i] -= h.lr * gi / (std::sqrt(ci) + h.eps);
  }
}
// Adam and AdamW (shrink = 1 - lr * weight_decay for AdamW, 1 for Adam).
template <class T>
FASTNN_INLINE void adam_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT m, T* FASTNN_RESTRICT v,
                             const T* FASTNN_RESTRICT g, index_t n, const H<T>& h, T shrink) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T gi = geff(g[i], w[i], h.l2, h.l1);
    const T mi = h.b1 * m[i] + h.one_minus_b1 * gi;
    const T vi = h.b2 * v[i] + h.one_minus_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = w[i] * shrink - h.lr * (mi * h.c1) / (std::sqrt(vi * h.c2) + h.eps);
  }
}
template <class T>
FASTNN_INLINE void adadelta_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT a, T* FASTNN_RESTRICT u,
                                 const T* FASTNN_RESTRICT g, index_t n, const H<T>& h) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T gi = geff(g[i], w[i], h.l2, h.l1);
    const T ai = h.rho * a[i] + h.one_minus_rho * gi * gi;
    const T d = std::sqrt(u[i] + h.eps) / std::sqrt(ai + h.eps) * gi;
    a[i] = ai;
    u[i] = h.rho * u[i] + h.one_minus_rho * d * d;
    w[i] -= h.lr * d;
  }
}
template <class T>
FASTNN_INLINE void rprop_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT p, T* FASTNN_RESTRICT s,
                              const T* FASTNN_RESTRICT g, index_t n, const H<T>& h) {
  // the scalars in locals: read through `h` inside the loop, GCC could not rule out that the
  // stores alias them, and kept the loop scalar in every clone
  const T lr = h.lr, l2 = h.l2, l1 = h.l1, up = h.eta_plus, down = h.eta_minus, lo = h.step_min,
          hi = h.step_max;
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    T gi = geff(g[i], w[i], l2, l1);
    const T si0 = s[i] == T(0) ? lr : s[i];  // a zero step size means "not started"
    const T dir = gi * p[i];
    T f = dir > T(0) ? up : down;  // one select at a time
    f = dir == T(0) ? T(1) : f;
    const T si = std::min(std::max(si0 * f, lo), hi);  // clamped always, as PyTorch
    gi = dir < T(0) ? T(0) : gi;
    s[i] = si;
    p[i] = gi;
    w[i] -= sgn(gi) * si;
  }
}
template <class T>
FASTNN_INLINE void gains_body(T* FASTNN_RESTRICT w, T* FASTNN_RESTRICT k, T* FASTNN_RESTRICT p,
                              T* FASTNN_RESTRICT v, const T* FASTNN_RESTRICT g, index_t n,
                              const H<T>& h) {
#pragma omp simd
  for (index_t i = 0; i < n; ++i) {
    const T gi = geff(g[i], w[i], h.l2, h.l1);
    const T k0 = k[i] == T(0) ? T(1) : k[i];  // a zero gain means "not started"
    T ki = gi * p[i] > T(0) ? k0 + h.gain_add : k0 * h.gain_mul;
    ki = std::min(std::max(ki, h.gain_min), h.gain_max);
    const T vi = h.mu * v[i] - h.lr * ki * gi;
    k[i] = ki;
    p[i] = gi;
    v[i] = vi;
    w[i] += vi;
  }
}

// One leaf per ISA runs the body of `kind` on [0, n) of already offset pointers.
template <class T>
FASTNN_INLINE void step_body(OptimKind kind, T* w, T* const* s, const T* g, index_t n, const H<T>& h) {
  switch (kind) {
    case OptimKind::SGD: sgd_body(w, g, n, h); break;
    case OptimKind::Momentum: momentum_body(w, s[0], g, n, h); break;
    case OptimKind::Nesterov: nesterov_body(w, s[0], g, n, h); break;
    case OptimKind::Adagrad: adagrad_body(w, s[0], g, n, h); break;
    case OptimKind::RMSProp: rmsprop_body(w, s[0], g, n, h); break;
    case OptimKind::Adam: adam_body(w, s[0], s[1], g, n, h, T(1)); break;
    case OptimKind::AdamW: adam_body(w, s[0], s[1], g, n, h, h.shrink); break;
    case OptimKind::Adadelta: adadelta_body(w, s[0], s[1], g, n, h); break;
    case OptimKind::Rprop: rprop_body(w, s[0], s[1], g, n, h); break;
    case OptimKind::Gains: gains_body(w, s[0], s[1], s[2], g, n, h); break;
  }
}

FASTNN_ISA_PASSES(
    FASTNN_LEAF void step_leaf(OptimKind kind, float* w, float* const* s, const float* g, index_t n, const H<float>& h) {
      step_body(kind, w, s, g, n, h);
    }
    FASTNN_LEAF void step_leaf(OptimKind kind, double* w, double* const* s, const double* g, index_t n,
                   const H<double>& h) { step_body(kind, w, s, g, n, h); })

}  // namespace

int optimizer_state_count(OptimKind kind) {
  switch (kind) {
    case OptimKind::SGD: return 0;
    case OptimKind::Momentum:
    case OptimKind::Nesterov:
    case OptimKind::Adagrad:
    case OptimKind::RMSProp: return 1;
    case OptimKind::Adam:
    case OptimKind::AdamW:
    case OptimKind::Adadelta:
    case OptimKind::Rprop: return 2;
    case OptimKind::Gains: return 3;
  }
  return 0;
}

template <class T>
void optimizer_step(OptimKind kind, T* w, T* const* state, const T* g, index_t n, const StepHyper& hy) {
  const H<T> h(hy);
  const int ns = optimizer_state_count(kind);
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    T* s[3] = {nullptr, nullptr, nullptr};
    for (int i = 0; i < ns; ++i) s[i] = state[i] + lo;
    FASTNN_SIMD_CALL(step_leaf, kind, w + lo, s, g + lo, hi - lo, h);
  });
}

namespace ref {
template <class T>
void optimizer_step(OptimKind kind, T* w, T* const* st, const T* g, index_t n, const StepHyper& h) {
  for (index_t i = 0; i < n; ++i) {
    const double wi = w[i];
    double gi = double(g[i]) + h.l2 * wi + h.l1 * (wi > 0 ? 1.0 : (wi < 0 ? -1.0 : 0.0));
    switch (kind) {
      case OptimKind::SGD: w[i] = T(wi - h.lr * gi); break;
      case OptimKind::Momentum: {
        st[0][i] = T(h.momentum * st[0][i] - h.lr * gi);
        w[i] = T(wi + st[0][i]);
        break;
      }
      case OptimKind::Nesterov: {
        const double v_prev = st[0][i];
        st[0][i] = T(h.momentum * v_prev - h.lr * gi);
        w[i] = T(wi - h.momentum * v_prev + (1 + h.momentum) * st[0][i]);
        break;
      }
      case OptimKind::Adagrad: {
        st[0][i] = T(st[0][i] + gi * gi);
        w[i] = T(wi - h.lr * gi / (std::sqrt(double(st[0][i])) + h.eps));
        break;
      }
      case OptimKind::RMSProp: {
        st[0][i] = T(h.decay * st[0][i] + (1 - h.decay) * gi * gi);
        w[i] = T(wi - h.lr * gi / (std::sqrt(double(st[0][i])) + h.eps));
        break;
      }
      case OptimKind::Adam:
      case OptimKind::AdamW: {
        const double w0 = kind == OptimKind::AdamW ? wi * (1 - h.lr * h.weight_decay) : wi;
        st[0][i] = T(h.beta1 * st[0][i] + (1 - h.beta1) * gi);
        st[1][i] = T(h.beta2 * st[1][i] + (1 - h.beta2) * gi * gi);
        const double mt = st[0][i] / (1 - std::pow(h.beta1, double(h.t)));
        const double vt = st[1][i] / (1 - std::pow(h.beta2, double(h.t)));
        w[i] = T(w0 - h.lr * mt / (std::sqrt(vt) + h.eps));
        break;
      }
      case OptimKind::Adadelta: {
        st[0][i] = T(h.rho * st[0][i] + (1 - h.rho) * gi * gi);
        const double d = std::sqrt(double(st[1][i]) + h.eps) / std::sqrt(double(st[0][i]) + h.eps) * gi;
        st[1][i] = T(h.rho * st[1][i] + (1 - h.rho) * d * d);
        w[i] = T(wi - h.lr * d);
        break;
      }
      case OptimKind::Rprop: {
        double s = st[1][i] == 0 ? h.lr : double(st[1][i]);
        const double dir = gi * double(st[0][i]);
        s = std::min(std::max(s * (dir > 0 ? h.eta_plus : (dir < 0 ? h.eta_minus : 1.0)), h.step_min), h.step_max);
        if (dir < 0) gi = 0;
        st[1][i] = T(s);
        st[0][i] = T(gi);
        w[i] = T(wi - (gi > 0 ? s : (gi < 0 ? -s : 0.0)));
        break;
      }
      case OptimKind::Gains: {
        double k = st[0][i] == 0 ? 1.0 : double(st[0][i]);
        k = gi * double(st[1][i]) > 0 ? k + h.gain_add : k * h.gain_mul;
        k = std::min(std::max(k, h.gain_min), h.gain_max);
        st[0][i] = T(k);
        st[1][i] = T(gi);
        st[2][i] = T(h.momentum * st[2][i] - h.lr * k * gi);
        w[i] = T(wi + st[2][i]);
        break;
      }
    }
  }
}
}  // namespace ref

}  // namespace fastnn

using fastnn::index_t;
template void fastnn::optimizer_step<float>(fastnn::OptimKind, float*, float* const*, const float*,
                                            index_t, const fastnn::StepHyper&);
template void fastnn::optimizer_step<double>(fastnn::OptimKind, double*, double* const*, const double*,
                                             index_t, const fastnn::StepHyper&);
template void fastnn::ref::optimizer_step<float>(fastnn::OptimKind, float*, float* const*, const float*,
                                                 index_t, const fastnn::StepHyper&);
template void fastnn::ref::optimizer_step<double>(fastnn::OptimKind, double*, double* const*,
                                                  const double*, index_t, const fastnn::StepHyper&);
