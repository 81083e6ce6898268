// Elementwise activations, their derivatives taken from the stored output,
// and the row-wise softmax with its Jacobian-vector product.
//   rows x cols arrays, row-major; softmax normalises each row.
#pragma once

#include "common.h"
#include "kernels/elementwise/elementwise.h"

namespace bpfast {

// A = act(Z); A may be Z. Both are (rows, cols).
template <typename T>
void activate(const T* Z, T* A, index rows, index cols, Activation act) {
    if (act == Activation::softmax) return softmax_rows(Z, A, rows, cols);
    activate_elementwise(Z, A, rows * cols, act);
}

// dZ = dA ⊙ σ'(Z) with σ' from the output A: y(1-y), 1-y², [y>0];
// for softmax, dZ = J·dA with J_ij = y_i(1{i=j} - y_j), row by row.
// dZ may alias dA. All arrays are (rows, cols). With db given, also
// db = Σ_rows dZ (cols,), summed while each row is in cache.
template <typename T>
void activation_backward(T* dZ, const T* dA, const T* A, index rows, index cols, Activation act,
                         T* db = nullptr) {
    activate_backward_elementwise(dZ, db, dA, A, rows, cols, act);
}

}  // namespace bpfast
