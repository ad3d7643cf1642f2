// Bindings of the preprocessing and augmentation kernels: fastnn._core.<kernel> and, with the same
// signatures (no workspace), the scalar references fastnn._core.ref.<kernel>.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "arrays.h"
#include "fastnn/augment.h"
#include "fastnn/preprocess.h"

namespace py = pybind11;
using namespace pybind11::literals;
using fastnn::index_t;

namespace fastnn::bind {

namespace {

// A float64 vector of length n (converted).
py::array f64_vector(py::handle obj, const char* fn, const char* name, py::ssize_t n) {
  if (obj.is_none()) throw py::type_error(arg_prefix(fn, name) + " is required, got None");
  auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!a.ptr()) throw py::type_error(arg_prefix(fn, name) + " must be a float array");
  require_shape(a, fn, name, {n}, "one per column");
  return a;
}

// The output dtype: `out`'s if given, else `dtype` if given, else `fallback`.
DType out_dtype(py::handle out, py::handle dtype, DType fallback, const char* fn) {
  if (!out.is_none()) {
    if (!py::isinstance<py::array>(out)) throw py::type_error(arg_prefix(fn, "out") + " must be a numpy array");
    return float_dtype(py::reinterpret_borrow<py::array>(out), fn, "out");
  }
  if (dtype.is_none()) return fallback;
  py::dtype dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(dtype));
  if (dt.kind() == 'f' && dt.itemsize() == 4) return DType::f32;
  if (dt.kind() == 'f' && dt.itemsize() == 8) return DType::f64;
  throw py::type_error(arg_prefix(fn, "dtype") + " must be float32 or float64, got " + py::str(dt).cast<std::string>());
}

// (mean, m2, min, max), n float64 values each, filled by fill(mean, m2, min, max).
template <class F>
py::tuple stats_result(py::ssize_t n, F&& fill) {
  py::array_t<double> mean(n), m2(n), mn(n), mx(n);
  fill(mean.mutable_data(), m2.mutable_data(), mn.mutable_data(), mx.mutable_data());
  return py::make_tuple(mean, m2, mn, mx);
}

// (N, C, S) of a batch of images given as (N, ...) with C channels.
void image_dims(const py::array& x, py::ssize_t C, const char* fn, py::ssize_t& N, py::ssize_t& S) {
  require_ndim(x, fn, "x", 2);
  require_nonempty(x, fn, "x");
  if (C < 1) throw py::value_error(std::string(fn) + ": argument 'channels' must be >= 1, got " + std::to_string(C));
  const py::ssize_t D = trailing_size(x);
  if (D % C != 0)
    throw py::value_error(std::string(fn) + ": each image has " + std::to_string(D) + " values, not a multiple of " +
                          std::to_string(C) + " channels");
  N = x.shape(0);
  S = D / C;
}

