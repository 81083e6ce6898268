// The loops behind activation_kernels.h. Included by one translation unit per
// ISA; the anonymous namespace (and fastmath.h's static functions) give each
// unit its own copy, compiled with its own flags.
#pragma once

#include <algorithm>
#include <cstring>

#include "common.h"
#include "kernels/elementwise/activation_kernels.h"
#include "kernels/elementwise/fastmath.h"
#include "kernels/elementwise/formulas.h"
#include "kernels/elementwise/vector_lanes.h"

namespace bpfast {
namespace {

// y = act(x) for n values; y may be x.
template <typename T>
void activation_forward_loop(T* y, const T* x, index n, Activation act) {
    switch (act) {
        case Activation::sigmoid:
            for (index i = 0; i < n; ++i) y[i] = sigmoid(x[i]);
            return;
        case Activation::tanh:
            for (index i = 0; i < n; ++i) y[i] = tanh_fast(x[i]);
            return;
        case Activation::relu:
            for (index i = 0; i < n; ++i) y[i] = relu(x[i]);
            return;
        default:  // identity; softmax is row-wise and not handled here
            if (y != x)
                for (index i = 0; i < n; ++i) y[i] = x[i];
            return;
    }
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

// dz = dy ⊙ σ'(y) over n values, with the activation fixed at compile time
// so that the loop vectorises.
template <Activation A, typename T>
void times_derivative_row(T* dz, const T* dy, const T* y, index n) {
    for (index j = 0; j < n; ++j) dz[j] = times_derivative<A>(dy[j], y[j]);
}

// One row of δ = dA ⊙ σ'(A): dz, dy and y are n values; dz may be dy.
template <typename T>
void backward_row(T* dz, const T* dy, const T* y, index n, Activation act) {
    switch (act) {
        case Activation::identity:
            if (dz != dy)
                for (index j = 0; j < n; ++j) dz[j] = dy[j];
            return;
        case Activation::sigmoid: return times_derivative_row<Activation::sigmoid>(dz, dy, y, n);
        case Activation::tanh: return times_derivative_row<Activation::tanh>(dz, dy, y, n);
        case Activation::relu: return times_derivative_row<Activation::relu>(dz, dy, y, n);
        case Activation::softmax: {
            const T dot = lane_dot(y, dy, n);  // Σ_j y_j dy_j
            for (index j = 0; j < n; ++j) dz[j] = y[j] * (dy[j] - dot);
            return;
        }
    }
}

// Rows narrower than this have their bias gradient summed a column at a time
// in registers; wider ones row by row into db, while each row is in cache.
constexpr index NARROW_COLUMNS = 16;

// db (cols,) = Σ_rows δ for δ (rows, cols) of a narrow layer (an output layer
// of a few units): each column in four partial sums held in registers, since
// adding into db row by row would wait on a store and a load per row.
template <typename T>
void column_sums(T* db, const T* delta, index rows, index cols) {
    for (index j = 0; j < cols; ++j) {
        T partial[4] = {};
        index m = 0;
        for (; m + 4 <= rows; m += 4)
            for (int u = 0; u < 4; ++u) partial[u] += delta[(m + u) * cols + j];
        for (; m < rows; ++m) partial[0] += delta[m * cols + j];
        db[j] = (partial[0] + partial[1]) + (partial[2] + partial[3]);
    }
}

// dZ = dA ⊙ σ'(A) row by row (dZ may be dA), and db = Σ_rows dZ when db is
// not null. dZ, dA and A are (rows, cols), db is (cols,).
template <typename T>
void activation_backward_loop(T* dZ, T* db, const T* dA, const T* A, index rows, index cols, Activation act) {
    const bool sum_by_rows = db && cols >= NARROW_COLUMNS;
    if (sum_by_rows)
        for (index j = 0; j < cols; ++j) db[j] = T(0);
    const bool nothing_to_apply = act == Activation::identity && dZ == dA;  // δ is dA already
    for (index r = 0; r < rows && !(nothing_to_apply && !sum_by_rows); ++r) {
        T* dz = dZ + r * cols;
        backward_row(dz, dA + r * cols, A + r * cols, cols, act);
        if (sum_by_rows)
            for (index j = 0; j < cols; ++j) db[j] += dz[j];
    }
    if (db && !sum_by_rows) column_sums(db, dZ, rows, cols);
}

// c = act(c + b) on a (rows, cols) tile with row stride ldc; b is (cols,).
// act is elementwise (softmax needs whole rows and runs after the GEMM).
template <typename T>
void bias_activation_loop(T* c, index ldc, const T* b, index rows, index cols, Activation act) {
    for (index i = 0; i < rows; ++i) {
        T* row = c + i * ldc;
        switch (act) {
            case Activation::relu:
                for (index j = 0; j < cols; ++j) row[j] = relu(row[j] + b[j]);
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

// Row-wise softmax: P_j = exp(z_j − m) / Σ_k exp(z_k − m), m = max_k z_k,
// and, when row_max is given, row_max[r] = m and log_sum[r] = log Σ_k exp(z_k − m)
// (cross-entropy needs log-sum-exp = m + log_sum, which it forms in double).
// P may be Z. The max and the sum run over LANES independent partials, so
// that they vectorise.
template <typename T>
void softmax_rows_loop(T* P, T* row_max, T* log_sum, const T* Z, index rows, index cols) {
    // Z and P are (rows, cols); row_max and log_sum are (rows,) or both null
    if (cols == 0) return;
    constexpr int LANES = 64 / sizeof(T);  // one 512-bit vector
    using Lanes = Vector512<T>;
    // Rows go in blocks of about BLOCK values: each row's max and z − m first,
    // then one exp over the whole block (a few classes a row would leave
    // most of a vector idle, row by row), then each row's sum and scale.
    constexpr index BLOCK = 256;
    const index block_rows = std::max<index>(1, std::min<index>(BLOCK / cols, BLOCK));
    T maxima[BLOCK];
    for (index r0 = 0; r0 < rows; r0 += block_rows) {
        const index r1 = std::min(rows, r0 + block_rows);
        for (index r = r0; r < r1; ++r) {
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
            maxima[r - r0] = m;
            for (index i = 0; i < cols; ++i) p[i] = z[i] - m;  // P may be Z: m is known before this row's writes
        }
        T* block = P + r0 * cols;
        for (index i = 0; i < (r1 - r0) * cols; ++i) block[i] = exp_fast(block[i]);
        for (index r = r0; r < r1; ++r) {
            T* p = P + r * cols;
            // The sum in double: it is 1 (the max's term) plus the others, and a
            // confident row's log-sum, of the size of those others, must not be
            // lost to the rounding of float additions onto 1.
            double partial_sum[LANES] = {};
            index j = 0;
            for (; j + LANES <= cols; j += LANES)
                for (int k = 0; k < LANES; ++k) partial_sum[k] += double(p[j + k]);
            double sum = 0.0;
            for (int k = 0; k < LANES; ++k) sum += partial_sum[k];
            for (; j < cols; ++j) sum += double(p[j]);
            const T inv = T(1.0 / sum);
            for (index i = 0; i < cols; ++i) p[i] *= inv;
            if (row_max) {
                row_max[r] = maxima[r - r0];
                log_sum[r] = T(natural_log(sum));
            }
        }
    }
}

template <typename T>
ActivationKernels<T> activation_loops_table() {
    return {&activation_forward_loop<T>, &softmax_rows_loop<T>, &activation_backward_loop<T>,
            &bias_activation_loop<T>};
}

}  // namespace
}  // namespace bpfast
