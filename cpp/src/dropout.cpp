// Inverted dropout with Philox masks (see dropout.h, rng.h).
#include "fastnn/dropout.h"

#include <cmath>

#include "fastnn/rng.h"
#include "fastnn/threads.h"

namespace fastnn {

namespace {

constexpr index_t kBlockElems = 256;  // random bits are made this many at a time, on the stack

// Random bits for elements [first, first + n): whole Philox blocks, vectorised across blocks.
FASTNN_INLINE void philox_body(std::uint32_t* FASTNN_RESTRICT out, std::uint64_t seed,
                               std::uint64_t stream, index_t first, index_t n) {
  index_t i = 0;
  // leading partial block
  while (i < n && ((first + i) & 3)) {
    std::uint32_t c[4];
    Philox4x32::generate(c, seed, stream, std::uint64_t(first + i) >> 2);
    out[i] = c[(first + i) & 3];
    ++i;
  }
  const index_t nblk = (n - i) >> 2;
  const std::uint64_t b0 = std::uint64_t(first + i) >> 2;
  std::uint32_t* o = out + i;
#pragma omp simd
  for (index_t b = 0; b < nblk; ++b) {
    std::uint32_t c[4];
    Philox4x32::generate(c, seed, stream, b0 + std::uint64_t(b));
    o[4 * b + 0] = c[0];
    o[4 * b + 1] = c[1];
    o[4 * b + 2] = c[2];
    o[4 * b + 3] = c[3];
  }
  i += nblk * 4;
  for (; i < n; ++i) {  // trailing partial block
    std::uint32_t c[4];
    Philox4x32::generate(c, seed, stream, std::uint64_t(first + i) >> 2);
    out[i] = c[(first + i) & 3];
  }
}

template <class T>
FASTNN_INLINE void dropout_fwd_body(T* FASTNN_RESTRICT y, std::uint8_t* FASTNN_RESTRICT mask,
                                    const T* FASTNN_RESTRICT x, index_t first, index_t n,
                                    std::uint64_t thr, T scale, std::uint64_t seed,
                                    std::uint64_t stream) {
  std::uint32_t bits[kBlockElems];
  for (index_t s = 0; s < n; s += kBlockElems) {
    const index_t m = std::min(kBlockElems, n - s);
    philox_body(bits, seed, stream, first + s, m);
    if (mask) {
#pragma omp simd
      for (index_t i = 0; i < m; ++i) {
        const bool keep = std::uint64_t(bits[i]) < thr;
        mask[s + i] = keep ? 1 : 0;
        y[s + i] = keep ? x[s + i] * scale : T(0);
      }
    } else {
#pragma omp simd
      for (index_t i = 0; i < m; ++i) y[s + i] = std::uint64_t(bits[i]) < thr ? x[s + i] * scale : T(0);
    }
  }
}

template <class T>
FASTNN_INLINE void dropout_bwd_body(T* FASTNN_RESTRICT dx, const T* FASTNN_RESTRICT dy,
                                    const std::uint8_t* FASTNN_RESTRICT mask, index_t n, T scale,
                                    bool acc) {
  if (acc) {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) dx[i] += mask[i] ? dy[i] * scale : T(0);
  } else {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) dx[i] = mask[i] ? dy[i] * scale : T(0);
  }
}

FASTNN_CLONES void philox_leaf(std::uint32_t* out, std::uint64_t seed, std::uint64_t stream,
                               index_t first, index_t n) {
  philox_body(out, seed, stream, first, n);
}
FASTNN_CLONES void mask_leaf(std::uint8_t* mask, index_t first, index_t n, std::uint64_t thr,
                             std::uint64_t seed, std::uint64_t stream) {
  std::uint32_t bits[kBlockElems];
  for (index_t s = 0; s < n; s += kBlockElems) {
    const index_t m = std::min(kBlockElems, n - s);
    philox_body(bits, seed, stream, first + s, m);
#pragma omp simd
    for (index_t i = 0; i < m; ++i) mask[s + i] = std::uint64_t(bits[i]) < thr ? 1 : 0;
  }
}
#define FASTNN_DROPOUT_LEAVES(T)                                                               \
  FASTNN_CLONES void dropout_fwd_leaf(T* y, std::uint8_t* mask, const T* x, index_t first,     \
                                      index_t n, std::uint64_t thr, T scale, std::uint64_t seed, \
                                      std::uint64_t stream) {                                  \
    dropout_fwd_body(y, mask, x, first, n, thr, scale, seed, stream);                          \
  }                                                                                            \
  FASTNN_CLONES void dropout_bwd_leaf(T* dx, const T* dy, const std::uint8_t* mask, index_t n, \
                                      T scale, bool acc) {                                     \
    dropout_bwd_body(dx, dy, mask, n, scale, acc);                                             \
  }
