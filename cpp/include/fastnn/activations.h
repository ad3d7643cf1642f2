// fastnn/activations.h — elementwise activations and maxout, forward/backward pairs.
//
// Shapes: x, out, dout, dx are flat arrays of n elements (any (N, d1, ..., dk) tensor).
// PReLU and maxout see x as (N, D) rows:
//   prelu:  x (N, D), slopes a (n_a) with n_a == 1 (one shared slope) or n_a == D (one per feature)
//   maxout: x (N, D*k) grouped as x.reshape(N, D, k); out (N, D) = max over the k pieces;
//           argmax (N, D) records the winning piece (0..k-1) for backward.
// Backward kernels write dx (or add into it when accumulate is true). ELU, tanh and sigmoid
// backward use the forward *output*; ReLU, leaky ReLU and PReLU use the forward *input*.
#pragma once

#include <cstdint>

#include "fastnn/common.h"

namespace fastnn {

template <class T> void relu_forward(T* out, const T* x, index_t n);
template <class T> void relu_backward(T* dx, const T* dout, const T* x, index_t n, bool accumulate);

template <class T> void leaky_relu_forward(T* out, const T* x, T slope, index_t n);
template <class T>
void leaky_relu_backward(T* dx, const T* dout, const T* x, T slope, index_t n, bool accumulate);

template <class T> void prelu_forward(T* out, const T* x, const T* a, index_t N, index_t D, index_t n_a);
// da (n_a) gets the gradient of the slopes (summed over rows, in a fixed order).
template <class T>
void prelu_backward(T* dx, T* da, const T* dout, const T* x, const T* a, index_t N, index_t D,
                    index_t n_a, bool accumulate);

// ELU: x if x > 0 else alpha * (exp(x) - 1); alpha >= 0.
template <class T> void elu_forward(T* out, const T* x, T alpha, index_t n);
template <class T>
void elu_backward(T* dx, const T* dout, const T* out, T alpha, index_t n, bool accumulate);

template <class T> void tanh_forward(T* out, const T* x, index_t n);
template <class T> void tanh_backward(T* dx, const T* dout, const T* out, index_t n, bool accumulate);

template <class T> void sigmoid_forward(T* out, const T* x, index_t n);
template <class T>
void sigmoid_backward(T* dx, const T* dout, const T* out, index_t n, bool accumulate);

// Ties go to the lowest piece index; NaN in a group wins (propagates).
template <class T>
void maxout_forward(T* out, std::int32_t* argmax, const T* x, index_t N, index_t D, index_t k);
template <class T>
void maxout_backward(T* dx, const T* dout, const std::int32_t* argmax, index_t N, index_t D,
                     index_t k, bool accumulate);

namespace ref {
template <class T> void relu_forward(T* out, const T* x, index_t n);
template <class T> void relu_backward(T* dx, const T* dout, const T* x, index_t n, bool accumulate);
template <class T> void leaky_relu_forward(T* out, const T* x, T slope, index_t n);
template <class T>
void leaky_relu_backward(T* dx, const T* dout, const T* x, T slope, index_t n, bool accumulate);
template <class T> void prelu_forward(T* out, const T* x, const T* a, index_t N, index_t D, index_t n_a);
template <class T>
void prelu_backward(T* dx, T* da, const T* dout, const T* x, const T* a, index_t N, index_t D,
                    index_t n_a, bool accumulate);
template <class T> void elu_forward(T* out, const T* x, T alpha, index_t n);
template <class T>
void elu_backward(T* dx, const T* dout, const T* out, T alpha, index_t n, bool accumulate);
template <class T> void tanh_forward(T* out, const T* x, index_t n);
template <class T> void tanh_backward(T* dx, const T* dout, const T* out, index_t n, bool accumulate);
template <class T> void sigmoid_forward(T* out, const T* x, index_t n);
template <class T>
void sigmoid_backward(T* dx, const T* dout, const T* out, index_t n, bool accumulate);
template <class T>
void maxout_forward(T* out, std::int32_t* argmax, const T* x, index_t N, index_t D, index_t k);
template <class T>
void maxout_backward(T* dx, const T* dout, const std::int32_t* argmax, index_t N, index_t D,
                     index_t k, bool accumulate);
}  // namespace ref

}  // namespace fastnn
