// fastnn/gemm.h — the one wrapper over BLAS GEMM.
//
// Row-major C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, where op(X) is X or X^T.
// lda/ldb/ldc are row strides in elements. Sizes must fit BLAS's 32-bit integers
// (checked by gemm_dims_ok; the Python bindings refuse larger problems before calling).
#pragma once

#include "fastnn/common.h"

namespace fastnn {

template <class T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc);

// True when every dimension and leading dimension fits a 32-bit BLAS integer.
bool gemm_dims_ok(index_t M, index_t N, index_t K);

namespace ref {
// Scalar triple loop with the same semantics, in double accumulation (tests only).
template <class T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc);
}  // namespace ref

}  // namespace fastnn
