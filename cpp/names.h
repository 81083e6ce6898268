// The one table between the names the Python API uses and the core's enums.
#pragma once

#include <stdexcept>
#include <string>

#include "common.h"

namespace bpfast {

template <typename E>
struct Named {
    const char* name;
    E value;
};

inline constexpr Named<Activation> ACTIVATION_NAMES[] = {
    {"identity", Activation::identity}, {"sigmoid", Activation::sigmoid}, {"tanh", Activation::tanh},
    {"relu", Activation::relu},         {"softmax", Activation::softmax}};
inline constexpr Named<Reduction> REDUCTION_NAMES[] = {{"mean", Reduction::mean}, {"sum", Reduction::sum}};
inline constexpr Named<LossKind> LOSS_NAMES[] = {
    {"squared_error", LossKind::squared_error},
    {"log_loss", LossKind::log_loss},
    {"binary_cross_entropy", LossKind::binary_cross_entropy},
    {"softmax_cross_entropy", LossKind::softmax_cross_entropy},
    {"sigmoid_cross_entropy", LossKind::sigmoid_cross_entropy},
    {"poisson", LossKind::poisson},
    {"softmax_clipped_log_loss", LossKind::softmax_clipped_log_loss},
    {"sigmoid_clipped_log_loss", LossKind::sigmoid_clipped_log_loss}};
inline constexpr Named<OptimizerKind> OPTIMIZER_NAMES[] = {
    {"sgd", OptimizerKind::sgd}, {"adam", OptimizerKind::adam}, {"adamw", OptimizerKind::adamw}};
inline constexpr Named<UpdateForm> UPDATE_FORM_NAMES[] = {{"pytorch", UpdateForm::pytorch},
                                                          {"sklearn", UpdateForm::sklearn}};
inline constexpr Named<Schedule> SCHEDULE_NAMES[] = {
    {"constant", Schedule::constant}, {"step", Schedule::step}, {"inverse_scaling", Schedule::inverse_scaling}};

// The enum called `name` in `table`; std::invalid_argument naming `what` and
// the allowed names otherwise.
template <typename E, std::size_t N>
E from_name(const Named<E> (&table)[N], const std::string& name, const char* what) {
    std::string allowed;
    for (const Named<E>& entry : table) {
        if (name == entry.name) return entry.value;
        allowed += (allowed.empty() ? "" : ", ") + std::string(entry.name);
    }
    throw std::invalid_argument(std::string(what) + " must be one of " + allowed + "; got '" + name + "'");
}

}  // namespace bpfast
