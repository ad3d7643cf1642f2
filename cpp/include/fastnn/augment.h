// fastnn/augment.h — data augmentation of image mini-batches, counter-based and reproducible.
//
// Shapes: a batch of B images of H x W pixels with C channels, NHWC (B, H, W, C) or NCHW
// (B, C, H, W), row-major; `x` holds the source images (rows[b] picks image b of the batch when
// `rows` is given, else image b), `out` the batch (B images, same layout), never overlapping x.
//
// Per image b, in this order (each step off when its parameter is 0):
//   1. crop with zero padding and horizontal flip:
//        out(i, j) = x(i + dy, (flip ? W - 1 - j : j) + dx), or 0 outside the image,
//      dy, dx uniform in [-pad, pad] (a pad-pixel zero border, then an H x W crop);
//   2. contrast: v = (v - m_c) * f + m_c, f uniform in [1 - contrast, 1 + contrast], m_c the
//      mean of channel c of the source image;
//   3. brightness: v += delta, delta uniform in [-brightness, brightness];
//   4. noise: v += noise_std * z, z standard normal (Box-Muller).
// The arithmetic is float64, rounded once to T.
//
// Random numbers: Philox4x32-10 keyed by `seed`. Image b draws Philox elements 8b .. 8b+4 of
// stream `stream` (u0: flip when u0 < round(flip_prob * 2^32); u1, u2: dy, dx = floor(u (2 pad +
// 1) / 2^32) - pad; u3: delta = brightness (2 (u3 + 0.5) / 2^32 - 1); u4: f = 1 + contrast (2 (u4
// + 0.5) / 2^32 - 1)). Noise value e of image b (e in memory order within the image, g = b H W C
// + e) uses elements 2 floor(g / 2) and 2 floor(g / 2) + 1 of stream `stream ^ 2^63`:
// r = sqrt(-2 ln((u + 1) / 2^32)), t = 2 pi u' / 2^32, z = r cos t for even g, r sin t for odd g.
// Everything is a pure function of (seed, stream, b, e): results do not depend on the thread
// count. The trainer passes the global step as the stream.
#pragma once

#include <cstdint>

#include "fastnn/common.h"

namespace fastnn {

struct ImageShape {
  index_t H = 1, W = 1, C = 1;
  bool nchw = false;
  index_t size() const { return H * W * C; }
};

struct AugmentSpec {
  double flip_prob = 0.0;   // probability of a horizontal flip
  index_t pad = 0;          // random crop: shifts of up to pad pixels, zero fill
  double noise_std = 0.0;   // additive Gaussian noise
  double brightness = 0.0;  // additive jitter, uniform in [-brightness, brightness]
  double contrast = 0.0;    // factor uniform in [1 - contrast, 1 + contrast]
};

// The random parameters of image b (for tests and for reproducing a batch).
struct AugmentDraw {
  bool flip = false;
  index_t dy = 0, dx = 0;
  double delta = 0.0, factor = 1.0;
};
AugmentDraw augment_draw(const AugmentSpec& spec, std::uint64_t seed, std::uint64_t stream, index_t b);

template <class T>
void augment_images(T* out, const T* x, const std::int64_t* rows, index_t B, const ImageShape& shape,
                    const AugmentSpec& spec, std::uint64_t seed, std::uint64_t stream);

// Deterministic shift and flip of every image (test-time augmentation):
// out(i, j) = x(i + dy, (flip ? W - 1 - j : j) + dx), 0 outside. x and out are (N, image).
template <class T>
void shift_flip_images(T* out, const T* x, index_t N, const ImageShape& shape, index_t dy, index_t dx,
                       bool flip);

namespace ref {
template <class T>
void augment_images(T* out, const T* x, const std::int64_t* rows, index_t B, const ImageShape& shape,
                    const AugmentSpec& spec, std::uint64_t seed, std::uint64_t stream);
template <class T>
void shift_flip_images(T* out, const T* x, index_t N, const ImageShape& shape, index_t dy, index_t dx,
                       bool flip);
}  // namespace ref

}  // namespace fastnn