template <bool Ref>
void bind_stats(py::module_& m) {
  m.def(
      "column_stats",
      [](py::handle x_) {
        const char* fn = "column_stats";
        py::array x = matrix(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        const index_t N = x.shape(0), D = x.shape(1);
        std::vector<double> work;
        if constexpr (!Ref) work.resize(std::size_t(fastnn::column_stats_workspace(N, D)));
        return stats_result(D, [&](double* a, double* b, double* c, double* d) {
          dispatch(dt, [&](auto t) {
            using T = decltype(t);
            const T* p = cptr<T>(x);
            py::gil_scoped_release nogil;
            if constexpr (Ref)
              fastnn::ref::column_stats<T>(a, b, c, d, p, N, D);
            else
              fastnn::column_stats<T>(a, b, c, d, work.data(), p, N, D);
          });
        });
      },
      "x"_a,
      "Per-column (mean, m2, min, max) of x (N, D), float64, one pass; variance = m2 / N.");
  m.def(
      "channel_stats",
      [](py::handle x_, py::ssize_t C, bool nchw) {
        const char* fn = "channel_stats";
        py::array x = input(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        py::ssize_t N = 0, S = 0;
        image_dims(x, C, fn, N, S);
        std::vector<double> work;
        if constexpr (!Ref) work.resize(std::size_t(fastnn::channel_stats_workspace(N, C, S, nchw)));
        return stats_result(C, [&](double* a, double* b, double* c, double* d) {
          dispatch(dt, [&](auto t) {
            using T = decltype(t);
            const T* p = cptr<T>(x);
            py::gil_scoped_release nogil;
            if constexpr (Ref)
              fastnn::ref::channel_stats<T>(a, b, c, d, p, N, C, S, nchw);
            else
              fastnn::channel_stats<T>(a, b, c, d, work.data(), p, N, C, S, nchw);
          });
        });
      },
      "x"_a, "channels"_a, "nchw"_a = false,
      "Per-channel (mean, m2, min, max) of images x (N, ...) with `channels` channels: NHWC "
      "(channels last) or NCHW (nchw=True).");
  m.def(
      "scatter_matrix",
      [](py::handle x_, py::handle mean_) {
        const char* fn = "scatter_matrix";
        py::array x = matrix(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        const index_t N = x.shape(0), D = x.shape(1);
        require_blas_dims(fn, D, D, N);
        py::array mean = f64_vector(mean_, fn, "mean", D);
        py::array_t<double> G({py::ssize_t(D), py::ssize_t(D)});
        std::vector<double> work;
        if constexpr (!Ref) work.resize(std::size_t(fastnn::scatter_workspace(N, D)));
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          const T* p = cptr<T>(x);
          const double* mu = cptr<double>(mean);
          double* g = G.mutable_data();
          py::gil_scoped_release nogil;
          if constexpr (Ref)
            fastnn::ref::scatter_matrix<T>(g, p, mu, N, D);
          else
            fastnn::scatter_matrix<T>(g, work.data(), p, mu, N, D);
        });
        return G;
      },
      "x"_a, "mean"_a, "(x - mean)^T (x - mean), (D, D) float64 (covariance times N).");
  m.def(
      "row_hashes",
      [](py::handle x_) {
        const char* fn = "row_hashes";
        py::array x = matrix(x_, fn, "x", false);
        const DType dt = float_dtype(x, fn, "x");
        const index_t N = x.shape(0), D = x.shape(1);
        py::array_t<std::uint64_t> out(N);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          const T* p = cptr<T>(x);
          std::uint64_t* o = out.mutable_data();
          py::gil_scoped_release nogil;
          FASTNN_K(row_hashes)(o, p, N, D);
        });
        return out;
      },
      "x"_a, "64-bit hash of each row of x (N, D), values rounded to float32 (uint64 (N,)).");
}

