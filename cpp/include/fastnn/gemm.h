// fastnn/gemm.h — the one wrapper over BLAS GEMM.
//
// Row-major C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, where op(X) is X or X^T.
// lda/ldb/ldc are row strides in elements. Sizes must fit BLAS's 32-bit integers
// (checked by gemm_dims_ok; the Python bindings refuse larger problems before calling).
//
// Threads (default policy, GemmThreading::Tiles): OpenBLAS's threaded driver splits the K loop
// differently for different thread counts, so its results change with the thread count. fastnn
// instead cuts C into gemm_tiles() slabs along its longer side — a number that depends on the
// shape and on the machine's CPU count, never on the thread count, CPU affinity or quota — and
// computes each slab with one single-threaded BLAS call on fastnn's thread pool. Results are then
// bitwise identical for every thread count; measured speed is within a few percent of OpenBLAS's
// own threading on large GEMMs and up to 2x faster on small ones (which OpenBLAS runs serially).
//
// A few rows (M <= 3: inference on one sample or a few): sgemm would first pack all of op(B) (a
// layer's weights), 3-4x the cost of streaming it once (1 x 3072 @ 3072 x 1024 on one Zen 3 core:
// ~1.1 ms through sgemm, ~0.24 ms here). C = A B and C += A B (alpha 1, beta 0 or 1, neither
// operand transposed: a Dense layer's forward) run fastnn's "skinny" kernel on CPUs with AVX2 and
// FMA (whatever SIMD clone the elementwise kernels run, as OpenBLAS's kernels do): B is streamed
// once, row after row, for all M rows of A, and every element of C is computed by the same
// operations in the same order wherever its column falls, so C's columns are split between the
// threads by the current thread count with bitwise identical results. The other cases (and CPUs
// without FMA) take one BLAS gemv per row, and C of one column (N == 1) one gemv, each cut into
// gemv_tiles() blocks of outputs fixed by the shape and the machine's CPU count as the slabs are.
// A row computed this way may differ in its last bits from the same row computed inside a larger
// GEMM (another summation order).
#pragma once

#include "fastnn/common.h"

namespace fastnn {

template <class T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc);

// Work on one block of C, rows [r0, r1) x columns [c0, c1), done by the thread that computes the
// block, right before (`before`: e.g. write a bias into the block, which beta = 1 then adds onto)
// or right after (`after`: e.g. an activation, while the block is still in cache) the block's
// BLAS or skinny-kernel call. The blocks are the slabs or column blocks described above (the
// whole of C when it is not cut), so a GEMM with its bias and activation costs one parallel region
// instead of three. fn(ctx, r0, r1, c0, c1); a null fn does nothing. make_gemm_hook(f) wraps a
// callable f(r0, r1, c0, c1), which must outlive the GEMM call and must not throw.
struct GemmBlockHook {
  void (*fn)(void* ctx, index_t r0, index_t r1, index_t c0, index_t c1) = nullptr;
  void* ctx = nullptr;
};
template <class F>
GemmBlockHook make_gemm_hook(F& f) {
  return {[](void* c, index_t r0, index_t r1, index_t c0, index_t c1) { (*static_cast<F*>(c))(r0, r1, c0, c1); },
          &f};
}

template <class T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc, const GemmBlockHook& before,
          const GemmBlockHook& after);

// True when every dimension and leading dimension fits a 32-bit BLAS integer.
bool gemm_dims_ok(index_t M, index_t N, index_t K);

// Number of slabs a GEMM of this shape is cut into (see above).
index_t gemm_tiles(index_t M, index_t N, index_t K);

// Number of blocks of outputs a BLAS matrix-vector product with `len` outputs of length-K dot
// products is cut into (see above).
index_t gemv_tiles(index_t len, index_t K);

namespace ref {
// Scalar triple loop with the same semantics, in double accumulation (tests only).
template <class T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc);
}  // namespace ref

}  // namespace fastnn
