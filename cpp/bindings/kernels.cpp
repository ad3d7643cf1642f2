// Bindings of the kernel families: fastnn._core.<kernel> and, with identical signatures, the
// scalar references fastnn._core.ref.<kernel> (used by the tests). Each binding validates its
// arguments (arrays.h), releases the GIL, and calls the kernel on raw pointers.
//
// Calling convention (Python side): inputs positional, outputs keyword-only (`out=`, `dx=`, ...);
// an output left as None is allocated. Backward functions write their outputs unless
// accumulate=True, in which case the given output arrays are added into.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>

#include "arrays.h"
#include "fastnn/activations.h"
#include "fastnn/batchnorm.h"
#include "fastnn/dense.h"
#include "fastnn/dropout.h"
#include "fastnn/gemm.h"
#include "fastnn/loss.h"
#include "fastnn/optim.h"
#include "fastnn/regularization.h"
#include "fastnn/rng.h"
#include "fastnn/stats.h"

namespace py = pybind11;
using namespace pybind11::literals;
using fastnn::index_t;

namespace fastnn::bind {

namespace {

// An output that backward writes (or adds into when accumulate is set: then it must be given).
py::array grad_output(py::handle obj, const char* fn, const char* name, DType dt, const Shape& shape,
                      bool accumulate) {
  if (accumulate && obj.is_none())
    throw py::value_error(std::string(fn) + ": accumulate=True needs the array to add into as '" +
                          name + "'");
  return output(obj, fn, name, dt, shape);
}

// An input that an output must not overlap (or may be the very same array when identical_ok).
struct Source {
  const py::array* a;
  const char* name;
  bool identical_ok = false;
};

// The gradient output of a loss: absent unless need_grad.
OptArray loss_grad(bool need_grad, py::handle obj, const char* fn, const char* name, DType dt,
                   const Shape& shape, bool acc, std::initializer_list<Source> inputs) {
  if (!need_grad) return std::nullopt;
  py::array d = grad_output(obj, fn, name, dt, shape, acc);
  for (const Source& in : inputs) require_no_overlap(d, name, *in.a, in.name, fn, in.identical_ok);
  return d;
}

// (loss, gradient or None), what every loss binding returns.
py::tuple loss_result(double loss, const OptArray& d) {
  return py::make_tuple(loss, d ? py::object(*d) : py::object(py::none()));
}

// ------------------------------------------------------------------------------------------
// Elementwise activations
// ------------------------------------------------------------------------------------------

// forward(x, *params, out=None) for kernels of the form k(out, x, [param,] n)
template <bool Ref, class Call>
void def_unary_forward(py::module_& m, const char* name, Call call, const char* doc) {
  m.def(
      name,
      [name, call](py::handle x_, py::handle out_) {
        py::array x = input(x_, name, "x");
        const DType dt = float_dtype(x, name, "x");
        py::array out = output(out_, name, "out", dt, shape_of(x));
        require_no_overlap(out, "out", x, "x", name, true);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          const T* xi = cptr<T>(x);
          const index_t n = x.size();
          py::gil_scoped_release nogil;
          call(t, o, xi, n);
        });
        return out;
      },
      "x"_a, py::kw_only(), "out"_a = py::none(), doc);
}

// backward(dout, saved, dx=None, accumulate=False) for kernels k(dx, dout, saved, n, acc)
template <bool Ref, class Call>
void def_unary_backward(py::module_& m, const char* name, const char* saved, Call call, const char* doc) {
  m.def(
      name,
      [name, saved, call](py::handle dout_, py::handle s_, py::handle dx_, bool acc) {
        py::array dout = input(dout_, name, "dout");
        const DType dt = float_dtype(dout, name, "dout");
        py::array s = input(s_, name, saved, dt);
        require_shape(s, name, saved, shape_of(dout), "it must match dout");
        py::array dx = grad_output(dx_, name, "dx", dt, shape_of(dout), acc);
        require_no_overlap(dx, "dx", dout, "dout", name, true);
        require_no_overlap(dx, "dx", s, saved, name, true);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* d = ptr<T>(dx);
          const T* g = cptr<T>(dout);
          const T* si = cptr<T>(s);
          const index_t n = dout.size();
          py::gil_scoped_release nogil;
          call(t, d, g, si, n, acc);
        });
        return dx;
      },
      "dout"_a, py::arg(saved), py::kw_only(), "dx"_a = py::none(), "accumulate"_a = false, doc);
}

