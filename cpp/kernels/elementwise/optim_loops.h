// The loops behind optim_kernels.h, included by one translation unit per ISA
// (as activation_loops.h).
#pragma once

#include <cmath>

#include "common.h"
#include "kernels/elementwise/fastmath.h"
#include "kernels/elementwise/optim_kernels.h"

namespace bpfast {
namespace {

template <typename T>
void sgd_loop(T* param, const T* grad, T* velocity, index n, const SgdStep& s) {
    const T lr = T(s.lr), decay = T(s.weight_decay), mu = T(s.momentum);
    if (s.momentum == 0.0 && s.weight_decay == 0.0) {
        for (index i = 0; i < n; ++i) param[i] -= lr * grad[i];
        return;
    }
    for (index i = 0; i < n; ++i) {
        T g = grad[i] + decay * param[i];
        if (s.momentum != 0.0) {
            velocity[i] = mu * velocity[i] + g;
            g = s.nesterov ? g + mu * velocity[i] : velocity[i];
        }
        param[i] -= lr * g;
    }
}

template <typename T>
void adam_loop(T* param, const T* grad, T* m, T* v, index n, const AdamStep& s) {
    const T b1 = T(s.beta1), b2 = T(s.beta2), eps = T(s.eps), decay = T(s.weight_decay);
    const T step_size = T(s.lr / (1.0 - std::pow(s.beta1, double(s.step))));
    const T root_correction2 = T(std::sqrt(1.0 - std::pow(s.beta2, double(s.step))));
    const T shrink = T(1.0 - s.lr * s.weight_decay);
    for (index i = 0; i < n; ++i) {
        T g = grad[i];
        if (s.decoupled)
            param[i] *= shrink;
        else
            g += decay * param[i];
        m[i] = b1 * m[i] + (T(1) - b1) * g;
        v[i] = b2 * v[i] + (T(1) - b2) * g * g;
        param[i] -= step_size * m[i] / (square_root(v[i]) / root_correction2 + eps);
    }
}

template <typename T>
void scale_loop(T* x, index n, double factor) {
    const T f = T(factor);
    for (index i = 0; i < n; ++i) x[i] *= f;
}

template <typename T>
OptimizerKernels<T> optim_loops_table() {
    return {&sgd_loop<T>, &adam_loop<T>, &scale_loop<T>};
}

}  // namespace
}  // namespace bpfast
