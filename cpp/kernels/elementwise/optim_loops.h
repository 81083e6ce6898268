// The loops behind optim_kernels.h, included by one translation unit per ISA
// (as activation_loops.h). Each update is written once, per element, and
// used twice: by the loop that writes the step and by the one that also
// keeps the values it overwrites (the guarded step of model/optim.h).
#pragma once

#include <cmath>
#include <cstring>

#include "common.h"
#include "kernels/elementwise/fastmath.h"
#include "kernels/elementwise/optim_kernels.h"
#include "kernels/elementwise/vector_lanes.h"

namespace bpfast {
namespace {

// The per-step constants of an update, in T.
template <typename T>
struct SgdConstants {
    T lr, decay, mu;
    explicit SgdConstants(const SgdStep& s) : lr(T(s.lr)), decay(T(s.weight_decay)), mu(T(s.momentum)) {}
};

// One element of an SGD step: θ and b (the velocity, left alone without
// momentum) become their new values; SKLEARN picks scikit-learn's form of
// the momentum (optim_kernels.h). The variant is a template argument, so
// that the loops below have no branch and vectorise.
template <bool MOMENTUM, bool NESTEROV, bool SKLEARN = false, typename V, typename T>
void sgd_element(V& param, V& velocity, V grad, const SgdConstants<T>& c) {
    V g = grad + c.decay * param;
    if constexpr (MOMENTUM && SKLEARN) {
        velocity = c.mu * velocity - c.lr * g;
        param += NESTEROV ? c.mu * velocity - c.lr * g : velocity;
    } else {
        if constexpr (MOMENTUM) {
            velocity = c.mu * velocity + g;
            g = NESTEROV ? g + c.mu * velocity : velocity;
        }
        param -= c.lr * g;
    }
}

template <typename T>
struct AdamConstants {
    T b1, b2, eps, decay, step_size, root_correction2, shrink, corrected_step;
    explicit AdamConstants(const AdamStep& s)
        : b1(T(s.beta1)), b2(T(s.beta2)), eps(T(s.eps)), decay(T(s.weight_decay)),
          step_size(T(s.lr / (1.0 - std::pow(s.beta1, double(s.step))))),
          root_correction2(T(std::sqrt(1.0 - std::pow(s.beta2, double(s.step))))),
          shrink(T(1.0 - s.lr * s.weight_decay)),
          corrected_step(T(s.lr * std::sqrt(1.0 - std::pow(s.beta2, double(s.step))) /
                           (1.0 - std::pow(s.beta1, double(s.step))))) {}
};

// One element of an Adam step (AdamW when DECOUPLED; scikit-learn's placement
// of ε when SKLEARN): θ, m and v become their new values.
template <bool DECOUPLED, bool SKLEARN, typename T>
void adam_element(T& param, T& m, T& v, T grad, const AdamConstants<T>& c) {
    T g = grad;
    if constexpr (DECOUPLED)
        param *= c.shrink;
    else
        g += c.decay * param;
    m = c.b1 * m + (T(1) - c.b1) * g;
    v = c.b2 * v + (T(1) - c.b2) * g * g;
    if constexpr (SKLEARN)
        param -= c.corrected_step * m / (square_root(v) + c.eps);
    else
        param -= c.step_size * m / (square_root(v) / c.root_correction2 + c.eps);
}

// Runs body.template run<DECOUPLED, SKLEARN>() for the variant of an Adam step.
template <typename Body>
auto for_adam_variant(const AdamStep& s, const Body& body) {
    const bool sk = s.form == UpdateForm::sklearn;
    if (s.decoupled) return sk ? body.template run<true, true>() : body.template run<true, false>();
    return sk ? body.template run<false, true>() : body.template run<false, false>();
}

// Runs body.template run<MOMENTUM, NESTEROV, SKLEARN>() for the variant of an
// SGD step (without momentum both forms are θ ← θ − lr·g).
template <typename Body>
void for_sgd_variant(const SgdStep& s, const Body& body) {
    if (s.momentum == 0.0) return body.template run<false, false, false>();
    if (s.form == UpdateForm::sklearn) {
        if (s.nesterov) return body.template run<true, true, true>();
        return body.template run<true, false, true>();
    }
    if (s.nesterov) return body.template run<true, true, false>();
    body.template run<true, false, false>();
}

template <typename T>
struct SgdWrite {
    T* param;
    const T* grad;
    T* velocity;
    index n;
    SgdConstants<T> c;
    template <bool MOMENTUM, bool NESTEROV, bool SKLEARN>
    void run() const {
        T unused = T(0);
        for (index i = 0; i < n; ++i)
            sgd_element<MOMENTUM, NESTEROV, SKLEARN>(param[i], MOMENTUM ? velocity[i] : unused, grad[i], c);
    }
};

template <typename T>
void sgd_loop(T* param, const T* grad, T* velocity, index n, const SgdStep& s) {
    for_sgd_variant(s, SgdWrite<T>{param, grad, velocity, n, SgdConstants<T>(s)});
}

// A stateless SGD step (no momentum) that keeps what it overwrites: θ
// becomes θ − lr·(g + λθ) and g becomes the old θ, so that the step can be
// undone exactly (copy g back) without a second pass when it turns out not
// finite. Returns whether every new θ is finite. Four vectors at a time, the
// finiteness sums (x·0) held in registers.
template <typename T>
bool sgd_keeping_old_loop(T* param, T* grad, index n, const SgdStep& s) {
    using V = Vector512<T>;
    constexpr index L = 64 / sizeof(T);
    const SgdConstants<T> c(s);
    V sums[4] = {};
    index i = 0;
    for (; i + 4 * L <= n; i += 4 * L) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) {
            V old, g, unused{};
            std::memcpy(&old, param + i + u * L, sizeof old);
            std::memcpy(&g, grad + i + u * L, sizeof g);
            V p = old;
            sgd_element<false, false>(p, unused, g, c);
            std::memcpy(param + i + u * L, &p, sizeof p);
            std::memcpy(grad + i + u * L, &old, sizeof old);
            sums[u] += p * T(0);
        }
    }
    T tail = T(0);
    for (; i < n; ++i) {
        const T old = param[i];
        T p = old, unused = T(0);
        sgd_element<false, false>(p, unused, grad[i], c);
        param[i] = p;
        grad[i] = old;
        tail += p * T(0);
    }
    return tail == T(0) && all_lanes_finite((sums[0] + sums[1]) + (sums[2] + sums[3]));
}

