// The optimizer updates and the whole-array checks behind optim.h and
// checks.h. Included by one translation unit per ISA (as elementwise_loops.h);
// the anonymous namespace gives each its own copy, built with its own flags.
#pragma once

#include <cmath>
#include <cstring>
#include <utility>

#include "common.h"
#include "kernels/elementwise/elementwise_loops.h"
#include "kernels/elementwise/fastmath.h"
#include "model/optim.h"
#include "kernels/elementwise/vector_lanes.h"

namespace bpfast {
namespace {

// One step on one array. velocity (SGD with momentum) or m and v (Adam) hold the
// state; t is the 1-based step number; decay is the weight decay for this array.
//   SGD:   g ← g + λθ;  b ← μb + g;  g ← g + μb (Nesterov) or b;  θ ← θ − lr·g
//   Adam:  g ← g + λθ;  m ← β1m + (1−β1)g;  v ← β2v + (1−β2)g²;
//          θ ← θ − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε)
//   AdamW: θ ← θ(1 − lr·λ), then Adam without the L2 term.
template <typename T>
void optimizer_loop(T* param, const T* grad, T* m, T* v, index n, const OptimizerConfig& c,
                      double lr, double decay, long t) {
    const T lr_t = T(lr), wd = T(decay);
    switch (c.kind) {
        case OptimizerKind::sgd: {
            if (c.momentum == 0.0 && decay == 0.0) {
                for (index i = 0; i < n; ++i) param[i] -= lr_t * grad[i];
                return;
            }
            const T mu = T(c.momentum);
            for (index i = 0; i < n; ++i) {
                T g = grad[i] + wd * param[i];
                if (c.momentum != 0.0) {
                    m[i] = mu * m[i] + g;
                    g = c.nesterov ? g + mu * m[i] : m[i];
                }
                param[i] -= lr_t * g;
            }
            return;
        }
        case OptimizerKind::adam:
        case OptimizerKind::adamw: {
            const bool decoupled = c.kind == OptimizerKind::adamw;
            const T b1 = T(c.beta1), b2 = T(c.beta2), eps = T(c.eps);
            const T step_size = T(lr / (1.0 - std::pow(c.beta1, double(t))));
            const T root_correction2 = T(std::sqrt(1.0 - std::pow(c.beta2, double(t))));
            const T shrink = T(1.0 - lr * decay);
            for (index i = 0; i < n; ++i) {
                T g = grad[i];
                if (decoupled)
                    param[i] *= shrink;
                else
                    g += wd * param[i];
                m[i] = b1 * m[i] + (T(1) - b1) * g;
                v[i] = b2 * v[i] + (T(1) - b2) * g * g;
                param[i] -= step_size * m[i] / (square_root(v[i]) / root_correction2 + eps);
            }
            return;
        }
    }
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

// Whether no value is NaN or ±Inf: x·0 is 0 for finite x and NaN otherwise,
// summed in four vector accumulators (the sums are 0 or NaN whatever the
// order). Vectors held in registers, not an array of partial sums, so that a
// call on a few values costs a few instructions.
template <typename T>
bool all_finite_loop(const T* x, index n) {
    using V = typename Vector512<T>::type;
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
    V sum = (a + b) + (c + d);
    fold_lanes<L / 2>(sum, std::make_index_sequence<L>{});
    return sum[0] == T(0);
}

}  // namespace
}  // namespace bpfast
