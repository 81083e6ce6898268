#include "model/optim.h"

#include <algorithm>
#include <atomic>
#include <cmath>
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
bool Optimizer<T>::range_would_be_finite(const T* params, const T* grads, index begin, index count, double lr,
                                         double decay) const {
    const OptimizerConfig& c = config_;
    const T* m = m_.empty() ? nullptr : m_.data() + begin;
    const T* v = v_.empty() ? nullptr : v_.data() + begin;
    const T* p = params + begin;
    const T* g = grads + begin;
    const SgdStep sgd{lr, c.momentum, c.nesterov, decay, c.form};
    const AdamStep adam{steps_ + 1, lr, c.beta1, c.beta2, c.eps, decay, c.kind == OptimizerKind::adamw, c.form};
    std::atomic<bool> finite{true};
    for_each_chunk(count, [&](index lo, index hi) {
        const bool ok = c.kind == OptimizerKind::sgd
                            ? sgd_would_be_finite(p + lo, g + lo, m ? m + lo : nullptr, hi - lo, sgd)
                            : adam_would_be_finite(p + lo, g + lo, m + lo, v + lo, hi - lo, adam);
        if (!ok) finite.store(false, std::memory_order_relaxed);
    });
    return finite.load(std::memory_order_relaxed);
}

template <typename T>
index Optimizer<T>::first_layer_not_finite_after(const T* params, const T* grads, double lr) const {
    bool finite = true;
    for_each_range([&](index begin, index count, double decay) {
        finite = finite && range_would_be_finite(params, grads, begin, count, lr, decay);
    });
    if (finite) return -1;
    // Rare: name the first layer, its weights and its bias checked apart.
    const double bias_decay = config_.decay_bias ? config_.weight_decay : 0.0;
    for (index l = 0; l < layout_.n_layers(); ++l) {
        const index w = layout_.weights(l), b = layout_.bias(l);
        if (!range_would_be_finite(params, grads, w, b - w, lr, config_.weight_decay) ||
            !range_would_be_finite(params, grads, b, layout_.n_out(l), lr, bias_decay))
            return l;
    }
    return layout_.n_layers() - 1;  // not reached: some range was not finite
}

template <typename T>
void Optimizer<T>::update(T* params, const T* grads, double lr) {
    const OptimizerConfig& c = config_;
    for_each_range([&](index begin, index count, double decay) {
        T* p = params + begin;
        const T* g = grads + begin;
        T* m = m_.empty() ? nullptr : m_.data() + begin;
        T* v = v_.empty() ? nullptr : v_.data() + begin;
        if (c.kind == OptimizerKind::sgd) {
            const SgdStep s{lr, c.momentum, c.nesterov, decay, c.form};
            for_each_chunk(count, [&](index lo, index hi) { sgd_update(p + lo, g + lo, m ? m + lo : nullptr, hi - lo, s); });
        } else {
            const AdamStep s{steps_ + 1, lr, c.beta1, c.beta2, c.eps, decay, c.kind == OptimizerKind::adamw, c.form};
            for_each_chunk(count, [&](index lo, index hi) { adam_update(p + lo, g + lo, m + lo, v + lo, hi - lo, s); });
        }
    });
}

template <typename T>
index Optimizer<T>::undoable_sgd_step(T* params, T* grads, double lr) {
    std::atomic<bool> finite{true};
    for_each_range([&](index begin, index count, double decay) {
        const SgdStep s{lr, 0.0, false, decay};
        for_each_chunk(count, [&](index lo, index hi) {
            if (!sgd_keeping_old(params + begin + lo, grads + begin + lo, hi - lo, s))
                finite.store(false, std::memory_order_relaxed);
        });
    });
    return undo_unless_finite(params, grads, finite.load(std::memory_order_relaxed));
}

template <typename T>
index Optimizer<T>::undo_unless_finite(T* params, const T* grads, bool finite) {
    if (finite) return -1;
    index layer = layout_.n_layers() - 1;
    for (index l = layout_.n_layers() - 1; l >= 0; --l)
        if (!all_finite(params + layout_.weights(l), layout_.layer_end(l) - layout_.weights(l))) layer = l;
    const index n = layout_.n_parameters();
    for_each_chunk(n, [&](index lo, index hi) { std::copy(grads + lo, grads + hi, params + lo); });
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
    const double lr = learning_rate(base_lr);
    // Stateless SGD, the common case, is undone if need be; an optimizer
    // with state is checked before it writes (its state cannot be undone).
    const index layer = config_.kind == OptimizerKind::sgd && config_.momentum == 0.0
                            ? undoable_sgd_step(params, grads, lr)
                            : first_layer_not_finite_after(params, grads, lr);
    if (layer >= 0) return layer;
    if (!(config_.kind == OptimizerKind::sgd && config_.momentum == 0.0)) update(params, grads, lr);
    ++steps_;
    return -1;
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace bpfast
