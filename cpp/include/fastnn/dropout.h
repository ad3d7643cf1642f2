// fastnn/dropout.h — inverted dropout with counter-based (Philox) masks.
//
// p is the probability of KEEPING a unit (CS231n convention), 0 < p <= 1. Element i of x (n
// elements) is kept when the 32 bits Philox(seed; i / 4, stream)[i % 4] are below p * 2^32, so the
// mask is a pure function of (seed, stream, i): the same whatever the thread count, and
// replayable for gradient checks.
//   forward:  out = x * keep / p; mask (n bytes, may be null) records keep (1) / drop (0)
//   backward: dx = dout * mask / p   (or += with accumulate)
#pragma once

#include <cstdint>

#include "fastnn/common.h"

namespace fastnn {

// The keep threshold on 32 random bits for keep-probability p (2^32 for p = 1: always keep).
std::uint64_t dropout_threshold(double p);

void dropout_mask(std::uint8_t* mask, index_t n, double p, std::uint64_t seed, std::uint64_t stream);

template <class T>
void dropout_forward(T* out, std::uint8_t* mask, const T* x, index_t n, double p,
                     std::uint64_t seed, std::uint64_t stream);

template <class T>
void dropout_backward(T* dx, const T* dout, const std::uint8_t* mask, index_t n, double p,
                      bool accumulate);

namespace ref {
template <class T>
void dropout_forward(T* out, std::uint8_t* mask, const T* x, index_t n, double p,
                     std::uint64_t seed, std::uint64_t stream);
template <class T>
void dropout_backward(T* dx, const T* dout, const std::uint8_t* mask, index_t n, double p,
                      bool accumulate);
}  // namespace ref

}  // namespace fastnn
