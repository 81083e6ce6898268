// The loops behind check_kernels.h, included by one translation unit per ISA
// (as activation_loops.h).
#pragma once

#include <cstring>

#include "common.h"
#include "kernels/elementwise/check_kernels.h"
#include "kernels/elementwise/vector_lanes.h"

namespace bpfast {
namespace {

// Whether no value is NaN or ±Inf: x·0 is 0 for finite x and NaN otherwise,
// summed in four vector accumulators (the sums are 0 or NaN whatever the
// order; summing x itself could overflow) and folded by all_lanes_finite.
// Vectors held in registers, not an array of partial sums, so that a call on
// a few values costs a few instructions.
template <typename T>
bool all_finite_loop(const T* x, index n) {
    using V = Vector512<T>;
    constexpr index L = 64 / sizeof(T);
    V a{}, b{}, c{}, d{};
    index i = 0;
    for (; i + 4 * L <= n; i += 4 * L) {
        V v[4];
        std::memcpy(v, x + i, sizeof v);
        a += v[0] * T(0);
        b += v[1] * T(0);
        c += v[2] * T(0);
        d += v[3] * T(0);
    }
    for (; i + L <= n; i += L) {
        V v;
        std::memcpy(&v, x + i, sizeof v);
        a += v * T(0);
    }
    for (index j = 0; i + j < n; ++j) b[j] += x[i + j] * T(0);
    return all_lanes_finite((a + b) + (c + d));
}

// Σ x², in double, over independent partial sums (four 512-bit vectors'
// worth) so that the loop is not one long chain of dependent additions (the
// compiler may not reorder them).
template <typename T>
double sum_of_squares_loop(const T* x, index n) {
    constexpr int LANES = 32;
    double partial[LANES] = {};
    index i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; ++j) partial[j] += double(x[i + j]) * double(x[i + j]);
    for (; i < n; ++i) partial[0] += double(x[i]) * double(x[i]);
    double total = 0.0;
    for (double p : partial) total += p;
    return total;
}

template <typename T>
CheckKernels<T> check_loops_table() {
    return {&all_finite_loop<T>, &sum_of_squares_loop<T>};
}

}  // namespace
}  // namespace bpfast
