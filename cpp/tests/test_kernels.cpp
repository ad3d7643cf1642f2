// fastnn_kernel_tests — every kernel against its scalar reference, in float and double, with
// guard values around every output buffer (to catch out-of-bounds writes) and a bitwise
// comparison of 1 thread against N threads. No Python involved; run under AddressSanitizer by the
// sanitizer build. Exit status 0 when everything passes.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "fastnn/activations.h"
#include "fastnn/batchnorm.h"
#include "fastnn/dense.h"
#include "fastnn/dropout.h"
#include "fastnn/gemm.h"
#include "fastnn/loss.h"
#include "fastnn/optim.h"
#include "fastnn/regularization.h"
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

// A buffer with guard values on both sides.
template <class T>
struct Buf {
  std::vector<T> v;
  index_t n;
  static T guard() { return T(-7.25e11); }
  explicit Buf(index_t n_, T fill = T(0)) : v(n_ + 2 * kGuard, guard()), n(n_) {
    for (index_t i = 0; i < n; ++i) v[kGuard + i] = fill;
  }
  T* p() { return v.data() + kGuard; }
  const T* p() const { return v.data() + kGuard; }
  T& operator[](index_t i) { return v[kGuard + i]; }
  bool guards_ok() const {
    for (index_t i = 0; i < kGuard; ++i)
      if (v[i] != guard() || v[kGuard + n + i] != guard()) return false;
    return true;
  }
};

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
    op.f(y.p(), x.p(), n);
    op.fr(yr.p(), x.p(), n);
    check_close(std::string(op.name) + " forward" + sfx, y, yr, tol);
    const T* saved = op.from_out ? yr.p() : x.p();
    op.b(dx.p(), dy.p(), saved, n, false);
    op.br(dxr.p(), dy.p(), saved, n, false);
    check_close(std::string(op.name) + " backward" + sfx, dx, dxr, tol, max_abs(dy));
    op.b(dx.p(), dy.p(), saved, n, true);  // accumulate: doubles it
    op.br(dxr.p(), dy.p(), saved, n, true);
    check_close(std::string(op.name) + " backward accumulate" + sfx, dx, dxr, tol, 2 * max_abs(dy));
    check_threads<T>(std::string(op.name) + sfx, [&] {
      std::vector<Buf<T>> r{Buf<T>(n), Buf<T>(n)};
      op.f(r[0].p(), x.p(), n);
      op.b(r[1].p(), dy.p(), saved, n, false);
      return r;
    });
  }
  {  // leaky relu, elu
    Buf<T> y(n), yr(n), dx(n), dxr(n);
    fastnn::leaky_relu_forward<T>(y.p(), x.p(), T(0.1), n);
    fastnn::ref::leaky_relu_forward<T>(yr.p(), x.p(), T(0.1), n);
    check_close("leaky_relu forward" + sfx, y, yr, tol);
    fastnn::leaky_relu_backward<T>(dx.p(), dy.p(), x.p(), T(0.1), n, false);
    fastnn::ref::leaky_relu_backward<T>(dxr.p(), dy.p(), x.p(), T(0.1), n, false);
    check_close("leaky_relu backward" + sfx, dx, dxr, tol);
    fastnn::elu_forward<T>(y.p(), x.p(), T(0.7), n);
    fastnn::ref::elu_forward<T>(yr.p(), x.p(), T(0.7), n);
    check_close("elu forward" + sfx, y, yr, tol);
    fastnn::elu_backward<T>(dx.p(), dy.p(), yr.p(), T(0.7), n, false);
    fastnn::ref::elu_backward<T>(dxr.p(), dy.p(), yr.p(), T(0.7), n, false);
    check_close("elu backward" + sfx, dx, dxr, tol);
  }
  for (index_t na : {index_t(1), D}) {  // prelu
    auto a = randn<T>(na, rng, 0.2);
    Buf<T> y(n), yr(n), dx(n), dxr(n), da(na), dar(na);
    fastnn::prelu_forward<T>(y.p(), x.p(), a.p(), N, D, na);
    fastnn::ref::prelu_forward<T>(yr.p(), x.p(), a.p(), N, D, na);
    check_close("prelu forward" + sfx, y, yr, tol);
    fastnn::prelu_backward<T>(dx.p(), da.p(), dy.p(), x.p(), a.p(), N, D, na, false);
    fastnn::ref::prelu_backward<T>(dxr.p(), dar.p(), dy.p(), x.p(), a.p(), N, D, na, false);
    check_close("prelu backward dx" + sfx, dx, dxr, tol);
    check_close("prelu backward da" + sfx, da, dar, sizeof(T) == 4 ? 1e-5 : 1e-12);
    check_threads<T>("prelu" + sfx, [&] {
      std::vector<Buf<T>> r{Buf<T>(n), Buf<T>(na)};
      fastnn::prelu_backward<T>(r[0].p(), r[1].p(), dy.p(), x.p(), a.p(), N, D, na, false);
      return r;
    });
  }
  {  // maxout, k = 3 on (N, D*3)
    const index_t k = 3;
    auto xm = randn<T>(n * k, rng);
    Buf<T> y(n), yr(n), dx(n * k), dxr(n * k);
    std::vector<std::int32_t> am(n), amr(n);
    fastnn::maxout_forward<T>(y.p(), am.data(), xm.p(), N, D, k);
    fastnn::ref::maxout_forward<T>(yr.p(), amr.data(), xm.p(), N, D, k);
    check_close("maxout forward" + sfx, y, yr, 0);
    ++g_checks;
    if (am != amr) fail("maxout argmax" + sfx);
    fastnn::maxout_backward<T>(dx.p(), dy.p(), am.data(), N, D, k, false);
    fastnn::ref::maxout_backward<T>(dxr.p(), dy.p(), amr.data(), N, D, k, false);
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
  fastnn::dense_forward<T>(y.p(), x.p(), w.p(), b.p(), N, D, M);
  fastnn::ref::dense_forward<T>(yr.p(), x.p(), w.p(), b.p(), N, D, M);
  check_close("dense forward" + sfx, y, yr, tol);
  Buf<T> dx(N * D), dw(D * M), db(M), dxr(N * D), dwr(D * M), dbr(M);
  fastnn::dense_backward<T>(dx.p(), dw.p(), db.p(), dy.p(), x.p(), w.p(), N, D, M, false);
  fastnn::ref::dense_backward<T>(dxr.p(), dwr.p(), dbr.p(), dy.p(), x.p(), w.p(), N, D, M, false);
  check_close("dense backward dx" + sfx, dx, dxr, tol);
  check_close("dense backward dw" + sfx, dw, dwr, tol);
  check_close("dense backward db" + sfx, db, dbr, tol);
  check_threads<T>("dense" + sfx, [&] {
    std::vector<Buf<T>> r{Buf<T>(N * M), Buf<T>(N * D), Buf<T>(D * M), Buf<T>(M)};
    fastnn::dense_forward<T>(r[0].p(), x.p(), w.p(), b.p(), N, D, M);
    fastnn::dense_backward<T>(r[1].p(), r[2].p(), r[3].p(), dy.p(), x.p(), w.p(), N, D, M, false);
    return r;
  });
}

