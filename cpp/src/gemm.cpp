// BLAS GEMM wrapper with thread-count-independent tiling (see gemm.h).
#include "fastnn/gemm.h"

#include <algorithm>
#include <climits>

#include "blas_api.h"
#include "fastnn/threads.h"

namespace fastnn {

namespace {

constexpr double kMinTileFlops = 2.0e6;  // a slab is at least ~10 us of single-core work
constexpr index_t kAlign = 16;           // slab boundaries fall on multiples of 16 rows/columns

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

template <class T>
void gemm_impl(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
               const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  if (M == 0 || N == 0) return;
  if (gemm_threading() != GemmThreading::Tiles) {
    blas_call(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const index_t tiles = gemm_tiles(M, N, K);
  if (tiles == 1) {
    blas_call(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
        blas_call(ta, tb, hi - lo, N, K, alpha, a, lda, B, ldb, beta, C + lo * ldc, ldc);
      } else {
        const T* b = tb ? B + lo * ldb : B + lo;  // columns lo.. of op(B)
        blas_call(ta, tb, M, hi - lo, K, alpha, A, lda, b, ldb, beta, C + lo, ldc);
      }
    }
  }, 1);
}

}  // namespace

bool gemm_dims_ok(index_t M, index_t N, index_t K) {
  return M >= 0 && N >= 0 && K >= 0 && M <= INT_MAX && N <= INT_MAX && K <= INT_MAX;
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

template <>
void gemm<float>(bool ta, bool tb, index_t M, index_t N, index_t K, float alpha, const float* A,
                 index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc) {
  gemm_impl(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void gemm<double>(bool ta, bool tb, index_t M, index_t N, index_t K, double alpha, const double* A,
                  index_t lda, const double* B, index_t ldb, double beta, double* C, index_t ldc) {
  gemm_impl(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

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
