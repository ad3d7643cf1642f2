// fastnn/optim.h — fused optimizer updates over one flat buffer of n parameters.
//
// Each step reads the gradient g once and updates the parameters w and the optimizer state in
// place, in one SIMD loop. `weight_decay` (coupled L2, as in PyTorch's optimizers) adds
// weight_decay * w to the gradient first; 0 turns it off. AdamW's decay is decoupled instead.
//
//   sgd:       w -= lr * g
//   momentum:  v = mu * v - lr * g;  w += v                                 (CS231n form)
//   nesterov:  v_prev = v;  v = mu * v - lr * g;  w += -mu * v_prev + (1 + mu) * v   (CS231n form)
//   adagrad:   c += g^2;  w -= lr * g / (sqrt(c) + eps)
//   rmsprop:   c = decay * c + (1 - decay) * g^2;  w -= lr * g / (sqrt(c) + eps)
//   adam:      m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  t is the 1-based step count;
//              w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//   adamw:     w *= 1 - lr * weight_decay, then the adam update (decoupled decay).
#pragma once

#include <cstdint>

#include "fastnn/common.h"

namespace fastnn {

template <class T> void sgd_step(T* w, const T* g, index_t n, T lr, T weight_decay);
template <class T> void sgd_momentum_step(T* w, T* v, const T* g, index_t n, T lr, T mu, T weight_decay);
template <class T> void nesterov_step(T* w, T* v, const T* g, index_t n, T lr, T mu, T weight_decay);
template <class T> void adagrad_step(T* w, T* cache, const T* g, index_t n, T lr, T eps, T weight_decay);
template <class T>
void rmsprop_step(T* w, T* cache, const T* g, index_t n, T lr, T decay, T eps, T weight_decay);
template <class T>
void adam_step(T* w, T* m, T* v, const T* g, index_t n, T lr, T beta1, T beta2, T eps,
               std::int64_t t, T weight_decay, bool decoupled);

namespace ref {
template <class T> void sgd_step(T* w, const T* g, index_t n, T lr, T weight_decay);
template <class T> void sgd_momentum_step(T* w, T* v, const T* g, index_t n, T lr, T mu, T weight_decay);
template <class T> void nesterov_step(T* w, T* v, const T* g, index_t n, T lr, T mu, T weight_decay);
template <class T> void adagrad_step(T* w, T* cache, const T* g, index_t n, T lr, T eps, T weight_decay);
template <class T>
void rmsprop_step(T* w, T* cache, const T* g, index_t n, T lr, T decay, T eps, T weight_decay);
template <class T>
void adam_step(T* w, T* m, T* v, const T* g, index_t n, T lr, T beta1, T beta2, T eps,
               std::int64_t t, T weight_decay, bool decoupled);
}  // namespace ref

}  // namespace fastnn
