// Inverted dropout with Philox masks (see dropout.h, rng.h).
#include "fastnn/dropout.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fastnn/rng.h"
#include "fastnn/isa.h"
#include "fastnn/threads.h"

namespace fastnn {

namespace {

constexpr index_t kGrain = 8192;

// kByteMask[b] holds 8 bytes, byte k = bit k of b: keep bits -> mask bytes, eight at a time.
struct ByteMaskTable {
  std::uint64_t v[256];
  constexpr ByteMaskTable() : v() {
    for (int b = 0; b < 256; ++b) {
      std::uint64_t m = 0;
      for (int k = 0; k < 8; ++k)
        if (b & (1 << k)) m |= std::uint64_t(1) << (8 * k);
      v[b] = m;
    }
  }
};
constexpr ByteMaskTable kByteMask;

// Apply one 64-element group's keep bits to elements [e0, e1) of the group (e relative to it).
template <class T>
FASTNN_INLINE void apply_group(T* FASTNN_RESTRICT y, std::uint8_t* FASTNN_RESTRICT mask,
                               const T* FASTNN_RESTRICT x, std::uint64_t bits, index_t e0,
                               index_t e1, T scale) {
  alignas(64) std::uint8_t m[64];
  for (int k = 0; k < 8; ++k) std::memcpy(m + 8 * k, &kByteMask.v[(bits >> (8 * k)) & 0xFF], 8);
  if (mask) std::memcpy(mask + e0, m + e0, std::size_t(e1 - e0));
#pragma omp simd
  for (index_t e = e0; e < e1; ++e) y[e] = m[e] ? x[e] * scale : T(0);
}

// Elements [first, first + n) of the stream; y, mask, x point at element `first`.
template <class T>
FASTNN_INLINE void dropout_fwd_body(T* FASTNN_RESTRICT y, std::uint8_t* FASTNN_RESTRICT mask,
                                    const T* FASTNN_RESTRICT x, index_t first, index_t n,
                                    std::uint64_t thr, T scale, std::uint64_t seed,
                                    std::uint64_t stream) {
  if (n <= 0) return;
  const index_t last = first + n;  // exclusive
  for (index_t g = first / 64; g * 64 < last; ++g) {
    const std::uint64_t bits = philox_keep_bits64(seed, stream, std::uint64_t(g), thr);
    const index_t base = g * 64;  // element index of the group's start
    const index_t e0 = std::max(first, base) - base, e1 = std::min(last, base + 64) - base;
    const index_t off = base - first;  // group start relative to y/x/mask
    apply_group(y + off, mask ? mask + off : nullptr, x + off, bits, e0, e1, scale);
  }
}

FASTNN_INLINE void mask_body(std::uint8_t* mask, index_t first, index_t n, std::uint64_t thr,
                             std::uint64_t seed, std::uint64_t stream) {
  const index_t last = first + n;
  for (index_t g = first / 64; g * 64 < last; ++g) {
    const std::uint64_t bits = philox_keep_bits64(seed, stream, std::uint64_t(g), thr);
    const index_t base = g * 64, off = base - first;
    const index_t e0 = std::max(first, base) - base, e1 = std::min(last, base + 64) - base;
    for (index_t e = e0; e < e1; ++e) mask[off + e] = (bits >> e) & 1u;
  }
}

template <class T>
FASTNN_INLINE void dropout_bwd_body(T* FASTNN_RESTRICT dx, const T* FASTNN_RESTRICT dy,
                                    const std::uint8_t* FASTNN_RESTRICT mask, index_t n, T scale,
                                    bool acc) {
  // dy[i] is read unconditionally (see relu_bwd_body): the baseline clone vectorises
  if (acc) {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) {
      const T g = dy[i] * scale;
      dx[i] += mask[i] ? g : T(0);
    }
  } else {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) {
      const T g = dy[i] * scale;
      dx[i] = mask[i] ? g : T(0);
    }
  }
}

#define FASTNN_DROPOUT_LEAVES(T)                                                               \
  FASTNN_LEAF void dropout_fwd_leaf(T* y, std::uint8_t* mask, const T* x, index_t first,       \
                                      index_t n, std::uint64_t thr, T scale, std::uint64_t seed, \
                                      std::uint64_t stream) {                                  \
    dropout_fwd_body(y, mask, x, first, n, thr, scale, seed, stream);                          \
  }                                                                                            \
  FASTNN_LEAF void dropout_bwd_leaf(T* dx, const T* dy, const std::uint8_t* mask, index_t n,   \
                                      T scale, bool acc) {                                     \
    dropout_bwd_body(dx, dy, mask, n, scale, acc);                                             \
  }
FASTNN_ISA_PASSES(
    FASTNN_LEAF void mask_leaf(std::uint8_t* mask, index_t first, index_t n, std::uint64_t thr, std::uint64_t seed,
                   std::uint64_t stream) { mask_body(mask, first, n, thr, seed, stream); }
    FASTNN_DROPOUT_LEAVES(float) FASTNN_DROPOUT_LEAVES(double))
#undef FASTNN_DROPOUT_LEAVES

}  // namespace

std::uint64_t dropout_threshold(double p) {
  if (!(p > 0.0)) return 0;
  if (p >= 1.0) return std::uint64_t(1) << 32;
  return static_cast<std::uint64_t>(std::llround(p * 4294967296.0));
}

void philox_uint32(std::uint32_t* out, std::uint64_t seed, std::uint64_t stream, index_t first,
                   index_t n) {
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi;) {
      const index_t e = first + i;
      std::uint32_t c[4];
      Philox4x32::generate(c, seed, stream, std::uint64_t(e) >> 2);
      for (index_t j = e & 3; j < 4 && i < hi; ++j, ++i) out[i] = c[j];
    }
  });
}

void dropout_mask(std::uint8_t* mask, index_t n, double p, std::uint64_t seed, std::uint64_t stream) {
  const std::uint64_t thr = dropout_threshold(p);
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    FASTNN_SIMD_CALL(mask_leaf, mask + lo, lo, hi - lo, thr, seed, stream);
  }, 64);
}

template <class T>
void dropout_forward(T* out, std::uint8_t* mask, const T* x, index_t n, double p,
                     std::uint64_t seed, std::uint64_t stream) {
  const std::uint64_t thr = dropout_threshold(p);
  const T scale = T(1.0 / p);
  // chunks start on 64-element groups, so no group's bits are computed twice
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    FASTNN_SIMD_CALL(dropout_fwd_leaf, out + lo, mask ? mask + lo : nullptr, x + lo, lo, hi - lo, thr, scale, seed, stream);
  }, 64);
}

template <class T>
void dropout_backward(T* dx, const T* dout, const std::uint8_t* mask, index_t n, double p, bool acc) {
  const T scale = T(1.0 / p);
  parallel_for(n, kGrain, [&](index_t lo, index_t hi) {
    FASTNN_SIMD_CALL(dropout_bwd_leaf, dx + lo, dout + lo, mask + lo, hi - lo, scale, acc);
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
