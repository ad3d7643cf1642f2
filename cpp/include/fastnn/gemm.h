// fastnn/gemm.h — the one wrapper over BLAS GEMM.
//
// Row-major C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, where op(X) is X or X^T.
// lda/ldb/ldc are row strides in elements. Sizes must fit BLAS's 32-bit integers
// (checked by gemm_dims_ok; the Python bindings refuse larger problems before calling).
//
// Threads (default policy, GemmThreading::Tiles): OpenBLAS's threaded driver splits the K loop
// differently for different thread counts, so its results change with the thread count. fastnn
// instead cuts C into gemm_tiles() slabs along its longer side — a number that depends on the
// shape and on the cores available to the process, never on the current thread count — and
// computes each slab with one single-threaded BLAS call on its own OpenMP team. Results are then
// bitwise identical for every thread count; measured speed is within a few percent of OpenBLAS's
// own threading on large GEMMs and up to 2x faster on small ones (which OpenBLAS runs serially).
#pragma once

#include "fastnn/common.h"

namespace fastnn {

template <class T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc);

// True when every dimension and leading dimension fits a 32-bit BLAS integer.
bool gemm_dims_ok(index_t M, index_t N, index_t K);

// Number of slabs a GEMM of this shape is cut into (see above).
index_t gemm_tiles(index_t M, index_t N, index_t K);

namespace ref {
// Scalar triple loop with the same semantics, in double accumulation (tests only).
template <class T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc);
}  // namespace ref

}  // namespace fastnn
