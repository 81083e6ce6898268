#include "model/optim.h"

#include <cmath>
#include <stdexcept>

#include "kernels/elementwise/optim_kernels.h"
#include "runtime/threads.h"

namespace bpfast {

template <typename T>
Optimizer<T>::Optimizer(const ParameterLayout& layout) : layout_(layout) {
    configure(OptimizerConfig{});
}

template <typename T>
void Optimizer<T>::configure(const OptimizerConfig& config) {
    if (config.step_size < 1) throw std::invalid_argument("step_size must be at least 1");
    config_ = config;
    const index n = layout_.n_parameters();
    const bool adam = config.kind != OptimizerKind::sgd;
    m_.assign(adam || config.momentum != 0.0 ? n : 0, T(0));
    v_.assign(adam ? n : 0, T(0));
    steps_ = epochs_ = 0;  // schedules count from the moment the optimizer is set
}

template <typename T>
double Optimizer<T>::learning_rate(double base_lr) const {
    const double lr = base_lr > 0.0 ? base_lr : config_.lr;
    switch (config_.schedule) {
        case Schedule::constant: return lr;
        case Schedule::step: return lr * std::pow(config_.gamma, double(epochs_ / config_.step_size));
        case Schedule::inverse_scaling: return lr / std::pow(1.0 + double(steps_), config_.power_t);
    }
    return lr;
}

template <typename T>
void Optimizer<T>::update(T* params, T* grads, double squared_norm, double base_lr) {
    const OptimizerConfig& c = config_;
    const index n = layout_.n_parameters();
    if (clips()) {
        const double factor = clipping_factor(c.clip_norm, squared_norm);
        if (factor < 1.0) for_each_chunk(n, [&](index lo, index hi) { scale_in_place(grads + lo, hi - lo, factor); });
    }
    const double lr = learning_rate(base_lr);
    ++steps_;
    // One pass over all parameters when weights and biases decay alike, else one per array.
    auto update_range = [&](index begin, index count, double decay) {
        T* p = params + begin;
        T* g = grads + begin;
        T* m = m_.empty() ? nullptr : m_.data() + begin;
        T* v = v_.empty() ? nullptr : v_.data() + begin;
        if (c.kind == OptimizerKind::sgd) {
            const SgdStep s{lr, c.momentum, c.nesterov, decay};
            for_each_chunk(count, [&](index lo, index hi) { sgd_update(p + lo, g + lo, m ? m + lo : nullptr, hi - lo, s); });
        } else {
            const AdamStep s{steps_, lr, c.beta1, c.beta2, c.eps, decay, c.kind == OptimizerKind::adamw};
            for_each_chunk(count, [&](index lo, index hi) { adam_update(p + lo, g + lo, m + lo, v + lo, hi - lo, s); });
        }
    };
    if (c.weight_decay == 0.0 || c.decay_bias) return update_range(0, n, c.weight_decay);
    for (index l = 0; l < layout_.n_layers(); ++l) {
        update_range(layout_.weights(l), layout_.bias(l) - layout_.weights(l), c.weight_decay);
        update_range(layout_.bias(l), layout_.n_out(l), 0.0);
    }
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace bpfast