template <bool Ref>
void bind_apply(py::module_& m) {
  m.def(
      "shift_scale",
      [](py::handle x_, py::handle shift_, py::handle scale_, bool inverse, py::handle out_, py::handle dtype_) {
        const char* fn = "shift_scale";
        py::array x = matrix(x_, fn, "x", false);
        const DType din = float_dtype(x, fn, "x");
        const index_t N = x.shape(0), D = x.shape(1);
        py::array shift = f64_vector(shift_, fn, "shift", D);
        py::array scale = f64_vector(scale_, fn, "scale", D);
        const DType dout = out_dtype(out_, dtype_, din, fn);
        py::array out = output(out_, fn, "out", dout, {py::ssize_t(N), py::ssize_t(D)});
        require_no_overlap(out, "out", x, "x", fn, din == dout);
        dispatch2(din, dout, [&](auto ti, auto to) {
          using Tin = decltype(ti);
          using Tout = decltype(to);
          const Tin* p = cptr<Tin>(x);
          Tout* o = ptr<Tout>(out);
          const double* sh = cptr<double>(shift);
          const double* sc = cptr<double>(scale);
          py::gil_scoped_release nogil;
          pick<Ref>(&fastnn::shift_scale<Tin, Tout>, &fastnn::ref::shift_scale<Tin, Tout>)(o, p, sh, sc, N, D, inverse);
        });
        return out;
      },
      "x"_a, "shift"_a, "scale"_a, py::kw_only(), "inverse"_a = false, "out"_a = py::none(), "dtype"_a = py::none(),
      "out = (x - shift) * scale per column (inverse: x / scale + shift), computed in float64; out "
      "(or dtype) may differ from x's dtype; out may be x itself.");
  m.def(
      "project",
      [](py::handle x_, py::handle mean_, py::handle W_, py::handle out_, py::handle dtype_) {
        const char* fn = "project";
        py::array x = matrix(x_, fn, "x", false);
        const DType din = float_dtype(x, fn, "x");
        const index_t N = x.shape(0), D = x.shape(1);
        py::array mean = f64_vector(mean_, fn, "mean", D);
        const DType dout = out_dtype(out_, dtype_, din, fn);
        py::array W = input(W_, fn, "W");  // converted to the output dtype (documented copy)
        if (float_dtype(W, fn, "W") != dout) W = py::array(W.attr("astype")(np_dtype(dout)));
        const index_t K = require_rows(W, fn, "W", D, "K");
        require_blas_dims(fn, N, K, D);
        py::array out = output(out_, fn, "out", dout, {py::ssize_t(N), py::ssize_t(K)});
        require_no_overlap(out, "out", x, "x", fn, false);
        dispatch2(din, dout, [&](auto ti, auto to) {
          using Tin = decltype(ti);
          using Tout = decltype(to);
          const Tin* p = cptr<Tin>(x);
          Tout* o = ptr<Tout>(out);
          const double* mu = cptr<double>(mean);
          const Tout* w = cptr<Tout>(W);
          if constexpr (Ref) {
            py::gil_scoped_release nogil;
            fastnn::ref::project<Tin, Tout>(o, p, mu, w, N, D, K);
          } else {
            std::vector<Tout> work(std::size_t(fastnn::project_workspace(N, D)));
            py::gil_scoped_release nogil;
            fastnn::project<Tin, Tout>(o, work.data(), p, mu, w, N, D, K);
          }
        });
        return out;
      },
      "x"_a, "mean"_a, "W"_a, py::kw_only(), "out"_a = py::none(), "dtype"_a = py::none(),
      "out (N, K) = (x - mean) @ W with W (D, K), centred in float64 and multiplied by GEMM in the "
      "output dtype.");
  m.def(
      "unproject",
      [](py::handle y_, py::handle V_, py::handle mean_, py::handle out_) {
        const char* fn = "unproject";
        py::array y = matrix(y_, fn, "y", false);
        const DType dt = float_dtype(y, fn, "y");
        const index_t N = y.shape(0), K = y.shape(1);
        py::array V = input(V_, fn, "V", dt);
        const index_t D = require_rows(V, fn, "V", K, "D");
        require_blas_dims(fn, N, D, K);
        py::array mean = f64_vector(mean_, fn, "mean", D);
        py::array out = output(out_, fn, "out", dt, {py::ssize_t(N), py::ssize_t(D)});
        require_no_overlap(out, "out", y, "y", fn, false);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          const T* py_ = cptr<T>(y);
          const T* v = cptr<T>(V);
          const double* mu = cptr<double>(mean);
          py::gil_scoped_release nogil;
          FASTNN_K(unproject)(o, py_, v, mu, N, K, D);
        });
        return out;
      },
      "y"_a, "V"_a, "mean"_a, py::kw_only(), "out"_a = py::none(), "out (N, D) = y @ V + mean, V (K, D).");
}

