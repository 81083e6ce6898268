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
// log_sum_exp is not null it gets each row's log Σ_j exp(z_j) (rows,).
template <typename T>
using SoftmaxFn = void (*)(const T* Z, T* P, index rows, index cols, T* log_sum_exp);

struct ElementwiseKernels {
    ActivateFn<float> activate_f32;
    ActivateFn<double> activate_f64;
    SoftmaxFn<float> softmax_f32;
    SoftmaxFn<double> softmax_f64;
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

inline void softmax_rows(const float* Z, float* P, index rows, index cols,
                         float* log_sum_exp = nullptr) {
    active_elementwise().softmax_f32(Z, P, rows, cols, log_sum_exp);
}
inline void softmax_rows(const double* Z, double* P, index rows, index cols,
                         double* log_sum_exp = nullptr) {
    active_elementwise().softmax_f64(Z, P, rows, cols, log_sum_exp);
}

}  // namespace bpfast
