// fastnn/loss.h — data losses: each returns the mean loss over the N rows and writes the
// gradient with respect to the scores (already divided by N), or adds it with accumulate.
//
//   softmax cross-entropy: scores (N, C), labels y (N) in [0, C); numerically stable (the row
//     maximum is subtracted). Label smoothing eps: the target puts 1 - eps on the true class and
//     eps / (C - 1) on each other class (eps = 0: plain cross-entropy).
//   soft-target softmax cross-entropy: scores (N, C) against target rows t (N, C) (e.g. a
//     teacher's temperature-softened probabilities for distillation, or mixed labels): the row
//     loss is -sum_j t'_j log p_j and its gradient S' p - t' with S' = sum_j t'_j (exact for any
//     non-negative t; S' = 1 for distributions), where label smoothing eps maps the target as it
//     does a label: t'_j = (1 - eps) t_j + eps / (C - 1) (1 - t_j) (eps = 0: t' = t).
//   multiclass SVM (Weston-Watkins): L_i = sum_{j != y_i} max(0, s_j - s_{y_i} + margin).
//   MSE: loss = scale * sum (pred - target)^2, grad = 2 * scale * (pred - target); scale is the
//     caller's normaliser (1 / (N * K) for a mean over elements, 0.5 / N for the CS231n L2 loss).
//
// Labels outside [0, C) are never read through: the classification losses return -1 when all
// labels are valid, else the index of the first invalid row (and leave outputs unspecified).
// `dscores` may be null (loss only). Row losses are added in an order that does not depend on the
// thread count.
#pragma once

#include <cstdint>

#include "fastnn/common.h"

namespace fastnn {

template <class T>
index_t softmax_cross_entropy(double* loss, T* dscores, const T* scores, const std::int64_t* y,
                              index_t N, index_t C, double label_smoothing, bool accumulate);

template <class T>
void softmax_cross_entropy_soft(double* loss, T* dscores, const T* scores, const T* target, index_t N,
                                index_t C, double label_smoothing, bool accumulate);

template <class T>
index_t svm_loss(double* loss, T* dscores, const T* scores, const std::int64_t* y, index_t N,
                 index_t C, double margin, bool accumulate);

template <class T>
void mse_loss(double* loss, T* dpred, const T* pred, const T* target, index_t n, double scale,
              bool accumulate);

// Row-wise softmax probabilities (N, C), stable.
template <class T>
void softmax(T* out, const T* scores, index_t N, index_t C);

namespace ref {
template <class T>
index_t softmax_cross_entropy(double* loss, T* dscores, const T* scores, const std::int64_t* y,
                              index_t N, index_t C, double label_smoothing, bool accumulate);
template <class T>
void softmax_cross_entropy_soft(double* loss, T* dscores, const T* scores, const T* target, index_t N,
                                index_t C, double label_smoothing, bool accumulate);
template <class T>
index_t svm_loss(double* loss, T* dscores, const T* scores, const std::int64_t* y, index_t N,
                 index_t C, double margin, bool accumulate);
template <class T>
void mse_loss(double* loss, T* dpred, const T* pred, const T* target, index_t n, double scale,
              bool accumulate);
}  // namespace ref

}  // namespace fastnn
