// Dense layer forward and backward, built on the products of precision P
// (kernels/product.h) and the activation kernels; T is P's storage type.
#pragma once

#include "common.h"
#include "precision.h"

namespace bpfast {

// A = act(X·Wᵀ + b).
// X is (batch, n_in), W is (n_out, n_in), b is (n_out,), A is (batch, n_out).
template <typename P, typename T = Storage<P>>
void dense_forward(T* A, const T* X, const T* W, const T* b, index batch, index n_in, index n_out,
                   Activation act);

// dW (n_out, n_in) = δᵀ·X, or dW += δᵀ·X with accumulate: the sum over the
// batch of the outer products δ_m x_mᵀ. δ is (batch, n_out), X is (batch, n_in).
template <typename P, typename T = Storage<P>>
void weight_gradient(T* dW, const T* delta, const T* X, index batch, index n_in, index n_out,
                     bool accumulate = false);

// dX (batch, n_in) = δ·W. δ is (batch, n_out), W is (n_out, n_in).
template <typename P, typename T = Storage<P>>
void input_gradient(T* dX, const T* delta, const T* W, index batch, index n_in, index n_out);

// From dA = dLoss/dA: δ = dA ⊙ σ'(A), dX = δ·W, dW = δᵀ·X, db = Σ_rows δ.
// dX may be null (the first layer needs none); delta is scratch room for δ.
// dA, A and delta are (batch, n_out), X and dX are (batch, n_in), W and dW are (n_out, n_in).
template <typename P, typename T = Storage<P>>
void dense_backward(T* dX, T* dW, T* db, T* delta, const T* dA, const T* X, const T* W, const T* A,
                    index batch, index n_in, index n_out, Activation act);

}  // namespace bpfast
