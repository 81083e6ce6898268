// Elementwise activations over whole arrays, chosen per ISA like the
// micro-kernels: the same loops (elementwise_loops.h) compiled once portably
// and once per ISA (-mavx2 -mfma, -mavx512f), where the compiler vectorises them.
#pragma once

#include "common.h"

namespace bpfast {

// x = act(x) for n values; act is identity, sigmoid, tanh or relu.
template <typename T>
using ActivateFn = void (*)(T* x, index n, Activation act);

// Row-wise softmax in place; A is (rows, cols).
template <typename T>
using SoftmaxFn = void (*)(T* A, index rows, index cols);

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

inline void activate_elementwise(float* x, index n, Activation act) {
    active_elementwise().activate_f32(x, n, act);
}
inline void activate_elementwise(double* x, index n, Activation act) {
    active_elementwise().activate_f64(x, n, act);
}

inline void softmax_rows(float* A, index rows, index cols) {
    active_elementwise().softmax_f32(A, rows, cols);
}
inline void softmax_rows(double* A, index rows, index cols) {
    active_elementwise().softmax_f64(A, rows, cols);
}

}  // namespace bpfast
