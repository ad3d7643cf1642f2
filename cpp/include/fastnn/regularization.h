// fastnn/regularization.h — weight penalties over a flat buffer w (n).
//
//   L2: loss = 0.5 * lambda * sum w^2,  grad (+)= lambda * w
//   L1: loss = lambda * sum |w|,        grad (+)= lambda * sign(w)   (0 at w == 0)
// The loss is returned (summed in a thread-count-independent order); grad may be null. Unlike
// the backward kernels these default to *adding* into grad, since a penalty gradient is added on
// top of the data-loss gradient; pass accumulate = false to overwrite.
#pragma once

#include "fastnn/common.h"

namespace fastnn {

template <class T>
double l2_penalty(T* grad, const T* w, index_t n, double lambda, bool accumulate = true);

template <class T>
double l1_penalty(T* grad, const T* w, index_t n, double lambda, bool accumulate = true);

namespace ref {
template <class T>
double l2_penalty(T* grad, const T* w, index_t n, double lambda, bool accumulate = true);
template <class T>
double l1_penalty(T* grad, const T* w, index_t n, double lambda, bool accumulate = true);
}  // namespace ref

}  // namespace fastnn
