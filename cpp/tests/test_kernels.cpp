// fastnn_kernel_tests — every kernel against its scalar reference, in float and double, with
// guard values around every buffer (checked after every kernel call, to catch out-of-bounds
// writes), a bitwise comparison of 1 thread against N threads, and a short run of the network
// runtime (every layer kind, optimizer, workspace growth, refused sizes). No Python involved; run
// under AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer by tests/test_sanitizers.py
// and under valgrind by tests/test_reliability.py. `--quick` runs the small sizes only.
// Exit status 0 when everything passes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "fastnn/activations.h"
#include "fastnn/batchnorm.h"
#include "fastnn/dense.h"
#include "fastnn/dropout.h"
#include "fastnn/gemm.h"
#include "fastnn/isa.h"
#include "fastnn/loss.h"
#include "fastnn/net.h"
#include "fastnn/optim.h"
#include "fastnn/regularization.h"
#include "fastnn/stats.h"
#include "fastnn/threads.h"

using fastnn::index_t;

namespace {

int g_failures = 0;
int g_checks = 0;

void fail(const std::string& what) {
  ++g_failures;
  std::printf("FAIL %s\n", what.c_str());
}

constexpr index_t kGuard = 64;

// Every live buffer registers itself, so the guards of all of them are checked after every kernel
// call (K below): a kernel that writes past the end of one output is caught at the call that did it.
struct Guarded {
  virtual bool guards_ok() const = 0;
  virtual void restamp() = 0;
  virtual ~Guarded() = default;
};
std::vector<Guarded*>& live_buffers() {
  static std::vector<Guarded*> v;
  return v;
}

// A buffer with guard values on both sides.
template <class T>
struct Buf : Guarded {
  std::vector<T> v;
  index_t n;
  static T guard() {
    if constexpr (std::is_floating_point_v<T>)
      return T(-7.25e11);
    else
      return static_cast<T>(0x5AA55AA5A55AA55Aull);  // a pattern no kernel writes by chance
  }
  explicit Buf(index_t n_, T fill = T(0)) : v(n_ + 2 * kGuard, guard()), n(n_) {
    for (index_t i = 0; i < n; ++i) v[kGuard + i] = fill;
    live_buffers().push_back(this);
  }
  Buf(const Buf& o) : Guarded(), v(o.v), n(o.n) { live_buffers().push_back(this); }
  Buf& operator=(const Buf& o) {
    v = o.v;
    n = o.n;
    return *this;
  }
  ~Buf() override {
    auto& l = live_buffers();
    for (size_t i = l.size(); i-- > 0;)
      if (l[i] == this) {
        l.erase(l.begin() + std::ptrdiff_t(i));
        break;
      }
  }
  T* p() { return v.data() + kGuard; }
  const T* p() const { return v.data() + kGuard; }
  T& operator[](index_t i) { return v[kGuard + i]; }
  bool guards_ok() const override {
    for (index_t i = 0; i < kGuard; ++i)
      if (!(v[i] == guard()) || !(v[kGuard + n + i] == guard())) return false;
    return true;
  }
  void restamp() override {
    for (index_t i = 0; i < kGuard; ++i) v[i] = v[kGuard + n + i] = guard();
  }
};

// After a kernel call: every live buffer's guards must be intact.
void check_guards(const char* call, int line) {
  ++g_checks;
  for (Guarded* b : live_buffers())
    if (!b->guards_ok()) {
      fail("line " + std::to_string(line) + ": " + call + " wrote outside a buffer");
      b->restamp();  // report each overrun once
    }
}
#define K(...)                                  \
  do {                                          \
    __VA_ARGS__;                                \
    check_guards(#__VA_ARGS__, __LINE__);       \
  } while (0)

template <class T>
Buf<T> randn(index_t n, std::mt19937_64& rng, double scale = 1.0, double avoid0 = 0.0) {
  Buf<T> b(n);
  std::normal_distribution<double> d(0.0, scale);
  for (index_t i = 0; i < n; ++i) {
    double x = d(rng);
    if (std::fabs(x) < avoid0) x = x < 0 ? -2 * avoid0 : 2 * avoid0;
    b[i] = T(x);
  }
  return b;
}

// max |got - want| <= rtol * max(max |want|, floor). Backward checks pass the upstream gradient's
// scale as floor: a local derivative computed in float (1 - tanh^2 near saturation, a batch-norm
// gradient that cancels to 0) is accurate to a few ulps of dout, not of its own tiny value.
template <class T>
void check_close(const std::string& what, const Buf<T>& got, const Buf<T>& want, double rtol,
                 double floor = 1e-30) {
  ++g_checks;
  if (!got.guards_ok()) return fail(what + ": wrote outside its output buffer");
  double scale = floor, err = 0;
  for (index_t i = 0; i < want.n; ++i) scale = std::max(scale, std::fabs(double(want.p()[i])));
  for (index_t i = 0; i < want.n; ++i) {
    const double d = std::fabs(double(got.p()[i]) - double(want.p()[i]));
    if (!(d <= err)) err = d;  // NaN-aware max
  }
  if (!(err <= rtol * scale)) {
    char buf[256];
    std::snprintf(buf, sizeof buf, ": max error %.3g > %.1g x %.3g", err, rtol, scale);
    fail(what + buf);
  }
}

template <class T>
double max_abs(const Buf<T>& a) {
  double m = 0;
  for (index_t i = 0; i < a.n; ++i) m = std::max(m, std::fabs(double(a.p()[i])));
  return m;
}

template <class T>
bool same_bits(const Buf<T>& a, const Buf<T>& b) {
  return std::memcmp(a.p(), b.p(), sizeof(T) * a.n) == 0;
}

template <class T>
const char* tname() {
  return sizeof(T) == 4 ? "float" : "double";
}

// Run `compute` (which fills its outputs from fixed inputs) with 1 thread and with several, and
// require bitwise equal outputs.
template <class T>
void check_threads(const std::string& what, const std::function<std::vector<Buf<T>>()>& compute) {
  ++g_checks;
  fastnn::set_num_threads(1);
  const auto one = compute();
  for (int n : {2, 3, std::max(2, fastnn::hardware_threads())}) {
    fastnn::set_num_threads(n);
    const auto many = compute();
    for (size_t k = 0; k < one.size(); ++k)
      if (!same_bits(one[k], many[k])) {
        fail(what + ": output " + std::to_string(k) + " differs with " + std::to_string(n) + " threads");
        fastnn::set_num_threads(1);
        return;
      }
  }
  fastnn::set_num_threads(1);
}

template <class T>
void test_activations(index_t N, index_t D, std::mt19937_64& rng) {
  const index_t n = N * D;
  const double tol = sizeof(T) == 4 ? 4e-6 : 1e-13;
  const std::string sfx = std::string(" ") + tname<T>() + " " + std::to_string(N) + "x" + std::to_string(D);
  auto x = randn<T>(n, rng, 3.0, 1e-3);
  auto dy = randn<T>(n, rng);
  using Unary = void (*)(T*, const T*, index_t);
  using UnaryB = void (*)(T*, const T*, const T*, index_t, bool);
  struct U { const char* name; Unary f, fr; UnaryB b, br; bool from_out; };
  const U ops[] = {
      {"relu", fastnn::relu_forward<T>, fastnn::ref::relu_forward<T>, fastnn::relu_backward<T>, fastnn::ref::relu_backward<T>, false},
      {"tanh", fastnn::tanh_forward<T>, fastnn::ref::tanh_forward<T>, fastnn::tanh_backward<T>, fastnn::ref::tanh_backward<T>, true},
      {"sigmoid", fastnn::sigmoid_forward<T>, fastnn::ref::sigmoid_forward<T>, fastnn::sigmoid_backward<T>, fastnn::ref::sigmoid_backward<T>, true},
  };
  for (const auto& op : ops) {
    Buf<T> y(n), yr(n), dx(n), dxr(n);
    K(op.f(y.p(), x.p(), n));
    K(op.fr(yr.p(), x.p(), n));
    check_close(std::string(op.name) + " forward" + sfx, y, yr, tol);
    const T* saved = op.from_out ? yr.p() : x.p();
    K(op.b(dx.p(), dy.p(), saved, n, false));
    K(op.br(dxr.p(), dy.p(), saved, n, false));
    check_close(std::string(op.name) + " backward" + sfx, dx, dxr, tol, max_abs(dy));
    K(op.b(dx.p(), dy.p(), saved, n, true));  // accumulate: doubles it
    K(op.br(dxr.p(), dy.p(), saved, n, true));
    check_close(std::string(op.name) + " backward accumulate" + sfx, dx, dxr, tol, 2 * max_abs(dy));
    check_threads<T>(std::string(op.name) + sfx, [&] {
      std::vector<Buf<T>> r{Buf<T>(n), Buf<T>(n)};
      K(op.f(r[0].p(), x.p(), n));
      K(op.b(r[1].p(), dy.p(), saved, n, false));
      return r;
    });
  }
  {  // leaky relu, elu
    Buf<T> y(n), yr(n), dx(n), dxr(n);
    K(fastnn::leaky_relu_forward<T>(y.p(), x.p(), T(0.1), n));
    K(fastnn::ref::leaky_relu_forward<T>(yr.p(), x.p(), T(0.1), n));
    check_close("leaky_relu forward" + sfx, y, yr, tol);
    K(fastnn::leaky_relu_backward<T>(dx.p(), dy.p(), x.p(), T(0.1), n, false));
    K(fastnn::ref::leaky_relu_backward<T>(dxr.p(), dy.p(), x.p(), T(0.1), n, false));
    check_close("leaky_relu backward" + sfx, dx, dxr, tol);
    K(fastnn::elu_forward<T>(y.p(), x.p(), T(0.7), n));
    K(fastnn::ref::elu_forward<T>(yr.p(), x.p(), T(0.7), n));
    check_close("elu forward" + sfx, y, yr, tol);
    K(fastnn::elu_backward<T>(dx.p(), dy.p(), yr.p(), T(0.7), n, false));
    K(fastnn::ref::elu_backward<T>(dxr.p(), dy.p(), yr.p(), T(0.7), n, false));
    check_close("elu backward" + sfx, dx, dxr, tol);
  }
  for (index_t na : {index_t(1), D}) {  // prelu
    auto a = randn<T>(na, rng, 0.2);
    Buf<T> y(n), yr(n), dx(n), dxr(n), da(na), dar(na);
    K(fastnn::prelu_forward<T>(y.p(), x.p(), a.p(), N, D, na));
    K(fastnn::ref::prelu_forward<T>(yr.p(), x.p(), a.p(), N, D, na));
    check_close("prelu forward" + sfx, y, yr, tol);
    K(fastnn::prelu_backward<T>(dx.p(), da.p(), dy.p(), x.p(), a.p(), N, D, na, false));
    K(fastnn::ref::prelu_backward<T>(dxr.p(), dar.p(), dy.p(), x.p(), a.p(), N, D, na, false));
    check_close("prelu backward dx" + sfx, dx, dxr, tol);
    check_close("prelu backward da" + sfx, da, dar, sizeof(T) == 4 ? 1e-5 : 1e-12);
    check_threads<T>("prelu" + sfx, [&] {
      std::vector<Buf<T>> r{Buf<T>(n), Buf<T>(na)};
      K(fastnn::prelu_backward<T>(r[0].p(), r[1].p(), dy.p(), x.p(), a.p(), N, D, na, false));
      return r;
    });
  }
  {  // maxout, k = 3 on (N, D*3)
    const index_t k = 3;
    auto xm = randn<T>(n * k, rng);
    Buf<T> y(n), yr(n), dx(n * k), dxr(n * k);
    Buf<std::int32_t> am(n), amr(n);
    K(fastnn::maxout_forward<T>(y.p(), am.p(), xm.p(), N, D, k));
    K(fastnn::ref::maxout_forward<T>(yr.p(), amr.p(), xm.p(), N, D, k));
    check_close("maxout forward" + sfx, y, yr, 0);
    ++g_checks;
    if (!same_bits(am, amr)) fail("maxout argmax" + sfx);
    K(fastnn::maxout_backward<T>(dx.p(), dy.p(), am.p(), N, D, k, false));
    K(fastnn::ref::maxout_backward<T>(dxr.p(), dy.p(), amr.p(), N, D, k, false));
    check_close("maxout backward" + sfx, dx, dxr, 0);
  }
}

template <class T>
void test_dense(index_t N, index_t D, index_t M, std::mt19937_64& rng) {
  const double tol = sizeof(T) == 4 ? 2e-5 : 1e-12;
  const std::string sfx = std::string(" ") + tname<T>() + " " + std::to_string(N) + "x" +
                          std::to_string(D) + "x" + std::to_string(M);
  auto x = randn<T>(N * D, rng), w = randn<T>(D * M, rng, 0.3), b = randn<T>(M, rng);
  auto dy = randn<T>(N * M, rng);
  Buf<T> y(N * M), yr(N * M);
  K(fastnn::dense_forward<T>(y.p(), x.p(), w.p(), b.p(), N, D, M));
  K(fastnn::ref::dense_forward<T>(yr.p(), x.p(), w.p(), b.p(), N, D, M));
  check_close("dense forward" + sfx, y, yr, tol);
  Buf<T> dx(N * D), dw(D * M), db(M), dxr(N * D), dwr(D * M), dbr(M);
  K(fastnn::dense_backward<T>(dx.p(), dw.p(), db.p(), dy.p(), x.p(), w.p(), N, D, M, false));
  K(fastnn::ref::dense_backward<T>(dxr.p(), dwr.p(), dbr.p(), dy.p(), x.p(), w.p(), N, D, M, false));
  check_close("dense backward dx" + sfx, dx, dxr, tol);
  check_close("dense backward dw" + sfx, dw, dwr, tol);
  check_close("dense backward db" + sfx, db, dbr, tol);
  check_threads<T>("dense" + sfx, [&] {
    std::vector<Buf<T>> r{Buf<T>(N * M), Buf<T>(N * D), Buf<T>(D * M), Buf<T>(M)};
    K(fastnn::dense_forward<T>(r[0].p(), x.p(), w.p(), b.p(), N, D, M));
    K(fastnn::dense_backward<T>(r[1].p(), r[2].p(), r[3].p(), dy.p(), x.p(), w.p(), N, D, M, false));
    return r;
  });
}

template <class T>
void test_batchnorm(index_t N, index_t D, std::mt19937_64& rng) {
  const double tol = sizeof(T) == 4 ? 2e-5 : 1e-11;
  const std::string sfx = std::string(" ") + tname<T>() + " " + std::to_string(N) + "x" + std::to_string(D);
  auto x = randn<T>(N * D, rng, 2.0), g = randn<T>(D, rng), b = randn<T>(D, rng), dy = randn<T>(N * D, rng);
  Buf<T> y(N * D), yr(N * D), mu(D), mur(D), is(D), isr(D), rm(D, T(0.5)), rmr(D, T(0.5)), rv(D, T(2)), rvr(D, T(2));
  K(fastnn::batchnorm_forward_train<T>(y.p(), mu.p(), is.p(), rm.p(), rv.p(), x.p(), g.p(), b.p(), N, D, T(1e-5), T(0.9), true));
  K(fastnn::ref::batchnorm_forward_train<T>(yr.p(), mur.p(), isr.p(), rmr.p(), rvr.p(), x.p(), g.p(), b.p(), N, D, T(1e-5), T(0.9), true));
  check_close("batchnorm forward" + sfx, y, yr, tol);
  check_close("batchnorm mean" + sfx, mu, mur, tol);
  check_close("batchnorm invstd" + sfx, is, isr, tol);
  check_close("batchnorm running_mean" + sfx, rm, rmr, tol);
  check_close("batchnorm running_var" + sfx, rv, rvr, tol);
  K(fastnn::batchnorm_forward_eval<T>(y.p(), x.p(), g.p(), b.p(), rm.p(), rv.p(), N, D, T(1e-5)));
  K(fastnn::ref::batchnorm_forward_eval<T>(yr.p(), x.p(), g.p(), b.p(), rmr.p(), rvr.p(), N, D, T(1e-5)));
  check_close("batchnorm eval" + sfx, y, yr, tol);
  Buf<T> dx(N * D), dxr(N * D), dg(D), dgr(D), dbt(D), dbtr(D);
  K(fastnn::batchnorm_backward<T>(dx.p(), dg.p(), dbt.p(), dy.p(), x.p(), g.p(), mur.p(), isr.p(), N, D, false));
  K(fastnn::ref::batchnorm_backward<T>(dxr.p(), dgr.p(), dbtr.p(), dy.p(), x.p(), g.p(), mur.p(), isr.p(), N, D, false));
  check_close("batchnorm backward dx" + sfx, dx, dxr, 10 * tol, max_abs(dy));
  check_close("batchnorm backward dgamma" + sfx, dg, dgr, tol);
  check_close("batchnorm backward dbeta" + sfx, dbt, dbtr, tol);
  check_threads<T>("batchnorm" + sfx, [&] {
    std::vector<Buf<T>> r{Buf<T>(N * D), Buf<T>(D), Buf<T>(D), Buf<T>(N * D), Buf<T>(D), Buf<T>(D)};
    K(fastnn::batchnorm_forward_train<T>(r[0].p(), r[1].p(), r[2].p(), nullptr, nullptr, x.p(), g.p(), b.p(), N, D, T(1e-5), T(0.9), false));
    K(fastnn::batchnorm_backward<T>(r[3].p(), r[4].p(), r[5].p(), dy.p(), x.p(), g.p(), r[1].p(), r[2].p(), N, D, false));
    return r;
  });
}

template <class T>
void test_dropout_losses_optim(index_t N, index_t C, std::mt19937_64& rng) {
  const double tol = sizeof(T) == 4 ? 4e-6 : 1e-12;
  const std::string sfx = std::string(" ") + tname<T>() + " " + std::to_string(N) + "x" + std::to_string(C);
  const index_t n = N * C;
  auto x = randn<T>(n, rng), dy = randn<T>(n, rng);
  {
    Buf<T> y(n), yr(n), dx(n), dxr(n);
    Buf<std::uint8_t> m(n), mr(n);
    K(fastnn::dropout_forward<T>(y.p(), m.p(), x.p(), n, 0.6, 99, 7));
    K(fastnn::ref::dropout_forward<T>(yr.p(), mr.p(), x.p(), n, 0.6, 99, 7));
    check_close("dropout forward" + sfx, y, yr, 0);
    ++g_checks;
    if (!same_bits(m, mr)) fail("dropout mask" + sfx);
    K(fastnn::dropout_backward<T>(dx.p(), dy.p(), m.p(), n, 0.6, false));
    K(fastnn::ref::dropout_backward<T>(dxr.p(), dy.p(), mr.p(), n, 0.6, false));
    check_close("dropout backward" + sfx, dx, dxr, 0);
  }
  std::vector<std::int64_t> y(N);
  for (auto& v : y) v = std::int64_t(rng() % std::uint64_t(C));
  for (int which = 0; which < 3; ++which) {
    Buf<T> d(n), dr(n);
    double l = 0, lr = 0;
    const char* name = which == 0 ? "softmax_xent" : which == 1 ? "softmax_xent_ls" : "svm";
    if (which < 2) {
      K(fastnn::softmax_cross_entropy<T>(&l, d.p(), x.p(), y.data(), N, C, which ? 0.1 : 0.0, false));
      K(fastnn::ref::softmax_cross_entropy<T>(&lr, dr.p(), x.p(), y.data(), N, C, which ? 0.1 : 0.0, false));
    } else {
      K(fastnn::svm_loss<T>(&l, d.p(), x.p(), y.data(), N, C, 1.0, false));
      K(fastnn::ref::svm_loss<T>(&lr, dr.p(), x.p(), y.data(), N, C, 1.0, false));
    }
    ++g_checks;
    if (!(std::fabs(l - lr) <= tol * std::max(1.0, std::fabs(lr)))) fail(std::string(name) + " loss" + sfx);
    check_close(std::string(name) + " dscores" + sfx, d, dr, 4 * tol);
  }
  {
    std::vector<std::int64_t> bad = y;
    bad[N - 1] = C;
    double l = 0;
    Buf<T> d(n);
    ++g_checks;
    if (fastnn::softmax_cross_entropy<T>(&l, d.p(), x.p(), bad.data(), N, C, 0.0, false) != N - 1)
      fail("softmax_xent: out-of-range label not reported" + sfx);
    check_guards("softmax_cross_entropy (bad label)", __LINE__);
  }
  {  // soft targets: fast vs reference, and one-hot targets equal the labels' loss
    Buf<T> t(n), d(n), dr(n), d1(n);
    for (index_t i = 0; i < N; ++i) {
      double s = 0;
      for (index_t j = 0; j < C; ++j) s += double(t.p()[i * C + j] = T(1 + rng() % 1000));
      for (index_t j = 0; j < C; ++j) t.p()[i * C + j] = T(double(t.p()[i * C + j]) / s);
    }
    for (const double eps : {0.0, 0.1}) {
      double l = 0, lr = 0;
      K(fastnn::softmax_cross_entropy_soft<T>(&l, d.p(), x.p(), t.p(), N, C, eps, false));
      K(fastnn::ref::softmax_cross_entropy_soft<T>(&lr, dr.p(), x.p(), t.p(), N, C, eps, false));
      ++g_checks;
      if (!(std::fabs(l - lr) <= tol * std::max(1.0, std::fabs(lr)))) fail("softmax_xent_soft loss" + sfx);
      check_close("softmax_xent_soft dscores" + sfx, d, dr, 4 * tol);
    }
    for (index_t k = 0; k < n; ++k) t.p()[k] = T(0);
    for (index_t i = 0; i < N; ++i) t.p()[i * C + y[i]] = T(1);
    double l = 0, l1 = 0;
    K(fastnn::softmax_cross_entropy_soft<T>(&l, d.p(), x.p(), t.p(), N, C, 0.1, false));
    K(fastnn::softmax_cross_entropy<T>(&l1, d1.p(), x.p(), y.data(), N, C, 0.1, false));
    ++g_checks;
    if (!(std::fabs(l - l1) <= tol * std::max(1.0, std::fabs(l1)))) fail("softmax_xent_soft one-hot loss" + sfx);
    check_close("softmax_xent_soft one-hot dscores" + sfx, d, d1, 4 * tol);
  }
  {
    Buf<T> g(n), gr(n);
    const double a = fastnn::l2_penalty<T>(g.p(), x.p(), n, 0.3, false);
    const double b = fastnn::ref::l2_penalty<T>(gr.p(), x.p(), n, 0.3, false);
    check_guards("l2_penalty", __LINE__);
    ++g_checks;
    if (!(std::fabs(a - b) <= 1e-10 * std::fabs(b))) fail("l2_penalty" + sfx);
    check_close("l2_penalty grad" + sfx, g, gr, tol);
    K(fastnn::l1_penalty<T>(g.p(), x.p(), n, 0.3, false));
    K(fastnn::ref::l1_penalty<T>(gr.p(), x.p(), n, 0.3, false));
    check_close("l1_penalty grad" + sfx, g, gr, tol);
  }
  {  // optimizers: 5 steps each, fast vs reference
    const fastnn::OptimKind kinds[] = {fastnn::OptimKind::SGD, fastnn::OptimKind::Momentum, fastnn::OptimKind::Nesterov,
                                       fastnn::OptimKind::Adagrad, fastnn::OptimKind::RMSProp, fastnn::OptimKind::Adam,
                                       fastnn::OptimKind::AdamW, fastnn::OptimKind::Adadelta, fastnn::OptimKind::Rprop,
                                       fastnn::OptimKind::Gains};
    for (auto kind : kinds) {
      Buf<T> w = x, wr = x;
      std::vector<Buf<T>> st(3, Buf<T>(n)), str(3, Buf<T>(n));
      T* s[3] = {st[0].p(), st[1].p(), st[2].p()};
      T* sr[3] = {str[0].p(), str[1].p(), str[2].p()};
      fastnn::StepHyper h;
      h.lr = 0.01;
      h.l2 = 1e-3;
      h.weight_decay = 0.01;
      for (int t = 1; t <= 5; ++t) {
        h.t = t;
        K(fastnn::optimizer_step<T>(kind, w.p(), s, dy.p(), n, h));
        K(fastnn::ref::optimizer_step<T>(kind, wr.p(), sr, dy.p(), n, h));
      }
      const std::string nm = "optimizer " + std::to_string(int(kind)) + sfx;
      check_close(nm, w, wr, 10 * tol);
      for (int i = 0; i < fastnn::optimizer_state_count(kind); ++i)
        check_close(nm + " state " + std::to_string(i), st[i], str[i], 10 * tol);
    }
  }
}


// Kernels outside the families above: plain softmax, MSE, evaluation-mode batch-norm backward,
// the non-finite scan.
template <class T>
void test_misc(index_t N, index_t C, std::mt19937_64& rng) {
  const double tol = sizeof(T) == 4 ? 4e-6 : 1e-12;
  const std::string sfx = std::string(" ") + tname<T>() + " " + std::to_string(N) + "x" + std::to_string(C);
  const index_t n = N * C;
  auto x = randn<T>(n, rng, 3.0), t = randn<T>(n, rng), dy = randn<T>(n, rng);
  Buf<T> p(n), pr(n);
  K(fastnn::softmax<T>(p.p(), x.p(), N, C));
  for (index_t i = 0; i < N; ++i) {  // reference: the stable formula in double
    double mx = -INFINITY, z = 0;
    for (index_t j = 0; j < C; ++j) mx = std::max(mx, double(x[i * C + j]));
    for (index_t j = 0; j < C; ++j) z += std::exp(double(x[i * C + j]) - mx);
    for (index_t j = 0; j < C; ++j) pr[i * C + j] = T(std::exp(double(x[i * C + j]) - mx) / z);
  }
  check_close("softmax" + sfx, p, pr, 4 * tol);
  {
    Buf<T> d(n), dr(n);
    double l = 0, lr = 0;
    K(fastnn::mse_loss<T>(&l, d.p(), x.p(), t.p(), n, 1.0 / double(n), false));
    K(fastnn::ref::mse_loss<T>(&lr, dr.p(), x.p(), t.p(), n, 1.0 / double(n), false));
    ++g_checks;
    if (!(std::fabs(l - lr) <= tol * std::max(1.0, std::fabs(lr)))) fail("mse loss" + sfx);
    check_close("mse dpred" + sfx, d, dr, tol);
  }
  {
    auto g = randn<T>(C, rng), rm = randn<T>(C, rng);
    Buf<T> rv(C, T(1.5));
    Buf<T> dx(n), dxr(n), dg(C), dgr(C), db(C), dbr(C);
    K(fastnn::batchnorm_backward_eval<T>(dx.p(), dg.p(), db.p(), dy.p(), x.p(), g.p(), rm.p(), rv.p(), N, C, T(1e-5), false));
    K(fastnn::ref::batchnorm_backward_eval<T>(dxr.p(), dgr.p(), dbr.p(), dy.p(), x.p(), g.p(), rm.p(), rv.p(), N, C, T(1e-5), false));
    check_close("batchnorm backward eval dx" + sfx, dx, dxr, tol, max_abs(dy));
    check_close("batchnorm backward eval dgamma" + sfx, dg, dgr, 10 * tol);
    check_close("batchnorm backward eval dbeta" + sfx, db, dbr, 10 * tol);
  }
  {
    Buf<T> y = x;
    const index_t at = n / 2;
    y[at] = T(NAN);
    if (at + 1 < n) y[n - 1] = T(INFINITY);
    index_t got = -1, gotr = -1;
    K(got = fastnn::first_nonfinite<T>(y.p(), n));
    K(gotr = fastnn::ref::first_nonfinite<T>(y.p(), n));
    ++g_checks;
    if (got != at || gotr != at) fail("first_nonfinite" + sfx);
  }
}

// The network runtime, end to end: every layer kind, every optimizer, workspace growth, the
// epoch loop, inference, averaging, monitors and refused sizes. Under the sanitizers this is what
// proves the runtime's own buffers (parameters, workspace, masks, argmax) are used in bounds and
// freed (LeakSanitizer / valgrind); it also checks that training is bitwise thread-independent.
template <class T>
std::vector<T> train_net(fastnn::OptimKind kind, int threads, std::mt19937_64& rng_in) {
  using fastnn::LayerKind;
  using fastnn::LayerSpec;
  fastnn::set_num_threads(threads);
  std::mt19937_64 rng(rng_in());  // same stream for every thread count
  const index_t D = 12, C = 4, N = 40;
  auto L = [](LayerKind k, index_t in, index_t out = 0, double param = 0.0, index_t kk = 1) {
    LayerSpec s;
    s.kind = k;
    s.in = in;
    s.out = out;
    s.param = param;
    s.k = kk;
    return s;
  };
  std::vector<LayerSpec> layers = {
      L(LayerKind::Dense, D, 24),       L(LayerKind::BatchNorm, 24, 0, 1e-5), L(LayerKind::ReLU, 24),
      L(LayerKind::Dropout, 24, 0, 0.8), L(LayerKind::Dense, 24, 18),        L(LayerKind::Maxout, 18, 0, 0, 3),
      L(LayerKind::PReLU, 6, 0, 0, 6),  L(LayerKind::Dense, 6, 10),           L(LayerKind::LeakyReLU, 10, 0, 0.1),
      L(LayerKind::ELU, 10, 0, 1.0),    L(LayerKind::Tanh, 10),               L(LayerKind::Sigmoid, 10),
      L(LayerKind::Dense, 10, C)};
  fastnn::LossSpec loss;
  loss.l2 = 1e-3;
  fastnn::Net<T> net(layers, loss, 8, 42);
  std::normal_distribution<double> nd(0.0, 0.3);
  for (index_t i = 0; i < net.n_params(); ++i) net.params()[i] = T(nd(rng));
  std::vector<T> X(N * D);
  std::vector<std::int64_t> Y(N);
  for (auto& v : X) v = T(nd(rng) * 3);
  for (auto& v : Y) v = std::int64_t(rng() % std::uint64_t(C));
  fastnn::StepHyper h;
  h.lr = 0.01;
  net.set_optimizer(kind, h);
  net.enable_average(0.9);
  net.set_monitor(3);
  bool finite = true;
  for (int s = 0; s < 4; ++s) net.train_step(X.data() + 8 * s * D, Y.data() + 8 * s, nullptr, 8, 0.01, 0.5, &finite);
  net.reserve(N);  // grow the workspace: parameter buffers stay where they are
  std::vector<std::int64_t> order(N);
  for (index_t i = 0; i < N; ++i) order[i] = (i * 7) % N;
  std::vector<double> lrs(8, 0.01), mus(8, 0.5), losses(8);
  // batches of 12: the last one is partial (4 rows)
  const index_t done = net.train_epoch(X.data(), Y.data(), nullptr, N, order.data(), N, 12, lrs.data(), mus.data(),
                                       losses.data());
  ++g_checks;
  if (done != 4 || !finite) fail("net: an epoch did not complete with finite losses");
  std::vector<T> out(N * C);
  net.predict(X.data(), N, out.data(), true);
  double l = 0, acc = 0;
  net.evaluate(X.data(), Y.data(), nullptr, N, &l, &acc);
  net.loss_and_grad(X.data(), Y.data(), nullptr, N, true);
  ++g_checks;
  if (!std::isfinite(l)) fail("net: evaluation loss is not finite");
  std::vector<T> r(net.params(), net.params() + net.n_params());
  r.insert(r.end(), out.begin(), out.end());
  r.insert(r.end(), net.average(), net.average() + net.n_params());
  fastnn::set_num_threads(1);
  return r;
}

template <class T>
void test_net_runtime(std::mt19937_64& rng) {
  using K_ = fastnn::OptimKind;
  for (auto kind : {K_::SGD, K_::Momentum, K_::Nesterov, K_::Adagrad, K_::RMSProp, K_::Adam, K_::AdamW, K_::Adadelta,
                    K_::Rprop, K_::Gains}) {
    const auto seed = rng();
    std::mt19937_64 a(seed), b(seed);
    const auto one = train_net<T>(kind, 1, a);
    const auto many = train_net<T>(kind, std::max(2, fastnn::hardware_threads()), b);
    ++g_checks;
    if (std::memcmp(one.data(), many.data(), sizeof(T) * one.size()) != 0)
      fail(std::string("net ") + tname<T>() + " optimizer " + std::to_string(int(kind)) +
           ": training differs between 1 and N threads");
  }
  // Sizes that cannot fit are refused before anything is allocated (and nothing leaks).
  using fastnn::LayerKind;
  auto dense = [](index_t in, index_t out) {
    fastnn::LayerSpec s;
    s.kind = LayerKind::Dense;
    s.in = in;
    s.out = out;
    return s;
  };
  for (auto [in, out, batch] : {std::tuple<index_t, index_t, index_t>{index_t(1) << 40, index_t(1) << 40, 1},
                                {1000000, 1000000, 1}, {4, 3, index_t(1) << 40}, {4, 3, index_t(1) << 62}}) {
    ++g_checks;
    try {
      fastnn::Net<T> net({dense(in, out)}, fastnn::LossSpec{}, batch, 0);
      fail("net: a network of absurd size was not refused");
    } catch (const std::length_error&) {
    } catch (const std::exception& e) {
      fail(std::string("net: absurd size refused with the wrong exception: ") + e.what());
    }
  }
  {  // a batch larger than the workspace is refused, not written past
    fastnn::Net<T> net({dense(3, 2)}, fastnn::LossSpec{}, 4, 0);
    std::vector<T> x(5 * 3, T(0.5));
    std::vector<std::int64_t> y(5, 1);
    bool finite = true;
    ++g_checks;
    try {
      net.train_step(x.data(), y.data(), nullptr, 5, 0.1, 0.0, &finite);
      fail("net: a batch larger than max_batch was accepted");
    } catch (const std::invalid_argument&) {
    }
    y[2] = 7;  // a label outside [0, C)
    ++g_checks;
    try {
      net.train_step(x.data(), y.data(), nullptr, 4, 0.1, 0.0, &finite);
      fail("net: an out-of-range label was accepted");
    } catch (const std::invalid_argument&) {
    }
  }
  {  // batch norm in training mode refuses a batch of 1 row (its output would be beta whatever the input)
    fastnn::LayerSpec bn;
    bn.kind = LayerKind::BatchNorm;
    bn.in = 2;
    bn.param = 1e-5;
    fastnn::Net<T> net({dense(3, 2), bn}, fastnn::LossSpec{}, 8, 0);
    fastnn::StepHyper h;
    h.lr = 0.1;
    net.set_optimizer(fastnn::OptimKind::SGD, h);
    std::vector<T> x(5 * 3);
    for (size_t i = 0; i < x.size(); ++i) x[i] = T(0.1 * double(i % 7) - 0.3);
    std::vector<std::int64_t> y = {0, 1, 1, 0, 1};
    std::vector<T> before(net.params(), net.params() + net.n_params());
    bool finite = true;
    auto refused = [&](const char* what, auto call) {
      ++g_checks;
      try {
        call();
        fail(std::string("net: batch norm accepted a training batch of 1 row in ") + what);
      } catch (const std::invalid_argument& e) {
        if (!std::strstr(e.what(), "more than 1 row per batch"))
          fail(std::string("net: unclear message for a 1-row batch-norm batch in ") + what + ": " + e.what());
      }
    };
    refused("train_step", [&] { net.train_step(x.data(), y.data(), nullptr, 1, 0.1, 0.0, &finite); });
    refused("loss_and_grad", [&] { net.loss_and_grad(x.data(), y.data(), nullptr, 1, true); });
    std::uint64_t sig = 0;
    refused("signature", [&] { net.signature(x.data(), y.data(), nullptr, 1, true, &sig); });
    std::vector<std::int64_t> order = {0, 1, 2, 3, 4};
    std::vector<double> lrs(5, 0.1), mus(5, 0.0), losses(5);
    refused("train_epoch (5 rows in batches of 2)", [&] {
      net.train_epoch(x.data(), y.data(), nullptr, 5, order.data(), 5, 2, lrs.data(), mus.data(), losses.data());
    });
    refused("train_epoch (batches of 1)", [&] {
      net.train_epoch(x.data(), y.data(), nullptr, 5, order.data(), 5, 1, lrs.data(), mus.data(), losses.data());
    });
    ++g_checks;
    if (net.step != 0 || std::memcmp(before.data(), net.params(), sizeof(T) * before.size()) != 0)
      fail("net: a refused 1-row batch-norm batch changed the network");
    // evaluation mode uses the running statistics: one row is fine; so are batches of 2 rows and more
    net.loss_and_grad(x.data(), y.data(), nullptr, 1, false);
    std::vector<T> out(2);
    net.predict(x.data(), 1, out.data(), true);
    ++g_checks;
    if (net.train_epoch(x.data(), y.data(), nullptr, 5, order.data(), 5, 3, lrs.data(), mus.data(), losses.data()) != 2)
      fail("net: batch norm refused batches of 3 and 2 rows");
  }
}

}  // namespace

int main(int argc, char** argv) {
  // --quick: the small sizes only (valgrind runs this; the sanitizer build runs everything)
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  try {
    fastnn::check_simd();  // FASTNN_SIMD picks the clone under test; an impossible one is refused
  } catch (const std::invalid_argument& e) {
    std::printf("fastnn_kernel_tests: %s\n", e.what());
    return 2;
  }
  std::mt19937_64 rng(12345);
  fastnn::set_num_threads(1);
  for (auto [N, D] : {std::pair<index_t, index_t>{1, 1}, {3, 5}, {17, 33}, {64, 257}, {300, 700}}) {
    if (quick && N * D > 1000) continue;
    test_activations<float>(N, D, rng);
    test_activations<double>(N, D, rng);
    test_batchnorm<float>(std::max<index_t>(N, 2), D, rng);
    test_batchnorm<double>(std::max<index_t>(N, 2), D, rng);
    test_dropout_losses_optim<float>(N, std::max<index_t>(D, 2), rng);
    test_dropout_losses_optim<double>(N, std::max<index_t>(D, 2), rng);
    test_misc<float>(N, std::max<index_t>(D, 2), rng);
    test_misc<double>(N, std::max<index_t>(D, 2), rng);
  }
  for (auto [N, D, M] : {std::tuple<index_t, index_t, index_t>{1, 1, 1}, {5, 7, 3}, {64, 300, 129}, {200, 784, 90}}) {
    if (quick && N * D * M > 1000) continue;
    test_dense<float>(N, D, M, rng);
    test_dense<double>(N, D, M, rng);
  }
  test_net_runtime<float>(rng);
  test_net_runtime<double>(rng);
  // the clone that ran must be the one asked for (FASTNN_SIMD, else the best this CPU runs)
  ++g_checks;
  if (fastnn::simd_probe() != fastnn::active_isa()) fail("isa: the dispatched clone is not the active one");
  std::printf("%d checks, %d failures (simd %s, probe %s, blas %s, gemm threading %s)\n", g_checks, g_failures,
              fastnn::simd_level(), fastnn::isa_name(fastnn::simd_probe()), fastnn::blas_info(),
              fastnn::gemm_threading_name());
  return g_failures ? 1 : 0;
}
