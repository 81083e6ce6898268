// Elementwise activations over whole arrays, chosen per ISA like the
// micro-kernels: the same loops (elementwise_loops.h) compiled once portably
// and once per ISA (-mavx2 -mfma, -mavx512f), where the compiler vectorises them.
#pragma once

#include "common.h"

namespace bpfast {

// y = act(x) for n values, y may be x; act is identity, sigmoid, tanh or relu.
template <typename T>
using ActivateFn = void (*)(const T* x, T* y, index n, Activation act);

// Row-wise softmax P = softmax(Z), Z and P (rows, cols), P may be Z; when
// row_max is not null it gets each row's max m and log_sum its
// log Σ_j exp(z_j − m), both (rows,).
template <typename T>
using SoftmaxFn = void (*)(const T* Z, T* P, index rows, index cols, T* row_max, T* log_sum);

// dZ = dA ⊙ σ'(A) (dZ may be dA) and, when db is not null, db = Σ_rows dZ.
template <typename T>
using BackwardFn = void (*)(T* dZ, T* db, const T* dA, const T* A, index rows, index cols, Activation act);

// c = act(c + b) on a (rows, cols) tile with row stride ldc; act elementwise.
template <typename T>
using BiasActivationFn = void (*)(T* c, index ldc, const T* b, index rows, index cols, Activation act);

struct OptimizerConfig;

// One optimizer step on n parameters (see optim.h).
template <typename T>
using OptimizerFn = void (*)(T* param, const T* grad, T* m, T* v, index n, const OptimizerConfig& c,
                             double lr, double decay, long t);

template <typename T>
using SumOfSquaresFn = double (*)(const T* x, index n);

template <typename T>
using AllFiniteFn = bool (*)(const T* x, index n);

struct ElementwiseKernels {
    ActivateFn<float> activate_f32;
    ActivateFn<double> activate_f64;
    SoftmaxFn<float> softmax_f32;
    SoftmaxFn<double> softmax_f64;
    BackwardFn<float> backward_f32;
    BackwardFn<double> backward_f64;
    BiasActivationFn<float> bias_activation_f32;
    BiasActivationFn<double> bias_activation_f64;
    OptimizerFn<float> optimizer_f32;
    OptimizerFn<double> optimizer_f64;
    SumOfSquaresFn<float> sum_of_squares_f32;
    SumOfSquaresFn<double> sum_of_squares_f64;
    AllFiniteFn<float> all_finite_f32;
    AllFiniteFn<double> all_finite_f64;

    void optimizer_update(float* p, const float* g, float* m, float* v, index n,
                          const OptimizerConfig& c, double lr, double decay, long t) const {
        optimizer_f32(p, g, m, v, n, c, lr, decay, t);
    }
    void optimizer_update(double* p, const double* g, double* m, double* v, index n,
                          const OptimizerConfig& c, double lr, double decay, long t) const {
        optimizer_f64(p, g, m, v, n, c, lr, decay, t);
    }
};


ElementwiseKernels elementwise_generic();
#if BPFAST_HAVE_AVX2
ElementwiseKernels elementwise_avx2();
#endif
#if BPFAST_HAVE_AVX512
ElementwiseKernels elementwise_avx512();
#endif

// The kernels chosen once for this process (see dispatch.cpp).
const ElementwiseKernels& active_elementwise();

inline void activate_elementwise(const float* x, float* y, index n, Activation act) {
    active_elementwise().activate_f32(x, y, n, act);
}
inline void activate_elementwise(const double* x, double* y, index n, Activation act) {
    active_elementwise().activate_f64(x, y, n, act);
}

inline void activate_backward_elementwise(float* dZ, float* db, const float* dA, const float* A,
                                          index rows, index cols, Activation act) {
    active_elementwise().backward_f32(dZ, db, dA, A, rows, cols, act);
}
inline void activate_backward_elementwise(double* dZ, double* db, const double* dA, const double* A,
                                          index rows, index cols, Activation act) {
    active_elementwise().backward_f64(dZ, db, dA, A, rows, cols, act);
}

inline void bias_activation(float* c, index ldc, const float* b, index rows, index cols, Activation act) {
    active_elementwise().bias_activation_f32(c, ldc, b, rows, cols, act);
}
inline void bias_activation(double* c, index ldc, const double* b, index rows, index cols,
                            Activation act) {
    active_elementwise().bias_activation_f64(c, ldc, b, rows, cols, act);
}

inline void softmax_rows(const float* Z, float* P, index rows, index cols, float* row_max = nullptr,
                         float* log_sum = nullptr) {
    active_elementwise().softmax_f32(Z, P, rows, cols, row_max, log_sum);
}
inline void softmax_rows(const double* Z, double* P, index rows, index cols, double* row_max = nullptr,
                         double* log_sum = nullptr) {
    active_elementwise().softmax_f64(Z, P, rows, cols, row_max, log_sum);
}

}  // namespace bpfast
