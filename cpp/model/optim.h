// The optimizer of a network: its settings, the learning-rate schedule,
// gradient clipping, which arrays are decayed, its state and its counters.
// The update formulas themselves are kernels (kernels/elementwise/optim_kernels.h);
// the settings follow PyTorch's torch.optim.SGD, Adam and AdamW (or, with
// UpdateForm::sklearn, scikit-learn's MLP solvers).
#pragma once

#include <cmath>
#include <optional>
#include <utility>

#include "common.h"
#include "kernels/elementwise/optim_kernels.h"
#include "model/parameter_layout.h"
#include "precision.h"
#include "runtime/workspace.h"

namespace bpfast {

// The one description of an optimizer's settings: bound to Python as
// _core.OptimizerConfig with these field names (bind_optim.cpp), which
// bpfast.optim's objects fill and the save format's record lists.
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
    index step_size = 1;  // Schedule::step: multiply by gamma every step_size epochs (≥ 1)
    double gamma = 0.1;
    double power_t = 0.5;  // Schedule::inverse_scaling: lr / (1 + t)^power_t after t steps
    UpdateForm form = UpdateForm::pytorch;  // PyTorch's or scikit-learn's momentum and Adam (optim_kernels.h)
};

// The rule for a base learning rate given to one call (or OptimizerConfig::lr): finite and positive.
inline bool is_base_rate(double lr) { return std::isfinite(lr) && lr > 0.0; }

// P is the precision (precision.h); the state is kept in its storage type T, as the weights are.
template <typename P>
class Optimizer {
public:
    using T = Storage<P>;

    explicit Optimizer(const ParameterLayout& layout);

    // New settings; clears the state and the step and epoch counters.
    // std::invalid_argument for settings out of range (step_size < 1, say).
    void configure(const OptimizerConfig& config);
    // The values of the state (first_moment, second_moment) that these settings
    // keep for n_parameters parameters: SGD with momentum one array, Adam two.
    static std::pair<index, index> state_sizes(const OptimizerConfig& config, index n_parameters);
    const OptimizerConfig& config() const { return config_; }

    // Whether update needs Σ g² over all gradients (to clip them).
    bool clips() const { return config_.clip_norm > 0.0; }

    // The learning rate of the next step, from base_lr (the configured lr
    // when not given) and the schedule.
    double learning_rate(std::optional<double> base_lr) const;

    // Scales grads in place as clipping by global norm asks, squared_norm being their Σ g².
    void clip(T* grads, double squared_norm);

    // One step on params from grads (both laid out as the layout) at base_lr,
    // taken only when every value it writes (parameters and state) is finite:
    // returns -1, or the first layer where one would not be, everything then
    // as it was. grads may be overwritten either way.
    index step(T* params, T* grads, std::optional<double> base_lr);

    // Whether the step can be taken inside the backward pass, each layer's
    // rows as soon as their gradients are done (Network's fused step): any
    // step but a clipped one (clipping needs every gradient first). Its writes
    // are undone from the old values it keeps.
    bool fuses_into_backward() const { return !clips(); }
    // Stateless SGD (no momentum): the step the small-network and GEMM kernels
    // can take in registers (fused_step's settings).
    bool stateless_sgd() const { return config_.kind == OptimizerKind::sgd && config_.momentum == 0.0; }
    // The settings of that step at base_lr, for the weights or the biases.
    SgdStep fused_step(std::optional<double> base_lr, bool bias) const;
    // The step on params[begin, begin + count) at learning rate lr (learning_rate's), from grads laid
    // out alike, biases when `bias` (for decay_bias), keeping the old values: the old parameters in
    // grads, the old state apart. Returns whether every new value is finite. Serial: the caller splits.
    bool step_span(T* params, T* grads, index begin, index count, double lr, bool bias);
    // Ends a fused step, in which every parameter went through step_span
    // or sgd_keeping_old (the old values kept): when `finite`, counts the
    // step and returns -1; else puts every parameter and state value back and
    // returns the first layer holding a value that is not finite.
    index finish_fused_step(T* params, const T* grads, bool finite);

    // Counts a finished epoch (the step schedule counts epochs).
    void end_epoch() { ++epochs_; }

    long steps() const { return steps_; }
    long epochs() const { return epochs_; }
    void set_counters(long steps, long epochs) { steps_ = steps; epochs_ = epochs; }

    // Flat state laid out as the parameters: SGD's velocity or Adam's m, and
    // Adam's v; empty when the optimizer keeps none.
    AlignedVector<T>& first_moment() { return m_; }
    AlignedVector<T>& second_moment() { return v_; }

private:
    double decay_of(bool bias) const;
    // The step in one pass that keeps what it overwrites: the old parameters
    // in grads, the old state in old_m_ and old_v_. Returns whether every new
    // value is finite.
    bool step_keeping_old(T* params, T* grads, double lr);
    // After a step that kept the old values: -1 when `finite`, else the first
    // layer holding a non-finite parameter or state value, every parameter
    // and state value put back.
    index undo_unless_finite(T* params, const T* grads, bool finite);

    const ParameterLayout& layout_;
    OptimizerConfig config_;
    AlignedVector<T> m_, v_;
    AlignedVector<T> old_m_, old_v_;  // the state before the step being taken
    long steps_ = 0, epochs_ = 0;
};

}  // namespace bpfast