template <bool Ref>
void bind_activations(py::module_& m) {
  def_unary_forward<Ref>(m, "relu_forward", [](auto t, auto* o, const auto* x, index_t n) {
    using T = decltype(t);
    FASTNN_K(relu_forward)(o, x, n);
  }, "out = max(x, 0) (NaN propagates).");
  def_unary_backward<Ref>(m, "relu_backward", "x", [](auto t, auto* d, const auto* g, const auto* x, index_t n, bool acc) {
    using T = decltype(t);
    FASTNN_K(relu_backward)(d, g, x, n, acc);
  }, "dx = dout where x > 0, else 0.");
  def_unary_forward<Ref>(m, "tanh_forward", [](auto t, auto* o, const auto* x, index_t n) {
    using T = decltype(t);
    FASTNN_K(tanh_forward)(o, x, n);
  }, "out = tanh(x).");
  def_unary_backward<Ref>(m, "tanh_backward", "out", [](auto t, auto* d, const auto* g, const auto* y, index_t n, bool acc) {
    using T = decltype(t);
    FASTNN_K(tanh_backward)(d, g, y, n, acc);
  }, "dx = dout * (1 - out^2), from the forward output.");
  def_unary_forward<Ref>(m, "sigmoid_forward", [](auto t, auto* o, const auto* x, index_t n) {
    using T = decltype(t);
    FASTNN_K(sigmoid_forward)(o, x, n);
  }, "out = 1 / (1 + exp(-x)).");
  def_unary_backward<Ref>(m, "sigmoid_backward", "out", [](auto t, auto* d, const auto* g, const auto* y, index_t n, bool acc) {
    using T = decltype(t);
    FASTNN_K(sigmoid_backward)(d, g, y, n, acc);
  }, "dx = dout * out * (1 - out), from the forward output.");

  // Leaky ReLU and ELU carry a scalar parameter.
  m.def(
      "leaky_relu_forward",
      [](py::handle x_, double slope, py::handle out_) {
        const char* fn = "leaky_relu_forward";
        require_range(slope, fn, "slope", -kInf, kInf, true, true);
        py::array x = input(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        py::array out = output(out_, fn, "out", dt, shape_of(x));
        require_no_overlap(out, "out", x, "x", fn, true);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          const T* xi = cptr<T>(x);
          py::gil_scoped_release nogil;
          FASTNN_K(leaky_relu_forward)(o, xi, T(slope), index_t(x.size()));
        });
        return out;
      },
      "x"_a, "slope"_a = 0.01, py::kw_only(), "out"_a = py::none(), "out = x if x > 0 else slope * x.");
  m.def(
      "leaky_relu_backward",
      [](py::handle dout_, py::handle x_, double slope, py::handle dx_, bool acc) {
        const char* fn = "leaky_relu_backward";
        require_range(slope, fn, "slope", -kInf, kInf, true, true);
        py::array dout = input(dout_, fn, "dout");
        const DType dt = float_dtype(dout, fn, "dout");
        py::array x = input(x_, fn, "x", dt);
        require_shape(x, fn, "x", shape_of(dout), "it must match dout");
        py::array dx = grad_output(dx_, fn, "dx", dt, shape_of(dout), acc);
        require_no_overlap(dx, "dx", dout, "dout", fn, true);
        require_no_overlap(dx, "dx", x, "x", fn, true);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* d = ptr<T>(dx);
          const T* g = cptr<T>(dout);
          const T* xi = cptr<T>(x);
          py::gil_scoped_release nogil;
          FASTNN_K(leaky_relu_backward)(d, g, xi, T(slope), index_t(dout.size()), acc);
        });
        return dx;
      },
      "dout"_a, "x"_a, "slope"_a = 0.01, py::kw_only(), "dx"_a = py::none(), "accumulate"_a = false);
  m.def(
      "elu_forward",
      [](py::handle x_, double alpha, py::handle out_) {
        const char* fn = "elu_forward";
        require_range(alpha, fn, "alpha", 0, kInf, false, true);
        py::array x = input(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        py::array out = output(out_, fn, "out", dt, shape_of(x));
        require_no_overlap(out, "out", x, "x", fn, true);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          const T* xi = cptr<T>(x);
          py::gil_scoped_release nogil;
          FASTNN_K(elu_forward)(o, xi, T(alpha), index_t(x.size()));
        });
        return out;
      },
      "x"_a, "alpha"_a = 1.0, py::kw_only(), "out"_a = py::none(),
      "out = x if x > 0 else alpha * (exp(x) - 1), alpha >= 0.");
  m.def(
      "elu_backward",
      [](py::handle dout_, py::handle y_, double alpha, py::handle dx_, bool acc) {
        const char* fn = "elu_backward";
        require_range(alpha, fn, "alpha", 0, kInf, false, true);
        py::array dout = input(dout_, fn, "dout");
        const DType dt = float_dtype(dout, fn, "dout");
        py::array y = input(y_, fn, "out", dt);
        require_shape(y, fn, "out", shape_of(dout), "it must match dout");
        py::array dx = grad_output(dx_, fn, "dx", dt, shape_of(dout), acc);
        require_no_overlap(dx, "dx", dout, "dout", fn, true);
        require_no_overlap(dx, "dx", y, "out", fn, true);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* d = ptr<T>(dx);
          const T* g = cptr<T>(dout);
          const T* yi = cptr<T>(y);
          py::gil_scoped_release nogil;
          FASTNN_K(elu_backward)(d, g, yi, T(alpha), index_t(dout.size()), acc);
        });
        return dx;
      },
      "dout"_a, "out"_a, "alpha"_a = 1.0, py::kw_only(), "dx"_a = py::none(), "accumulate"_a = false,
      "ELU backward from the forward output: dx = dout if out > 0 else dout * (out + alpha).");

  // PReLU: x (N, d1..dk) seen as (N, D); slopes a of shape (1,) or (D,).
  m.def(
      "prelu_forward",
      [](py::handle x_, py::handle a_, py::handle out_) {
        const char* fn = "prelu_forward";
        py::array x = input(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        require_ndim(x, fn, "x", 1);
        py::array a = input(a_, fn, "a", dt);
        const py::ssize_t D = x.ndim() > 1 ? trailing_size(x) : 1;
        const py::ssize_t N = x.ndim() > 1 ? x.shape(0) : x.size();
        if (!(a.ndim() == 1 && (a.shape(0) == 1 || a.shape(0) == D)))
          throw py::value_error(std::string(fn) + ": argument 'a' must have shape (1,) or (" +
                                std::to_string(D) + ",) (one slope, or one per feature), got " +
                                shape_str(shape_of(a)));
        py::array out = output(out_, fn, "out", dt, shape_of(x));
        require_no_overlap(out, "out", x, "x", fn, true);
        require_no_overlap(out, "out", a, "a", fn, false);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          const T* xi = cptr<T>(x);
          const T* ai = cptr<T>(a);
          const index_t na = a.shape(0);
          py::gil_scoped_release nogil;
          FASTNN_K(prelu_forward)(o, xi, ai, index_t(N), index_t(D), na);
        });
        return out;
      },
      "x"_a, "a"_a, py::kw_only(), "out"_a = py::none(),
      "PReLU: out = x if x > 0 else a * x, a shared (shape (1,)) or per feature (shape (D,)).");
  m.def(
      "prelu_backward",
      [](py::handle dout_, py::handle x_, py::handle a_, py::handle dx_, py::handle da_, bool acc) {
        const char* fn = "prelu_backward";
        py::array dout = input(dout_, fn, "dout");
        const DType dt = float_dtype(dout, fn, "dout");
        require_ndim(dout, fn, "dout", 1);
        py::array x = input(x_, fn, "x", dt);
        require_shape(x, fn, "x", shape_of(dout), "it must match dout");
        py::array a = input(a_, fn, "a", dt);
        const py::ssize_t D = x.ndim() > 1 ? trailing_size(x) : 1;
        const py::ssize_t N = x.ndim() > 1 ? x.shape(0) : x.size();
        if (!(a.ndim() == 1 && (a.shape(0) == 1 || a.shape(0) == D)))
          throw py::value_error(std::string(fn) + ": argument 'a' must have shape (1,) or (" +
                                std::to_string(D) + ",), got " + shape_str(shape_of(a)));
        py::array dx = grad_output(dx_, fn, "dx", dt, shape_of(dout), acc);
        py::array da = grad_output(da_, fn, "da", dt, shape_of(a), acc);
        require_no_overlap(dx, "dx", dout, "dout", fn, true);
        require_no_overlap(dx, "dx", x, "x", fn, true);
        require_no_overlap(da, "da", a, "a", fn, false);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* d = ptr<T>(dx);
          T* dai = ptr<T>(da);
          const T* g = cptr<T>(dout);
          const T* xi = cptr<T>(x);
          const T* ai = cptr<T>(a);
          const index_t na = a.shape(0);
          py::gil_scoped_release nogil;
          FASTNN_K(prelu_backward)(d, dai, g, xi, ai, index_t(N), index_t(D), na, acc);
        });
        return py::make_tuple(dx, da);
      },
      "dout"_a, "x"_a, "a"_a, py::kw_only(), "dx"_a = py::none(), "da"_a = py::none(),
      "accumulate"_a = false, "PReLU backward: returns (dx, da).");

  // Maxout: x (N, D*k) -> out (N, D), argmax (N, D) int32.
  m.def(
      "maxout_forward",
      [](py::handle x_, py::ssize_t k, py::handle out_, py::handle argmax_) {
        const char* fn = "maxout_forward";
        py::array x = input(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        require_ndim(x, fn, "x", 2);
        if (k < 1) throw py::value_error(std::string(fn) + ": argument 'k' must be >= 1, got " + std::to_string(k));
        const py::ssize_t N = x.shape(0), F = trailing_size(x);
        if (F % k)
          throw py::value_error(std::string(fn) + ": the " + std::to_string(F) +
                                " features of 'x' do not split into groups of k = " + std::to_string(k));
        const py::ssize_t D = F / k;
        py::array out = output(out_, fn, "out", dt, {N, D});
        py::array am;
        if (argmax_.is_none()) {
          am = py::array_t<std::int32_t>(Shape{N, D});
        } else {
          am = py::reinterpret_borrow<py::array>(argmax_);
          if (!py::isinstance<py::array_t<std::int32_t>>(argmax_) || !(am.flags() & py::array::c_style) ||
              !am.writeable() || shape_of(am) != Shape{N, D})
            throw py::value_error(std::string(fn) + ": argument 'argmax' must be a writable C-contiguous int32 array of shape " +
                                  shape_str({N, D}));
        }
        require_no_overlap(out, "out", x, "x", fn, false);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          auto* a = static_cast<std::int32_t*>(am.mutable_data());
          const T* xi = cptr<T>(x);
          py::gil_scoped_release nogil;
          FASTNN_K(maxout_forward)(o, a, xi, index_t(N), index_t(D), index_t(k));
        });
        return py::make_tuple(out, am);
      },
      "x"_a, "k"_a, py::kw_only(), "out"_a = py::none(), "argmax"_a = py::none(),
      "Maxout over groups of k consecutive features: x (N, D*k) -> (out (N, D), argmax (N, D) int32).");
  m.def(
      "maxout_backward",
      [](py::handle dout_, py::handle argmax_, py::ssize_t k, py::handle dx_, bool acc) {
        const char* fn = "maxout_backward";
        py::array dout = input(dout_, fn, "dout");
        const DType dt = float_dtype(dout, fn, "dout");
        require_ndim(dout, fn, "dout", 2, 2);
        if (k < 1) throw py::value_error(std::string(fn) + ": argument 'k' must be >= 1, got " + std::to_string(k));
        const py::ssize_t N = dout.shape(0), D = dout.shape(1);
        auto am = py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>::ensure(argmax_);
        if (!am.ptr() || shape_of(am) != Shape{N, D})
          throw py::value_error(std::string(fn) + ": argument 'argmax' must be an integer array of shape " + shape_str({N, D}));
        const auto* a = am.data();
        for (py::ssize_t i = 0; i < N * D; ++i)
          if (a[i] < 0 || a[i] >= k)
            throw py::value_error(std::string(fn) + ": argmax[" + std::to_string(i) + "] = " +
                                  std::to_string(a[i]) + " is outside [0, k)");
        py::array dx = grad_output(dx_, fn, "dx", dt, {N, D * k}, acc);
        require_no_overlap(dx, "dx", dout, "dout", fn, false);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* d = ptr<T>(dx);
          const T* g = cptr<T>(dout);
          py::gil_scoped_release nogil;
          FASTNN_K(maxout_backward)(d, g, a, index_t(N), index_t(D), index_t(k), acc);
        });
        return dx;
      },
      "dout"_a, "argmax"_a, "k"_a, py::kw_only(), "dx"_a = py::none(), "accumulate"_a = false);
}

