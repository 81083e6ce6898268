// Optimizer updates, in place on one parameter array of n values. The
// formulas follow PyTorch's documented torch.optim.SGD, Adam and AdamW.
#pragma once

#include <cmath>

#include "common.h"

namespace bpfast {

// param ← param − lr·grad.
template <typename T>
void sgd_update(T* param, const T* grad, index n, T lr) {
    for (index i = 0; i < n; ++i) param[i] -= lr * grad[i];
}

enum class OptimizerKind { sgd, adam, adamw };
enum class Schedule { constant, step, inverse_scaling };

struct OptimizerConfig {
    OptimizerKind kind = OptimizerKind::sgd;
    double lr = 0.1;
    double momentum = 0.0;  // SGD
    bool nesterov = false;  // SGD
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam, AdamW
    double weight_decay = 0.0;  // L2 for SGD and Adam, decoupled for AdamW
    bool decay_bias = false;    // biases are excluded from weight decay by default
    double clip_norm = 0.0;     // clip gradients to this global L2 norm; 0 turns it off
    Schedule schedule = Schedule::constant;
    index step_size = 1;  // Schedule::step: multiply by gamma every step_size epochs
    double gamma = 0.1;
    double power_t = 0.5;  // Schedule::inverse_scaling: lr / (1 + t)^power_t after t steps

    // The learning rate for the step taken after `steps` steps and `epochs` whole epochs.
    double learning_rate(long steps, long epochs) const {
        switch (schedule) {
            case Schedule::constant: return lr;
            case Schedule::step: return lr * std::pow(gamma, double(epochs / step_size));
            case Schedule::inverse_scaling: return lr / std::pow(1.0 + double(steps), power_t);
        }
        return lr;
    }
};

// One step on one array. velocity (SGD with momentum) or m and v (Adam) hold the
// state; t is the 1-based step number; decay is the weight decay for this array.
//   SGD:   g ← g + λθ;  b ← μb + g;  g ← g + μb (Nesterov) or b;  θ ← θ − lr·g
//   Adam:  g ← g + λθ;  m ← β1m + (1−β1)g;  v ← β2v + (1−β2)g²;
//          θ ← θ − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε)
//   AdamW: θ ← θ(1 − lr·λ), then Adam without the L2 term.
template <typename T>
void optimizer_update(T* param, const T* grad, T* m, T* v, index n, const OptimizerConfig& c,
                      double lr, double decay, long t) {
    const T lr_t = T(lr), wd = T(decay);
    switch (c.kind) {
        case OptimizerKind::sgd: {
            if (c.momentum == 0.0 && decay == 0.0) return sgd_update(param, grad, n, lr_t);
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
                param[i] -= step_size * m[i] / (std::sqrt(v[i]) / root_correction2 + eps);
            }
            return;
        }
    }
}

}  // namespace bpfast
