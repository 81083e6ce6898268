// Shared definitions for the bpfast kernels.
//
// Sizes used in shape comments throughout cpp/:
//   batch  rows of a mini-batch (samples are rows)
//   n_in   inputs of a dense layer, n_out its outputs
//   M, N, K  the GEMM C (M, N) = op(A) (M, K) · op(B) (K, N)
#pragma once

#include <cstddef>
#include <vector>

namespace bpfast {

using index = std::ptrdiff_t;

enum class Activation { identity, sigmoid, tanh, relu, softmax };

enum class Reduction { mean, sum };

// Where each layer's parameters start in the flat array W_0, b_0, W_1, b_1, ...
// of a network with these sizes (layer l maps sizes[l] inputs to sizes[l+1]
// outputs); one entry per layer, then the total count.
inline std::vector<index> parameter_offsets(const std::vector<index>& sizes) {
    std::vector<index> offsets{0};
    for (size_t l = 0; l + 1 < sizes.size(); ++l)
        offsets.push_back(offsets.back() + sizes[l + 1] * sizes[l] + sizes[l + 1]);
    return offsets;
}

}  // namespace bpfast
