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

template <typename P>
Optimizer<P>::Optimizer(const ParameterLayout& layout) : layout_(layout) {
    configure(OptimizerConfig{});
}

template <typename P>
void Optimizer<P>::configure(const OptimizerConfig& config) {
    if (config.step_size < 1) throw std::invalid_argument("step_size must be at least 1");
    config_ = config;
    const auto [m_size, v_size] = state_sizes(config, layout_.n_parameters());
    m_.assign(m_size, T(0));
    v_.assign(v_size, T(0));
    old_m_.assign(m_.size(), T(0));
    old_v_.assign(v_.size(), T(0));
    steps_ = epochs_ = 0;  // schedules count from the moment the optimizer is set
}

template <typename P>
std::pair<index, index> Optimizer<P>::state_sizes(const OptimizerConfig& config, index n_parameters) {
    const bool adam = config.kind != OptimizerKind::sgd;
    return {adam || config.momentum != 0.0 ? n_parameters : 0, adam ? n_parameters : 0};
}

template <typename P>
double Optimizer<P>::learning_rate(std::optional<double> base_lr) const {
    const double lr = base_lr.value_or(config_.lr);
    switch (config_.schedule) {
        case Schedule::constant: return lr;
        case Schedule::step: return lr * std::pow(config_.gamma, double(epochs_ / config_.step_size));
        case Schedule::inverse_scaling: return lr / std::pow(1.0 + double(steps_), config_.power_t);
    }
    return lr;
}

template <typename P>
void Optimizer<P>::clip(T* grads, double squared_norm) {
    const double factor = clipping_factor(config_.clip_norm, squared_norm);
    if (factor < 1.0)
        for_each_chunk(layout_.n_parameters(), [&](index lo, index hi) { scale_in_place(grads + lo, hi - lo, factor); });
}

template <typename P>
double Optimizer<P>::decay_of(bool bias) const {
    return bias && !config_.decay_bias ? 0.0 : config_.weight_decay;
}

template <typename P>
bool Optimizer<P>::step_span(T* params, T* grads, index begin, index count, double lr, bool bias) {
    const OptimizerConfig& c = config_;
    const double decay = decay_of(bias);
    T* p = params + begin;
    T* g = grads + begin;
    if (c.kind == OptimizerKind::sgd) {
        const SgdStep s{lr, c.momentum, c.nesterov, decay, c.form};
        if (m_.empty()) return sgd_keeping_old(p, g, count, s);
        T* m = m_.data() + begin;
        sgd_keeping_state(p, g, m, old_m_.data() + begin, count, s);
        return all_finite(p, count) && all_finite(m, count);
    }
    const AdamStep s{steps_ + 1, lr, c.beta1, c.beta2, c.eps, decay, c.kind == OptimizerKind::adamw, c.form};
    T* m = m_.data() + begin;
    T* v = v_.data() + begin;
    adam_keeping_state(p, g, m, v, old_m_.data() + begin, old_v_.data() + begin, count, s);
    return all_finite(p, count) && all_finite(m, count) && all_finite(v, count);
}

template <typename P>
bool Optimizer<P>::step_keeping_old(T* params, T* grads, double lr) {
    std::atomic<bool> finite{true};
    auto span = [&](index begin, index count, bool bias) {
        for_each_chunk(count, [&](index lo, index hi) {
            if (!step_span(params, grads, begin + lo, hi - lo, lr, bias)) finite.store(false, std::memory_order_relaxed);
        });
    };
    if (config_.weight_decay == 0.0 || config_.decay_bias) {
        span(0, layout_.n_parameters(), false);  // every parameter decays alike
    } else {
        for (index l = 0; l < layout_.n_layers(); ++l) {
            span(layout_.weights(l), layout_.bias(l) - layout_.weights(l), false);
            span(layout_.bias(l), layout_.n_out(l), true);
        }
    }
    return finite.load(std::memory_order_relaxed);
}

template <typename P>
index Optimizer<P>::undo_unless_finite(T* params, const T* grads, bool finite) {
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

template <typename P>
SgdStep Optimizer<P>::fused_step(std::optional<double> base_lr, bool bias) const {
    return SgdStep{learning_rate(base_lr), 0.0, false, decay_of(bias)};
}

template <typename P>
index Optimizer<P>::finish_fused_step(T* params, const T* grads, bool finite) {
    const index layer = undo_unless_finite(params, grads, finite);
    if (layer < 0) ++steps_;
    return layer;
}

template <typename P>
index Optimizer<P>::step(T* params, T* grads, std::optional<double> base_lr) {
    // One pass writes the step and keeps what it overwrote (the old θ in
    // grads, the old state in old_m_ and old_v_), undone when a value is not finite.
    const bool finite = step_keeping_old(params, grads, learning_rate(base_lr));
    const index layer = undo_unless_finite(params, grads, finite);
    if (layer < 0) ++steps_;
    return layer;
}

#define BPFAST_INSTANTIATE(P) template class Optimizer<P>;
BPFAST_FOR_EACH_PRECISION(BPFAST_INSTANTIATE)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
