// Whole-array checks used on gradients and on user input; the loops are in
// optim_loops.h, compiled per ISA.
#pragma once

#include "common.h"
#include "kernels/elementwise/elementwise.h"

namespace bpfast {

// Σ x², in double.
inline double sum_of_squares(const float* x, index n) { return active_elementwise().sum_of_squares_f32(x, n); }
inline double sum_of_squares(const double* x, index n) { return active_elementwise().sum_of_squares_f64(x, n); }

// Whether no value is NaN or ±Inf.
inline bool all_finite(const float* x, index n) { return active_elementwise().all_finite_f32(x, n); }
inline bool all_finite(const double* x, index n) { return active_elementwise().all_finite_f64(x, n); }

}  // namespace bpfast