template <typename T>
struct AdamWrite {
    T* param;
    const T* grad;
    T* m;
    T* v;
    index n;
    AdamConstants<T> c;
    template <bool DECOUPLED, bool SKLEARN>
    bool run() const {
        for (index i = 0; i < n; ++i) adam_element<DECOUPLED, SKLEARN>(param[i], m[i], v[i], grad[i], c);
        return true;
    }
};

template <typename T>
void adam_loop(T* param, const T* grad, T* m, T* v, index n, const AdamStep& s) {
    for_adam_variant(s, AdamWrite<T>{param, grad, m, v, n, AdamConstants<T>(s)});
}

// The stateful steps in one pass that keeps what it overwrites: θ and the
// state become their new values, g becomes the old θ and old_* the old
// state, so that the step can be undone exactly (model/optim.cpp checks the
// new values, with check_kernels.h, in a cheaper pass than the update's).
template <typename T>
struct SgdKeepingState {
    T* param;
    T* grad;
    T* velocity;
    T* old_velocity;
    index n;
    SgdConstants<T> c;
    template <bool MOMENTUM, bool NESTEROV, bool SKLEARN>
    void run() const {
        // distinct arrays: restrict lets the loop vectorise without run-time overlap checks
        T* __restrict param_ = param;
        T* __restrict grad_ = grad;
        T* __restrict velocity_ = velocity;
        T* __restrict old_velocity_ = old_velocity;
        for (index i = 0; i < n; ++i) {
            T p = param_[i], b = velocity_[i];
            const T g = grad_[i];
            grad_[i] = p;
            old_velocity_[i] = b;
            sgd_element<MOMENTUM, NESTEROV, SKLEARN>(p, b, g, c);
            param_[i] = p;
            velocity_[i] = b;
        }
    }
};

// SGD with momentum (velocity and old_velocity not null), keeping the old values.
template <typename T>
void sgd_keeping_state_loop(T* param, T* grad, T* velocity, T* old_velocity, index n, const SgdStep& s) {
    for_sgd_variant(s, SgdKeepingState<T>{param, grad, velocity, old_velocity, n, SgdConstants<T>(s)});
}

template <typename T>
struct AdamKeepingState {
    T* param;
    T* grad;
    T* m;
    T* v;
    index n;
    AdamConstants<T> c;
    template <bool DECOUPLED, bool SKLEARN>
    bool run() const {
        T* __restrict param_ = param;
        T* __restrict grad_ = grad;
        T* __restrict m_ = m;
        T* __restrict v_ = v;
        for (index i = 0; i < n; ++i) {
            const T g = grad_[i];
            grad_[i] = param_[i];
            adam_element<DECOUPLED, SKLEARN>(param_[i], m_[i], v_[i], g, c);
        }
        return true;
    }
};

template <typename T>
void adam_keeping_state_loop(T* param, T* grad, T* m, T* v, T* old_m, T* old_v, index n, const AdamStep& s) {
    // the old state copied first (a copy is faster than one more stream in the update's loop)
    std::memcpy(old_m, m, sizeof(T) * size_t(n));
    std::memcpy(old_v, v, sizeof(T) * size_t(n));
    for_adam_variant(s, AdamKeepingState<T>{param, grad, m, v, n, AdamConstants<T>(s)});
}

template <typename T>
void scale_loop(T* x, index n, double factor) {
    const T f = T(factor);
    for (index i = 0; i < n; ++i) x[i] *= f;
}

template <typename T>
OptimizerKernels<T> optim_loops_table() {
    return {&sgd_loop<T>, &adam_loop<T>, &sgd_keeping_old_loop<T>, &sgd_keeping_state_loop<T>,
            &adam_keeping_state_loop<T>, &scale_loop<T>};
}

}  // namespace
}  // namespace bpfast
