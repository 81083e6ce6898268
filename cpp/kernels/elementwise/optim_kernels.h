// Optimizer updates in place on one array of n parameters: one table per
// ISA, built from optim_loops.h by each ISA unit (kernels/isa/) and chosen
// once per process. The formulas are PyTorch's documented torch.optim.SGD, Adam and
// AdamW, or scikit-learn's (UpdateForm::sklearn, for bpfast.sklearn);
// model/optim.h decides which array gets which settings.
#pragma once

#include "common.h"

namespace bpfast {

// One SGD step: g ← g + λθ; then
//   pytorch: b ← μb + g; g ← g + μb (Nesterov) or b; θ ← θ − lr·g
//   sklearn: b ← μb − lr·g; θ ← θ + μb − lr·g (Nesterov) or θ + b
// (the same while lr is constant, with b_sklearn = −lr·b_pytorch).
struct SgdStep {
    double lr = 0.1;
    double momentum = 0.0;  // μ; the velocity b may be null when it is 0
    bool nesterov = false;
    double weight_decay = 0.0;  // λ
    UpdateForm form = UpdateForm::pytorch;
};

// One Adam step t ≥ 1: g ← g + λθ (Adam) or θ ← θ(1 − lr·λ) (AdamW, decoupled);
// m ← β1m + (1−β1)g; v ← β2v + (1−β2)g²; then
//   pytorch: θ ← θ − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)
//   sklearn: θ ← θ − lr·√(1−β2ᵗ)/(1−β1ᵗ) · m / (√v + ε)
struct AdamStep {
    long step = 1;
    double lr = 1e-3;
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    double weight_decay = 0.0;
    bool decoupled = false;
    UpdateForm form = UpdateForm::pytorch;
};

template <typename T>
struct OptimizerKernels {
    void (*sgd)(T* param, const T* grad, T* velocity, index n, const SgdStep& s);
    void (*adam)(T* param, const T* grad, T* m, T* v, index n, const AdamStep& s);
    // A stateless SGD step (momentum 0) that leaves the old θ in grad, so that
    // it can be undone; returns whether every new θ is finite.
    bool (*sgd_keeping_old)(T* param, T* grad, index n, const SgdStep& s);
    // A step with state (SGD with momentum, Adam) that keeps what it
    // overwrites: g becomes the old θ and old_velocity (old_m, old_v) the old
    // state, so that it can be undone; the caller checks the new values.
    void (*sgd_keeping_state)(T* param, T* grad, T* velocity, T* old_velocity, index n, const SgdStep& s);
    void (*adam_keeping_state)(T* param, T* grad, T* m, T* v, T* old_m, T* old_v, index n, const AdamStep& s);
    void (*scale)(T* x, index n, double factor);  // x ← factor·x (gradient clipping)
};

template <typename T>
const OptimizerKernels<T>& active_optim_kernels();

template <typename T>
void sgd_update(T* param, const T* grad, T* velocity, index n, const SgdStep& s) {
    active_optim_kernels<T>().sgd(param, grad, velocity, n, s);
}

template <typename T>
void adam_update(T* param, const T* grad, T* m, T* v, index n, const AdamStep& s) {
    active_optim_kernels<T>().adam(param, grad, m, v, n, s);
}

template <typename T>
bool sgd_keeping_old(T* param, T* grad, index n, const SgdStep& s) {
    return active_optim_kernels<T>().sgd_keeping_old(param, grad, n, s);
}

template <typename T>
void sgd_keeping_state(T* param, T* grad, T* velocity, T* old_velocity, index n, const SgdStep& s) {
    active_optim_kernels<T>().sgd_keeping_state(param, grad, velocity, old_velocity, n, s);
}

template <typename T>
void adam_keeping_state(T* param, T* grad, T* m, T* v, T* old_m, T* old_v, index n, const AdamStep& s) {
    active_optim_kernels<T>().adam_keeping_state(param, grad, m, v, old_m, old_v, n, s);
}

template <typename T>
void scale_in_place(T* x, index n, double factor) {
    active_optim_kernels<T>().scale(x, n, factor);
}

// Clipping by global norm (torch.nn.utils.clip_grad_norm_): the gradients are
// scaled by this factor, max_norm / (norm + 1e-6), when it is below 1.
inline double clipping_factor(double max_norm, double squared_norm) {
    return max_norm / (__builtin_sqrt(squared_norm) + 1e-6);
}

}  // namespace bpfast
