// BLAS GEMM wrapper with thread-count-independent tiling (see gemm.h).
#include "fastnn/gemm.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "blas_api.h"
#include "fastnn/threads.h"

namespace fastnn {

namespace {

constexpr double kMinTileFlops = 2.0e6;  // a slab is at least ~10 us of single-core work
constexpr index_t kAlign = 16;           // slab boundaries fall on multiples of 16 rows/columns
constexpr double kMinGemvWork = 65536;   // multiply-adds per GEMV slab (~256 KiB of float32 matrix)
constexpr index_t kGemvMaxRows = 3;      // up to this many rows of C: skinny kernel or gemv per row

inline void blas_call(bool ta, bool tb, index_t M, index_t N, index_t K, float alpha, const float* A,
                      index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc) {
  FASTNN_CBLAS(sgemm)(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                      (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}
inline void blas_call(bool ta, bool tb, index_t M, index_t N, index_t K, double alpha,
                      const double* A, index_t lda, const double* B, index_t ldb, double beta,
                      double* C, index_t ldc) {
  FASTNN_CBLAS(dgemm)(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                      (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

inline void gemv_call(bool trans, index_t rows, index_t cols, float alpha, const float* A, index_t lda,
                      const float* x, index_t incx, float beta, float* y, index_t incy) {
  FASTNN_CBLAS(sgemv)(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, (int)rows, (int)cols, alpha, A, (int)lda,
                      x, (int)incx, beta, y, (int)incy);
}
inline void gemv_call(bool trans, index_t rows, index_t cols, double alpha, const double* A, index_t lda,
                      const double* x, index_t incx, double beta, double* y, index_t incy) {
  FASTNN_CBLAS(dgemv)(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, (int)rows, (int)cols, alpha, A, (int)lda,
                      x, (int)incx, beta, y, (int)incy);
}

// One matrix-vector product y (len, stride incy) = alpha * Mat x + beta * y, with x (K, stride incx)
// and Mat read row-major with row stride ld either as (K, len) (`trans`: y_j = sum_k Mat[k, j] x_k,
// the weights of a Dense layer applied to one row) or as (len, K) (y_i = sum_k Mat[i, k] x_k).
template <class T>
struct Gemv {
  bool trans;
  const T* mat;
  index_t ld;
  const T* x;
  index_t incx;
  T* y;
  index_t incy;
  // Outputs [lo, hi) only: one BLAS gemv on that block of Mat's columns (trans) or rows.
  void run(index_t len_lo, index_t len_hi, index_t K, T alpha, T beta) const {
    const index_t n = len_hi - len_lo;
    T* yb = y + len_lo * incy;
    if (beta == T(0)) {  // BLAS's beta = 0 may still read y (0 * NaN): start from zeros instead
      for (index_t i = 0; i < n; ++i) yb[i * incy] = T(0);
      beta = T(1);
    }
    if (trans)
      gemv_call(true, K, n, alpha, mat + len_lo, ld, x, incx, beta, yb, incy);
    else
      gemv_call(false, n, K, alpha, mat + len_lo * ld, ld, x, incx, beta, yb, incy);
  }
};

// `count` products of the same shape (len outputs, K long), each cut into gemv_tiles(len, K) blocks
// of outputs whose boundaries depend on the shape only: every output is computed by the same gemv
// call on the same block whatever the thread count (bitwise identical results with 1 thread and N).
// block(r, lo, hi) runs product r on outputs [lo, hi).
template <class Block>
void gemv_many(index_t count, index_t len, index_t K, Block&& block) {
  const bool tiles_mode = gemm_threading() == GemmThreading::Tiles;
  const index_t tiles = tiles_mode ? gemv_tiles(len, K) : 1;
  auto bound = [&](index_t t) { return t == tiles ? len : (len * t / tiles) / kAlign * kAlign; };
  auto body = [&](index_t i0, index_t i1) {
    for (index_t i = i0; i < i1; ++i) {
      const index_t r = i / tiles, t = i % tiles;
      const index_t lo = bound(t), hi = bound(t + 1);
      if (hi > lo) block(r, lo, hi);
    }
  };
  if (tiles_mode)
    parallel_for(count * tiles, 1, [&](index_t i0, index_t i1) { body(i0, i1); }, 1);
  else  // BLAS threads each call itself
    body(0, count * tiles);
}

inline void call(const GemmBlockHook& h, index_t r0, index_t r1, index_t c0, index_t c1) {
  if (h.fn) h.fn(h.ctx, r0, r1, c0, c1);
}

// ---- a few rows times a row-major matrix, without packing it (the "skinny" kernel) -----------
// C[r, j0:j1] (+)= A[r, :] B[:, j0:j1] for r < M <= kGemvMaxRows: B is streamed once, row after
// row, for all M rows (sgemv would read it M times, sgemm would first pack all of it). Every
// element is computed with the same operations in the same order wherever its column falls
// (vector body or remainder, one block or another): per group of 8 k, s = a0 b0, then
// s = fma(a_i, b_i, s) for i = 1..7, then c += s; then c = fma(a_k, b_k, c) for the last K % 8 k.
// So the column blocks may follow the thread count and results stay bitwise identical for any
// thread count. Needs hardware FMA (std::fma would otherwise be a library call): compiled for
// AVX2 + FMA on x86-64 and chosen by what the CPU has, like OpenBLAS's own kernels, not by fastnn's
// SIMD clone (FASTNN_SIMD selects the elementwise kernels), so a Dense layer's output stays
// bitwise the same under every clone (tests/test_simd.py); CPUs without AVX2 + FMA take the BLAS
// gemv path.
template <class T>
FASTNN_INLINE void skinny_body(T* FASTNN_RESTRICT C, index_t ldc, const T* FASTNN_RESTRICT A, index_t lda,
                               const T* FASTNN_RESTRICT B, index_t ldb, index_t M, index_t K, index_t j0,
                               index_t j1, bool zero) {
  if (zero)
    for (index_t r = 0; r < M; ++r) std::memset(C + r * ldc + j0, 0, sizeof(T) * (j1 - j0));
  index_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const T* b0 = B + k * ldb;
    const T *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb, *b4 = b3 + ldb, *b5 = b4 + ldb, *b6 = b5 + ldb,
            *b7 = b6 + ldb;
    for (index_t r = 0; r < M; ++r) {
      const T* a = A + r * lda + k;
      const T a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5], a6 = a[6], a7 = a[7];
      T* c = C + r * ldc;
#pragma omp simd
      for (index_t j = j0; j < j1; ++j) {
        T t = a0 * b0[j];
        t = std::fma(a1, b1[j], t);
        t = std::fma(a2, b2[j], t);
        t = std::fma(a3, b3[j], t);
        t = std::fma(a4, b4[j], t);
        t = std::fma(a5, b5[j], t);
        t = std::fma(a6, b6[j], t);
        t = std::fma(a7, b7[j], t);
        c[j] = c[j] + t;
      }
    }
  }
  for (; k < K; ++k) {
    const T* b0 = B + k * ldb;
    for (index_t r = 0; r < M; ++r) {
      const T a0 = A[r * lda + k];
      T* c = C + r * ldc;
#pragma omp simd
      for (index_t j = j0; j < j1; ++j) c[j] = std::fma(a0, b0[j], c[j]);
    }
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FASTNN_SKINNY 1
__attribute__((target("avx2,fma"))) void skinny_kernel(float* C, index_t ldc, const float* A, index_t lda,
                                                     const float* B, index_t ldb, index_t M, index_t K,
                                                     index_t j0, index_t j1, bool zero) {
  skinny_body(C, ldc, A, lda, B, ldb, M, K, j0, j1, zero);
}
__attribute__((target("avx2,fma"))) void skinny_kernel(double* C, index_t ldc, const double* A, index_t lda,
                                                     const double* B, index_t ldb, index_t M, index_t K,
                                                     index_t j0, index_t j1, bool zero) {
  skinny_body(C, ldc, A, lda, B, ldb, M, K, j0, j1, zero);
}
// The CPU (and OS) run AVX2 and FMA.
bool skinny_ok() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
}
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define FASTNN_SKINNY 1  // every aarch64 CPU has FMA (NEON)
template <class T>
void skinny_kernel(T* C, index_t ldc, const T* A, index_t lda, const T* B, index_t ldb, index_t M, index_t K,
                   index_t j0, index_t j1, bool zero) {
  skinny_body(C, ldc, A, lda, B, ldb, M, K, j0, j1, zero);
}
bool skinny_ok() { return true; }  // (the baseline clone there is NEON, with FMA)
#else
#define FASTNN_SKINNY 0
#endif

template <class T>
void gemm_impl(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
               const T* B, index_t ldb, T beta, T* C, index_t ldc, const GemmBlockHook& before,
               const GemmBlockHook& after) {
  if (M == 0 || N == 0) return;
  // A few rows (a single sample at inference): sgemm would pack all of op(B) for them, 3-4x the
  // time of reading it once (measured: 1 x 3072 @ 3072 x 1024 ~1.1 ms vs ~0.27 ms). The skinny
  // kernel when it applies (the layout of a Dense layer's forward, C = A B or C += A B), else one
  // BLAS gemv per row.
#if FASTNN_SKINNY
  if (M <= kGemvMaxRows && K > 0 && !ta && !tb && alpha == T(1) && (beta == T(0) || beta == T(1)) &&
      gemm_threading() == GemmThreading::Tiles && skinny_ok()) {
    const double work = double(M) * double(N) * double(K);
    const index_t blocks = std::max<index_t>(
        1, std::min<index_t>({effective_threads(), static_cast<index_t>(work / kMinGemvWork), N / kAlign}));
    auto bound = [&](index_t t) { return t == blocks ? N : (N * t / blocks) / kAlign * kAlign; };
    parallel_for(blocks, 1, [&](index_t t0, index_t t1) {
      for (index_t t = t0; t < t1; ++t) {
        const index_t lo = bound(t), hi = bound(t + 1);
        if (hi <= lo) continue;
        call(before, 0, M, lo, hi);
        skinny_kernel(C, ldc, A, lda, B, ldb, M, K, lo, hi, beta == T(0));
        call(after, 0, M, lo, hi);
      }
    }, 1);
    return;
  }
#endif
  if (M <= kGemvMaxRows && K > 0) {
    gemv_many(M, N, K, [&](index_t r, index_t lo, index_t hi) {
      call(before, r, r + 1, lo, hi);
      const Gemv<T> g{!tb, B, ldb, ta ? A + r : A + r * lda, ta ? lda : 1, C + r * ldc, 1};
      g.run(lo, hi, K, alpha, beta);
      call(after, r, r + 1, lo, hi);
    });
    return;
  }
  if (N == 1 && K > 0) {  // one output column: op(A) times the vector op(B)[:, 0]
    gemv_many(index_t(1), M, K, [&](index_t, index_t lo, index_t hi) {
      call(before, lo, hi, 0, 1);
      const Gemv<T> g{ta, A, lda, B, tb ? 1 : ldb, C, ldc};
      g.run(lo, hi, K, alpha, beta);
      call(after, lo, hi, 0, 1);
    });
    return;
  }
  const index_t tiles = gemm_threading() == GemmThreading::Tiles ? gemm_tiles(M, N, K) : 1;
  if (tiles == 1) {  // (or BLAS's own threading: FASTNN_GEMM_THREADING=callback / openblas)
    call(before, 0, M, 0, N);
    blas_call(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    call(after, 0, M, 0, N);
    return;
  }
  // Cut the longer side of C; the operand that is re-read by every slab is the smaller one.
  const bool split_rows = M >= N;
  const index_t S = split_rows ? M : N;
  auto bound = [&](index_t t) { return t == tiles ? S : (S * t / tiles) / kAlign * kAlign; };
  parallel_for(tiles, 1, [&](index_t t0, index_t t1) {
    for (index_t t = t0; t < t1; ++t) {
      const index_t lo = bound(t), hi = bound(t + 1);
      if (hi <= lo) continue;
      if (split_rows) {
        const T* a = ta ? A + lo : A + lo * lda;  // rows lo.. of op(A)
        call(before, lo, hi, 0, N);
        blas_call(ta, tb, hi - lo, N, K, alpha, a, lda, B, ldb, beta, C + lo * ldc, ldc);
        call(after, lo, hi, 0, N);
      } else {
        const T* b = tb ? B + lo * ldb : B + lo;  // columns lo.. of op(B)
        call(before, 0, M, lo, hi);
        blas_call(ta, tb, M, hi - lo, K, alpha, A, lda, b, ldb, beta, C + lo, ldc);
        call(after, 0, M, lo, hi);
      }
    }
  }, 1);
}

}  // namespace

bool gemm_dims_ok(index_t M, index_t N, index_t K) {
  return M >= 0 && N >= 0 && K >= 0 && M <= INT_MAX && N <= INT_MAX && K <= INT_MAX;
}

index_t gemv_tiles(index_t len, index_t K) {
  const index_t by_work = static_cast<index_t>(double(len) * double(K) / kMinGemvWork);
  const index_t by_size = len / kAlign;
  const index_t by_cores = std::min<index_t>(machine_cpus(), 64);  // (as gemm_tiles)
  return std::max<index_t>(1, std::min({by_work, by_size, by_cores}));
}

index_t gemm_tiles(index_t M, index_t N, index_t K) {
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const index_t by_work = static_cast<index_t>(flops / kMinTileFlops);
  const index_t by_size = std::max(M, N) / kAlign;
  // the machine's CPU count, not the affinity mask or the thread count: the tiling, and so the
  // bits of every product, stay the same under any affinity, quota or thread count
  const index_t by_cores = std::min<index_t>(machine_cpus(), 64);
  return std::max<index_t>(1, std::min({by_work, by_size, by_cores}));
}

template <class T>
void gemm(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, const T* B,
          index_t ldb, T beta, T* C, index_t ldc) {
  gemm_impl(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, GemmBlockHook{}, GemmBlockHook{});
}

template <class T>
void gemm(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, const T* B,
          index_t ldb, T beta, T* C, index_t ldc, const GemmBlockHook& before, const GemmBlockHook& after) {
  gemm_impl(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, before, after);
}

#define FASTNN_INSTANTIATE_GEMM(T)                                                                       \
  template void gemm<T>(bool, bool, index_t, index_t, index_t, T, const T*, index_t, const T*, index_t, T, \
                        T*, index_t);                                                                    \
  template void gemm<T>(bool, bool, index_t, index_t, index_t, T, const T*, index_t, const T*, index_t, T, \
                        T*, index_t, const GemmBlockHook&, const GemmBlockHook&);
FASTNN_INSTANTIATE_GEMM(float)
FASTNN_INSTANTIATE_GEMM(double)
#undef FASTNN_INSTANTIATE_GEMM

namespace ref {
template <class T>
void gemm(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
          const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      double acc = 0;
      for (index_t k = 0; k < K; ++k) {
        const T a = ta ? A[k * lda + i] : A[i * lda + k];
        const T b = tb ? B[j * ldb + k] : B[k * ldb + j];
        acc += double(a) * double(b);
      }
      C[i * ldc + j] = T(alpha * acc + (beta == T(0) ? 0.0 : double(beta) * C[i * ldc + j]));
    }
}
template void gemm<float>(bool, bool, index_t, index_t, index_t, float, const float*, index_t,
                          const float*, index_t, float, float*, index_t);
template void gemm<double>(bool, bool, index_t, index_t, index_t, double, const double*, index_t,
                           const double*, index_t, double, double*, index_t);
}  // namespace ref

}  // namespace fastnn
