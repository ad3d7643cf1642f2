// Image augmentation with counter-based randomness (see augment.h).
#include "fastnn/augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fastnn/rng.h"
#include "fastnn/threads.h"

namespace fastnn {

namespace {

constexpr double kTwo32 = 4294967296.0;
constexpr double kTwoPi = 6.283185307179586476925286766559;
constexpr std::uint64_t kNoiseStream = std::uint64_t(1) << 63;
constexpr index_t kMaxContrastChannels = 512;
constexpr index_t kSpan = 256;  // output values handled per step (stack buffers)

FASTNN_INLINE double uniform_sym(std::uint32_t u) { return 2.0 * (double(u) + 0.5) / kTwo32 - 1.0; }

// The normal pair from two 32-bit draws: (r cos t, r sin t).
FASTNN_INLINE void normal_pair(double& z0, double& z1, std::uint32_t ua, std::uint32_t ub) {
  const double r = std::sqrt(-2.0 * std::log((double(ua) + 1.0) / kTwo32));
  const double t = kTwoPi * double(ub) / kTwo32;
  z0 = r * std::cos(t);
  z1 = r * std::sin(t);
}

// Standard normals for noise values g in [g0, g0 + n) of (seed, stream ^ 2^63).
void fill_normals(double* z, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, index_t n) {
  const std::uint64_t s = stream ^ kNoiseStream;
  std::uint32_t c[4];
  std::uint64_t blk = ~std::uint64_t(0);
  for (index_t e = 0; e < n;) {
    const std::uint64_t g = g0 + std::uint64_t(e);
    if ((g >> 2) != blk) {
      blk = g >> 2;
      Philox4x32::generate(c, seed, s, blk);
    }
    const int lane = int(g & 2);  // pair (0, 1) or (2, 3) of the block
    double z0, z1;
    normal_pair(z0, z1, c[lane], c[lane + 1]);
    if ((g & 1) == 0) {
      z[e++] = z0;
      if (e < n) z[e++] = z1;
    } else {
      z[e++] = z1;
    }
  }
}

// Mean of each channel of one image (C <= kMaxContrastChannels).
template <class T>
void channel_means(double* m, const T* img, const ImageShape& sh) {
  const index_t S = sh.H * sh.W, C = sh.C;
  if (sh.nchw) {
    for (index_t c = 0; c < C; ++c) {
      double s = 0;
      const T* p = img + c * S;
      for (index_t i = 0; i < S; ++i) s += double(p[i]);
      m[c] = s / double(S);
    }
  } else {
    for (index_t c = 0; c < C; ++c) m[c] = 0;
    for (index_t i = 0; i < S; ++i)
      for (index_t c = 0; c < C; ++c) m[c] += double(img[i * C + c]);
    for (index_t c = 0; c < C; ++c) m[c] /= double(S);
  }
}

// The value of output element (i, j, c) before the photometric steps.
template <class T>
FASTNN_INLINE double geo_value(const T* img, const ImageShape& sh, index_t i, index_t j, index_t c, index_t dy,
                               index_t dx, bool flip) {
  const index_t si = i + dy, sj = (flip ? sh.W - 1 - j : j) + dx;
  if (si < 0 || si >= sh.H || sj < 0 || sj >= sh.W) return 0.0;
  return double(sh.nchw ? img[(c * sh.H + si) * sh.W + sj] : img[(si * sh.W + sj) * sh.C + c]);
}

// Row i, column j and channel c of element e of an image (in memory order), for the references.
inline void pixel_of(const ImageShape& sh, index_t e, index_t& i, index_t& j, index_t& c) {
  if (sh.nchw) {
    c = e / (sh.H * sh.W);
    i = (e / sh.W) % sh.H;
    j = e % sh.W;
  } else {
    i = e / (sh.W * sh.C);
    j = (e / sh.C) % sh.W;
    c = e % sh.C;
  }
}

// One image: out_img (size H W C) from img, with draw d; image index b keys the noise.
template <class T>
void augment_one(T* FASTNN_RESTRICT out, const T* FASTNN_RESTRICT img, const ImageShape& sh,
                 const AugmentSpec& spec, const AugmentDraw& d, std::uint64_t seed, std::uint64_t stream,
                 index_t b) {
  const index_t n = sh.size();
  double m[kMaxContrastChannels];
  const bool contrast = spec.contrast != 0.0;
  if (contrast) channel_means(m, img, sh);
  const bool noise = spec.noise_std != 0.0;
  double z[kSpan];
  // counters of element e in memory order: NHWC (i, j, c), NCHW (c, i, j)
  index_t i = 0, j = 0, c = 0;
  for (index_t e0 = 0; e0 < n; e0 += kSpan) {
    const index_t len = std::min(kSpan, n - e0);
    if (noise) fill_normals(z, seed, stream, std::uint64_t(b) * std::uint64_t(n) + std::uint64_t(e0), len);
    for (index_t e = 0; e < len; ++e) {
      double v = geo_value(img, sh, i, j, c, d.dy, d.dx, d.flip);
      if (contrast) v = (v - m[c]) * d.factor + m[c];
      v = v + d.delta;
      if (noise) v = v + spec.noise_std * z[e];
      out[e0 + e] = T(v);
      if (sh.nchw) {
        if (++j == sh.W) {
          j = 0;
          if (++i == sh.H) {
            i = 0;
            ++c;
          }
        }
      } else {
        if (++c == sh.C) {
          c = 0;
          if (++j == sh.W) {
            j = 0;
            ++i;
          }
        }
      }
    }
  }
}

// Fast path for shift/flip only: whole rows (NHWC: W*C values, NCHW: W values) at a time.
template <class T>
void shift_flip_one(T* FASTNN_RESTRICT out, const T* FASTNN_RESTRICT img, const ImageShape& sh, index_t dy,
                    index_t dx, bool flip) {
  const index_t H = sh.H, W = sh.W, C = sh.C;
  const index_t planes = sh.nchw ? C : 1, px = sh.nchw ? 1 : C;  // values per pixel in a row
  for (index_t p = 0; p < planes; ++p) {
    const T* src = img + p * H * W;
    T* dst = out + p * H * W;
    for (index_t i = 0; i < H; ++i) {
      T* o = dst + i * W * px;
      const index_t si = i + dy;
      if (si < 0 || si >= H) {
        std::fill(o, o + W * px, T(0));
        continue;
      }
      const T* s = src + si * W * px;
      if (!flip) {
        // out j <- src j + dx for j + dx in [0, W)
        const index_t j0 = std::clamp<index_t>(-dx, 0, W), j1 = std::clamp<index_t>(W - dx, 0, W);
        std::fill(o, o + j0 * px, T(0));
        if (j1 > j0) std::memcpy(o + j0 * px, s + (j0 + dx) * px, std::size_t((j1 - j0) * px) * sizeof(T));
        std::fill(o + std::max(j0, j1) * px, o + W * px, T(0));
      } else {
        for (index_t j = 0; j < W; ++j) {
          const index_t sj = W - 1 - j + dx;
          if (sj < 0 || sj >= W) {
            for (index_t k = 0; k < px; ++k) o[j * px + k] = T(0);
          } else {
            for (index_t k = 0; k < px; ++k) o[j * px + k] = s[sj * px + k];
          }
        }
      }
    }
  }
}

}  // namespace

AugmentDraw augment_draw(const AugmentSpec& spec, std::uint64_t seed, std::uint64_t stream, index_t b) {
  std::uint32_t u[4], v[4];
  Philox4x32::generate(u, seed, stream, 2 * std::uint64_t(b));
  Philox4x32::generate(v, seed, stream, 2 * std::uint64_t(b) + 1);
  AugmentDraw d;
  if (spec.flip_prob > 0) {
    const std::uint64_t thr = spec.flip_prob >= 1.0 ? (std::uint64_t(1) << 32)
                                                    : std::uint64_t(std::llround(spec.flip_prob * kTwo32));
    d.flip = std::uint64_t(u[0]) < thr;
  }
  if (spec.pad > 0) {
    const std::uint64_t span = std::uint64_t(2 * spec.pad + 1);
    d.dy = index_t((std::uint64_t(u[1]) * span) >> 32) - spec.pad;
    d.dx = index_t((std::uint64_t(u[2]) * span) >> 32) - spec.pad;
  }
  if (spec.brightness != 0.0) d.delta = spec.brightness * uniform_sym(u[3]);
  if (spec.contrast != 0.0) d.factor = 1.0 + spec.contrast * uniform_sym(v[0]);
  return d;
}

template <class T>
void augment_images(T* out, const T* x, const std::int64_t* rows, index_t B, const ImageShape& sh,
                    const AugmentSpec& spec, std::uint64_t seed, std::uint64_t stream) {
  const index_t n = sh.size();
  if (B <= 0 || n <= 0) return;
  const bool photometric = spec.contrast != 0.0 || spec.brightness != 0.0 || spec.noise_std != 0.0;
  parallel_for(B, std::max<index_t>(1, 16384 / n), [&](index_t b0, index_t b1) {
    for (index_t b = b0; b < b1; ++b) {
      const T* img = x + (rows ? index_t(rows[b]) : b) * n;
      const AugmentDraw d = augment_draw(spec, seed, stream, b);
      if (photometric)
        augment_one(out + b * n, img, sh, spec, d, seed, stream, b);
      else
        shift_flip_one(out + b * n, img, sh, d.dy, d.dx, d.flip);
    }
  }, 1);
}

template <class T>
void shift_flip_images(T* out, const T* x, index_t N, const ImageShape& sh, index_t dy, index_t dx, bool flip) {
  const index_t n = sh.size();
  if (N <= 0 || n <= 0) return;
  parallel_for(N, std::max<index_t>(1, 16384 / n), [&](index_t b0, index_t b1) {
    for (index_t b = b0; b < b1; ++b) shift_flip_one(out + b * n, x + b * n, sh, dy, dx, flip);
  }, 1);
}

namespace ref {

template <class T>
void augment_images(T* out, const T* x, const std::int64_t* rows, index_t B, const ImageShape& sh,
                    const AugmentSpec& spec, std::uint64_t seed, std::uint64_t stream) {
  const index_t n = sh.size();
  for (index_t b = 0; b < B; ++b) {
    const T* img = x + (rows ? index_t(rows[b]) : b) * n;
    const AugmentDraw d = augment_draw(spec, seed, stream, b);
    double m[kMaxContrastChannels] = {0};
    if (spec.contrast != 0.0) channel_means(m, img, sh);
    for (index_t e = 0; e < n; ++e) {
      index_t i, j, c;
      pixel_of(sh, e, i, j, c);
      double v = geo_value(img, sh, i, j, c, d.dy, d.dx, d.flip);
      if (spec.contrast != 0.0) v = (v - m[c]) * d.factor + m[c];
      v = v + d.delta;
      if (spec.noise_std != 0.0) {
        const std::uint64_t g = std::uint64_t(b) * std::uint64_t(n) + std::uint64_t(e);
        std::uint32_t r[4];
        Philox4x32::generate(r, seed, stream ^ kNoiseStream, g >> 2);
        double z0, z1;
        normal_pair(z0, z1, r[g & 2], r[(g & 2) + 1]);
        v = v + spec.noise_std * ((g & 1) ? z1 : z0);
      }
      out[b * n + e] = T(v);
    }
  }
}

template <class T>
void shift_flip_images(T* out, const T* x, index_t N, const ImageShape& sh, index_t dy, index_t dx, bool flip) {
  const index_t n = sh.size();
  for (index_t b = 0; b < N; ++b)
    for (index_t e = 0; e < n; ++e) {
      index_t i, j, c;
      pixel_of(sh, e, i, j, c);
      out[b * n + e] = T(geo_value(x + b * n, sh, i, j, c, dy, dx, flip));
    }
}

}  // namespace ref

}  // namespace fastnn

using fastnn::index_t;
#define FASTNN_AUG_INST(T)                                                                                   \
  template void fastnn::augment_images<T>(T*, const T*, const std::int64_t*, index_t, const ImageShape&,     \
                                          const AugmentSpec&, std::uint64_t, std::uint64_t);                 \
  template void fastnn::shift_flip_images<T>(T*, const T*, index_t, const ImageShape&, index_t, index_t,     \
                                             bool);                                                          \
  template void fastnn::ref::augment_images<T>(T*, const T*, const std::int64_t*, index_t,                   \
                                               const ImageShape&, const AugmentSpec&, std::uint64_t,         \
                                               std::uint64_t);                                               \
  template void fastnn::ref::shift_flip_images<T>(T*, const T*, index_t, const ImageShape&, index_t, index_t, \
                                                  bool);
using fastnn::AugmentSpec;
using fastnn::ImageShape;
FASTNN_AUG_INST(float)
FASTNN_AUG_INST(double)
#undef FASTNN_AUG_INST
