// The loops behind elementwise.h. Included by one translation unit per ISA;
// the anonymous namespace (and fastmath.h's static functions) give each unit
// its own copy, compiled with its own flags.
#pragma once

#include <cmath>
#include <cstring>

#include "common.h"
#include "fastmath.h"

namespace bpfast {
namespace {

// y = act(x) for n values; y may be x.
template <typename T>
void activate_loop(const T* x, T* y, index n, Activation act) {
    switch (act) {
        case Activation::sigmoid:
            for (index i = 0; i < n; ++i) y[i] = sigmoid(x[i]);
            return;
        case Activation::tanh:
            for (index i = 0; i < n; ++i) y[i] = tanh_fast(x[i]);
            return;
        case Activation::relu:
            // A select the compiler turns into a vector max; NaN passes through.
            for (index i = 0; i < n; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];
            return;
        default:  // identity; softmax is row-wise and not handled here
            if (y != x)
                for (index i = 0; i < n; ++i) y[i] = x[i];
            return;
    }
}

// GCC's generic vectors of 64 bytes: one zmm, two ymm or four xmm, by the
// unit's flags. Used where the vectoriser will not turn a loop into one.
template <typename T>
struct Vector512;
template <>
struct Vector512<float> {
    typedef float type __attribute__((vector_size(64)));
};
template <>
struct Vector512<double> {
    typedef double type __attribute__((vector_size(64)));
};

// Row-wise softmax: P_j = exp(z_j − m) / Σ_k exp(z_k − m), m = max_k z_k,
// and, when log_sum_exp is given, log_sum_exp[r] = m + log Σ_k exp(z_k − m)
// (the log-sum-exp of row r, which cross-entropy needs). P may be Z.
// The max and the sum run over LANES independent partials, so that they vectorise.
template <typename T>
void softmax_rows_loop(const T* Z, T* P, index rows, index cols, T* log_sum_exp) {
    // Z and P are (rows, cols); log_sum_exp is (rows,) or null
    constexpr int LANES = 64 / sizeof(T);  // one 512-bit vector
    using Lanes = typename Vector512<T>::type;
    for (index r = 0; r < rows; ++r) {
        const T* z = Z + r * cols;
        T* p = P + r * cols;
        Lanes partial_max = Lanes{} + z[0];
        index j = 0;
        for (; j + LANES <= cols; j += LANES) {
            Lanes v;
            std::memcpy(&v, z + j, sizeof v);
            partial_max = v > partial_max ? v : partial_max;
        }
        T m = partial_max[0];
        for (int k = 1; k < LANES; ++k) m = partial_max[k] > m ? partial_max[k] : m;
        for (; j < cols; ++j) m = z[j] > m ? z[j] : m;

        for (index i = 0; i < cols; ++i) p[i] = exp_fast(z[i] - m);
        T partial_sum[LANES] = {};
        j = 0;
        for (; j + LANES <= cols; j += LANES)
            for (int k = 0; k < LANES; ++k) partial_sum[k] += p[j + k];
        T sum = T(0);
        for (int k = 0; k < LANES; ++k) sum += partial_sum[k];
        for (; j < cols; ++j) sum += p[j];
        const T inv = T(1) / sum;
        for (index i = 0; i < cols; ++i) p[i] *= inv;
        if (log_sum_exp) log_sum_exp[r] = m + std::log(sum);
    }
}

}  // namespace
}  // namespace bpfast
