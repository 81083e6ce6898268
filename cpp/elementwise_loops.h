// The loops behind elementwise.h. Included by one translation unit per ISA;
// the anonymous namespace (and fastmath.h's static functions) give each unit
// its own copy, compiled with its own flags.
#pragma once

#include "common.h"
#include "fastmath.h"

namespace bpfast {
namespace {

template <typename T>
void activate_loop(T* x, index n, Activation act) {
    // x is n values, updated in place
    switch (act) {
        case Activation::sigmoid:
            for (index i = 0; i < n; ++i) x[i] = sigmoid(x[i]);
            return;
        case Activation::tanh:
            for (index i = 0; i < n; ++i) x[i] = tanh_fast(x[i]);
            return;
        case Activation::relu:
            // A select the compiler turns into a vector max; NaN passes through.
            for (index i = 0; i < n; ++i) x[i] = x[i] < T(0) ? T(0) : x[i];
            return;
        default:
            return;  // identity; softmax is row-wise and not handled here
    }
}

// Row-wise softmax, in place: y_j = exp(z_j − m) / Σ_k exp(z_k − m), m = max_k z_k.
// The max and the sum run over LANES independent partials, so that they vectorise.
template <typename T>
void softmax_rows_loop(T* A, index rows, index cols) {
    // A is (rows, cols)
    constexpr int LANES = 8;
    for (index r = 0; r < rows; ++r) {
        T* row = A + r * cols;
        T partial_max[LANES];
        for (int k = 0; k < LANES; ++k) partial_max[k] = row[0];
        index j = 0;
        for (; j + LANES <= cols; j += LANES)
            for (int k = 0; k < LANES; ++k)
                partial_max[k] = select(row[j + k] > partial_max[k], row[j + k], partial_max[k]);
        T m = partial_max[0];
        for (int k = 1; k < LANES; ++k) m = select(partial_max[k] > m, partial_max[k], m);
        for (; j < cols; ++j) m = select(row[j] > m, row[j], m);

        for (index i = 0; i < cols; ++i) row[i] = exp_fast(row[i] - m);
        T partial_sum[LANES] = {};
        j = 0;
        for (; j + LANES <= cols; j += LANES)
            for (int k = 0; k < LANES; ++k) partial_sum[k] += row[j + k];
        T sum = T(0);
        for (int k = 0; k < LANES; ++k) sum += partial_sum[k];
        for (; j < cols; ++j) sum += row[j];
        const T inv = T(1) / sum;
        for (index i = 0; i < cols; ++i) row[i] *= inv;
    }
}

}  // namespace
}  // namespace bpfast
