// Dense (affine) layer on BLAS GEMM (see dense.h).
#include "fastnn/dense.h"

#include <cstring>

#include "fastnn/gemm.h"
#include "fastnn/isa.h"
#include "fastnn/threads.h"

namespace fastnn {

namespace {
template <class T>
FASTNN_INLINE void add_rows_body(double* FASTNN_RESTRICT s, const T* FASTNN_RESTRICT a, index_t rows,
                                 index_t cols, index_t j0, index_t j1) {
  for (index_t r = 0; r < rows; ++r) {
    const T* ar = a + r * cols;
#pragma omp simd
    for (index_t j = j0; j < j1; ++j) s[j - j0] += double(ar[j]);
  }
}
FASTNN_ISA_PASSES(
    FASTNN_LEAF void add_rows_leaf(double* s, const float* a, index_t rows, index_t cols, index_t j0, index_t j1) {
      add_rows_body(s, a, rows, cols, j0, j1);
    }
    FASTNN_LEAF void add_rows_leaf(double* s, const double* a, index_t rows, index_t cols, index_t j0, index_t j1) {
      add_rows_body(s, a, rows, cols, j0, j1);
    })
}  // namespace

template <class T>
void column_sum(T* out, const T* a, index_t rows, index_t cols, bool accumulate) {
  parallel_columns(rows, cols, [&](index_t j0, index_t j1) {
    double s[256] = {0};
    FASTNN_SIMD_CALL(add_rows_leaf, s, a, rows, cols, j0, j1);
    for (index_t j = j0; j < j1; ++j) out[j] = accumulate ? T(out[j] + s[j - j0]) : T(s[j - j0]);
  });
}

template <class T>
void dense_forward(T* out, const T* x, const T* w, const T* b, index_t N, index_t D, index_t M) {
  if (b) {
    parallel_for(N, std::max<index_t>(1, 16384 / std::max<index_t>(1, M)), [&](index_t r0, index_t r1) {
      for (index_t r = r0; r < r1; ++r) std::memcpy(out + r * M, b, sizeof(T) * M);
    }, 1);
  }
  gemm<T>(false, false, N, M, D, T(1), x, D, w, M, b ? T(1) : T(0), out, M);
}

template <class T>
void dense_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w, index_t N,
                    index_t D, index_t M, bool acc) {
  const T beta = acc ? T(1) : T(0);
  if (dx) gemm<T>(false, true, N, D, M, T(1), dout, M, w, M, beta, dx, D);
  if (dw) gemm<T>(true, false, D, M, N, T(1), x, D, dout, M, beta, dw, M);
  if (db) column_sum(db, dout, N, M, acc);
}

namespace ref {
template <class T>
void dense_forward(T* out, const T* x, const T* w, const T* b, index_t N, index_t D, index_t M) {
  for (index_t i = 0; i < N; ++i)
    for (index_t j = 0; j < M; ++j) {
      double s = b ? double(b[j]) : 0.0;
      for (index_t k = 0; k < D; ++k) s += double(x[i * D + k]) * double(w[k * M + j]);
      out[i * M + j] = T(s);
    }
}
template <class T>
void dense_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w, index_t N,
                    index_t D, index_t M, bool acc) {
  if (dx)
    for (index_t i = 0; i < N; ++i)
      for (index_t k = 0; k < D; ++k) {
        double s = 0;
        for (index_t j = 0; j < M; ++j) s += double(dout[i * M + j]) * double(w[k * M + j]);
        dx[i * D + k] = acc ? T(dx[i * D + k] + s) : T(s);
      }
  if (dw)
    for (index_t k = 0; k < D; ++k)
      for (index_t j = 0; j < M; ++j) {
        double s = 0;
        for (index_t i = 0; i < N; ++i) s += double(x[i * D + k]) * double(dout[i * M + j]);
        dw[k * M + j] = acc ? T(dw[k * M + j] + s) : T(s);
      }
  if (db)
    for (index_t j = 0; j < M; ++j) {
      double s = 0;
      for (index_t i = 0; i < N; ++i) s += double(dout[i * M + j]);
      db[j] = acc ? T(db[j] + s) : T(s);
    }
}
}  // namespace ref
}  // namespace fastnn

using fastnn::index_t;
#define FASTNN_INSTANTIATE_DENSE(NS, T)                                                       \
  template void NS::dense_forward<T>(T*, const T*, const T*, const T*, index_t, index_t, index_t); \
  template void NS::dense_backward<T>(T*, T*, T*, const T*, const T*, const T*, index_t, index_t, \
                                      index_t, bool);
FASTNN_INSTANTIATE_DENSE(fastnn, float)
FASTNN_INSTANTIATE_DENSE(fastnn, double)
FASTNN_INSTANTIATE_DENSE(fastnn::ref, float)
FASTNN_INSTANTIATE_DENSE(fastnn::ref, double)
template void fastnn::column_sum<float>(float*, const float*, index_t, index_t, bool);
template void fastnn::column_sum<double>(double*, const double*, index_t, index_t, bool);
