// Elementwise activations, their derivatives taken from the stored output,
// and the row-wise softmax with its Jacobian-vector product.
//   rows x cols arrays, row-major; softmax normalises each row.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common.h"
#include "elementwise.h"
#include "fastmath.h"

namespace bpfast {

// y > 0 ? d : +0, as a bit mask rather than a branch: relu's pattern of
// signs is random, so a branch mispredicts, while the mask vectorises.
template <typename T>
inline T pass_if_positive(T y, T d) {
    using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    Bits bits;
    std::memcpy(&bits, &d, sizeof bits);
    bits &= Bits(0) - Bits(y > T(0));
    std::memcpy(&d, &bits, sizeof bits);
    return d;
}

// Σ_j x_j y_j over LANES independent partial sums, so that it vectorises
// (one running sum is a chain of dependent additions).
template <typename T>
inline T lane_dot(const T* x, const T* y, index n) {
    constexpr int LANES = 16;
    T partial[LANES] = {};
    index j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; ++k) partial[k] += x[j + k] * y[j + k];
    T total = T(0);
    for (; j < n; ++j) total += x[j] * y[j];
    for (int k = 0; k < LANES; ++k) total += partial[k];
    return total;
}

// A = act(Z); A may be Z. Both are (rows, cols).
template <typename T>
void activate(const T* Z, T* A, index rows, index cols, Activation act) {
    if (act == Activation::softmax) return softmax_rows(Z, A, rows, cols);
    activate_elementwise(Z, A, rows * cols, act);
}

// dZ = dA ⊙ σ'(Z) with σ' from the output A: y(1-y), 1-y², [y>0];
// for softmax, dZ = J·dA with J_ij = y_i(1{i=j} - y_j), row by row.
// dZ may alias dA. All arrays are (rows, cols).
template <typename T>
void activation_backward(T* dZ, const T* dA, const T* A, index rows, index cols, Activation act) {
    const index n = rows * cols;
    switch (act) {
        case Activation::identity:
            if (dZ != dA) std::copy(dA, dA + n, dZ);
            return;
        case Activation::sigmoid:
            for (index i = 0; i < n; ++i) dZ[i] = dA[i] * A[i] * (T(1) - A[i]);
            return;
        case Activation::tanh:
            for (index i = 0; i < n; ++i) dZ[i] = dA[i] * (T(1) - A[i] * A[i]);
            return;
        case Activation::relu:
            for (index i = 0; i < n; ++i) dZ[i] = pass_if_positive(A[i], dA[i]);
            return;
        case Activation::softmax:
            for (index r = 0; r < rows; ++r) {
                const T* y = A + r * cols;
                const T* dy = dA + r * cols;
                T* dz = dZ + r * cols;
                const T dot = lane_dot(y, dy, cols);  // Σ_j y_j dy_j
                for (index j = 0; j < cols; ++j) dz[j] = y[j] * (dy[j] - dot);
            }
            return;
    }
}

}  // namespace bpfast
