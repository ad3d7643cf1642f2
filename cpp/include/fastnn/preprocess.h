// fastnn/preprocess.h — statistics and fused apply kernels for data preprocessing.
//
// Shapes (row-major, no padding):
//   x      (N, D)   data: float or double
//   mean, m2, min, max   (D,)   float64: column mean, sum of squared deviations from the mean
//                                (variance = m2 / N), smallest and largest value
//   G      (D, D)   float64 scatter matrix (X - mean)^T (X - mean) (covariance = G / (N - ddof))
//   out    (N, D) or (N, K)
//
// Statistics accumulate in float64 in one pass over the data, numerically sound when |mean| >> std:
// the rows are cut into tiles small enough to stay in cache; each tile's columns get an exact
// two-pass mean and m2 (the second pass reads the cache, not memory), and tiles are merged with
// Chan et al.'s pairwise update (mean_ab = mean_a + d n_b / n, m2_ab = m2_a + m2_b + d^2 n_a n_b / n,
// d = mean_b - mean_a). The naive E[x^2] - E[x]^2 loses every digit for data like 1e8 + N(0, 1);
// this keeps ~15. Rows are split into a fixed number of chunks that depends only on (N, D), never
// on the thread count, and chunks are merged in order: results are bitwise identical with 1
// thread and with N.
//
// Workspaces: kernels allocate nothing; the ones that need scratch memory take `work` of the
// size the matching *_workspace() function gives (in elements of the stated type).
#pragma once

#include <cstdint>

#include "fastnn/common.h"

namespace fastnn {

// ----------------------------------------------------------------------------------------------
// Statistics
// ----------------------------------------------------------------------------------------------

// Doubles of scratch column_stats needs for an (N, D) input.
index_t column_stats_workspace(index_t N, index_t D);

// Per-column mean, m2, min, max of x (N, D), N >= 1.
template <class T>
void column_stats(double* mean, double* m2, double* min, double* max, double* work, const T* x,
                  index_t N, index_t D);

// Doubles of scratch channel_stats needs.
index_t channel_stats_workspace(index_t N, index_t C, index_t S, bool nchw);

// Per-channel mean, m2, min, max (C each) of N images with C channels of S = H * W pixels:
// NHWC (x is (N, S, C), nchw = false) or NCHW (x is (N, C, S), nchw = true). m2 sums over all
// N * S values of a channel.
template <class T>
void channel_stats(double* mean, double* m2, double* min, double* max, double* work, const T* x,
                   index_t N, index_t C, index_t S, bool nchw);

// Doubles of scratch scatter_matrix needs.
index_t scatter_workspace(index_t N, index_t D);

// G (D, D) = (x - mean)^T (x - mean), both triangles, in float64: rows are centred in chunks
// (in float64, so no cancellation) and multiplied with fastnn's GEMM (blocks of the upper
// triangle only, then mirrored).
template <class T>
void scatter_matrix(double* G, double* work, const T* x, const double* mean, index_t N, index_t D);

// ----------------------------------------------------------------------------------------------
// Apply
// ----------------------------------------------------------------------------------------------

// Per column j, in float64 and rounded once to Tout:
//   inverse = false:  out = (x - shift[j]) * scale[j]
//   inverse = true:   out = x / scale[j] + shift[j]
// out may be x itself (in place) when Tin == Tout.
template <class Tin, class Tout>
void shift_scale(Tout* out, const Tin* x, const double* shift, const double* scale, index_t N,
                 index_t D, bool inverse);

// Elements of Tout scratch project needs.
index_t project_workspace(index_t N, index_t D);

// out (N, K) = (x - mean) @ W, W (D, K): chunks of rows are centred in float64 into `work`
// (rounded to Tout) and multiplied with fastnn's GEMM in Tout.
template <class Tin, class Tout>
void project(Tout* out, Tout* work, const Tin* x, const double* mean, const Tout* W, index_t N,
             index_t D, index_t K);

// out (N, D) = y @ V + mean, y (N, K), V (K, D) (the inverse of project for orthonormal rows).
template <class T>
void unproject(T* out, const T* y, const T* V, const double* mean, index_t N, index_t K, index_t D);

// ----------------------------------------------------------------------------------------------
// Row fingerprints
// ----------------------------------------------------------------------------------------------

// out[i] = a 64-bit hash of row i of x (N, D). Values are rounded to float32 first (with -0 read
// as +0 and every NaN as one NaN), so a row hashes the same as float32 or float64 data. Rows that
// differ in a single value never collide.
template <class T>
void row_hashes(std::uint64_t* out, const T* x, index_t N, index_t D);

namespace ref {
// Plain loops: two passes per column (channel) in float64; the same hash function.
template <class T>
void column_stats(double* mean, double* m2, double* min, double* max, const T* x, index_t N, index_t D);
template <class T>
void channel_stats(double* mean, double* m2, double* min, double* max, const T* x, index_t N,
                   index_t C, index_t S, bool nchw);
template <class T>
void scatter_matrix(double* G, const T* x, const double* mean, index_t N, index_t D);
template <class Tin, class Tout>
void shift_scale(Tout* out, const Tin* x, const double* shift, const double* scale, index_t N,
                 index_t D, bool inverse);
template <class Tin, class Tout>
void project(Tout* out, const Tin* x, const double* mean, const Tout* W, index_t N, index_t D,
             index_t K);
template <class T>
void unproject(T* out, const T* y, const T* V, const double* mean, index_t N, index_t K, index_t D);
template <class T>
void row_hashes(std::uint64_t* out, const T* x, index_t N, index_t D);
}  // namespace ref

}  // namespace fastnn
