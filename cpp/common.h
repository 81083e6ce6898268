// Shared definitions for the bpfast core.
//
// Sizes used in shape comments throughout cpp/:
//   batch  rows of a mini-batch (samples are rows)
//   n_in   inputs of a dense layer, n_out its outputs
//   M, N, K  the GEMM C (M, N) = op(A) (M, K) · op(B) (K, N)
#pragma once

#include <cstddef>

#ifndef BPFAST_HAVE_AVX2
#define BPFAST_HAVE_AVX2 0
#endif
#ifndef BPFAST_HAVE_AVX512
#define BPFAST_HAVE_AVX512 0
#endif

namespace bpfast {

using index = std::ptrdiff_t;

enum class Activation { identity, sigmoid, tanh, relu, softmax };

enum class Reduction { mean, sum };

// softmax_ and sigmoid_cross_entropy and their clipped_log_loss twins take the
// logits, and poisson the log of the rate: the output layer then runs without
// its activation.
enum class LossKind { squared_error, log_loss, binary_cross_entropy, softmax_cross_entropy,
                      sigmoid_cross_entropy, poisson, softmax_clipped_log_loss, sigmoid_clipped_log_loss };

enum class OptimizerKind { sgd, adam, adamw };

// How SGD with momentum and Adam write their update: PyTorch's formulas, or
// scikit-learn's (SGD keeps the velocity with lr inside it, Adam adds ε to √v
// before the bias correction). The two agree while lr is constant (SGD) and
// to first order in ε (Adam).
enum class UpdateForm { pytorch, sklearn };

enum class Schedule { constant, step, inverse_scaling };

}  // namespace bpfast
