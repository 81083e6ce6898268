// Whole-array checks used on gradients and on user input.
#pragma once

#include "common.h"

namespace bpfast {

// Σ x², in double, over 8 independent partial sums so that the loop is not
// one long chain of dependent additions (the compiler may not reorder them).
template <typename T>
inline double sum_of_squares(const T* x, index n) {
    constexpr int LANES = 8;
    double partial[LANES] = {};
    index i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; ++j) partial[j] += double(x[i + j]) * double(x[i + j]);
    for (; i < n; ++i) partial[0] += double(x[i]) * double(x[i]);
    double total = 0.0;
    for (double p : partial) total += p;
    return total;
}

// Whether no value is NaN or ±Inf: x·0 is 0 for finite x and NaN otherwise,
// summed over independent partial sums so that the loop vectorises.
template <typename T>
inline bool all_finite(const T* x, index n) {
    constexpr int LANES = 8;
    T partial[LANES] = {};
    index i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; ++j) partial[j] += x[i + j] * T(0);
    for (; i < n; ++i) partial[0] += x[i] * T(0);
    T total = T(0);
    for (T p : partial) total += p;
    return total == T(0);
}

}  // namespace bpfast
