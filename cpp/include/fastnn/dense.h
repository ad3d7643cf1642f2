// fastnn/dense.h — the affine (fully connected) layer, bias fused.
//
//   forward:  out (N, M) = x (N, D) @ w (D, M) + b (M)         (b may be null)
//   backward: dx (N, D) = dout (N, M) @ w^T
//             dw (D, M) = x^T @ dout
//             db (M)    = sum over rows of dout                 (any output may be null)
// x of shape (N, d1, ..., dk) is passed flattened (D = d1 * ... * dk). The GEMMs run on BLAS;
// the bias is written into `out` first and the GEMM adds onto it (beta = 1), so the bias costs
// no extra pass. Backward writes its outputs, or adds into them when accumulate is true.
#pragma once

#include "fastnn/common.h"

namespace fastnn {

template <class T>
void dense_forward(T* out, const T* x, const T* w, const T* b, index_t N, index_t D, index_t M);

template <class T>
void dense_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w, index_t N,
                    index_t D, index_t M, bool accumulate);

// Column sums of a (rows, cols) matrix: out[j] (+)= sum_r a[r, j], in row order per column.
template <class T>
void column_sum(T* out, const T* a, index_t rows, index_t cols, bool accumulate);

namespace ref {
template <class T>
void dense_forward(T* out, const T* x, const T* w, const T* b, index_t N, index_t D, index_t M);
template <class T>
void dense_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w, index_t N,
                    index_t D, index_t M, bool accumulate);
}  // namespace ref

}  // namespace fastnn
