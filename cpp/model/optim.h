// Optimizer settings and updates, in place on one parameter array of n
// values. The formulas follow PyTorch's documented torch.optim.SGD, Adam and AdamW.
#pragma once

#include <cmath>

#include "common.h"
#include "kernels/elementwise/elementwise.h"

namespace bpfast {

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

// One step on one array: param, grad and (when the optimizer keeps them) the
// state m and v hold n values; t is the 1-based step number and decay the
// weight decay for this array. The loops are in optim_loops.h, compiled per
// ISA and chosen at run time like the other elementwise kernels.
template <typename T>
void optimizer_update(T* param, const T* grad, T* m, T* v, index n, const OptimizerConfig& c,
                      double lr, double decay, long t) {
    active_elementwise().optimizer_update(param, grad, m, v, n, c, lr, decay, t);
}

// param ← param − lr·grad.
template <typename T>
void sgd_update(T* param, const T* grad, index n, T lr) {
    OptimizerConfig plain;
    optimizer_update(param, grad, static_cast<T*>(nullptr), static_cast<T*>(nullptr), n, plain,
                     double(lr), 0.0, 1);
}

}  // namespace bpfast
