// fastnn/vecmath.h — branch-free exp/expm1/tanh/sigmoid that compilers vectorise.
//
// glibc's vector math is only declared under -ffast-math, which fastnn never uses, so loops over
// std::exp stay scalar. These versions use range reduction + polynomials (Cephes coefficients)
// written as straight-line code with selects, so `#pragma omp simd` loops vectorise with them.
// Accuracy: float within ~2 ulp, double within ~2 ulp of the correctly rounded result; NaN
// propagates; overflow gives +inf and underflow 0 (denormal results are flushed to zero).
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#include "fastnn/common.h"

namespace fastnn::vm {

FASTNN_INLINE float bits_to_float(std::int32_t i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}
FASTNN_INLINE std::int32_t float_to_bits(float f) {
  std::int32_t i;
  std::memcpy(&i, &f, 4);
  return i;
}
FASTNN_INLINE double bits_to_double(std::int64_t i) {
  double f;
  std::memcpy(&f, &i, 8);
  return f;
}
FASTNN_INLINE std::int64_t double_to_bits(double f) {
  std::int64_t i;
  std::memcpy(&i, &f, 8);
  return i;
}

// exp(x), float.
FASTNN_INLINE float exp(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365447505531f;  // exp(lo) = FLT_MIN
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  // n = round(x / ln2) with the 1.5*2^23 trick: exact, and its low bits are n as an integer.
  const float shifter = 12582912.0f;
  const float t = xc * 1.44269504088896341f + shifter;
  const float n = t - shifter;
  const std::int32_t ni = float_to_bits(t) - float_to_bits(shifter);
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  const float e = p * r * r + r + 1.0f;
  // 2^n may be 2^128 for the largest inputs: scale in two steps to stay representable.
  const std::int32_t n1 = ni >> 1, n2 = ni - n1;
  // (shifted as unsigned: for a NaN input n is garbage, and a negative value shifted left is
  // undefined behaviour; the bits of a NaN result do not matter, the defined-ness does)
  float y = e * bits_to_float(std::int32_t(std::uint32_t(n1 + 127) << 23)) *
            bits_to_float(std::int32_t(std::uint32_t(n2 + 127) << 23));
  y = x > hi ? std::numeric_limits<float>::infinity() : y;
  y = x < lo ? 0.0f : y;
  return y;  // NaN: every comparison above is false, r is NaN, so y is NaN
}

// exp(x), double.
FASTNN_INLINE double exp(double x) {
  const double hi = 709.78, lo = -708.39;  // exp(lo) ~ DBL_MIN
  double xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  const double shifter = 6755399441055744.0;  // 1.5 * 2^52
  const double t = xc * 1.4426950408889634074 + shifter;
  const double n = t - shifter;
  const std::int64_t ni = double_to_bits(t) - double_to_bits(shifter);
  double r = xc - n * 6.93145751953125E-1;
  r = r - n * 1.42860682030941723212E-6;
  // Cephes exp: exp(r) = 1 + 2 r P(r^2) / (Q(r^2) - r P(r^2))
  const double rr = r * r;
  const double P = (1.26177193074810590878E-4 * rr + 3.02994407707441961300E-2) * rr +
                   9.99999999999999999910E-1;
  const double Q = ((3.00198505138664455042E-6 * rr + 2.52448340349684104192E-3) * rr +
                    2.27265548208155028766E-1) * rr + 2.00000000000000000009E0;
  const double px = r * P;
  const double e = 1.0 + 2.0 * (px / (Q - px));
  const std::int64_t n1 = ni >> 1, n2 = ni - n1;
  double y = e * bits_to_double(std::int64_t(std::uint64_t(n1 + 1023) << 52)) *
             bits_to_double(std::int64_t(std::uint64_t(n2 + 1023) << 52));
  y = x > hi ? std::numeric_limits<double>::infinity() : y;
  y = x < lo ? 0.0 : y;
  return y;
}

// expm1(x) = exp(x) - 1 without cancellation near 0.
FASTNN_INLINE float expm1(float x) {
  // |x| < 0.25: Taylor series to x^8 (relative error < 1e-9); otherwise exp(x) - 1.
  float p = 1.0f / 40320;
  p = p * x + 1.0f / 5040;
  p = p * x + 1.0f / 720;
  p = p * x + 1.0f / 120;
  p = p * x + 1.0f / 24;
  p = p * x + 1.0f / 6;
  p = p * x + 0.5f;
  const float small = p * x * x + x;
  const float big = exp(x) - 1.0f;
  const float ax = x < 0 ? -x : x;
  return ax < 0.25f ? small : big;
}

FASTNN_INLINE double expm1(double x) {
  // |x| < 0.25: Taylor series to x^13 (relative error < 1e-17); otherwise exp(x) - 1.
  double p = 1.0 / 6227020800.0;
  p = p * x + 1.0 / 479001600.0;
  p = p * x + 1.0 / 39916800.0;
  p = p * x + 1.0 / 3628800.0;
  p = p * x + 1.0 / 362880.0;
  p = p * x + 1.0 / 40320.0;
  p = p * x + 1.0 / 5040.0;
  p = p * x + 1.0 / 720.0;
  p = p * x + 1.0 / 120.0;
  p = p * x + 1.0 / 24.0;
  p = p * x + 1.0 / 6.0;
  p = p * x + 0.5;
  const double small = p * x * x + x;
  const double big = exp(x) - 1.0;
  const double ax = x < 0 ? -x : x;
  return ax < 0.25 ? small : big;
}

// tanh(x) = sign(x) * (1 - 2 / (exp(2|x|) + 1)), with expm1 near 0 to keep relative accuracy.
template <class T>
FASTNN_INLINE T tanh(T x) {
  const T ax = x < T(0) ? -x : x;
  const T em = expm1(T(-2) * ax);     // in (-1, 0]
  const T t = -em / (em + T(2));      // tanh(|x|), accurate for small |x| too
  return x < T(0) ? -t : t;           // NaN: -NaN / ... = NaN either way
}

// sigmoid(x) = 1 / (1 + exp(-x)), stable for large |x|.
template <class T>
FASTNN_INLINE T sigmoid(T x) {
  return T(1) / (T(1) + exp(-x));
}

}  // namespace fastnn::vm