// ------------------------------------------------------------------------------------------
// Dense
// ------------------------------------------------------------------------------------------
template <bool Ref>
void bind_dense(py::module_& m) {
  m.def(
      "dense_forward",
      [](py::handle x_, py::handle w_, py::handle b_, py::handle out_) {
        const char* fn = "dense_forward";
        py::array x = input(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        require_ndim(x, fn, "x", 2);
        py::array w = input(w_, fn, "w", dt);
        const py::ssize_t N = x.shape(0), D = trailing_size(x);
        const std::string why = "to match the " + std::to_string(D) + " features of x " + shape_str(shape_of(x));
        const py::ssize_t M = require_rows(w, fn, "w", D, "M", why.c_str());
        OptArray b;
        if (!b_.is_none()) {
          b = input(b_, fn, "b", dt);
          require_shape(*b, fn, "b", {M}, "one bias per output");
        }
        require_blas_dims(fn, N, M, D);
        py::array out = output(out_, fn, "out", dt, {N, M});
        require_no_overlap(out, "out", x, "x", fn, false);
        require_no_overlap(out, "out", w, "w", fn, false);
        if (b) require_no_overlap(out, "out", *b, "b", fn, false);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          const T* xi = cptr<T>(x);
          const T* wi = cptr<T>(w);
          const T* bi = cptr<T>(b);
          py::gil_scoped_release nogil;
          FASTNN_K(dense_forward)(o, xi, wi, bi, index_t(N), index_t(D), index_t(M));
        });
        return out;
      },
      "x"_a, "w"_a, "b"_a = py::none(), py::kw_only(), "out"_a = py::none(),
      "out (N, M) = x.reshape(N, D) @ w (D, M) + b (M).");
  m.def(
      "dense_backward",
      [](py::handle dout_, py::handle x_, py::handle w_, bool need_dx, bool need_dw, bool need_db,
         py::handle dx_, py::handle dw_, py::handle db_, bool acc) {
        const char* fn = "dense_backward";
        py::array dout = input(dout_, fn, "dout");
        const DType dt = float_dtype(dout, fn, "dout");
        require_ndim(dout, fn, "dout", 2, 2);
        py::array x = input(x_, fn, "x", dt);
        require_ndim(x, fn, "x", 2);
        py::array w = input(w_, fn, "w", dt);
        require_ndim(w, fn, "w", 2, 2);
        const py::ssize_t N = x.shape(0), D = trailing_size(x), M = w.shape(1);
        require_shape(w, fn, "w", {D, M}, "features of x by outputs");
        require_shape(dout, fn, "dout", {N, M}, "rows of x by columns of w");
        require_blas_dims(fn, N, M, D);
        py::object dx = py::none(), dw = py::none(), db = py::none();
        OptArray dxa, dwa, dba;
        if (need_dx) { dxa = grad_output(dx_, fn, "dx", dt, shape_of(x), acc); dx = *dxa; }
        if (need_dw) { dwa = grad_output(dw_, fn, "dw", dt, {D, M}, acc); dw = *dwa; }
        if (need_db) { dba = grad_output(db_, fn, "db", dt, {M}, acc); db = *dba; }
        for (auto* o : {&dxa, &dwa, &dba}) {
          if (!*o) continue;
          require_no_overlap(**o, "gradient", dout, "dout", fn, false);
          require_no_overlap(**o, "gradient", x, "x", fn, false);
          require_no_overlap(**o, "gradient", w, "w", fn, false);
        }
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* pdx = ptr<T>(dxa);
          T* pdw = ptr<T>(dwa);
          T* pdb = ptr<T>(dba);
          const T* g = cptr<T>(dout);
          const T* xi = cptr<T>(x);
          const T* wi = cptr<T>(w);
          py::gil_scoped_release nogil;
          FASTNN_K(dense_backward)(pdx, pdw, pdb, g, xi, wi, index_t(N), index_t(D), index_t(M), acc);
        });
        return py::make_tuple(dx, dw, db);
      },
      "dout"_a, "x"_a, "w"_a, py::kw_only(), "need_dx"_a = true, "need_dw"_a = true,
      "need_db"_a = true, "dx"_a = py::none(), "dw"_a = py::none(), "db"_a = py::none(),
      "accumulate"_a = false, "Returns (dx shaped like x, dw (D, M), db (M,)); None for those not needed.");
}