// ---------------------------------------------------------------------------------------------
// Augmentation
// ---------------------------------------------------------------------------------------------
// The image shape of a batch x (N, ...) of images: `image_shape` parsed ((H, W, C) for NHWC, (C, H, W)
// for NCHW) and checked against the size of each row of x.
fastnn::ImageShape image_shape(const py::array& x, py::handle shape_, bool nchw, const char* fn) {
  std::vector<py::ssize_t> s;
  try {
    s = shape_.cast<std::vector<py::ssize_t>>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string(fn) + ": argument 'image_shape' must be a sequence of 3 integers");
  }
  if (s.size() != 3 || s[0] < 1 || s[1] < 1 || s[2] < 1)
    throw py::value_error(std::string(fn) + ": argument 'image_shape' must be 3 positive integers "
                          "((H, W, C) for NHWC, (C, H, W) for NCHW)");
  fastnn::ImageShape sh;
  sh.nchw = nchw;
  if (nchw) {
    sh.C = s[0], sh.H = s[1], sh.W = s[2];
  } else {
    sh.H = s[0], sh.W = s[1], sh.C = s[2];
  }
  require_ndim(x, fn, "x", 2);
  if (trailing_size(x) != sh.size())
    throw py::value_error(std::string(fn) + ": each row of 'x' has " + std::to_string(trailing_size(x)) +
                          " values but image_shape holds " + std::to_string(sh.size()));
  return sh;
}

fastnn::AugmentSpec augment_spec(double flip, index_t pad, double noise, double bright, double contrast,
                                 const fastnn::ImageShape& sh, const char* fn) {
  require_range(flip, fn, "flip_prob", 0, 1, false, false);
  require_range(noise, fn, "noise_std", 0, kInf, false, true);
  require_range(bright, fn, "brightness", 0, kInf, false, true);
  require_range(contrast, fn, "contrast", 0, 1, false, false);
  if (pad < 0 || pad > std::max(sh.H, sh.W))
    throw py::value_error(std::string(fn) + ": argument 'pad' must be in [0, " +
                          std::to_string(std::max(sh.H, sh.W)) + "], got " + std::to_string(pad));
  if (contrast > 0 && sh.C > 512)
    throw py::value_error(std::string(fn) + ": contrast jitter supports at most 512 channels, got " +
                          std::to_string(sh.C));
  return fastnn::AugmentSpec{flip, pad, noise, bright, contrast};
}