FASTNN_DROPOUT_LEAVES(float)
FASTNN_DROPOUT_LEAVES(double)
#undef FASTNN_DROPOUT_LEAVES

constexpr index_t kGrain = 8192;

}  // namespace

std::uint64_t dropout_threshold(double p) {
  if (!(p > 0.0)) return 0;
  if (p >= 1.0) return std::uint64_t(1) << 32;
  return static_cast<std::uint64_t>(std::llround(p * 4294967296.0));
}

void philox_uint32(std::uint32_t* out, std::uint64_t seed, std::uint64_t stream, index_t first,
                   index_t n) {
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    philox_leaf(out + lo, seed, stream, first + lo, hi - lo);
  });
}

void dropout_mask(std::uint8_t* mask, index_t n, double p, std::uint64_t seed, std::uint64_t stream) {
  const std::uint64_t thr = dropout_threshold(p);
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    mask_leaf(mask + lo, lo, hi - lo, thr, seed, stream);
  });
}

template <class T>
void dropout_forward(T* out, std::uint8_t* mask, const T* x, index_t n, double p,
                     std::uint64_t seed, std::uint64_t stream) {
  const std::uint64_t thr = dropout_threshold(p);
  const T scale = T(1.0 / p);
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    dropout_fwd_leaf(out + lo, mask ? mask + lo : nullptr, x + lo, lo, hi - lo, thr, scale, seed, stream);
  });
}

template <class T>
void dropout_backward(T* dx, const T* dout, const std::uint8_t* mask, index_t n, double p, bool acc) {
  const T scale = T(1.0 / p);
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    dropout_bwd_leaf(dx + lo, dout + lo, mask + lo, hi - lo, scale, acc);
  });
}

namespace ref {
template <class T>
void dropout_forward(T* out, std::uint8_t* mask, const T* x, index_t n, double p,
                     std::uint64_t seed, std::uint64_t stream) {
  const std::uint64_t thr = dropout_threshold(p);
  for (index_t i = 0; i < n; ++i) {
    std::uint32_t c[4];
    Philox4x32::generate(c, seed, stream, std::uint64_t(i) / 4);
    const bool keep = std::uint64_t(c[i % 4]) < thr;
    if (mask) mask[i] = keep;
    out[i] = keep ? T(x[i] * T(1.0 / p)) : T(0);
  }
}
template <class T>
void dropout_backward(T* dx, const T* dout, const std::uint8_t* mask, index_t n, double p, bool acc) {
  for (index_t i = 0; i < n; ++i) {
    const T v = mask[i] ? T(dout[i] * T(1.0 / p)) : T(0);
    dx[i] = acc ? dx[i] + v : v;
  }
}
}  // namespace ref
}  // namespace fastnn

using fastnn::index_t;
#define FASTNN_INSTANTIATE_DROPOUT(NS, T)                                                       \
  template void NS::dropout_forward<T>(T*, std::uint8_t*, const T*, index_t, double,            \
                                       std::uint64_t, std::uint64_t);                            \
  template void NS::dropout_backward<T>(T*, const T*, const std::uint8_t*, index_t, double, bool);
FASTNN_INSTANTIATE_DROPOUT(fastnn, float)
FASTNN_INSTANTIATE_DROPOUT(fastnn, double)
FASTNN_INSTANTIATE_DROPOUT(fastnn::ref, float)
FASTNN_INSTANTIATE_DROPOUT(fastnn::ref, double)