// ------------------------------------------------------------------------------------------
// Batch norm
// ------------------------------------------------------------------------------------------
template <bool Ref>
void bind_batchnorm(py::module_& m) {
  // gamma / beta / running stats: (D,) arrays or None
  auto param = [](py::handle obj, const char* fn, const char* name, DType dt, py::ssize_t D) {
    py::array a = input(obj, fn, name, dt);
    require_shape(a, fn, name, {D}, "one per feature");
    return a;
  };
  m.def(
      "batchnorm_forward_train",
      [param](py::handle x_, py::handle gamma_, py::handle beta_, py::handle rm_, py::handle rv_,
              double eps, double momentum, bool unbiased, py::handle out_, py::handle mean_,
              py::handle invstd_) {
        const char* fn = "batchnorm_forward_train";
        require_range(eps, fn, "eps", 0, kInf, true, true);
        require_range(momentum, fn, "momentum", 0, 1, false, false);
        py::array x = matrix(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        const py::ssize_t N = x.shape(0), D = x.shape(1);
        if (N < 2)
          throw py::value_error(std::string(fn) + ": argument 'x' has 1 row; batch norm in training mode needs "
                                "more than 1 row per batch (the variance of one row is 0, so every output would "
                                "be beta); use evaluation mode (running statistics) for a single row");
        OptArray gamma, beta, rm, rv;
        if (!gamma_.is_none()) gamma = param(gamma_, fn, "gamma", dt, D);
        if (!beta_.is_none()) beta = param(beta_, fn, "beta", dt, D);
        if (!rm_.is_none()) rm = inout(rm_, fn, "running_mean", dt, {D});
        if (!rv_.is_none()) rv = inout(rv_, fn, "running_var", dt, {D});
        py::array out = output(out_, fn, "out", dt, {N, D});
        py::array mean = output(mean_, fn, "mean", dt, {D});
        py::array invstd = output(invstd_, fn, "invstd", dt, {D});
        require_no_overlap(out, "out", x, "x", fn, false);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          T* mu = ptr<T>(mean);
          T* is = ptr<T>(invstd);
          T* prm = ptr<T>(rm);
          T* prv = ptr<T>(rv);
          const T* xi = cptr<T>(x);
          const T* g = cptr<T>(gamma);
          const T* b = cptr<T>(beta);
          py::gil_scoped_release nogil;
          FASTNN_K(batchnorm_forward_train)(o, mu, is, prm, prv, xi, g, b, index_t(N), index_t(D),
                                            T(eps), T(momentum), unbiased);
        });
        return py::make_tuple(out, mean, invstd);
      },
      "x"_a, "gamma"_a, "beta"_a, "running_mean"_a = py::none(), "running_var"_a = py::none(),
      py::kw_only(), "eps"_a = 1e-5, "momentum"_a = 0.9, "unbiased"_a = false, "out"_a = py::none(),
      "mean"_a = py::none(), "invstd"_a = py::none(),
      "Training-mode batch norm over rows of x (N, D): returns (out, mean, invstd) and updates "
      "running_mean/running_var in place (running = momentum * running + (1 - momentum) * batch).");
  m.def(
      "batchnorm_forward_eval",
      [param](py::handle x_, py::handle gamma_, py::handle beta_, py::handle rm_, py::handle rv_,
              double eps, py::handle out_) {
        const char* fn = "batchnorm_forward_eval";
        require_range(eps, fn, "eps", 0, kInf, true, true);
        py::array x = input(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        require_ndim(x, fn, "x", 2, 2);
        const py::ssize_t N = x.shape(0), D = x.shape(1);
        OptArray gamma, beta;
        if (!gamma_.is_none()) gamma = param(gamma_, fn, "gamma", dt, D);
        if (!beta_.is_none()) beta = param(beta_, fn, "beta", dt, D);
        py::array rm = param(rm_, fn, "running_mean", dt, D);
        py::array rv = param(rv_, fn, "running_var", dt, D);
        py::array out = output(out_, fn, "out", dt, {N, D});
        require_no_overlap(out, "out", x, "x", fn, true);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          const T* xi = cptr<T>(x);
          const T* g = cptr<T>(gamma);
          const T* b = cptr<T>(beta);
          const T* prm = cptr<T>(rm);
          const T* prv = cptr<T>(rv);
          py::gil_scoped_release nogil;
          FASTNN_K(batchnorm_forward_eval)(o, xi, g, b, prm, prv, index_t(N), index_t(D), T(eps));
        });
        return out;
      },
      "x"_a, "gamma"_a, "beta"_a, "running_mean"_a, "running_var"_a, py::kw_only(), "eps"_a = 1e-5,
      "out"_a = py::none(), "Evaluation-mode batch norm with the running statistics.");
  // The arrays of both backward passes: dout and x (N, D), gamma (D,) or None, two per-feature
  // statistics (mean and invstd, or the running mean and variance) and the three gradients.
  struct BackwardArgs {
    py::array dout, x, s1, s2, dx, dgamma, dbeta;
    OptArray gamma;
    DType dt;
    py::ssize_t N, D;
  };
  auto backward_args = [param](const char* fn, py::handle dout_, py::handle x_, py::handle gamma_,
                               py::handle s1_, const char* s1_name, py::handle s2_, const char* s2_name,
                               py::handle dx_, py::handle dgamma_, py::handle dbeta_, bool acc,
                               bool dout_nonempty, bool dx_may_be_dout) {
    BackwardArgs a;
    a.dout = matrix(dout_, fn, "dout", dout_nonempty);
    a.dt = float_dtype(a.dout, fn, "dout");
    a.N = a.dout.shape(0);
    a.D = a.dout.shape(1);
    a.x = input(x_, fn, "x", a.dt);
    require_shape(a.x, fn, "x", {a.N, a.D}, "it must match dout");
    if (!gamma_.is_none()) a.gamma = param(gamma_, fn, "gamma", a.dt, a.D);
    a.s1 = param(s1_, fn, s1_name, a.dt, a.D);
    a.s2 = param(s2_, fn, s2_name, a.dt, a.D);
    a.dx = grad_output(dx_, fn, "dx", a.dt, {a.N, a.D}, acc);
    a.dgamma = grad_output(dgamma_, fn, "dgamma", a.dt, {a.D}, acc);
    a.dbeta = grad_output(dbeta_, fn, "dbeta", a.dt, {a.D}, acc);
    require_no_overlap(a.dx, "dx", a.dout, "dout", fn, dx_may_be_dout);
    require_no_overlap(a.dx, "dx", a.x, "x", fn, false);
    return a;
  };
  m.def(
      "batchnorm_backward",
      [backward_args](py::handle dout_, py::handle x_, py::handle gamma_, py::handle mean_, py::handle invstd_,
                      py::handle dx_, py::handle dgamma_, py::handle dbeta_, bool acc) {
        BackwardArgs a = backward_args("batchnorm_backward", dout_, x_, gamma_, mean_, "mean", invstd_, "invstd",
                                       dx_, dgamma_, dbeta_, acc, true, false);
        dispatch(a.dt, [&](auto t) {
          using T = decltype(t);
          T* pdx = ptr<T>(a.dx);
          T* pdg = ptr<T>(a.dgamma);
          T* pdb = ptr<T>(a.dbeta);
          const T* g = cptr<T>(a.dout);
          const T* xi = cptr<T>(a.x);
          const T* ga = cptr<T>(a.gamma);
          const T* mu = cptr<T>(a.s1);
          const T* is = cptr<T>(a.s2);
          py::gil_scoped_release nogil;
          FASTNN_K(batchnorm_backward)(pdx, pdg, pdb, g, xi, ga, mu, is, index_t(a.N), index_t(a.D), acc);
        });
        return py::make_tuple(a.dx, a.dgamma, a.dbeta);
      },
      "dout"_a, "x"_a, "gamma"_a, "mean"_a, "invstd"_a, py::kw_only(), "dx"_a = py::none(),
      "dgamma"_a = py::none(), "dbeta"_a = py::none(), "accumulate"_a = false,
      "Batch-norm backward (closed form): returns (dx, dgamma, dbeta).");
  m.def(
      "batchnorm_backward_eval",
      [backward_args](py::handle dout_, py::handle x_, py::handle gamma_, py::handle rm_, py::handle rv_,
                      double eps, py::handle dx_, py::handle dgamma_, py::handle dbeta_, bool acc) {
        const char* fn = "batchnorm_backward_eval";
        require_range(eps, fn, "eps", 0, kInf, true, true);
        // element-wise in dout (so dx may be dout) and defined for an empty batch
        BackwardArgs a = backward_args(fn, dout_, x_, gamma_, rm_, "running_mean", rv_, "running_var", dx_,
                                       dgamma_, dbeta_, acc, false, true);
        dispatch(a.dt, [&](auto t) {
          using T = decltype(t);
          T* pdx = ptr<T>(a.dx);
          T* pdg = ptr<T>(a.dgamma);
          T* pdb = ptr<T>(a.dbeta);
          const T* g = cptr<T>(a.dout);
          const T* xi = cptr<T>(a.x);
          const T* ga = cptr<T>(a.gamma);
          const T* prm = cptr<T>(a.s1);
          const T* prv = cptr<T>(a.s2);
          py::gil_scoped_release nogil;
          FASTNN_K(batchnorm_backward_eval)(pdx, pdg, pdb, g, xi, ga, prm, prv, index_t(a.N), index_t(a.D), T(eps),
                                            acc);
        });
        return py::make_tuple(a.dx, a.dgamma, a.dbeta);
      },
      "dout"_a, "x"_a, "gamma"_a, "running_mean"_a, "running_var"_a, py::kw_only(), "eps"_a = 1e-5,
      "dx"_a = py::none(), "dgamma"_a = py::none(), "dbeta"_a = py::none(), "accumulate"_a = false,
      "Evaluation-mode batch-norm backward (running statistics): returns (dx, dgamma, dbeta).");
}

