// Losses and their gradients. Each returns the loss value and writes the
// gradient with respect to its first input; both are divided by the batch
// size when reduction is mean.
//   Y (or the logits Z), Tg and grad are (batch, n); Tg holds the targets.
#pragma once

#include "common.h"

namespace bpfast {

// ½‖y − t‖² per sample; grad = y − t.
template <typename T>
double squared_error(T* grad, const T* Y, const T* Tg, index batch, index n, Reduction r);

// −Σ t·log y per sample on probabilities, y clamped below at eps; grad = −t/y.
template <typename T>
double log_loss(T* grad, const T* Y, const T* Tg, index batch, index n, Reduction r);

// −Σ [t·log y + (1−t)·log(1−y)], y clamped to [eps, 1−eps]; grad = (y−t)/(y(1−y)).
template <typename T>
double binary_cross_entropy(T* grad, const T* Y, const T* Tg, index batch, index n, Reduction r);

// Cross-entropy of softmax(Z), from the logits through log-sum-exp; grad = softmax(Z) − t.
template <typename T>
double softmax_cross_entropy(T* grad, const T* Z, const T* Tg, index batch, index n, Reduction r);

// Binary cross-entropy of sigmoid(Z), from the logits; grad = sigmoid(Z) − t.
template <typename T>
double sigmoid_cross_entropy(T* grad, const T* Z, const T* Tg, index batch, index n, Reduction r);

// The Poisson deviance halved, as scikit-learn's MLPRegressor(loss="poisson")
// reports it, from the log-rate Z (μ = exp z): t·log(t/μ) − t + μ per value
// (the first term 0 where t = 0), summed over the outputs; grad = μ − t.
template <typename T>
double poisson(T* grad, const T* Z, const T* Tg, index batch, index n, Reduction r);

// scikit-learn's log-losses, from the logits: the gradients of
// softmax_cross_entropy and sigmoid_cross_entropy (p − t), and the values
// scikit-learn reports, on probabilities p clipped to [eps, 1 − eps] (eps the
// dtype's): −Σ t·log p (softmax) and −Σ [t·log p + (1−t)·log(1−p)] (sigmoid),
// 0·log anything counting 0. Unlike the exact values they are at most
// −log eps per output, however wrong and sure the net is.
template <typename T>
double softmax_clipped_log_loss(T* grad, const T* Z, const T* Tg, index batch, index n, Reduction r);
template <typename T>
double sigmoid_clipped_log_loss(T* grad, const T* Z, const T* Tg, index batch, index n, Reduction r);

// scikit-learn's L2 penalty on n weights W: returns ½·alpha·Σw² / norm and,
// when dW is not null, adds alpha·w / norm to it.
template <typename T>
double l2_penalty(T* dW, const T* W, index n, double alpha, double norm);
// The gradient part alone: dW += alpha·W / norm, as l2_penalty adds it.
template <typename T>
void l2_gradient(T* dW, const T* W, index n, double alpha, double norm);

template <typename T>
using LossFn = double (*)(T* grad, const T* Y, const T* Tg, index batch, index n, Reduction r);

// The loss of each kind.
template <typename T>
LossFn<T> loss_function(LossKind kind);

// Whether the loss takes the logits (the output layer then runs without its activation).
inline bool takes_logits(LossKind kind) {
    return kind == LossKind::softmax_cross_entropy || kind == LossKind::sigmoid_cross_entropy ||
           kind == LossKind::poisson || kind == LossKind::softmax_clipped_log_loss ||
           kind == LossKind::sigmoid_clipped_log_loss;
}

}  // namespace bpfast
