// Shared definitions for the bpfast kernels.
//
// Sizes used in shape comments throughout cpp/:
//   batch  rows of a mini-batch (samples are rows)
//   n_in   inputs of a dense layer, n_out its outputs
//   M, N, K  the GEMM C (M, N) = op(A) (M, K) · op(B) (K, N)
#pragma once

#include <cstddef>

namespace bpfast {

using index = std::ptrdiff_t;

enum class Activation { identity, sigmoid, tanh, relu, softmax };

enum class Reduction { mean, sum };

}  // namespace bpfast