// ------------------------------------------------------------------------------------------
// Dropout
// ------------------------------------------------------------------------------------------
py::array mask_input(py::handle obj, const char* fn, py::ssize_t n) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(fn) + ": argument 'mask' must be the uint8 mask from dropout_forward");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (a.dtype().kind() != 'u' || a.dtype().itemsize() != 1 || a.size() != n)
    throw py::value_error(std::string(fn) + ": argument 'mask' must be a uint8 array with " +
                          std::to_string(n) + " elements (the mask from dropout_forward), got dtype " +
                          py::str(a.dtype()).cast<std::string>() + " shape " + shape_str(shape_of(a)));
  return py::array::ensure(a, py::array::c_style);
}

template <bool Ref>
void bind_dropout(py::module_& m) {
  m.def(
      "dropout_forward",
      [](py::handle x_, double p, std::uint64_t seed, std::uint64_t stream, py::handle out_, py::handle mask_) {
        const char* fn = "dropout_forward";
        require_range(p, fn, "p", 0, 1, true, false);
        py::array x = input(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        py::array out = output(out_, fn, "out", dt, shape_of(x));
        py::array mask;
        if (mask_.is_none()) {
          mask = py::array_t<std::uint8_t>(shape_of(x));
        } else {
          mask = py::reinterpret_borrow<py::array>(mask_);
          if (!py::isinstance<py::array_t<std::uint8_t>>(mask_) || !(mask.flags() & py::array::c_style) ||
              !mask.writeable() || mask.size() != x.size())
            throw py::value_error(std::string(fn) + ": argument 'mask' must be a writable C-contiguous uint8 array with " +
                                  std::to_string(x.size()) + " elements");
        }
        require_no_overlap(out, "out", x, "x", fn, true);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          auto* mk = static_cast<std::uint8_t*>(mask.mutable_data());
          const T* xi = cptr<T>(x);
          py::gil_scoped_release nogil;
          FASTNN_K(dropout_forward)(o, mk, xi, index_t(x.size()), p, seed, stream);
        });
        return py::make_tuple(out, mask);
      },
      "x"_a, "p"_a, "seed"_a, "stream"_a = 0, py::kw_only(), "out"_a = py::none(), "mask"_a = py::none(),
      "Inverted dropout, p = probability of keeping: returns (out, mask uint8). The mask is a pure "
      "function of (seed, stream, element index).");
  m.def(
      "dropout_backward",
      [](py::handle dout_, py::handle mask_, double p, py::handle dx_, bool acc) {
        const char* fn = "dropout_backward";
        require_range(p, fn, "p", 0, 1, true, false);
        py::array dout = input(dout_, fn, "dout");
        const DType dt = float_dtype(dout, fn, "dout");
        py::array mask = mask_input(mask_, fn, dout.size());
        py::array dx = grad_output(dx_, fn, "dx", dt, shape_of(dout), acc);
        require_no_overlap(dx, "dx", dout, "dout", fn, true);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* d = ptr<T>(dx);
          const T* g = cptr<T>(dout);
          const auto* mk = static_cast<const std::uint8_t*>(mask.data());
          py::gil_scoped_release nogil;
          FASTNN_K(dropout_backward)(d, g, mk, index_t(dout.size()), p, acc);
        });
        return dx;
      },
      "dout"_a, "mask"_a, "p"_a, py::kw_only(), "dx"_a = py::none(), "accumulate"_a = false);
}

