// The table of one ISA's elementwise kernels, built from the loops of
// elementwise_loops.h and optim_loops.h. Included once by each
// elementwise_<isa>.cpp, so that each table points at its own unit's copies.
#pragma once

#include "kernels/elementwise/elementwise.h"
#include "kernels/elementwise/elementwise_loops.h"
#include "kernels/elementwise/optim_loops.h"

namespace bpfast {
namespace {

ElementwiseKernels this_units_kernels() {
    ElementwiseKernels k;
    k.activate_f32 = &activate_loop<float>;
    k.activate_f64 = &activate_loop<double>;
    k.softmax_f32 = &softmax_rows_loop<float>;
    k.softmax_f64 = &softmax_rows_loop<double>;
    k.backward_f32 = &backward_loop<float>;
    k.backward_f64 = &backward_loop<double>;
    k.bias_activation_f32 = &bias_activation_loop<float>;
    k.bias_activation_f64 = &bias_activation_loop<double>;
    k.optimizer_f32 = &optimizer_loop<float>;
    k.optimizer_f64 = &optimizer_loop<double>;
    k.sum_of_squares_f32 = &sum_of_squares_loop<float>;
    k.sum_of_squares_f64 = &sum_of_squares_loop<double>;
    k.all_finite_f32 = &all_finite_loop<float>;
    k.all_finite_f64 = &all_finite_loop<double>;
    return k;
}

}  // namespace
}  // namespace bpfast
