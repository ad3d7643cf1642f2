// Data losses (see loss.h).
#include "fastnn/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "fastnn/isa.h"
#include "fastnn/threads.h"
#include "fastnn/vecmath.h"

namespace fastnn {

namespace {

index_t first_bad_label(const std::int64_t* y, index_t N, index_t C) {
  for (index_t i = 0; i < N; ++i)
    if (y[i] < 0 || y[i] >= C) return i;
  return -1;
}

// Rows per task so that a task handles about 8k scores.
inline index_t row_grain(index_t C) { return std::max<index_t>(1, 8192 / std::max<index_t>(1, C)); }

constexpr index_t kSmallC = 64;

// The largest score of a row (the shift that keeps exp from overflowing).
template <class T>
FASTNN_INLINE T row_max(const T* s, index_t C) {
  T mx = s[0];
  for (index_t j = 1; j < C; ++j) mx = s[j] > mx ? s[j] : mx;
  return mx;
}

// sum_j exp(s_j - mx), summed in double. With `keep` (a gradient row about to be written, not
// accumulated) exp(s_j - mx) is left in keep[j]; without, it is evaluated in blocks on the stack, to
// be evaluated again by softmax_grad. Either way the sum loop stays separate from the exp loop (so
// GCC vectorises the exp) and nothing is allocated for any number of classes.
template <class T>
FASTNN_INLINE double sum_exp(T* FASTNN_RESTRICT keep, const T* FASTNN_RESTRICT s, T mx, index_t C) {
  double sum = 0.0;
  if (keep) {
#pragma omp simd
    for (index_t j = 0; j < C; ++j) keep[j] = vm::exp(T(s[j] - mx));
    for (index_t j = 0; j < C; ++j) sum += double(keep[j]);
  } else {
    T z[64];
    for (index_t j0 = 0; j0 < C; j0 += 64) {
      const index_t m = std::min<index_t>(64, C - j0);
#pragma omp simd
      for (index_t j = 0; j < m; ++j) z[j] = vm::exp(T(s[j0 + j] - mx));
      for (index_t j = 0; j < m; ++j) sum += double(z[j]);
    }
  }
  return sum;
}

// The softmax cross-entropy gradient row g_scale * (exp(s_j - mx) * scale - target(j)): written
// over d when `kept` (d then holds exp(s_j - mx) from sum_exp), else added into d.
template <class T, class Target>
FASTNN_INLINE void softmax_grad(T* FASTNN_RESTRICT d, const T* FASTNN_RESTRICT s, T mx, T scale, index_t C,
                                T g_scale, bool kept, Target target) {
  if (kept) {
#pragma omp simd
    for (index_t j = 0; j < C; ++j) d[j] = g_scale * (d[j] * scale - target(j));
  } else {
#pragma omp simd
    for (index_t j = 0; j < C; ++j) d[j] += g_scale * (vm::exp(T(s[j] - mx)) * scale - target(j));
  }
}

// One row of softmax cross-entropy; returns the row loss, writes the row gradient times g_scale.
// exp is evaluated twice rather than stored, so nothing is allocated for any number of classes.
// NaN or +inf in a row gives a NaN loss (visible, not hidden).
// `pad` (for C <= kSmallC, else unused): 0 for the row's lanes, -inf past them up to C rounded up
// to 16, when s[0, that) may be read (the row is not among the last of the array; the scores past
// the row's end are masked, never used); nullptr otherwise.
template <class T>
FASTNN_INLINE double xent_row(T* FASTNN_RESTRICT d, const T* FASTNN_RESTRICT s, std::int64_t y,
                              index_t C, double eps, T g_scale, bool acc, const T* pad) {
  // exp(s - mx) goes into the gradient row when it is written (not accumulated), else it is
  // evaluated twice; either way nothing is allocated for any number of classes.
  const bool scratch = d && !acc;
  const double off = C > 1 ? eps / double(C - 1) : 0.0;  // every other class's target
  const double on = 1.0 - eps;                          // the true class's target
  double sum = 0.0;
  T mx;
  if (C <= kSmallC) {
    // Few classes (the common case): the row padded to whole vectors with -inf (exp -> 0), so the
    // max, exp and sum loops run fully vectorised instead of in scalar remainder loops. Inside the
    // array the padded row is read with whole-vector loads and masked by `pad` (a data-dependent
    // select: a `j < C` test lets GCC split the loop into a scalar tail). Profile at C = 10: element-
    // wise stores of z followed by a vector load stalled store forwarding, and a scalar double sum
    // was a serial dependency chain, together a third of the kernel. The sum of <= 64 terms in
    // [0, 1] in T loses at most ~64 ulp of T, well inside T's own rounding of the scores.
    alignas(64) T z[kSmallC];
    const index_t Cp = (C + 15) / 16 * 16;
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    if (pad) {
      T m = ninf;
#pragma omp simd reduction(max : m)
      for (index_t j = 0; j < Cp; ++j) m = std::max(m, pad[j] == T(0) ? s[j] : ninf);
      mx = m;
#pragma omp simd
      for (index_t j = 0; j < Cp; ++j) z[j] = pad[j] == T(0) ? T(s[j] - mx) : ninf;
    } else {
      mx = row_max(s, C);
      for (index_t j = 0; j < Cp; ++j) z[j] = j < C ? T(s[j] - mx) : ninf;
    }
    T sum_t = T(0);
#pragma omp simd reduction(+ : sum_t)
    for (index_t j = 0; j < Cp; ++j) {
      z[j] = vm::exp(z[j]);
      sum_t += z[j];
    }
    sum = double(sum_t);
    if (d) {
      const T inv = T(1.0 / sum), t_off = T(off);
      for (index_t j = 0; j < C; ++j) {
        const T g = g_scale * (z[j] * inv - t_off);
        d[j] = acc ? d[j] + g : g;
      }
      d[y] -= g_scale * T(on - off);
      d = nullptr;  // done
    }
  } else {
    mx = row_max(s, C);
    sum = sum_exp(scratch ? d : nullptr, s, mx, C);
  }
  const double lse = std::log(sum);  // log sum exp(s - mx)
  // loss = -sum_j t_j * log p_j = lse - sum_j t_j (s_j - mx), since sum_j t_j = 1
  double loss;
  if (eps == 0.0) {
    loss = lse - (double(s[y]) - double(mx));
  } else {
    double dot = 0.0;
    for (index_t j = 0; j < C; ++j) dot += (j == y ? on : off) * (double(s[j]) - double(mx));
    loss = lse - dot;
  }
  if (d) {
    const T t_off = T(off);
    softmax_grad(d, s, mx, T(1.0 / sum), C, g_scale, scratch, [t_off](index_t) { return t_off; });
    d[y] -= g_scale * T(on - off);  // the true class's target is `on`, not `off`
  }
  return loss;
}

// One row of soft-target softmax cross-entropy (see loss.h): returns the row loss and writes (or
// adds) the row gradient g_scale * (S' p_j - t'_j), with t' = a t + off the label-smoothed target.
// exp(s - mx) is kept in the gradient row when that is written, else evaluated twice in blocks on
// the stack: nothing is allocated for any number of classes.
template <class T>
FASTNN_INLINE double xent_soft_row(T* FASTNN_RESTRICT d, const T* FASTNN_RESTRICT s, const T* FASTNN_RESTRICT t,
                                   index_t C, double eps, T g_scale, bool acc) {
  const T mx = row_max(s, C);
  const double off = C > 1 ? eps / double(C - 1) : 0.0;
  const double a = 1.0 - eps - off;  // t'_j = (1 - eps) t_j + off (1 - t_j) = a t_j + off
  const bool scratch = d && !acc;
  const double sum = sum_exp(scratch ? d : nullptr, s, mx, C);
  // loss = -sum_j t'_j log p_j = S' lse - sum_j t'_j (s_j - mx), S' = sum_j t'_j
  double tsum = 0.0, dot = 0.0;
  for (index_t j = 0; j < C; ++j) {
    const double tj = a * double(t[j]) + off;
    tsum += tj;
    dot += tj * (double(s[j]) - double(mx));
  }
  const double lse = std::log(sum);
  if (d) {
    const T ta = T(a), toff = T(off);
    softmax_grad(d, s, mx, T(tsum / sum), C, g_scale, scratch,
                 [t, ta, toff](index_t j) { return ta * t[j] + toff; });
  }
  return tsum * lse - dot;
}

template <class T>
FASTNN_INLINE double svm_row(T* FASTNN_RESTRICT d, const T* FASTNN_RESTRICT s, std::int64_t y,
                             index_t C, T margin, T g_scale, bool acc) {
  const T sy = s[y];
  double loss = 0.0;
  index_t count = 0;
  // branch-free (the margin test and j == y as selects), so every clone vectorises the row
  if (d) {
#pragma omp simd reduction(+ : loss, count)
    for (index_t j = 0; j < C; ++j) {
      const T m = s[j] - sy + margin;
      const bool pos = m > T(0) && j != y;
      loss += pos ? double(m) : 0.0;
      count += pos;
      const T g = pos ? g_scale : T(0);
      d[j] = acc ? d[j] + g : g;
    }
  } else {
#pragma omp simd reduction(+ : loss, count)
    for (index_t j = 0; j < C; ++j) {
      const T m = s[j] - sy + margin;
      const bool pos = m > T(0) && j != y;
      loss += pos ? double(m) : 0.0;
      count += pos;
    }
  }
  if (d) {
    const T g = -T(count) * g_scale;
    d[y] = acc ? d[y] + g : g;
  }
  return loss;
}

#define FASTNN_LOSS_LEAVES(T)                                                                   \
  FASTNN_LEAF double xent_rows_leaf(T* d, const T* s, const std::int64_t* y, index_t r0,        \
                                      index_t r1, index_t N, index_t C, double eps, T g_scale,   \
                                      bool acc) {                                                \
    const index_t Cp = (C + 15) / 16 * 16, end = N * C - Cp; /* last row start read padded */   \
    alignas(64) T pad[kSmallC];                                                                 \
    for (index_t j = 0; j < kSmallC; ++j) pad[j] = j < C ? T(0) : -std::numeric_limits<T>::infinity(); \
    double total = 0.0;                                                                         \
    for (index_t r = r0; r < r1; ++r)                                                           \
      total += xent_row(d ? d + r * C : nullptr, s + r * C, y[r], C, eps, g_scale, acc,         \
                        C <= kSmallC && r * C <= end ? pad : nullptr);                          \
    return total;                                                                               \
  }                                                                                             \
  FASTNN_LEAF double xent_soft_rows_leaf(T* d, const T* s, const T* t, index_t r0, index_t r1,    \
                                           index_t C, double eps, T g_scale, bool acc) {         \
    double total = 0.0;                                                                         \
    for (index_t r = r0; r < r1; ++r)                                                           \
      total += xent_soft_row(d ? d + r * C : nullptr, s + r * C, t + r * C, C, eps, g_scale, acc); \
    return total;                                                                               \
  }                                                                                             \
  FASTNN_LEAF double svm_rows_leaf(T* d, const T* s, const std::int64_t* y, index_t r0,         \
                                     index_t r1, index_t C, T margin, T g_scale, bool acc) {    \
    double total = 0.0;                                                                         \
    for (index_t r = r0; r < r1; ++r)                                                           \
      total += svm_row(d ? d + r * C : nullptr, s + r * C, y[r], C, margin, g_scale, acc);      \
    return total;                                                                               \
  }
FASTNN_ISA_PASSES(FASTNN_LOSS_LEAVES(float) FASTNN_LOSS_LEAVES(double))
#undef FASTNN_LOSS_LEAVES

}  // namespace

template <class T>
index_t softmax_cross_entropy(double* loss, T* dscores, const T* scores, const std::int64_t* y,
                              index_t N, index_t C, double eps, bool acc) {
  const index_t bad = first_bad_label(y, N, C);
  if (bad >= 0) return bad;
  const T g_scale = T(1.0 / double(N));
  const double total = parallel_sum(N, row_grain(C), [&](index_t r0, index_t r1) {
    return FASTNN_SIMD_CALL(xent_rows_leaf, dscores, scores, y, r0, r1, N, C, eps, g_scale, acc);
  });
  *loss = total / double(N);
  return -1;
}

template <class T>
void softmax_cross_entropy_soft(double* loss, T* dscores, const T* scores, const T* target, index_t N,
                                index_t C, double eps, bool acc) {
  const T g_scale = T(1.0 / double(N));
  const double total = parallel_sum(N, row_grain(C), [&](index_t r0, index_t r1) {
    return FASTNN_SIMD_CALL(xent_soft_rows_leaf, dscores, scores, target, r0, r1, C, eps, g_scale, acc);
  });
  *loss = total / double(N);
}

template <class T>
index_t svm_loss(double* loss, T* dscores, const T* scores, const std::int64_t* y, index_t N,
                 index_t C, double margin, bool acc) {
  const index_t bad = first_bad_label(y, N, C);
  if (bad >= 0) return bad;
  const T g_scale = T(1.0 / double(N));
  const double total = parallel_sum(N, row_grain(C), [&](index_t r0, index_t r1) {
    return FASTNN_SIMD_CALL(svm_rows_leaf, dscores, scores, y, r0, r1, C, T(margin), g_scale, acc);
  });
  *loss = total / double(N);
  return -1;
}

template <class T>
void mse_loss(double* loss, T* dpred, const T* pred, const T* target, index_t n, double scale,
              bool acc) {
  const T g = T(2.0 * scale);
  const double total = parallel_sum(n, 8192, [&](index_t lo, index_t hi) {
    double s = 0.0;
    for (index_t i = lo; i < hi; ++i) {
      const T e = pred[i] - target[i];
      s += double(e) * double(e);
      if (dpred) dpred[i] = acc ? dpred[i] + g * e : g * e;
    }
    return s;
  });
  *loss = total * scale;
}

template <class T>
void softmax(T* out, const T* scores, index_t N, index_t C) {
  parallel_for(N, row_grain(C), [&](index_t r0, index_t r1) {
    for (index_t r = r0; r < r1; ++r) {
      const T* s = scores + r * C;
      T* o = out + r * C;
      T mx = s[0];
      for (index_t j = 1; j < C; ++j) mx = s[j] > mx ? s[j] : mx;
      double sum = 0.0;
#pragma omp simd
      for (index_t j = 0; j < C; ++j) o[j] = vm::exp(T(s[j] - mx));
      for (index_t j = 0; j < C; ++j) sum += double(o[j]);
      const T inv = T(1.0 / sum);
      for (index_t j = 0; j < C; ++j) o[j] *= inv;
    }
  }, 1);
}

namespace ref {
template <class T>
index_t softmax_cross_entropy(double* loss, T* dscores, const T* scores, const std::int64_t* y,
                              index_t N, index_t C, double eps, bool acc) {
  for (index_t i = 0; i < N; ++i)
    if (y[i] < 0 || y[i] >= C) return i;
  double total = 0;
  for (index_t i = 0; i < N; ++i) {
    const T* s = scores + i * C;
    double mx = s[0];
    for (index_t j = 1; j < C; ++j) mx = std::max(mx, double(s[j]));
    double sum = 0;
    for (index_t j = 0; j < C; ++j) sum += std::exp(double(s[j]) - mx);
    for (index_t j = 0; j < C; ++j) {
      const double t = j == y[i] ? 1.0 - eps : (C > 1 ? eps / (C - 1) : 0.0);
      const double logp = double(s[j]) - mx - std::log(sum);
      total -= t * logp;
      if (dscores) {
        const double g = (std::exp(logp) - t) / N;
        dscores[i * C + j] = acc ? T(dscores[i * C + j] + g) : T(g);
      }
    }
  }
  *loss = total / N;
  return -1;
}
template <class T>
void softmax_cross_entropy_soft(double* loss, T* dscores, const T* scores, const T* target, index_t N,
                                index_t C, double eps, bool acc) {
  const double off = C > 1 ? eps / (C - 1) : 0.0;
  double total = 0;
  for (index_t i = 0; i < N; ++i) {
    const T* s = scores + i * C;
    const T* t = target + i * C;
    double mx = s[0];
    for (index_t j = 1; j < C; ++j) mx = std::max(mx, double(s[j]));
    double sum = 0, tsum = 0;
    for (index_t j = 0; j < C; ++j) {
      sum += std::exp(double(s[j]) - mx);
      tsum += (1.0 - eps) * double(t[j]) + off * (1.0 - double(t[j]));
    }
    for (index_t j = 0; j < C; ++j) {
      const double tj = (1.0 - eps) * double(t[j]) + off * (1.0 - double(t[j]));
      const double logp = double(s[j]) - mx - std::log(sum);
      total -= tj * logp;
      if (dscores) {
        const double g = (tsum * std::exp(logp) - tj) / N;
        dscores[i * C + j] = acc ? T(dscores[i * C + j] + g) : T(g);
      }
    }
  }
  *loss = total / N;
}
template <class T>
index_t svm_loss(double* loss, T* dscores, const T* scores, const std::int64_t* y, index_t N,
                 index_t C, double margin, bool acc) {
  for (index_t i = 0; i < N; ++i)
    if (y[i] < 0 || y[i] >= C) return i;
  double total = 0;
  if (dscores && !acc)
    for (index_t k = 0; k < N * C; ++k) dscores[k] = 0;
  for (index_t i = 0; i < N; ++i)
    for (index_t j = 0; j < C; ++j) {
      if (j == y[i]) continue;
      const double m = double(scores[i * C + j]) - double(scores[i * C + y[i]]) + margin;
      if (m > 0) {
        total += m;
        if (dscores) {
          dscores[i * C + j] += T(1.0 / N);
          dscores[i * C + y[i]] -= T(1.0 / N);
        }
      }
    }
  *loss = total / N;
  return -1;
}
template <class T>
void mse_loss(double* loss, T* dpred, const T* pred, const T* target, index_t n, double scale,
              bool acc) {
  double total = 0;
  for (index_t i = 0; i < n; ++i) {
    const double e = double(pred[i]) - double(target[i]);
    total += e * e;
    if (dpred) dpred[i] = acc ? T(dpred[i] + 2 * scale * e) : T(2 * scale * e);
  }
  *loss = total * scale;
}
}  // namespace ref
}  // namespace fastnn

using fastnn::index_t;
#define FASTNN_INSTANTIATE_LOSS(NS, T)                                                           \
  template index_t NS::softmax_cross_entropy<T>(double*, T*, const T*, const std::int64_t*,      \
                                                index_t, index_t, double, bool);                 \
  template void NS::softmax_cross_entropy_soft<T>(double*, T*, const T*, const T*, index_t, index_t, \
                                                 double, bool);                                  \
  template index_t NS::svm_loss<T>(double*, T*, const T*, const std::int64_t*, index_t, index_t, \
                                   double, bool);                                                \
  template void NS::mse_loss<T>(double*, T*, const T*, const T*, index_t, double, bool);
FASTNN_INSTANTIATE_LOSS(fastnn, float)
FASTNN_INSTANTIATE_LOSS(fastnn, double)
FASTNN_INSTANTIATE_LOSS(fastnn::ref, float)
FASTNN_INSTANTIATE_LOSS(fastnn::ref, double)
template void fastnn::softmax<float>(float*, const float*, index_t, index_t);
template void fastnn::softmax<double>(double*, const double*, index_t, index_t);