// ------------------------------------------------------------------------------------------
// Losses
// ------------------------------------------------------------------------------------------
template <bool Ref, class Call>
void def_class_loss(py::module_& m, const char* name, const char* param, double param_default,
                    double lo, double hi, bool hi_open, Call call, const char* doc) {
  m.def(
      name,
      [name, param, lo, hi, hi_open, call](py::handle s_, py::handle y_, double prm, bool need_grad,
                                           py::handle d_, bool acc) {
        require_range(prm, name, param, lo, hi, false, hi_open);
        py::array s = matrix(s_, name, "scores");
        const DType dt = float_dtype(s, name, "scores");
        const py::ssize_t N = s.shape(0), C = s.shape(1);
        py::array y = labels(y_, name, "y", N);
        OptArray d = loss_grad(need_grad, d_, name, "dscores", dt, {N, C}, acc, {{&s, "scores"}});
        double loss = 0;
        index_t bad = -1;
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* pd = ptr<T>(d);
          const T* ps = cptr<T>(s);
          const auto* py_ = static_cast<const std::int64_t*>(y.data());
          py::gil_scoped_release nogil;
          bad = call(t, &loss, pd, ps, py_, index_t(N), index_t(C), prm, acc);
        });
        if (bad >= 0) {
          const auto lbl = static_cast<const std::int64_t*>(y.data())[bad];
          throw py::value_error(std::string(name) + ": label y[" + std::to_string(bad) + "] = " +
                                std::to_string(lbl) + " is outside [0, " + std::to_string(C) +
                                ") for scores with " + std::to_string(C) + " classes");
        }
        return loss_result(loss, d);
      },
      "scores"_a, "y"_a, py::arg(param) = param_default, py::kw_only(), "need_grad"_a = true,
      "dscores"_a = py::none(), "accumulate"_a = false, doc);
}

template <bool Ref>
void bind_loss(py::module_& m) {
  def_class_loss<Ref>(m, "softmax_cross_entropy", "label_smoothing", 0.0, 0.0, 1.0, true,
      [](auto t, double* loss, auto* d, const auto* s, const std::int64_t* y, index_t N, index_t C, double eps, bool acc) {
        using T = decltype(t);
        return FASTNN_K(softmax_cross_entropy)(loss, d, s, y, N, C, eps, acc);
      },
      "Mean softmax cross-entropy of scores (N, C) against labels y (N,): returns (loss, dscores).");
  m.def(
      "softmax_cross_entropy_soft",
      [](py::handle s_, py::handle t_, double eps, bool need_grad, py::handle d_, bool acc) {
        const char* fn = "softmax_cross_entropy_soft";
        require_range(eps, fn, "label_smoothing", 0.0, 1.0, false, true);
        py::array s = matrix(s_, fn, "scores");
        const DType dt = float_dtype(s, fn, "scores");
        const py::ssize_t N = s.shape(0), C = s.shape(1);
        py::array tg = input(t_, fn, "target", dt);
        require_shape(tg, fn, "target", {N, C}, "one target distribution per row of the scores");
        OptArray d = loss_grad(need_grad, d_, fn, "dscores", dt, {N, C}, acc, {{&s, "scores"}, {&tg, "target"}});
        double loss = 0;
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* pd = ptr<T>(d);
          const T* ps = cptr<T>(s);
          const T* pt = cptr<T>(tg);
          py::gil_scoped_release nogil;
          FASTNN_K(softmax_cross_entropy_soft)(&loss, pd, ps, pt, index_t(N), index_t(C), eps, acc);
        });
        return loss_result(loss, d);
      },
      "scores"_a, "target"_a, "label_smoothing"_a = 0.0, py::kw_only(), "need_grad"_a = true,
      "dscores"_a = py::none(), "accumulate"_a = false,
      "Mean softmax cross-entropy of scores (N, C) against target rows (N, C) (soft targets, e.g. an "
      "ensemble's softened probabilities): returns (loss, dscores).");
  def_class_loss<Ref>(m, "svm_loss", "margin", 1.0, 0.0, kInf, true,
      [](auto t, double* loss, auto* d, const auto* s, const std::int64_t* y, index_t N, index_t C, double margin, bool acc) {
        using T = decltype(t);
        return FASTNN_K(svm_loss)(loss, d, s, y, N, C, margin, acc);
      },
      "Mean multiclass SVM (Weston-Watkins) hinge loss: returns (loss, dscores).");
  m.def(
      "mse_loss",
      [](py::handle p_, py::handle t_, py::object scale_, bool need_grad, py::handle d_, bool acc) {
        const char* fn = "mse_loss";
        py::array p = input(p_, fn, "pred");
        const DType dt = float_dtype(p, fn, "pred");
        require_nonempty(p, fn, "pred");
        py::array tg = input(t_, fn, "target", dt);
        require_shape(tg, fn, "target", shape_of(p), "it must match pred");
        const double scale = scale_.is_none() ? 1.0 / double(p.size()) : scale_.cast<double>();
        require_range(scale, fn, "scale", 0, kInf, false, true);
        OptArray d = loss_grad(need_grad, d_, fn, "dpred", dt, shape_of(p), acc,
                               {{&tg, "target"}, {&p, "pred", true}});
        double loss = 0;
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* pd = ptr<T>(d);
          const T* pp = cptr<T>(p);
          const T* pt = cptr<T>(tg);
          py::gil_scoped_release nogil;
          FASTNN_K(mse_loss)(&loss, pd, pp, pt, index_t(p.size()), scale, acc);
        });
        return loss_result(loss, d);
      },
      "pred"_a, "target"_a, "scale"_a = py::none(), py::kw_only(), "need_grad"_a = true,
      "dpred"_a = py::none(), "accumulate"_a = false,
      "loss = scale * sum((pred - target)^2) (scale defaults to 1 / pred.size: the mean); returns (loss, dpred).");
}

