// fastnn/batchnorm.h — batch normalisation over the rows of x (N, D), per feature.
//
// Training forward:  mean, var over the batch (biased); invstd = 1 / sqrt(var + eps);
//   out = gamma * (x - mean) * invstd + beta;  mean (D) and invstd (D) are saved for backward;
//   running_mean/running_var (D), when not null, are updated in place with the CS231n convention
//   running = momentum * running + (1 - momentum) * batch   (PyTorch's momentum is 1 - this one);
//   with unbiased_running_var the running variance takes var * N / (N - 1) (PyTorch does).
// Evaluation forward: the same with running_mean / running_var in place of the batch statistics.
// Backward (the simplified closed form), xhat = (x - mean) * invstd:
//   dbeta = sum_n dout;  dgamma = sum_n dout * xhat;
//   dx = gamma * invstd / N * (N * dout - dbeta - xhat * dgamma)
// Evaluation backward (the layer is a fixed per-feature affine map of the running statistics),
// xr = (x - running_mean) * invstd_r, invstd_r = 1 / sqrt(running_var + eps):
//   dbeta = sum_n dout;  dgamma = sum_n dout * xr;  dx = dout * gamma * invstd_r
// gamma may be null (taken as 1) and beta null (taken as 0). Statistics accumulate in double.
// Each feature is reduced by one thread in row order: results do not depend on the thread count.
#pragma once

#include "fastnn/common.h"

namespace fastnn {

template <class T>
void batchnorm_forward_train(T* out, T* mean, T* invstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, index_t N, index_t D,
                             T eps, T momentum, bool unbiased_running_var);

template <class T>
void batchnorm_forward_eval(T* out, const T* x, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, index_t N, index_t D,
                            T eps);

template <class T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                        const T* mean, const T* invstd, index_t N, index_t D, bool accumulate);

template <class T>
void batchnorm_backward_eval(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                             const T* running_mean, const T* running_var, index_t N, index_t D, T eps,
                             bool accumulate);

namespace ref {
template <class T>
void batchnorm_backward_eval(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                             const T* running_mean, const T* running_var, index_t N, index_t D, T eps,
                             bool accumulate);
template <class T>
void batchnorm_forward_train(T* out, T* mean, T* invstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, index_t N, index_t D,
                             T eps, T momentum, bool unbiased_running_var);
template <class T>
void batchnorm_forward_eval(T* out, const T* x, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, index_t N, index_t D,
                            T eps);
template <class T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                        const T* mean, const T* invstd, index_t N, index_t D, bool accumulate);
}  // namespace ref

}  // namespace fastnn
