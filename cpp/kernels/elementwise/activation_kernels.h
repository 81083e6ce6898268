// Activations over whole arrays, their derivatives with the bias gradient,
// the forward epilogue and the row-wise softmax: one table per ISA, built
// from the loops of activation_loops.h by each ISA unit (kernels/isa/) and
// chosen once per process (runtime/dispatch.cpp). Outputs come first.
//   arrays are (rows, cols), row-major
#pragma once

#include "common.h"

namespace bpfast {

template <typename T>
struct ActivationKernels {
    // y = act(x) for n values, y may be x; act is elementwise (not softmax).
    void (*forward)(T* y, const T* x, index n, Activation act);
    // Row-wise softmax P = softmax(Z), P may be Z; when row_max is not null it
    // gets each row's max m and log_sum its log Σ_j exp(z_j − m), both (rows,).
    void (*softmax)(T* P, T* row_max, T* log_sum, const T* Z, index rows, index cols);
    // dZ = dA ⊙ σ'(A) (dZ may be dA; for softmax the Jacobian-vector product)
    // and, when db is not null, db = Σ_rows dZ.
    void (*backward)(T* dZ, T* db, const T* dA, const T* A, index rows, index cols, Activation act);
    // c = act(c + b) on a (rows, cols) tile with row stride ldc; act elementwise.
    void (*bias_activation)(T* c, index ldc, const T* b, index rows, index cols, Activation act);
};

// The table chosen for this process.
template <typename T>
const ActivationKernels<T>& active_activation_kernels();

// A = act(Z), Z and A (rows, cols); A may be Z.
template <typename T>
void activation_forward(T* A, const T* Z, index rows, index cols, Activation act) {
    if (act == Activation::softmax) return active_activation_kernels<T>().softmax(A, nullptr, nullptr, Z, rows, cols);
    active_activation_kernels<T>().forward(A, Z, rows * cols, act);
}

// dZ = dA ⊙ σ'(A) from the stored output A (for softmax, dZ = J·dA with
// J_ij = y_i(1{i=j} − y_j), row by row); dZ may be dA. With db given, also
// db (cols,) = Σ_rows dZ.
template <typename T>
void activation_backward(T* dZ, T* db, const T* dA, const T* A, index rows, index cols, Activation act) {
    active_activation_kernels<T>().backward(dZ, db, dA, A, rows, cols, act);
}

// Row-wise softmax with each row's max and log Σ exp(z − max) (see the table).
template <typename T>
void softmax_rows(T* P, T* row_max, T* log_sum, const T* Z, index rows, index cols) {
    active_activation_kernels<T>().softmax(P, row_max, log_sum, Z, rows, cols);
}

// c = act(c + b) on a tile of a GEMM's output (the forward epilogue).
template <typename T>
void bias_activation(T* c, index ldc, const T* b, index rows, index cols, Activation act) {
    active_activation_kernels<T>().bias_activation(c, ldc, b, rows, cols, act);
}

}  // namespace bpfast