// ------------------------------------------------------------------------------------------
// Regularisation
// ------------------------------------------------------------------------------------------
template <bool Ref, class Call>
void def_penalty(py::module_& m, const char* name, Call call, const char* doc) {
  m.def(
      name,
      [name, call](py::handle w_, double lam, py::handle g_, bool acc) {
        require_range(lam, name, "reg", 0, kInf, false, true);
        py::array w = input(w_, name, "w");
        const DType dt = float_dtype(w, name, "w");
        OptArray g;
        if (!g_.is_none()) {
          g = inout(g_, name, "grad", dt, shape_of(w));
          require_no_overlap(*g, "grad", w, "w", name, false);
        }
        double loss = 0;
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* pg = ptr<T>(g);
          const T* pw = cptr<T>(w);
          py::gil_scoped_release nogil;
          loss = call(t, pg, pw, index_t(w.size()), lam, acc);
        });
        return loss;
      },
      "w"_a, "reg"_a, py::kw_only(), "grad"_a = py::none(), "accumulate"_a = true, doc);
}

template <bool Ref>
void bind_regularization(py::module_& m) {
  def_penalty<Ref>(m, "l2_penalty", [](auto t, auto* g, const auto* w, index_t n, double lam, bool acc) {
    using T = decltype(t);
    return FASTNN_K(l2_penalty)(g, w, n, lam, acc);
  }, "Returns 0.5 * reg * sum(w^2); adds reg * w into grad when given.");
  def_penalty<Ref>(m, "l1_penalty", [](auto t, auto* g, const auto* w, index_t n, double lam, bool acc) {
    using T = decltype(t);
    return FASTNN_K(l1_penalty)(g, w, n, lam, acc);
  }, "Returns reg * sum(|w|); adds reg * sign(w) into grad when given.");
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Optimizer steps: w and the state arrays are updated in place. (optim_kind and step_hyper are
// shared with the network bindings.)
// ------------------------------------------------------------------------------------------
OptimKind optim_kind(const std::string& name) {
  static const std::pair<const char*, OptimKind> kinds[] = {
      {"sgd", OptimKind::SGD},         {"momentum", OptimKind::Momentum},
      {"nesterov", OptimKind::Nesterov}, {"adagrad", OptimKind::Adagrad},
      {"rmsprop", OptimKind::RMSProp}, {"adam", OptimKind::Adam},
      {"adamw", OptimKind::AdamW},     {"adadelta", OptimKind::Adadelta},
      {"rprop", OptimKind::Rprop},     {"gains", OptimKind::Gains}};
  for (const auto& [n, k] : kinds)
    if (name == n) return k;
  throw py::value_error("optimizer_step: unknown optimizer '" + name +
                        "' (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, adadelta, rprop, gains)");
}

// Read and check the hyperparameters of a step from keyword arguments.
StepHyper step_hyper(const char* fn, const py::kwargs& kw) {
  StepHyper h;
  struct Field { const char* name; double* dst; double lo, hi; bool lo_open, hi_open; };
  const Field fields[] = {
      {"learning_rate", &h.lr, 0, kInf, false, true},   {"momentum", &h.momentum, 0, 1, false, true},
      {"beta1", &h.beta1, 0, 1, false, true},           {"beta2", &h.beta2, 0, 1, false, true},
      {"epsilon", &h.eps, 0, kInf, true, true},         {"decay_rate", &h.decay, 0, 1, false, true},
      {"rho", &h.rho, 0, 1, false, true},               {"weight_decay", &h.weight_decay, 0, kInf, false, true},
      {"l2", &h.l2, 0, kInf, false, true},              {"l1", &h.l1, 0, kInf, false, true},
      {"eta_plus", &h.eta_plus, 1, kInf, false, true},  {"eta_minus", &h.eta_minus, 0, 1, true, false},
      {"step_min", &h.step_min, 0, kInf, true, true},   {"step_max", &h.step_max, 0, kInf, true, true},
      {"gain_add", &h.gain_add, 0, kInf, false, true},  {"gain_mul", &h.gain_mul, 0, 1, true, false},
      {"gain_min", &h.gain_min, 0, kInf, true, true},   {"gain_max", &h.gain_max, 0, kInf, true, true},
  };
  for (auto item : kw) {
    const std::string key = py::str(item.first);
    if (key == "t") {
      h.t = item.second.cast<std::int64_t>();
      if (h.t < 1)
        throw py::value_error(std::string(fn) + ": argument 't' (the 1-based step count) must be >= 1, got " +
                              std::to_string(h.t));
      continue;
    }
    const Field* f = nullptr;
    for (const auto& c : fields)
      if (key == c.name) f = &c;
    if (!f) throw py::type_error(std::string(fn) + ": unexpected keyword argument '" + key + "'");
    double v;
    try {
      v = item.second.cast<double>();
    } catch (const py::cast_error&) {
      throw py::type_error(std::string(fn) + ": argument '" + key + "' must be a number");
    }
    *f->dst = require_range(v, fn, f->name, f->lo, f->hi, f->lo_open, f->hi_open);
  }
  if (h.step_min > h.step_max) throw py::value_error(std::string(fn) + ": step_min must be <= step_max");
  if (h.gain_min > h.gain_max) throw py::value_error(std::string(fn) + ": gain_min must be <= gain_max");
  return h;
}

namespace {

template <bool Ref>
void bind_optim(py::module_& m) {
  m.def(
      "optimizer_step",
      [](const std::string& kind_name, py::handle w_, py::sequence states_, py::handle g_, py::kwargs kw) {
        const char* fn = "optimizer_step";
        const OptimKind kind = optim_kind(kind_name);
        const StepHyper h = step_hyper(fn, kw);
        if (!py::isinstance<py::array>(w_))
          throw py::type_error(std::string(fn) + ": argument 'w' is updated in place and must be a numpy array");
        const DType dt = float_dtype(py::reinterpret_borrow<py::array>(w_), fn, "w");
        py::array w = inout(w_, fn, "w", dt, shape_of(py::reinterpret_borrow<py::array>(w_)));
        py::array g = input(g_, fn, "dw", dt);
        require_shape(g, fn, "dw", shape_of(w), "it must match w");
        require_no_overlap(w, "w", g, "dw", fn, false);
        const int ns = optimizer_state_count(kind);
        if (py::len(states_) != size_t(ns))
          throw py::value_error(std::string(fn) + ": optimizer '" + kind_name + "' keeps " + std::to_string(ns) +
                                " state array(s), got " + std::to_string(py::len(states_)));
        std::vector<py::array> states;
        for (int i = 0; i < ns; ++i) {
          const std::string nm = "state[" + std::to_string(i) + "]";
          py::array a = inout(states_[i], fn, nm.c_str(), dt, shape_of(w));
          require_no_overlap(a, nm.c_str(), w, "w", fn, false);
          require_no_overlap(a, nm.c_str(), g, "dw", fn, false);
          for (const auto& o : states) require_no_overlap(a, nm.c_str(), o, "another state array", fn, false);
          states.push_back(a);
        }
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* pw = ptr<T>(w);
          T* ps[3] = {nullptr, nullptr, nullptr};
          for (int i = 0; i < ns; ++i) ps[i] = ptr<T>(states[i]);
          const T* pg = cptr<T>(g);
          py::gil_scoped_release nogil;
          FASTNN_K(optimizer_step)(kind, pw, ps, pg, index_t(w.size()), h);
        });
      },
      "kind"_a, "w"_a, "state"_a, "dw"_a,
      "One fused optimizer step, in place: w and the arrays in `state` (as many as the kind keeps:\n"
      "sgd 0; momentum, nesterov, adagrad, rmsprop 1; adam, adamw, adadelta, rprop 2; gains 3).\n"
      "Keyword hyperparameters: learning_rate, momentum, beta1, beta2, epsilon, decay_rate, rho,\n"
      "weight_decay (AdamW), l2, l1 (coupled penalties), eta_plus, eta_minus, step_min, step_max,\n"
      "gain_add, gain_mul, gain_min, gain_max, t (1-based step count for Adam).");
}

template <bool Ref>
void bind_stats(py::module_& m) {
  m.def(
      "first_nonfinite",
      [](py::handle x_) -> index_t {
        const char* fn = "first_nonfinite";
        py::array x = input(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        index_t r = -1;
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          const T* p = cptr<T>(x);
          const index_t n = x.size();
          py::gil_scoped_release nogil;
          r = FASTNN_K(first_nonfinite)(p, n);
        });
        return r;
      },
      "x"_a, "Flat index of the first NaN or infinity in x, or -1 (no temporary arrays).");
}

