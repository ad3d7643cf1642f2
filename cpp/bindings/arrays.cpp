// Argument checking and array plumbing for the bindings (see arrays.h).
#include "arrays.h"

#include <climits>
#include <cmath>
#include <sstream>

namespace fastnn::bind {

namespace {

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

std::string type_str(py::handle obj) {
  return py::str(py::type::of(obj).attr("__name__")).cast<std::string>();
}

}  // namespace

std::string arg_prefix(const char* fn, const char* name) {
  return std::string(fn) + ": argument '" + name + "'";
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) os << ", ";
    os << s[i];
  }
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

const char* dtype_name(DType dt) { return dt == DType::f32 ? "float32" : "float64"; }

py::dtype np_dtype(DType dt) {
  return dt == DType::f32 ? py::dtype::of<float>() : py::dtype::of<double>();
}

DType float_dtype(const py::array& a, const char* fn, const char* name) {
  const char kind = a.dtype().kind();
  const auto size = a.dtype().itemsize();
  if (kind == 'f' && size == 4) return DType::f32;
  if (kind == 'f' && size == 8) return DType::f64;
  throw py::type_error(arg_prefix(fn, name) + " must be a float32 or float64 array, got dtype " +
                       dtype_str(a) +
                       (kind == 'i' || kind == 'u' || kind == 'b'
                            ? " (convert it with .astype(np.float64) or .astype(np.float32))"
                            : ""));
}

py::array input(py::handle obj, const char* fn, const char* name) {
  if (obj.is_none()) throw py::type_error(arg_prefix(fn, name) + " is required, got None");
  py::array a;
  if (py::isinstance<py::array>(obj)) {
    a = py::reinterpret_borrow<py::array>(obj);
  } else {
    a = py::array::ensure(obj);  // a null handle (not an empty array) on failure
    if (!a.ptr()) throw py::type_error(arg_prefix(fn, name) + " must be an array, got " + type_str(obj));
  }
  (void)float_dtype(a, fn, name);
  if (a.dtype().byteorder() == '>')
    throw py::type_error(arg_prefix(fn, name) + " has big-endian dtype " + dtype_str(a) +
                         "; convert it with .astype(native dtype)");
  if (!(a.flags() & py::array::c_style)) {
    // Documented copy of a read-only input (e.g. a transposed or sliced view).
    const py::ssize_t nbytes = a.nbytes();
    a = py::array::ensure(a, py::array::c_style | py::array::forcecast);
    if (!a.ptr()) {
      // ensure() swallows the reason; the only way a float array fails to copy is memory (e.g. a
      // broadcast view whose contiguous copy would need terabytes).
      const std::string msg = arg_prefix(fn, name) + " is not C-contiguous and its contiguous copy (" +
                              std::to_string(double(nbytes) / 1e9) + " GB) could not be allocated";
      PyErr_SetString(PyExc_MemoryError, msg.c_str());
      throw py::error_already_set();
    }
  }
  return a;
}

py::array input(py::handle obj, const char* fn, const char* name, DType dt) {
  py::array a = input(obj, fn, name);
  const DType got = float_dtype(a, fn, name);
  if (got != dt)
    throw py::type_error(arg_prefix(fn, name) + " has dtype " + dtype_name(got) +
                         " but the other arrays of this call are " + dtype_name(dt) +
                         "; fastnn does not mix precisions silently (use .astype)");
  return a;
}

py::array matrix(py::handle obj, const char* fn, const char* name, bool nonempty) {
  py::array a = input(obj, fn, name);
  require_ndim(a, fn, name, 2, 2);
  if (nonempty) require_nonempty(a, fn, name);
  return a;
}

py::array labels(py::handle obj, const char* fn, const char* name, py::ssize_t n) {
  if (obj.is_none()) throw py::type_error(arg_prefix(fn, name) + " is required, got None");
  py::array a = py::array::ensure(obj);  // a null handle on failure
  if (!a.ptr())
    throw py::type_error(arg_prefix(fn, name) + " must be an array of integer labels, got " + type_str(obj));
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw py::type_error(arg_prefix(fn, name) + " must hold integer class labels, got dtype " +
                         dtype_str(a));
  if (a.ndim() != 1 || a.shape(0) != n)
    throw py::value_error(arg_prefix(fn, name) + " must have shape (" + std::to_string(n) +
                          ",) — one label per row of the scores — got shape " + shape_str(shape_of(a)));
  if (kind == 'u' && a.dtype().itemsize() == 8) {
    // uint64 labels above INT64_MAX would wrap: check on the way in.
    auto u = py::array_t<std::uint64_t, py::array::forcecast>::ensure(a);
    const auto* p = u.data();
    for (py::ssize_t i = 0; i < n; ++i)
      if (p[i] > static_cast<std::uint64_t>(INT64_MAX))
        throw py::value_error(arg_prefix(fn, name) + "[" + std::to_string(i) + "] = " +
                              std::to_string(p[i]) + " is not a valid class label");
  }
  py::array out = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!out.ptr()) throw py::type_error(arg_prefix(fn, name) + " could not be converted to int64 labels");
  return out;
}

