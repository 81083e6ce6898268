// Whole-array checks on user input and on gradients: one table per ISA, built
// from check_loops.h by each ISA unit (kernels/isa/) and chosen once per process.
#pragma once

#include "common.h"

namespace bpfast {

template <typename T>
struct CheckKernels {
    bool (*all_finite)(const T* x, index n);        // no value is NaN or ±Inf
    double (*sum_of_squares)(const T* x, index n);  // Σ x², in double
};

template <typename T>
const CheckKernels<T>& active_check_kernels();

// Whether no value of x (n values) is NaN or ±Inf.
template <typename T>
bool all_finite(const T* x, index n) {
    return active_check_kernels<T>().all_finite(x, n);
}

// Σ x² over n values, in double.
template <typename T>
double sum_of_squares(const T* x, index n) {
    return active_check_kernels<T>().sum_of_squares(x, n);
}

}  // namespace bpfast
