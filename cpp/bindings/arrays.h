// Argument checking and array plumbing shared by every binding: the one place where a Python
// object becomes a raw pointer. Every failure is a Python exception that names the function, the
// argument, and what was expected versus what was given.
//
//   * Read-only inputs: any array-like of float32/float64; a non-contiguous array is copied to a
//     C-contiguous one (documented; nothing is written back, so nothing is lost).
//   * Outputs and in-place arguments: must already be ndarrays of the exact dtype and shape,
//     C-contiguous and writable, and must not partly overlap an input; fastnn never writes into a
//     silent copy.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "fastnn/common.h"

namespace fastnn::bind {

namespace py = pybind11;
using Shape = std::vector<py::ssize_t>;
// An optional array argument. (A default-constructed py::array is a real, empty array — not a
// null — so "absent" must be spelled with std::optional.)
using OptArray = std::optional<py::array>;

enum class DType { f32, f64 };

constexpr double kInf = std::numeric_limits<double>::infinity();

// "fn: argument 'name'", the start of every argument error.
std::string arg_prefix(const char* fn, const char* name);
// "(3, 4)" for a shape.
std::string shape_str(const Shape& s);
Shape shape_of(const py::array& a);
const char* dtype_name(DType dt);
py::dtype np_dtype(DType dt);

// A read-only float input: converted with np.asarray; copied if not C-contiguous.
py::array input(py::handle obj, const char* fn, const char* name);
// A read-only float input that must have `dt`.
py::array input(py::handle obj, const char* fn, const char* name, DType dt);
// The float dtype of an array (TypeError for anything else).
DType float_dtype(const py::array& a, const char* fn, const char* name);
// A 2-D float input (N, D); with nonempty, N and D must be >= 1.
py::array matrix(py::handle obj, const char* fn, const char* name, bool nonempty = true);
// Labels: an integer array of shape (n,), returned as C-contiguous int64.
py::array labels(py::handle obj, const char* fn, const char* name, py::ssize_t n);

// An array written in place: exact dtype and shape, C-contiguous, writable.
py::array inout(py::handle obj, const char* fn, const char* name, DType dt, const Shape& shape);
// `out` if given (checked as inout), else a new uninitialised array.
py::array output(py::handle obj, const char* fn, const char* name, DType dt, const Shape& shape);
py::array new_array(DType dt, const Shape& shape);

// Shape checks.
void require_ndim(const py::array& a, const char* fn, const char* name, py::ssize_t ndim_min,
                  py::ssize_t ndim_max = -1);
void require_shape(const py::array& a, const char* fn, const char* name, const Shape& shape,
                   const char* why = nullptr);
void require_nonempty(const py::array& a, const char* fn, const char* name);
// A 2-D array with `rows` rows (a matrix applied to `rows` features, e.g. a weight matrix); returns
// its number of columns. The message names the expected shape as (rows, cols_name) and adds `why`.
py::ssize_t require_rows(const py::array& a, const char* fn, const char* name, py::ssize_t rows,
                         const char* cols_name, const char* why = nullptr);
// ValueError if `out` and `in` share memory but are not the very same buffer (elementwise kernels
// may run in place) — or share any memory at all when identical is not allowed.
void require_no_overlap(const py::array& out, const char* out_name, const py::array& in,
                        const char* in_name, const char* fn, bool identical_ok);
// Sizes that BLAS's 32-bit integers can hold.
void require_blas_dims(const char* fn, fastnn::index_t M, fastnn::index_t N, fastnn::index_t K);

// Product of the dimensions after the first (the "flattened feature" size D of (N, d1..dk)).
py::ssize_t trailing_size(const py::array& a);

template <class T>
T* ptr(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}
template <class T>
const T* cptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <class T>
T* ptr(OptArray& a) {
  return a ? static_cast<T*>(a->mutable_data()) : nullptr;
}
template <class T>
const T* cptr(const OptArray& a) {
  return a ? static_cast<const T*>(a->data()) : nullptr;
}

// Call f with a value of the C++ type for dt.
template <class F>
decltype(auto) dispatch(DType dt, F&& f) {
  if (dt == DType::f32) return f(float{});
  return f(double{});
}
// Call f with values of the C++ types for an input and an output dtype (kernels that convert).
template <class F>
void dispatch2(DType din, DType dout, F&& f) {
  dispatch(din, [&](auto ti) { dispatch(dout, [&](auto to) { f(ti, to); }); });
}

// The fast kernel, or its scalar reference for the fastnn._core.ref module (bindings are templates
// on `bool Ref` and register the same lambda twice).
template <bool Ref, class F, class R>
constexpr auto pick(F fast, R reference) {
  if constexpr (Ref)
    return reference;
  else
    return fast;
}
// fastnn::name<T> or fastnn::ref::name<T>, for the `Ref` and `T` in scope.
#define FASTNN_K(name) ::fastnn::bind::pick<Ref>(&::fastnn::name<T>, &::fastnn::ref::name<T>)

// Check a scalar parameter.
double require_range(double v, const char* fn, const char* name, double lo, double hi,
                     bool lo_open, bool hi_open);

}  // namespace fastnn::bind