void require_ndim(const py::array& a, const char* fn, const char* name, py::ssize_t lo, py::ssize_t hi) {
  const py::ssize_t nd = a.ndim();
  if (nd < lo || (hi >= 0 && nd > hi)) {
    std::string want = hi < 0 ? "at least " + std::to_string(lo)
                               : (lo == hi ? std::to_string(lo)
                                           : std::to_string(lo) + " to " + std::to_string(hi));
    throw py::value_error(arg_prefix(fn, name) + " must have " + want + " dimension(s), got shape " +
                          shape_str(shape_of(a)));
  }
}

void require_shape(const py::array& a, const char* fn, const char* name, const Shape& shape,
                   const char* why) {
  if (shape_of(a) != shape)
    throw py::value_error(arg_prefix(fn, name) + " must have shape " + shape_str(shape) +
                          (why ? std::string(" (") + why + ")" : std::string()) + ", got " +
                          shape_str(shape_of(a)));
}

void require_nonempty(const py::array& a, const char* fn, const char* name) {
  if (a.size() == 0)
    throw py::value_error(arg_prefix(fn, name) + " is empty (shape " + shape_str(shape_of(a)) +
                          "); an empty batch has no loss or statistics");
}

py::ssize_t require_rows(const py::array& a, const char* fn, const char* name, py::ssize_t rows,
                         const char* cols_name, const char* why) {
  require_ndim(a, fn, name, 2, 2);
  if (a.shape(0) != rows)
    throw py::value_error(arg_prefix(fn, name) + " must have shape (" + std::to_string(rows) + ", " + cols_name +
                          ")" + (why ? std::string(" ") + why : std::string()) + ", got " + shape_str(shape_of(a)));
  return a.shape(1);
}

py::array inout(py::handle obj, const char* fn, const char* name, DType dt, const Shape& shape) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(arg_prefix(fn, name) + " is written in place and must be a numpy array of " +
                         dtype_name(dt) + ", got " + type_str(obj));
  auto a = py::reinterpret_borrow<py::array>(obj);
  const char kind = a.dtype().kind();
  const bool dt_ok = kind == 'f' && a.dtype().itemsize() == (dt == DType::f32 ? 4 : 8) &&
                     a.dtype().byteorder() != '>';
  if (!dt_ok)
    throw py::type_error(arg_prefix(fn, name) + " is written in place and must have dtype " +
                         dtype_name(dt) + ", got " + dtype_str(a));
  require_shape(a, fn, name, shape);
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(arg_prefix(fn, name) +
                          " is written in place and must be C-contiguous; a copy would lose the "
                          "write (pass np.ascontiguousarray(...) and use the result)");
  if (!a.writeable())
    throw py::value_error(arg_prefix(fn, name) + " is written in place but is read-only");
  return a;
}

py::array new_array(DType dt, const Shape& shape) { return py::array(np_dtype(dt), shape); }

py::array output(py::handle obj, const char* fn, const char* name, DType dt, const Shape& shape) {
  if (obj.is_none()) return new_array(dt, shape);
  return inout(obj, fn, name, dt, shape);
}

void require_no_overlap(const py::array& out, const char* out_name, const py::array& in,
                        const char* in_name, const char* fn, bool identical_ok) {
  const auto* o0 = static_cast<const char*>(out.data());
  const auto* i0 = static_cast<const char*>(in.data());
  const auto* o1 = o0 + out.nbytes();
  const auto* i1 = i0 + in.nbytes();
  if (out.nbytes() == 0 || in.nbytes() == 0 || o1 <= i0 || i1 <= o0) return;
  if (identical_ok && o0 == i0 && out.nbytes() == in.nbytes()) return;
  throw py::value_error(std::string(fn) + ": output '" + out_name + "' overlaps input '" + in_name +
                        "'" + (identical_ok ? " without being the same array" : "") +
                        "; the result would be corrupted");
}

void require_blas_dims(const char* fn, fastnn::index_t M, fastnn::index_t N, fastnn::index_t K) {
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX)
    throw py::value_error(std::string(fn) + ": a matrix dimension exceeds 2^31 - 1 (" +
                          std::to_string(M) + ", " + std::to_string(N) + ", " + std::to_string(K) +
                          "), the limit of the 32-bit BLAS");
}

py::ssize_t trailing_size(const py::array& a) {
  py::ssize_t d = 1;
  for (py::ssize_t i = 1; i < a.ndim(); ++i) d *= a.shape(i);
  return d;
}

double require_range(double v, const char* fn, const char* name, double lo, double hi,
                     bool lo_open, bool hi_open) {
  const bool ok = std::isfinite(v) || (std::isinf(hi) && v == hi && !hi_open);
  const bool lo_ok = lo_open ? v > lo : v >= lo;
  const bool hi_ok = hi_open ? v < hi : v <= hi;
  if (!ok || !lo_ok || !hi_ok) {
    std::ostringstream os;
    os << fn << ": argument '" << name << "' must be in " << (lo_open ? "(" : "[") << lo << ", "
       << hi << (hi_open ? ")" : "]") << ", got " << v;
    throw py::value_error(os.str());
  }
  return v;
}

}  // namespace fastnn::bind
