#include "model/optim.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <initializer_list>
#include <stdexcept>

#include "kernels/elementwise/check_kernels.h"
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
    old_m_.assign(m_.size(), T(0));
    old_v_.assign(v_.size(), T(0));
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
void Optimizer<T>::clip(T* grads, double squared_norm) {
    const double factor = clipping_factor(config_.clip_norm, squared_norm);
    if (factor < 1.0)
        for_each_chunk(layout_.n_parameters(), [&](index lo, index hi) { scale_in_place(grads + lo, hi - lo, factor); });
}

// f(begin, count, decay) over the arrays that one step updates alike: all
// parameters in one range when weights and biases decay alike, else each
// weight matrix and each bias vector (biases undecayed).
template <typename T>
template <typename F>
void Optimizer<T>::for_each_range(const F& f) const {
    const OptimizerConfig& c = config_;
    if (c.weight_decay == 0.0 || c.decay_bias) return f(index(0), layout_.n_parameters(), c.weight_decay);
    for (index l = 0; l < layout_.n_layers(); ++l) {
        f(layout_.weights(l), layout_.bias(l) - layout_.weights(l), c.weight_decay);
        f(layout_.bias(l), layout_.n_out(l), 0.0);
    }
}

template <typename T>
bool Optimizer<T>::step_keeping_old(T* params, T* grads, double lr) {
    const OptimizerConfig& c = config_;
    std::atomic<bool> finite{true};
    for_each_range([&](index begin, index count, double decay) {
        T* p = params + begin;
        T* g = grads + begin;
        T* m = m_.empty() ? nullptr : m_.data() + begin;
        T* v = v_.empty() ? nullptr : v_.data() + begin;
        T* old_m = old_m_.empty() ? nullptr : old_m_.data() + begin;
        T* old_v = old_v_.empty() ? nullptr : old_v_.data() + begin;
        if (c.kind == OptimizerKind::sgd) {
            const SgdStep s{lr, c.momentum, c.nesterov, decay, c.form};
            for_each_chunk(count, [&](index lo, index hi) {
                bool ok;
                if (m) {
                    sgd_keeping_state(p + lo, g + lo, m + lo, old_m + lo, hi - lo, s);
                    ok = all_finite(p + lo, hi - lo) && all_finite(m + lo, hi - lo);
                } else {
                    ok = sgd_keeping_old(p + lo, g + lo, hi - lo, s);
                }
                if (!ok) finite.store(false, std::memory_order_relaxed);
            });
        } else {
            const AdamStep s{steps_ + 1, lr, c.beta1, c.beta2, c.eps, decay, c.kind == OptimizerKind::adamw, c.form};
            for_each_chunk(count, [&](index lo, index hi) {
                adam_keeping_state(p + lo, g + lo, m + lo, v + lo, old_m + lo, old_v + lo, hi - lo, s);
                if (!(all_finite(p + lo, hi - lo) && all_finite(m + lo, hi - lo) && all_finite(v + lo, hi - lo)))
                    finite.store(false, std::memory_order_relaxed);
            });
        }
    });
    return finite.load(std::memory_order_relaxed);
}

template <typename T>
index Optimizer<T>::undo_unless_finite(T* params, const T* grads, bool finite) {
    if (finite) return -1;
    // Rare: name the first layer holding a non-finite parameter or state value, then put everything back.
    index layer = layout_.n_layers() - 1;
    for (index l = layout_.n_layers() - 1; l >= 0; --l) {
        const index begin = layout_.weights(l), count = layout_.layer_end(l) - begin;
        bool ok = all_finite(params + begin, count);
        for (const AlignedVector<T>* state : {&m_, &v_})
            if (!state->empty()) ok = ok && all_finite(state->data() + begin, count);
        if (!ok) layer = l;
    }
    const index n = layout_.n_parameters();
    for_each_chunk(n, [&](index lo, index hi) {
        std::copy(grads + lo, grads + hi, params + lo);
        if (!old_m_.empty()) std::copy(old_m_.data() + lo, old_m_.data() + hi, m_.data() + lo);
        if (!old_v_.empty()) std::copy(old_v_.data() + lo, old_v_.data() + hi, v_.data() + lo);
    });
    return layer;
}

template <typename T>
SgdStep Optimizer<T>::fused_step(double base_lr, bool bias) const {
    // as for_each_range decays them
    const double decay = bias && !config_.decay_bias ? 0.0 : config_.weight_decay;
    return SgdStep{learning_rate(base_lr), 0.0, false, decay};
}

template <typename T>
index Optimizer<T>::finish_fused_step(T* params, const T* grads, bool finite) {
    const index layer = undo_unless_finite(params, grads, finite);
    if (layer < 0) ++steps_;
    return layer;
}

template <typename T>
index Optimizer<T>::step(T* params, T* grads, double base_lr) {
    // One pass writes the step and keeps what it overwrote (the old θ in
    // grads, the old state in old_m_ and old_v_), undone when a value is not finite.
    const bool finite = step_keeping_old(params, grads, learning_rate(base_lr));
    const index layer = undo_unless_finite(params, grads, finite);
    if (layer < 0) ++steps_;
    return layer;
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace bpfast
