// The loops behind elementwise.h. Included by one translation unit per ISA;
// the anonymous namespace (and fastmath.h's static functions) give each unit
// its own copy, compiled with its own flags.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common.h"
#include "kernels/elementwise/fastmath.h"

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

// y > 0 ? d : +0, as a bit mask rather than a branch: relu's pattern of
// signs is random, so a branch mispredicts, while the mask vectorises.
template <typename T>
T pass_if_positive(T y, T d) {
    using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    Bits bits;
    std::memcpy(&bits, &d, sizeof bits);
    bits &= Bits(0) - Bits(y > T(0));
    std::memcpy(&d, &bits, sizeof bits);
    return d;
}

// Σ_j x_j y_j over LANES independent partial sums, so that it vectorises
// (one running sum is a chain of dependent additions).
template <typename T>
T lane_dot(const T* x, const T* y, index n) {
    constexpr int LANES = 64 / sizeof(T);
    T partial[LANES] = {};
    index j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; ++k) partial[k] += x[j + k] * y[j + k];
    T total = T(0);
    for (; j < n; ++j) total += x[j] * y[j];
    for (int k = 0; k < LANES; ++k) total += partial[k];
    return total;
}

// One row of δ = dA ⊙ σ'(A): dz, dy and y are n values; dz may be dy.
template <typename T>
void backward_row(T* dz, const T* dy, const T* y, index n, Activation act) {
    switch (act) {
        case Activation::identity:
            if (dz != dy)
                for (index j = 0; j < n; ++j) dz[j] = dy[j];
            return;
        case Activation::sigmoid:
            for (index j = 0; j < n; ++j) dz[j] = dy[j] * y[j] * (T(1) - y[j]);
            return;
        case Activation::tanh:
            for (index j = 0; j < n; ++j) dz[j] = dy[j] * (T(1) - y[j] * y[j]);
            return;
        case Activation::relu:
            for (index j = 0; j < n; ++j) dz[j] = pass_if_positive(y[j], dy[j]);
            return;
        case Activation::softmax: {
            const T dot = lane_dot(y, dy, n);  // Σ_j y_j dy_j
            for (index j = 0; j < n; ++j) dz[j] = y[j] * (dy[j] - dot);
            return;
        }
    }
}

// dZ = dA ⊙ σ'(A) row by row (dZ may be dA), and db = Σ_rows dZ when db is
// not null. dZ, dA and A are (rows, cols), db is (cols,).
template <typename T>
void backward_loop(T* dZ, T* db, const T* dA, const T* A, index rows, index cols, Activation act) {
    if (db)
        for (index j = 0; j < cols; ++j) db[j] = T(0);
    for (index r = 0; r < rows; ++r) {
        T* dz = dZ + r * cols;
        backward_row(dz, dA + r * cols, A + r * cols, cols, act);
        if (db)
            for (index j = 0; j < cols; ++j) db[j] += dz[j];
    }
}

// c = act(c + b) on a (rows, cols) tile with row stride ldc; b is (cols,).
// act is elementwise (softmax needs whole rows and runs after the GEMM).
template <typename T>
void bias_activation_loop(T* c, index ldc, const T* b, index rows, index cols, Activation act) {
    for (index i = 0; i < rows; ++i) {
        T* row = c + i * ldc;
        switch (act) {
            case Activation::relu:
                for (index j = 0; j < cols; ++j) {
                    const T z = row[j] + b[j];
                    row[j] = z < T(0) ? T(0) : z;  // as activate_loop: NaN passes through
                }
                break;
            case Activation::sigmoid:
                for (index j = 0; j < cols; ++j) row[j] = sigmoid(row[j] + b[j]);
                break;
            case Activation::tanh:
                for (index j = 0; j < cols; ++j) row[j] = tanh_fast(row[j] + b[j]);
                break;
            default:
                for (index j = 0; j < cols; ++j) row[j] += b[j];
                break;
        }
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
// and, when row_max is given, row_max[r] = m and log_sum[r] = log Σ_k exp(z_k − m)
// (cross-entropy needs log-sum-exp = m + log_sum, which it forms in double).
// P may be Z. The max and the sum run over LANES independent partials, so
// that they vectorise.
template <typename T>
void softmax_rows_loop(const T* Z, T* P, index rows, index cols, T* row_max, T* log_sum) {
    // Z and P are (rows, cols); row_max and log_sum are (rows,) or both null
    if (cols == 0) return;
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
        // The sum in double: it is 1 (the max's term) plus the others, and a
        // confident row's log-sum, of the size of those others, must not be
        // lost to the rounding of float additions onto 1.
        double partial_sum[LANES] = {};
        j = 0;
        for (; j + LANES <= cols; j += LANES)
            for (int k = 0; k < LANES; ++k) partial_sum[k] += double(p[j + k]);
        double sum = 0.0;
        for (int k = 0; k < LANES; ++k) sum += partial_sum[k];
        for (; j < cols; ++j) sum += double(p[j]);
        const T inv = T(1.0 / sum);
        for (index i = 0; i < cols; ++i) p[i] *= inv;
        if (row_max) {
            row_max[r] = m;
            log_sum[r] = T(natural_log(sum));
        }
    }
}

}  // namespace
}  // namespace bpfast