template <class T>
void test_batchnorm(index_t N, index_t D, std::mt19937_64& rng) {
  const double tol = sizeof(T) == 4 ? 2e-5 : 1e-11;
  const std::string sfx = std::string(" ") + tname<T>() + " " + std::to_string(N) + "x" + std::to_string(D);
  auto x = randn<T>(N * D, rng, 2.0), g = randn<T>(D, rng), b = randn<T>(D, rng), dy = randn<T>(N * D, rng);
  Buf<T> y(N * D), yr(N * D), mu(D), mur(D), is(D), isr(D), rm(D, T(0.5)), rmr(D, T(0.5)), rv(D, T(2)), rvr(D, T(2));
  fastnn::batchnorm_forward_train<T>(y.p(), mu.p(), is.p(), rm.p(), rv.p(), x.p(), g.p(), b.p(), N, D, T(1e-5), T(0.9), true);
  fastnn::ref::batchnorm_forward_train<T>(yr.p(), mur.p(), isr.p(), rmr.p(), rvr.p(), x.p(), g.p(), b.p(), N, D, T(1e-5), T(0.9), true);
  check_close("batchnorm forward" + sfx, y, yr, tol);
  check_close("batchnorm mean" + sfx, mu, mur, tol);
  check_close("batchnorm invstd" + sfx, is, isr, tol);
  check_close("batchnorm running_mean" + sfx, rm, rmr, tol);
  check_close("batchnorm running_var" + sfx, rv, rvr, tol);
  fastnn::batchnorm_forward_eval<T>(y.p(), x.p(), g.p(), b.p(), rm.p(), rv.p(), N, D, T(1e-5));
  fastnn::ref::batchnorm_forward_eval<T>(yr.p(), x.p(), g.p(), b.p(), rmr.p(), rvr.p(), N, D, T(1e-5));
  check_close("batchnorm eval" + sfx, y, yr, tol);
  Buf<T> dx(N * D), dxr(N * D), dg(D), dgr(D), dbt(D), dbtr(D);
  fastnn::batchnorm_backward<T>(dx.p(), dg.p(), dbt.p(), dy.p(), x.p(), g.p(), mur.p(), isr.p(), N, D, false);
  fastnn::ref::batchnorm_backward<T>(dxr.p(), dgr.p(), dbtr.p(), dy.p(), x.p(), g.p(), mur.p(), isr.p(), N, D, false);
  check_close("batchnorm backward dx" + sfx, dx, dxr, 10 * tol, max_abs(dy));
  check_close("batchnorm backward dgamma" + sfx, dg, dgr, tol);
  check_close("batchnorm backward dbeta" + sfx, dbt, dbtr, tol);
  check_threads<T>("batchnorm" + sfx, [&] {
    std::vector<Buf<T>> r{Buf<T>(N * D), Buf<T>(D), Buf<T>(D), Buf<T>(N * D), Buf<T>(D), Buf<T>(D)};
    fastnn::batchnorm_forward_train<T>(r[0].p(), r[1].p(), r[2].p(), nullptr, nullptr, x.p(), g.p(), b.p(), N, D, T(1e-5), T(0.9), false);
    fastnn::batchnorm_backward<T>(r[3].p(), r[4].p(), r[5].p(), dy.p(), x.p(), g.p(), r[1].p(), r[2].p(), N, D, false);
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
    std::vector<std::uint8_t> m(n), mr(n);
    fastnn::dropout_forward<T>(y.p(), m.data(), x.p(), n, 0.6, 99, 7);
    fastnn::ref::dropout_forward<T>(yr.p(), mr.data(), x.p(), n, 0.6, 99, 7);
    check_close("dropout forward" + sfx, y, yr, 0);
    ++g_checks;
    if (m != mr) fail("dropout mask" + sfx);
    fastnn::dropout_backward<T>(dx.p(), dy.p(), m.data(), n, 0.6, false);
    fastnn::ref::dropout_backward<T>(dxr.p(), dy.p(), mr.data(), n, 0.6, false);
    check_close("dropout backward" + sfx, dx, dxr, 0);
  }
  std::vector<std::int64_t> y(N);
  for (auto& v : y) v = std::int64_t(rng() % std::uint64_t(C));
  for (int which = 0; which < 3; ++which) {
    Buf<T> d(n), dr(n);
    double l = 0, lr = 0;
    const char* name = which == 0 ? "softmax_xent" : which == 1 ? "softmax_xent_ls" : "svm";
    if (which < 2) {
      fastnn::softmax_cross_entropy<T>(&l, d.p(), x.p(), y.data(), N, C, which ? 0.1 : 0.0, false);
      fastnn::ref::softmax_cross_entropy<T>(&lr, dr.p(), x.p(), y.data(), N, C, which ? 0.1 : 0.0, false);
    } else {
      fastnn::svm_loss<T>(&l, d.p(), x.p(), y.data(), N, C, 1.0, false);
      fastnn::ref::svm_loss<T>(&lr, dr.p(), x.p(), y.data(), N, C, 1.0, false);
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
  }
  {
    Buf<T> g(n), gr(n);
    const double a = fastnn::l2_penalty<T>(g.p(), x.p(), n, 0.3, false);
    const double b = fastnn::ref::l2_penalty<T>(gr.p(), x.p(), n, 0.3, false);
    ++g_checks;
    if (!(std::fabs(a - b) <= 1e-10 * std::fabs(b))) fail("l2_penalty" + sfx);
    check_close("l2_penalty grad" + sfx, g, gr, tol);
    fastnn::l1_penalty<T>(g.p(), x.p(), n, 0.3, false);
    fastnn::ref::l1_penalty<T>(gr.p(), x.p(), n, 0.3, false);
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
        fastnn::optimizer_step<T>(kind, w.p(), s, dy.p(), n, h);
        fastnn::ref::optimizer_step<T>(kind, wr.p(), sr, dy.p(), n, h);
      }
      const std::string nm = "optimizer " + std::to_string(int(kind)) + sfx;
      check_close(nm, w, wr, 10 * tol);
      for (int i = 0; i < fastnn::optimizer_state_count(kind); ++i)
        check_close(nm + " state " + std::to_string(i), st[i], str[i], 10 * tol);
    }
  }
}

}  // namespace

int main() {
  std::mt19937_64 rng(12345);
  fastnn::set_num_threads(1);
  for (auto [N, D] : {std::pair<index_t, index_t>{1, 1}, {3, 5}, {17, 33}, {64, 257}, {300, 700}}) {
    test_activations<float>(N, D, rng);
    test_activations<double>(N, D, rng);
    test_batchnorm<float>(std::max<index_t>(N, 2), D, rng);
    test_batchnorm<double>(std::max<index_t>(N, 2), D, rng);
    test_dropout_losses_optim<float>(N, std::max<index_t>(D, 2), rng);
    test_dropout_losses_optim<double>(N, std::max<index_t>(D, 2), rng);
  }
  for (auto [N, D, M] : {std::tuple<index_t, index_t, index_t>{1, 1, 1}, {5, 7, 3}, {64, 300, 129}, {200, 784, 90}}) {
    test_dense<float>(N, D, M, rng);
    test_dense<double>(N, D, M, rng);
  }
  std::printf("%d checks, %d failures (simd %s, blas %s, gemm threading %s)\n", g_checks, g_failures,
              fastnn::simd_level(), fastnn::blas_info(), fastnn::gemm_threading_name());
  return g_failures ? 1 : 0;
}
