// Preprocessing statistics and apply kernels (see preprocess.h).
#include "fastnn/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fastnn/gemm.h"
#include "fastnn/isa.h"
#include "fastnn/threads.h"

namespace fastnn {

namespace {

constexpr index_t kTileBytes = 131072;  // a row tile stays in L2 for the second pass
constexpr index_t kMaxBlock = 2048;     // widest column block
constexpr index_t kAcc = 6;             // doubles of accumulators and scratch per column and chunk
constexpr index_t kMaxChunks = 64;   // row chunks, fixed by (N, D)
constexpr index_t kRun = 4096;       // longest run of one NCHW channel given an exact two-pass

// Number of row chunks for an (N, D) reduction: a function of N and D only.
index_t stats_chunks(index_t N, index_t D) {
  D = std::max<index_t>(1, D);
  const index_t min_rows = std::max<index_t>(64, 32768 / D);
  const index_t k = std::min<index_t>(kMaxChunks, std::max<index_t>(1, N / min_rows));
  const index_t cap = std::max<index_t>(1, (index_t(1) << 22) / (kAcc * D));  // <= 32 MiB of scratch
  return std::min(k, cap);
}

// Chan et al.: fold (nb, mean_b, m2_b) into (na, mean_a, m2_a).
FASTNN_INLINE void chan_merge(double& mean_a, double& m2_a, double na, double mean_b, double m2_b,
                              double nb) {
  const double n = na + nb, d = mean_b - mean_a;
  mean_a += d * (nb / n);
  m2_a += m2_b + d * d * (na * nb / n);
}

// One tile of R rows x w columns of x (row stride ld), folded into the running accumulators of
// `n_before` rows: an exact two-pass mean and m2 per column of the shifted data x - k0 (k0: the
// first row of the whole input, so every mean lives in the same small-magnitude coordinates and
// differences of means cancel nothing), min and max. The rows are read in order (streaming); the
// second pass re-reads the tile from cache. s and q are scratch (w each).
template <class T>
FASTNN_INLINE void tile_body(double* FASTNN_RESTRICT mean, double* FASTNN_RESTRICT m2,
                             double* FASTNN_RESTRICT mn, double* FASTNN_RESTRICT mx,
                             double* FASTNN_RESTRICT s, double* FASTNN_RESTRICT q, index_t n_before,
                             const T* FASTNN_RESTRICT x, const T* FASTNN_RESTRICT k0, index_t R,
                             index_t w, index_t ld) {
  if (n_before == 0) {
#pragma omp simd
    for (index_t j = 0; j < w; ++j) mn[j] = mx[j] = double(x[j]);
  }
#pragma omp simd
  for (index_t j = 0; j < w; ++j) s[j] = 0.0;
  // four rows per sweep: one load and store of each accumulator per four values
  index_t r = 0;
  for (; r + 4 <= R; r += 4) {
    const T* x0 = x + r * ld;
    const T* x1 = x0 + ld;
    const T* x2 = x1 + ld;
    const T* x3 = x2 + ld;
#pragma omp simd
    for (index_t j = 0; j < w; ++j) {
      const double k = double(k0[j]);
      const double v0 = double(x0[j]), v1 = double(x1[j]), v2 = double(x2[j]), v3 = double(x3[j]);
      s[j] += ((v0 - k) + (v1 - k)) + ((v2 - k) + (v3 - k));
      const double lo01 = v1 < v0 ? v1 : v0, lo23 = v3 < v2 ? v3 : v2;
      const double hi01 = v1 > v0 ? v1 : v0, hi23 = v3 > v2 ? v3 : v2;
      const double lo = lo23 < lo01 ? lo23 : lo01, hi = hi23 > hi01 ? hi23 : hi01;
      mn[j] = lo < mn[j] ? lo : mn[j];
      mx[j] = hi > mx[j] ? hi : mx[j];
    }
  }
  for (; r < R; ++r) {
    const T* xr = x + r * ld;
#pragma omp simd
    for (index_t j = 0; j < w; ++j) {
      const double v = double(xr[j]);
      s[j] += v - double(k0[j]);
      mn[j] = v < mn[j] ? v : mn[j];
      mx[j] = v > mx[j] ? v : mx[j];
    }
  }
  const double inv_r = 1.0 / double(R);
#pragma omp simd
  for (index_t j = 0; j < w; ++j) {
    s[j] *= inv_r;  // the tile's shifted mean
    q[j] = 0.0;
  }
  for (r = 0; r + 4 <= R; r += 4) {
    const T* x0 = x + r * ld;
    const T* x1 = x0 + ld;
    const T* x2 = x1 + ld;
    const T* x3 = x2 + ld;
#pragma omp simd
    for (index_t j = 0; j < w; ++j) {
      const double d0 = (double(x0[j]) - double(k0[j])) - s[j], d1 = (double(x1[j]) - double(k0[j])) - s[j];
      const double d2 = (double(x2[j]) - double(k0[j])) - s[j], d3 = (double(x3[j]) - double(k0[j])) - s[j];
      q[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
    }
  }
  for (; r < R; ++r) {
    const T* xr = x + r * ld;
#pragma omp simd
    for (index_t j = 0; j < w; ++j) {
      const double d = (double(xr[j]) - double(k0[j])) - s[j];
      q[j] += d * d;
    }
  }
  if (n_before == 0) {
#pragma omp simd
    for (index_t j = 0; j < w; ++j) {
      mean[j] = s[j];
      m2[j] = q[j];
    }
    return;
  }
  const double na = double(n_before), nb = double(R), n = na + nb;
  const double fb = nb / n, fab = na * nb / n;
#pragma omp simd
  for (index_t j = 0; j < w; ++j) {
    const double d = s[j] - mean[j];
    mean[j] += d * fb;
    m2[j] += q[j] + d * d * fab;
  }
}

// Moments of `rows` rows of x (N', D) into acc = [mean D | m2 D | min D | max D | scratch 2 D]
// (means of x - k0): column blocks of at most kMaxBlock, each streamed in row tiles that fit in L2.
template <class T>
FASTNN_INLINE void stats_chunk_body(double* acc, const T* x, const T* k0, index_t rows, index_t D) {
  double* mean = acc;
  double* m2 = acc + D;
  double* mn = acc + 2 * D;
  double* mx = acc + 3 * D;
  double* s = acc + 4 * D;
  double* q = acc + 5 * D;
  for (index_t c0 = 0; c0 < D; c0 += kMaxBlock) {
    const index_t w = std::min(kMaxBlock, D - c0);
    const index_t R = std::clamp<index_t>(kTileBytes / (w * index_t(sizeof(T))), 16, 512);
    for (index_t r0 = 0; r0 < rows; r0 += R)
      tile_body(mean + c0, m2 + c0, mn + c0, mx + c0, s + c0, q + c0, r0, x + r0 * D + c0, k0 + c0,
                std::min(R, rows - r0), w, D);
  }
}

// Exact two-pass moments of one contiguous run of L values, shifted by k0 (mean of x - k0).
template <class T>
FASTNN_INLINE void run_body(double* out4, const T* FASTNN_RESTRICT x, double k0, index_t L) {
  double s = 0;
  T lo = x[0], hi = x[0];
#pragma omp simd reduction(+ : s) reduction(min : lo) reduction(max : hi)
  for (index_t i = 0; i < L; ++i) {
    s += double(x[i]) - k0;
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  const double mu = s / double(L);
  double q = 0;
#pragma omp simd reduction(+ : q)
  for (index_t i = 0; i < L; ++i) {
    const double d = (double(x[i]) - k0) - mu;
    q += d * d;
  }
  out4[0] = mu;
  out4[1] = q;
  out4[2] = double(lo);
  out4[3] = double(hi);
}

// NCHW: images [0, n) of x (n, C, S) into acc = [mean C | m2 C | min C | max C] (means of the
// values minus k0[c]).
template <class T>
FASTNN_INLINE void nchw_chunk_body(double* acc, const T* x, const T* k0, index_t n, index_t C, index_t S) {
  for (index_t i = 0; i < n; ++i) {
    for (index_t c = 0; c < C; ++c) {
      const T* run = x + (i * C + c) * S;
      const double kc = double(k0[c * S]);
      double r[4];
      run_body(r, run, kc, std::min(S, kRun));
      for (index_t p = kRun; p < S; p += kRun) {  // long runs: exact pieces, merged
        const index_t L = std::min(kRun, S - p);
        double t[4];
        run_body(t, run + p, kc, L);
        chan_merge(r[0], r[1], double(p), t[0], t[1], double(L));
        r[2] = std::min(r[2], t[2]);
        r[3] = std::max(r[3], t[3]);
      }
      if (i == 0) {
        acc[c] = r[0];
        acc[C + c] = r[1];
        acc[2 * C + c] = r[2];
        acc[3 * C + c] = r[3];
      } else {
        chan_merge(acc[c], acc[C + c], double(i * S), r[0], r[1], double(S));
        acc[2 * C + c] = std::min(acc[2 * C + c], r[2]);
        acc[3 * C + c] = std::max(acc[3 * C + c], r[3]);
      }
    }
  }
}

// out = (x - shift) * scale or x / scale + shift, per column.
template <class Tin, class Tout>
FASTNN_INLINE void shift_scale_body(Tout* out, const Tin* x, const double* FASTNN_RESTRICT sh,
                                    const double* FASTNN_RESTRICT sc, index_t rows, index_t D,
                                    bool inverse) {
  for (index_t r = 0; r < rows; ++r) {
    const Tin* xr = x + r * D;
    Tout* o = out + r * D;
    if (!inverse) {
#pragma omp simd
      for (index_t j = 0; j < D; ++j) o[j] = Tout((double(xr[j]) - sh[j]) * sc[j]);
    } else {
#pragma omp simd
      for (index_t j = 0; j < D; ++j) o[j] = Tout(double(xr[j]) / sc[j] + sh[j]);
    }
  }
}

// rows of x, centred in float64, rounded to Tout.
template <class Tin, class Tout>
FASTNN_INLINE void centre_body(Tout* FASTNN_RESTRICT out, const Tin* FASTNN_RESTRICT x,
                               const double* FASTNN_RESTRICT mean, index_t rows, index_t D) {
  for (index_t r = 0; r < rows; ++r) {
    const Tin* xr = x + r * D;
    Tout* o = out + r * D;
#pragma omp simd
    for (index_t j = 0; j < D; ++j) o[j] = Tout(double(xr[j]) - mean[j]);
  }
}

// ---- row hashes -------------------------------------------------------------------------------
FASTNN_INLINE std::uint32_t canon_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if (u == 0x80000000u) u = 0;                                                  // -0 -> +0
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu) != 0) u = 0x7FC00000u;  // one NaN
  return u;
}

FASTNN_INLINE std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Two position-keyed 32-bit mixes per value, each a bijection of the value (xor or add a key,
// multiply by an odd constant, xorshift), summed over the row; splitmix64 of the two sums.
FASTNN_INLINE std::uint32_t mix_a(std::uint32_t u, std::uint32_t j) {
  std::uint32_t a = (u ^ (j * 0x9E3779B1u + 0x7F4A7C15u)) * 0xCC9E2D51u;
  return a ^ (a >> 16);
}
FASTNN_INLINE std::uint32_t mix_b(std::uint32_t u, std::uint32_t j) {
  std::uint32_t b = (u + (j * 0x85EBCA77u + 0xC2B2AE3Du)) * 0x27D4EB2Fu;
  return b ^ (b >> 15);
}
FASTNN_INLINE std::uint64_t finish_hash(std::uint32_t sa, std::uint32_t sb, index_t D) {
  const std::uint64_t h = (std::uint64_t(sa) << 32) | std::uint64_t(sb);
  return splitmix64(h ^ (std::uint64_t(D) * 0xD6E8FEB86659FD93ull));
}

template <class T>
FASTNN_INLINE std::uint64_t hash_row(const T* FASTNN_RESTRICT x, index_t D) {
  std::uint32_t sa = 0, sb = 0;
#pragma omp simd reduction(+ : sa, sb)
  for (index_t j = 0; j < D; ++j) {
    const std::uint32_t u = canon_bits(float(x[j]));
    sa += mix_a(u, std::uint32_t(j));
    sb += mix_b(u, std::uint32_t(j));
  }
  return finish_hash(sa, sb, D);
}

#define FASTNN_PRE_LEAVES(T)                                                                      \
  FASTNN_LEAF void stats_chunk_leaf(double* acc, const T* x, const T* k0, index_t rows,          \
                                      index_t D) {                                                \
    stats_chunk_body(acc, x, k0, rows, D);                                                        \
  }                                                                                               \
  FASTNN_LEAF void nchw_chunk_leaf(double* acc, const T* x, const T* k0, index_t n, index_t C,    \
                                     index_t S) {                                                 \
    nchw_chunk_body(acc, x, k0, n, C, S);                                                         \
  }                                                                                               \
  FASTNN_LEAF void hash_rows_leaf(std::uint64_t* out, const T* x, index_t rows, index_t D) {      \
    for (index_t r = 0; r < rows; ++r) out[r] = hash_row(x + r * D, D);                           \
  }
FASTNN_ISA_PASSES(FASTNN_PRE_LEAVES(float) FASTNN_PRE_LEAVES(double))
#undef FASTNN_PRE_LEAVES

#define FASTNN_APPLY_LEAVES(Tin, Tout)                                                            \
  FASTNN_LEAF void shift_scale_leaf(Tout* out, const Tin* x, const double* sh, const double* sc,   \
                                      index_t rows, index_t D, bool inverse) {                    \
    shift_scale_body(out, x, sh, sc, rows, D, inverse);                                           \
  }                                                                                               \
  FASTNN_LEAF void centre_leaf(Tout* out, const Tin* x, const double* mean, index_t rows,         \
                                 index_t D) {                                                     \
    centre_body(out, x, mean, rows, D);                                                           \
  }
FASTNN_ISA_PASSES(FASTNN_APPLY_LEAVES(float, float) FASTNN_APPLY_LEAVES(float, double)
                  FASTNN_APPLY_LEAVES(double, float) FASTNN_APPLY_LEAVES(double, double))
#undef FASTNN_APPLY_LEAVES

// Merge K chunk accumulators (layout [mean | m2 | min | max ...], width D, chunk c at work + c stride
// holding rows(c) rows, means shifted by shift(j)) into the outputs, in chunk order; the shift is
// added back last.
template <class Rows, class Shift>
void merge_chunks(double* mean, double* m2, double* mn, double* mx, const double* work, index_t K,
                  index_t D, index_t stride, Rows rows, Shift shift) {
  parallel_for(D, 4096, [&](index_t j0, index_t j1) {
    for (index_t j = j0; j < j1; ++j) {
      double mu = work[j], q = work[D + j], lo = work[2 * D + j], hi = work[3 * D + j];
      double n = double(rows(0));
      for (index_t c = 1; c < K; ++c) {
        const double* a = work + c * stride;
        const double nb = double(rows(c));
        if (nb == 0) continue;
        chan_merge(mu, q, n, a[j], a[D + j], nb);
        n += nb;
        lo = std::min(lo, a[2 * D + j]);
        hi = std::max(hi, a[3 * D + j]);
      }
      mean[j] = shift(j) + mu;
      m2[j] = q;
      mn[j] = lo;
      mx[j] = hi;
    }
  });
}

// NHWC: read (N, S, C) as (N * S / k, k * C) with k a divisor of S, k * C <= 256 where possible.
index_t nhwc_group(index_t C, index_t S) {
  index_t best = 1;
  for (index_t k = 1; k <= S && k * C <= 256; ++k)
    if (S % k == 0) best = k;
  return best;
}

}  // namespace

// ----------------------------------------------------------------------------------------------
index_t column_stats_workspace(index_t N, index_t D) { return kAcc * D * stats_chunks(N, D); }

template <class T>
void column_stats(double* mean, double* m2, double* mn, double* mx, double* work, const T* x, index_t N,
                  index_t D) {
  if (N <= 0 || D <= 0) return;
  const index_t K = stats_chunks(N, D);
  auto lo = [&](index_t c) { return N * c / K; };
  parallel_for(K, 1, [&](index_t c0, index_t c1) {
    for (index_t c = c0; c < c1; ++c)
      FASTNN_SIMD_CALL(stats_chunk_leaf, work + c * kAcc * D, x + lo(c) * D, x, lo(c + 1) - lo(c), D);
  }, 1);
  merge_chunks(mean, m2, mn, mx, work, K, D, kAcc * D, [&](index_t c) { return lo(c + 1) - lo(c); },
               [&](index_t j) { return double(x[j]); });
}

index_t channel_stats_workspace(index_t N, index_t C, index_t S, bool nchw) {
  if (nchw) return 4 * C * stats_chunks(N, C * S);
  const index_t k = nhwc_group(C, S);
  return 4 * k * C + column_stats_workspace(N * (S / k), k * C);
}

template <class T>
void channel_stats(double* mean, double* m2, double* mn, double* mx, double* work, const T* x, index_t N,
                   index_t C, index_t S, bool nchw) {
  if (N <= 0 || C <= 0 || S <= 0) return;
  if (!nchw) {
    const index_t k = nhwc_group(C, S), L = k * C, rows = N * (S / k);
    double* cs = work;  // column stats of the (rows, L) view
    column_stats(cs, cs + L, cs + 2 * L, cs + 3 * L, work + 4 * L, x, rows, L);
    // fold the k pixel groups of each channel: equal counts, so the means average exactly
    const double M = double(rows);
    for (index_t c = 0; c < C; ++c) {
      double s = 0, lo = cs[2 * L + c], hi = cs[3 * L + c];
      for (index_t i = 0; i < k; ++i) s += cs[i * C + c];
      const double mu = s / double(k);
      double q = 0, between = 0;
      for (index_t i = 0; i < k; ++i) {
        const index_t j = i * C + c;
        q += cs[L + j];
        const double d = cs[j] - mu;
        between += d * d;
        lo = std::min(lo, cs[2 * L + j]);
        hi = std::max(hi, cs[3 * L + j]);
      }
      mean[c] = mu;
      m2[c] = q + M * between;
      mn[c] = lo;
      mx[c] = hi;
    }
    return;
  }
  const index_t K = stats_chunks(N, C * S);
  auto lo = [&](index_t c) { return N * c / K; };
  parallel_for(K, 1, [&](index_t c0, index_t c1) {
    for (index_t c = c0; c < c1; ++c)
      FASTNN_SIMD_CALL(nchw_chunk_leaf, work + c * 4 * C, x + lo(c) * C * S, x, lo(c + 1) - lo(c), C, S);
  }, 1);
  merge_chunks(mean, m2, mn, mx, work, K, C, 4 * C, [&](index_t c) { return (lo(c + 1) - lo(c)) * S; },
               [&](index_t c) { return double(x[c * S]); });
}

// ----------------------------------------------------------------------------------------------
namespace {
index_t scatter_rows(index_t N, index_t D) {
  return std::min(N, std::clamp<index_t>(131072 / std::max<index_t>(1, D), 64, 4096));
}
}  // namespace

index_t scatter_workspace(index_t N, index_t D) { return scatter_rows(N, D) * D; }

template <class T>
void scatter_matrix(double* G, double* work, const T* x, const double* mean, index_t N, index_t D) {
  if (D <= 0) return;
  if (N <= 0) {
    std::fill(G, G + D * D, 0.0);
    return;
  }
  const index_t B = scatter_rows(N, D);
  const index_t nb = std::clamp<index_t>(D / 64, 1, 16);  // flops: (nb + 1) / (2 nb) of a full GEMM
  auto bound = [&](index_t b) { return b >= nb ? D : (D * b / nb) / 16 * 16; };
  for (index_t r0 = 0; r0 < N; r0 += B) {
    const index_t rows = std::min(B, N - r0);
    parallel_for(rows, std::max<index_t>(1, 16384 / D), [&](index_t a, index_t b) {
      FASTNN_SIMD_CALL(centre_leaf, work + a * D, x + (r0 + a) * D, mean, b - a, D);
    }, 1);
    const double beta = r0 == 0 ? 0.0 : 1.0;
    for (index_t b = 0; b < nb; ++b) {  // G[0:j1, j0:j1] += A[:, 0:j1]^T A[:, j0:j1]
      const index_t j0 = bound(b), j1 = bound(b + 1);
      if (j1 <= j0) continue;
      gemm<double>(true, false, j1, j1 - j0, rows, 1.0, work, D, work + j0, D, beta, G + j0, D);
    }
  }
  parallel_for(D, 64, [&](index_t i0, index_t i1) {
    for (index_t i = i0; i < i1; ++i)
      for (index_t j = 0; j < i; ++j) G[i * D + j] = G[j * D + i];
  }, 1);
}

// ----------------------------------------------------------------------------------------------
template <class Tin, class Tout>
void shift_scale(Tout* out, const Tin* x, const double* shift, const double* scale, index_t N, index_t D,
                 bool inverse) {
  if (N <= 0 || D <= 0) return;
  parallel_for(N, std::max<index_t>(1, 32768 / D), [&](index_t a, index_t b) {
    FASTNN_SIMD_CALL(shift_scale_leaf, out + a * D, x + a * D, shift, scale, b - a, D, inverse);
  }, 1);
}

namespace {
index_t project_rows(index_t N, index_t D) {
  return std::min(N, std::clamp<index_t>((index_t(1) << 20) / std::max<index_t>(1, D), 16, 8192));
}
}  // namespace

index_t project_workspace(index_t N, index_t D) { return std::max<index_t>(1, project_rows(N, D)) * D; }

template <class Tin, class Tout>
void project(Tout* out, Tout* work, const Tin* x, const double* mean, const Tout* W, index_t N, index_t D,
             index_t K) {
  if (N <= 0 || K <= 0) return;
  if (D <= 0) {
    std::fill(out, out + N * K, Tout(0));
    return;
  }
  const index_t B = project_rows(N, D);
  for (index_t r0 = 0; r0 < N; r0 += B) {
    const index_t rows = std::min(B, N - r0);
    parallel_for(rows, std::max<index_t>(1, 16384 / D), [&](index_t a, index_t b) {
      FASTNN_SIMD_CALL(centre_leaf, work + a * D, x + (r0 + a) * D, mean, b - a, D);
    }, 1);
    gemm<Tout>(false, false, rows, K, D, Tout(1), work, D, W, K, Tout(0), out + r0 * K, K);
  }
}

template <class T>
void unproject(T* out, const T* y, const T* V, const double* mean, index_t N, index_t K, index_t D) {
  if (N <= 0 || D <= 0) return;
  if (K > 0) {
    gemm<T>(false, false, N, D, K, T(1), y, K, V, D, T(0), out, D);
  } else {
    std::fill(out, out + N * D, T(0));
  }
  parallel_for(N, std::max<index_t>(1, 32768 / D), [&](index_t a, index_t b) {
    for (index_t r = a; r < b; ++r) {
      T* o = out + r * D;
#pragma omp simd
      for (index_t j = 0; j < D; ++j) o[j] = T(double(o[j]) + mean[j]);
    }
  }, 1);
}

template <class T>
void row_hashes(std::uint64_t* out, const T* x, index_t N, index_t D) {
  if (N <= 0) return;
  parallel_for(N, std::max<index_t>(1, 32768 / std::max<index_t>(1, D)), [&](index_t a, index_t b) {
    FASTNN_SIMD_CALL(hash_rows_leaf, out + a, x + a * D, b - a, D);
  }, 1);
}

// ----------------------------------------------------------------------------------------------
// Scalar references
// ----------------------------------------------------------------------------------------------
namespace ref {

template <class T>
void channel_stats(double* mean, double* m2, double* mn, double* mx, const T* x, index_t N, index_t C,
                   index_t S, bool nchw) {
  auto at = [&](index_t n, index_t c, index_t s) {
    return double(nchw ? x[(n * C + c) * S + s] : x[(n * S + s) * C + c]);
  };
  for (index_t c = 0; c < C; ++c) {
    double sum = 0, lo = at(0, c, 0), hi = lo;
    for (index_t n = 0; n < N; ++n)
      for (index_t s = 0; s < S; ++s) {
        const double v = at(n, c, s);
        sum += v;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
    const double mu = sum / (double(N) * double(S));
    double q = 0;
    for (index_t n = 0; n < N; ++n)
      for (index_t s = 0; s < S; ++s) {
        const double d = at(n, c, s) - mu;
        q += d * d;
      }
    mean[c] = mu;
    m2[c] = q;
    mn[c] = lo;
    mx[c] = hi;
  }
}

// The columns of x (N, D) are the channels of N one-pixel images.
template <class T>
void column_stats(double* mean, double* m2, double* mn, double* mx, const T* x, index_t N, index_t D) {
  channel_stats(mean, m2, mn, mx, x, N, D, 1, false);
}

template <class T>
void scatter_matrix(double* G, const T* x, const double* mean, index_t N, index_t D) {
  for (index_t i = 0; i < D; ++i)
    for (index_t j = 0; j < D; ++j) {
      double s = 0;
      for (index_t r = 0; r < N; ++r) s += (double(x[r * D + i]) - mean[i]) * (double(x[r * D + j]) - mean[j]);
      G[i * D + j] = s;
    }
}

template <class Tin, class Tout>
void shift_scale(Tout* out, const Tin* x, const double* shift, const double* scale, index_t N, index_t D,
                 bool inverse) {
  for (index_t r = 0; r < N; ++r)
    for (index_t j = 0; j < D; ++j) {
      const double v = double(x[r * D + j]);
      out[r * D + j] = Tout(inverse ? v / scale[j] + shift[j] : (v - shift[j]) * scale[j]);
    }
}

template <class Tin, class Tout>
void project(Tout* out, const Tin* x, const double* mean, const Tout* W, index_t N, index_t D, index_t K) {
  for (index_t r = 0; r < N; ++r)
    for (index_t k = 0; k < K; ++k) {
      double s = 0;
      for (index_t j = 0; j < D; ++j) s += double(Tout(double(x[r * D + j]) - mean[j])) * double(W[j * K + k]);
      out[r * K + k] = Tout(s);
    }
}

template <class T>
void unproject(T* out, const T* y, const T* V, const double* mean, index_t N, index_t K, index_t D) {
  for (index_t r = 0; r < N; ++r)
    for (index_t j = 0; j < D; ++j) {
      double s = 0;
      for (index_t k = 0; k < K; ++k) s += double(y[r * K + k]) * double(V[k * D + j]);
      out[r * D + j] = T(double(T(s)) + mean[j]);
    }
}

template <class T>
void row_hashes(std::uint64_t* out, const T* x, index_t N, index_t D) {
  for (index_t r = 0; r < N; ++r) {
    std::uint32_t sa = 0, sb = 0;
    for (index_t j = 0; j < D; ++j) {
      const std::uint32_t u = canon_bits(float(x[r * D + j]));
      sa += mix_a(u, std::uint32_t(j));
      sb += mix_b(u, std::uint32_t(j));
    }
    out[r] = finish_hash(sa, sb, D);
  }
}

}  // namespace ref

}  // namespace fastnn

// ----------------------------------------------------------------------------------------------
// Instantiations
// ----------------------------------------------------------------------------------------------
using fastnn::index_t;
#define FASTNN_PRE_INST(T)                                                                              \
  template void fastnn::column_stats<T>(double*, double*, double*, double*, double*, const T*, index_t,  \
                                        index_t);                                                        \
  template void fastnn::channel_stats<T>(double*, double*, double*, double*, double*, const T*, index_t, \
                                         index_t, index_t, bool);                                        \
  template void fastnn::scatter_matrix<T>(double*, double*, const T*, const double*, index_t, index_t);  \
  template void fastnn::unproject<T>(T*, const T*, const T*, const double*, index_t, index_t, index_t);  \
  template void fastnn::row_hashes<T>(std::uint64_t*, const T*, index_t, index_t);                      \
  template void fastnn::ref::column_stats<T>(double*, double*, double*, double*, const T*, index_t,      \
                                             index_t);                                                   \
  template void fastnn::ref::channel_stats<T>(double*, double*, double*, double*, const T*, index_t,     \
                                              index_t, index_t, bool);                                   \
  template void fastnn::ref::scatter_matrix<T>(double*, const T*, const double*, index_t, index_t);      \
  template void fastnn::ref::unproject<T>(T*, const T*, const T*, const double*, index_t, index_t,       \
                                          index_t);                                                      \
  template void fastnn::ref::row_hashes<T>(std::uint64_t*, const T*, index_t, index_t);
FASTNN_PRE_INST(float)
FASTNN_PRE_INST(double)
#undef FASTNN_PRE_INST

#define FASTNN_APPLY_INST(Tin, Tout)                                                                  \
  template void fastnn::shift_scale<Tin, Tout>(Tout*, const Tin*, const double*, const double*,       \
                                               index_t, index_t, bool);                               \
  template void fastnn::project<Tin, Tout>(Tout*, Tout*, const Tin*, const double*, const Tout*,      \
                                           index_t, index_t, index_t);                                \
  template void fastnn::ref::shift_scale<Tin, Tout>(Tout*, const Tin*, const double*, const double*,  \
                                                    index_t, index_t, bool);                          \
  template void fastnn::ref::project<Tin, Tout>(Tout*, const Tin*, const double*, const Tout*,        \
                                                index_t, index_t, index_t);
FASTNN_APPLY_INST(float, float)
FASTNN_APPLY_INST(float, double)
FASTNN_APPLY_INST(double, float)
FASTNN_APPLY_INST(double, double)
#undef FASTNN_APPLY_INST