template <bool Ref>
void bind_all(py::module_& m) {
  bind_activations<Ref>(m);
  bind_dense<Ref>(m);
  bind_batchnorm<Ref>(m);
  bind_dropout<Ref>(m);
  bind_loss<Ref>(m);
  bind_regularization<Ref>(m);
  bind_optim<Ref>(m);
  bind_stats<Ref>(m);
}

}  // namespace

void bind_kernels(py::module_& m) {
  bind_all<false>(m);
  py::module_ r = m.def_submodule("ref", "Scalar reference kernels (for tests): same signatures, plain loops.");
  bind_all<true>(r);

  // Extras that have no separate reference.
  m.def(
      "gemm",
      [](py::handle a_, py::handle b_, bool ta, bool tb, double alpha, double beta, py::handle out_) {
        const char* fn = "gemm";
        py::array a = input(a_, fn, "a");
        const DType dt = float_dtype(a, fn, "a");
        py::array b = input(b_, fn, "b", dt);
        require_ndim(a, fn, "a", 2, 2);
        require_ndim(b, fn, "b", 2, 2);
        const py::ssize_t M = ta ? a.shape(1) : a.shape(0), K = ta ? a.shape(0) : a.shape(1);
        const py::ssize_t Kb = tb ? b.shape(1) : b.shape(0), N = tb ? b.shape(0) : b.shape(1);
        if (K != Kb)
          throw py::value_error("gemm: inner dimensions differ: op(a) is (" + std::to_string(M) + ", " +
                                std::to_string(K) + "), op(b) is (" + std::to_string(Kb) + ", " + std::to_string(N) + ")");
        require_blas_dims(fn, M, N, K);
        if (beta != 0.0 && out_.is_none())
          throw py::value_error("gemm: beta != 0 needs 'out' to scale and add into");
        py::array out = output(out_, fn, "out", dt, {M, N});
        require_no_overlap(out, "out", a, "a", fn, false);
        require_no_overlap(out, "out", b, "b", fn, false);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          const T* pa = cptr<T>(a);
          const T* pb = cptr<T>(b);
          py::gil_scoped_release nogil;
          fastnn::gemm<T>(ta, tb, M, N, K, T(alpha), pa, a.shape(1), pb, b.shape(1), T(beta), o, N);
        });
        return out;
      },
      "a"_a, "b"_a, py::kw_only(), "trans_a"_a = false, "trans_b"_a = false, "alpha"_a = 1.0,
      "beta"_a = 0.0, "out"_a = py::none(), "out = alpha * op(a) @ op(b) + beta * out, through fastnn's BLAS.");
  m.def(
      "softmax",
      [](py::handle s_, py::handle out_) {
        const char* fn = "softmax";
        py::array s = input(s_, fn, "scores");
        const DType dt = float_dtype(s, fn, "scores");
        require_ndim(s, fn, "scores", 2, 2);
        py::array out = output(out_, fn, "out", dt, shape_of(s));
        require_no_overlap(out, "out", s, "scores", fn, true);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          const T* ps = cptr<T>(s);
          py::gil_scoped_release nogil;
          fastnn::softmax<T>(o, ps, s.shape(0), s.shape(1));
        });
        return out;
      },
      "scores"_a, py::kw_only(), "out"_a = py::none(), "Row-wise softmax probabilities.");
  m.def(
      "philox4x32_10",
      [](std::array<std::uint32_t, 4> ctr, std::array<std::uint32_t, 2> key) {
        fastnn::Philox4x32::block(ctr.data(), key[0], key[1]);
        return ctr;
      },
      "counter"_a, "key"_a, "The raw Philox4x32-10 block function (for known-answer tests).");
  m.def(
      "philox_uint32",
      [](py::ssize_t n, std::uint64_t seed, std::uint64_t stream, py::ssize_t first) {
        if (n < 0 || first < 0) throw py::value_error("philox_uint32: n and first must be >= 0");
        py::array_t<std::uint32_t> out(n);
        auto* o = out.mutable_data();
        py::gil_scoped_release nogil;
        fastnn::philox_uint32(o, seed, stream, first, n);
        return out;
      },
      "n"_a, "seed"_a, "stream"_a = 0, "first"_a = 0,
      "32 random bits for elements first .. first + n - 1 of the Philox4x32-10 stream (seed, stream).");
}

}  // namespace fastnn::bind