template <bool Ref>
void bind_augment(py::module_& m) {
  m.def(
      "augment_images",
      [](py::handle x_, py::handle shape_, bool nchw, double flip, index_t pad, double noise, double bright,
         double contrast, std::uint64_t seed, std::uint64_t stream, py::handle rows_, py::handle out_) {
        const char* fn = "augment_images";
        py::array x = input(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        const fastnn::ImageShape sh = image_shape(x, shape_, nchw, fn);
        const fastnn::AugmentSpec spec = augment_spec(flip, pad, noise, bright, contrast, sh, fn);
        const index_t Nall = x.shape(0);
        py::array rows;
        index_t B = Nall;
        if (!rows_.is_none()) {
          rows = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(rows_);
          if (!rows.ptr() || rows.ndim() != 1)
            throw py::type_error("augment_images: argument 'rows' must be a 1-D integer array");
          B = rows.shape(0);
          const auto* r = static_cast<const std::int64_t*>(rows.data());
          for (index_t b = 0; b < B; ++b)
            if (r[b] < 0 || r[b] >= Nall)
              throw py::value_error("augment_images: rows[" + std::to_string(b) + "] = " + std::to_string(r[b]) +
                                    " is not a row of x (0.." + std::to_string(Nall - 1) + ")");
        }
        Shape oshape = shape_of(x);
        oshape[0] = B;
        py::array out = output(out_, fn, "out", dt, oshape);
        require_no_overlap(out, "out", x, "x", fn, false);
        const std::int64_t* r = rows_.is_none() ? nullptr : static_cast<const std::int64_t*>(rows.data());
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          const T* p = cptr<T>(x);
          py::gil_scoped_release nogil;
          FASTNN_K(augment_images)(o, p, r, B, sh, spec, seed, stream);
        });
        return out;
      },
      "x"_a, "image_shape"_a, "nchw"_a = false, py::kw_only(), "flip_prob"_a = 0.0, "pad"_a = 0,
      "noise_std"_a = 0.0, "brightness"_a = 0.0, "contrast"_a = 0.0, "seed"_a = 0, "stream"_a = 0,
      "rows"_a = py::none(), "out"_a = py::none(),
      "Random flips, padded crops, contrast, brightness and Gaussian noise of images x (N, ...) "
      "(rows of x picked by `rows`), keyed by (seed, stream); see fastnn/augment.h.");
  m.def(
      "shift_flip_images",
      [](py::handle x_, py::handle shape_, bool nchw, index_t dy, index_t dx, bool flip, py::handle out_) {
        const char* fn = "shift_flip_images";
        py::array x = input(x_, fn, "x");
        const DType dt = float_dtype(x, fn, "x");
        const fastnn::ImageShape sh = image_shape(x, shape_, nchw, fn);
        py::array out = output(out_, fn, "out", dt, shape_of(x));
        require_no_overlap(out, "out", x, "x", fn, false);
        const index_t N = x.shape(0);
        dispatch(dt, [&](auto t) {
          using T = decltype(t);
          T* o = ptr<T>(out);
          const T* p = cptr<T>(x);
          py::gil_scoped_release nogil;
          FASTNN_K(shift_flip_images)(o, p, N, sh, dy, dx, flip);
        });
        return out;
      },
      "x"_a, "image_shape"_a, "nchw"_a = false, py::kw_only(), "dy"_a = 0, "dx"_a = 0, "flip"_a = false,
      "out"_a = py::none(), "out = x shifted by (dy, dx) with zero fill, then flipped horizontally when flip.");
}

}  // namespace

void bind_preprocess(py::module_& m) {
  bind_stats<false>(m);
  bind_apply<false>(m);
  bind_augment<false>(m);
  py::module_ r = py::hasattr(m, "ref") ? py::reinterpret_borrow<py::module_>(m.attr("ref"))
                                        : m.def_submodule("ref", "Scalar reference kernels (for tests).");
  bind_stats<true>(r);
  bind_apply<true>(r);
  bind_augment<true>(r);

  m.def(
      "augment_draws",
      [](index_t B, double flip, index_t pad, double bright, double contrast, std::uint64_t seed,
         std::uint64_t stream) {
        if (B < 0) throw py::value_error("augment_draws: B must be >= 0");
        fastnn::ImageShape sh;
        sh.H = sh.W = std::max<index_t>(1, pad);
        const fastnn::AugmentSpec spec = augment_spec(flip, pad, 0.0, bright, contrast, sh, "augment_draws");
        py::array_t<bool> f(B);
        py::array_t<std::int64_t> dy(B), dx(B);
        py::array_t<double> delta(B), factor(B);
        for (index_t b = 0; b < B; ++b) {
          const fastnn::AugmentDraw d = fastnn::augment_draw(spec, seed, stream, b);
          f.mutable_data()[b] = d.flip;
          dy.mutable_data()[b] = d.dy;
          dx.mutable_data()[b] = d.dx;
          delta.mutable_data()[b] = d.delta;
          factor.mutable_data()[b] = d.factor;
        }
        py::dict out;
        out["flip"] = f;
        out["dy"] = dy;
        out["dx"] = dx;
        out["delta"] = delta;
        out["factor"] = factor;
        return out;
      },
      "B"_a, py::kw_only(), "flip_prob"_a = 0.0, "pad"_a = 0, "brightness"_a = 0.0, "contrast"_a = 0.0,
      "seed"_a = 0, "stream"_a = 0,
      "The random parameters augment_images draws for images 0..B-1: dict of flip, dy, dx, delta, factor.");
}

}  // namespace fastnn::bind
