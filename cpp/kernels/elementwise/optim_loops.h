// The loops behind optim_kernels.h, included by one translation unit per ISA
// (as activation_loops.h). Each update is written once, per element, and
// used twice: by the loop that writes the step and by the one that only asks
// whether every value it would write is finite.
#pragma once

#include <cmath>

#include "common.h"
#include "kernels/elementwise/fastmath.h"
#include "kernels/elementwise/optim_kernels.h"

namespace bpfast {
namespace {

// The per-step constants of an update, in T.
template <typename T>
struct SgdConstants {
    T lr, decay, mu;
    bool momentum, nesterov;
    explicit SgdConstants(const SgdStep& s)
        : lr(T(s.lr)), decay(T(s.weight_decay)), mu(T(s.momentum)), momentum(s.momentum != 0.0),
          nesterov(s.nesterov) {}
};

// One element of an SGD step: θ and b (the velocity, unused without momentum) become their new values.
template <typename T>
void sgd_element(T& param, T& velocity, T grad, const SgdConstants<T>& c) {
    T g = grad + c.decay * param;
    if (c.momentum) {
        velocity = c.mu * velocity + g;
        g = c.nesterov ? g + c.mu * velocity : velocity;
    }
    param -= c.lr * g;
}

template <typename T>
struct AdamConstants {
    T b1, b2, eps, decay, step_size, root_correction2, shrink;
    bool decoupled;
    explicit AdamConstants(const AdamStep& s)
        : b1(T(s.beta1)), b2(T(s.beta2)), eps(T(s.eps)), decay(T(s.weight_decay)),
          step_size(T(s.lr / (1.0 - std::pow(s.beta1, double(s.step))))),
          root_correction2(T(std::sqrt(1.0 - std::pow(s.beta2, double(s.step))))),
          shrink(T(1.0 - s.lr * s.weight_decay)), decoupled(s.decoupled) {}
};

// One element of an Adam step: θ, m and v become their new values.
template <typename T>
void adam_element(T& param, T& m, T& v, T grad, const AdamConstants<T>& c) {
    T g = grad;
    if (c.decoupled)
        param *= c.shrink;
    else
        g += c.decay * param;
    m = c.b1 * m + (T(1) - c.b1) * g;
    v = c.b2 * v + (T(1) - c.b2) * g * g;
    param -= c.step_size * m / (square_root(v) / c.root_correction2 + c.eps);
}

template <typename T>
void sgd_loop(T* param, const T* grad, T* velocity, index n, const SgdStep& s) {
    const SgdConstants<T> c(s);
    if (!c.momentum && s.weight_decay == 0.0) {  // the plain step, kept free of the general one's loads
        for (index i = 0; i < n; ++i) param[i] -= c.lr * grad[i];
        return;
    }
    T unused = T(0);
    for (index i = 0; i < n; ++i) sgd_element(param[i], c.momentum ? velocity[i] : unused, grad[i], c);
}

template <typename T>
void adam_loop(T* param, const T* grad, T* m, T* v, index n, const AdamStep& s) {
    const AdamConstants<T> c(s);
    for (index i = 0; i < n; ++i) adam_element(param[i], m[i], v[i], grad[i], c);
}

// Σ over lanes of x·0, which is 0 when every x is finite and NaN otherwise:
// LANES independent partial sums, so that the loops below vectorise.
constexpr int CHECK_LANES = 16;

template <typename T>
bool all_zero(const T (&partial)[CHECK_LANES]) {
    T total = T(0);
    for (T p : partial) total += p;
    return total == T(0);
}

// Whether every value an SGD step would write is finite; writes nothing.
template <typename T>
bool sgd_would_be_finite(const T* param, const T* grad, const T* velocity, index n, const SgdStep& s) {
    const SgdConstants<T> c(s);
    T partial[CHECK_LANES] = {};
    index i = 0;
    for (; i + CHECK_LANES <= n; i += CHECK_LANES)
        for (int k = 0; k < CHECK_LANES; ++k) {
            T p = param[i + k], b = c.momentum ? velocity[i + k] : T(0);
            sgd_element(p, b, grad[i + k], c);
            partial[k] += p * T(0) + b * T(0);
        }
    for (; i < n; ++i) {
        T p = param[i], b = c.momentum ? velocity[i] : T(0);
        sgd_element(p, b, grad[i], c);
        partial[0] += p * T(0) + b * T(0);
    }
    return all_zero(partial);
}

// Whether every value an Adam step would write (θ, m and v) is finite; writes nothing.
template <typename T>
bool adam_would_be_finite(const T* param, const T* grad, const T* m, const T* v, index n, const AdamStep& s) {
    const AdamConstants<T> c(s);
    T partial[CHECK_LANES] = {};
    index i = 0;
    for (; i + CHECK_LANES <= n; i += CHECK_LANES)
        for (int k = 0; k < CHECK_LANES; ++k) {
            T p = param[i + k], m1 = m[i + k], m2 = v[i + k];
            adam_element(p, m1, m2, grad[i + k], c);
            partial[k] += p * T(0) + m1 * T(0) + m2 * T(0);
        }
    for (; i < n; ++i) {
        T p = param[i], m1 = m[i], m2 = v[i];
        adam_element(p, m1, m2, grad[i], c);
        partial[0] += p * T(0) + m1 * T(0) + m2 * T(0);
    }
    return all_zero(partial);
}

template <typename T>
void scale_loop(T* x, index n, double factor) {
    const T f = T(factor);
    for (index i = 0; i < n; ++i) x[i] *= f;
}

template <typename T>
OptimizerKernels<T> optim_loops_table() {
    return {&sgd_loop<T>, &adam_loop<T>, &sgd_would_be_finite<T>, &adam_would_be_finite<T>, &scale_loop<T>};
}

}  // namespace
}  // namespace bpfast
