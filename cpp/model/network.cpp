#include "model/network.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include "kernels/elementwise/checks.h"
#include "kernels/dense.h"
#include "runtime/threads.h"
#include "kernels/elementwise/losses.h"
#include "runtime/workspace.h"

namespace bpfast {
namespace {

template <typename T>
using LossFn = double (*)(T*, const T*, const T*, index, index, Reduction);

template <typename T>
LossFn<T> loss_function(LossKind kind) {
    switch (kind) {
        case LossKind::squared_error: return &squared_error<T>;
        case LossKind::log_loss: return &log_loss<T>;
        case LossKind::binary_cross_entropy: return &binary_cross_entropy<T>;
        case LossKind::softmax_cross_entropy: return &softmax_cross_entropy<T>;
        case LossKind::sigmoid_cross_entropy: return &sigmoid_cross_entropy<T>;
    }
    return &squared_error<T>;
}

// Losses computed from the logits: the output layer runs without its activation.
bool takes_logits(LossKind kind) {
    return kind == LossKind::softmax_cross_entropy || kind == LossKind::sigmoid_cross_entropy;
}

}  // namespace

template <typename T>
Model<T>::Model(std::vector<index> sizes, std::vector<Activation> activations, LossKind loss,
                Reduction reduction)
    : sizes_(std::move(sizes)),
      activations_(std::move(activations)),
      loss_(loss),
      reduction_(reduction),
      offsets_(parameter_offsets(sizes_)),
      n_parameters_(offsets_.back()),
      small_net_(sizes_, activations_, offsets_) {
    if (sizes_.size() < 2 || activations_.size() != sizes_.size() - 1)
        throw std::invalid_argument("a model needs at least two sizes and one activation per layer");
    params_.assign(n_parameters_ + SmallNetStep<T>::PARAMETER_PADDING, T(0));
    grads_.assign(n_parameters_, T(0));
    outputs_.resize(n_layers());
    set_optimizer(OptimizerConfig{});
}

template <typename T>
void Model<T>::set_optimizer(const OptimizerConfig& config) {
    optimizer_ = config;
    const bool adam = config.kind != OptimizerKind::sgd;
    state_m_.assign(adam || config.momentum != 0.0 ? n_parameters_ : 0, T(0));
    state_v_.assign(adam ? n_parameters_ : 0, T(0));
    steps_ = epochs_ = 0;  // schedules count from the moment the optimizer is set
}

template <typename T>
void Model<T>::ensure_batch(index batch) {
    if (batch <= capacity_) return;
    const index widest = *std::max_element(sizes_.begin() + 1, sizes_.end());
    for (index l = 0; l < n_layers(); ++l) reserve(outputs_[l], batch * sizes_[l + 1]);
    reserve(grad_a_, batch * widest);
    reserve(grad_b_, batch * widest);
    reserve(delta_, batch * widest);
    reserve(batch_x_, batch * sizes_.front());
    reserve(batch_t_, batch * sizes_.back());
    capacity_ = batch;
}

template <typename T>
const T* Model<T>::forward_pass(const T* X, index batch, bool logits_out) {
    // X is (batch, n[0]); returns (batch, n[L])
    if (small_net_.takes(batch)) return small_net_.forward(params_.data(), X, batch, logits_out);
    ensure_batch(batch);
    const T* input = X;
    for (index l = 0; l < n_layers(); ++l) {
        const bool last = l == n_layers() - 1;
        const Activation act = last && logits_out ? Activation::identity : activations_[l];
        const T* W = params_.data() + weight_offset(l);
        const T* b = params_.data() + bias_offset(l);
        dense_forward<T>(outputs_[l].data(), input, W, b, batch, sizes_[l], sizes_[l + 1], act);
        input = outputs_[l].data();
    }
    return input;
}

// Inference runs in chunks no larger than the training batch (or 1024 rows),
// so that a big evaluation set does not grow the workspace.
template <typename T>
index Model<T>::chunk_rows(index batch) const {
    return std::min(batch, std::max<index>(capacity_, 1024));
}

template <typename T>
void Model<T>::forward(T* out, const T* X, index batch) {
    const index n_in = sizes_.front(), n_out = sizes_.back(), chunk = chunk_rows(batch);
    for (index start = 0; start < batch; start += chunk) {
        const index rows = std::min(chunk, batch - start);
        const T* Y = forward_pass(X + start * n_in, rows, false);
        std::copy(Y, Y + rows * n_out, out + start * n_out);
    }
}

template <typename T>
double Model<T>::loss(const T* X, Targets<T> targets, index batch) {
    const index n_in = sizes_.front(), n_out = sizes_.back(), chunk = chunk_rows(batch);
    double total = 0.0;
    for (index start = 0; start < batch; start += chunk) {
        const index rows = std::min(chunk, batch - start);
        ensure_batch(rows);
        const T* Tg = dense_targets(targets.from_row(start, n_out), rows, nullptr);
        const T* Y = forward_pass(X + start * n_in, rows, takes_logits(loss_));
        const double value = loss_function<T>(loss_)(grad_a_.data(), Y, Tg, rows, n_out, reduction_);
        total += reduction_ == Reduction::mean ? value * double(rows) : value;
    }
    return reduction_ == Reduction::mean ? total / double(batch) : total;
}

template <typename T>
const T* Model<T>::dense_targets(Targets<T> targets, index batch, const std::int64_t* rows) {
    // returns (batch, n_out) targets; rows (when given) picks the samples
    const index n_out = sizes_.back();
    if (targets.dense && !rows) return targets.dense;
    T* t = batch_t_.data();
    for (index i = 0; i < batch; ++i) {
        const index r = rows ? rows[i] : i;
        T* row = t + i * n_out;
        if (targets.dense) {
            std::copy(targets.dense + r * n_out, targets.dense + (r + 1) * n_out, row);
        } else if (n_out == 1) {
            row[0] = T(targets.labels[r]);
        } else {
            std::fill(row, row + n_out, T(0));
            row[targets.labels[r]] = T(1);
        }
    }
    return t;
}

template <typename T>
double Model<T>::loss_and_backward(const T* X, const T* Tg, index batch) {
    const bool logits = takes_logits(loss_);
    if (small_net_.takes(batch)) {
        const T* Y = forward_pass(X, batch, logits);
        const double value = loss_function<T>(loss_)(small_net_.output_gradient(), Y, Tg, batch, sizes_.back(),
                                                     reduction_);
        gradients_known_finite_ = small_net_.backward(params_.data(), grads_.data(), batch, logits);
        return value;
    }
    gradients_known_finite_ = false;
    const T* Y = forward_pass(X, batch, logits);
    T* dA = grad_a_.data();
    T* dX = grad_b_.data();
    const double value = loss_function<T>(loss_)(dA, Y, Tg, batch, sizes_.back(), reduction_);
    for (index l = n_layers() - 1; l >= 0; --l) {
        const bool last = l == n_layers() - 1;
        const Activation act = last && logits ? Activation::identity : activations_[l];
        const T* input = l == 0 ? X : outputs_[l - 1].data();
        dense_backward<T>(l > 0 ? dX : nullptr, grads_.data() + weight_offset(l),
                          grads_.data() + bias_offset(l), delta_.data(), dA, input,
                          params_.data() + weight_offset(l), outputs_[l].data(), batch, sizes_[l],
                          sizes_[l + 1], act);
        std::swap(dA, dX);
    }
    return value;
}

template <typename T>
double Model<T>::compute_gradients(const T* X, Targets<T> targets, index batch) {
    ensure_batch(batch);
    return loss_and_backward(X, dense_targets(targets, batch, nullptr), batch);
}

template <typename T>
StepStatus Model<T>::step(const T* X, const T* Tg, index batch) {
    StepStatus status;
    status.loss = loss_and_backward(X, Tg, batch);
    status.finite = std::isfinite(status.loss);
    if (status.finite) check_and_update(status);
    return status;
}

// Elementwise passes over parameter-sized arrays run on the pool in chunks
// of fixed size, so that the work split (and any sum) does not depend on the
// thread count.
constexpr index CHUNK = 1 << 15;

template <typename F>
void for_each_chunk(index n, const F& f) {
    // f(begin, end) on [0, n) in chunks; one chunk runs inline.
    const index chunks = (n + CHUNK - 1) / CHUNK;
    if (chunks <= 1) return f(index(0), n);
    parallel_for(chunks, [&](index c) { f(c * CHUNK, std::min(n, (c + 1) * CHUNK)); });
}

template <typename T>
int Model<T>::first_non_finite_layer(double* squares) {
    // The first layer whose gradient holds a NaN or Inf, or -1; with squares
    // given, also Σ g² over every gradient (needed for clipping).
    const bool clipping = squares != nullptr;
    if (!clipping) {
        // One pass over all gradients; per layer only to name the culprit.
        const index n = static_cast<index>(grads_.size()), chunks = (n + CHUNK - 1) / CHUNK;
        unsigned char* ok = reserve(chunk_ok_, static_cast<size_t>(chunks));
        const T* g = grads_.data();
        for_each_chunk(n, [&](index lo, index hi) { ok[lo / CHUNK] = all_finite(g + lo, hi - lo); });
        if (std::all_of(ok, ok + chunks, [](unsigned char b) { return b != 0; })) return -1;
    }
    double total = 0.0;
    for (index l = 0; l < n_layers(); ++l) {
        const index begin = offsets_[l], n = bias_offset(l) + sizes_[l + 1] - begin;
        const T* g = grads_.data() + begin;
        const index chunks = (n + CHUNK - 1) / CHUNK;
        double* partial = reserve(chunk_sums_, static_cast<size_t>(chunks));
        for_each_chunk(n, [&](index lo, index hi) {
            partial[lo / CHUNK] = clipping ? sum_of_squares(g + lo, hi - lo)
                                           : (all_finite(g + lo, hi - lo) ? 0.0 : NAN);
        });
        double layer = 0.0;
        for (index i = 0; i < chunks; ++i) layer += partial[i];  // fixed order
        if (!std::isfinite(layer)) return static_cast<int>(l);
        total += layer;
    }
    if (clipping) *squares = total;
    return -1;
}

template <typename T>
void Model<T>::check_and_update(StepStatus& status) {
    const OptimizerConfig& c = optimizer_;
    const bool clipping = c.clip_norm > 0.0;
    double squares = 0.0;
    // The small-network path checks its gradients as it writes them.
    status.bad_layer = gradients_known_finite_ && !clipping
                           ? -1
                           : first_non_finite_layer(clipping ? &squares : nullptr);
    if (status.bad_layer >= 0) {
        status.finite = false;
        return;
    }
    if (clipping) {
        // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
        const double coef = c.clip_norm / (std::sqrt(squares) + 1e-6);
        if (coef < 1.0) {
            T* g = grads_.data();
            for_each_chunk(static_cast<index>(grads_.size()), [&](index lo, index hi) {
                for (index i = lo; i < hi; ++i) g[i] *= T(coef);
            });
        }
    }
    const double lr = c.learning_rate(steps_, epochs_);
    ++steps_;
    // One pass over all parameters when weights and biases decay alike,
    // else one per array.
    auto update = [&](index begin, index n, double decay) {
        T* p = params_.data() + begin;
        const T* g = grads_.data() + begin;
        T* m = state_m_.empty() ? nullptr : state_m_.data() + begin;
        T* v = state_v_.empty() ? nullptr : state_v_.data() + begin;
        for_each_chunk(n, [&](index lo, index hi) {
            optimizer_update<T>(p + lo, g + lo, m ? m + lo : nullptr, v ? v + lo : nullptr, hi - lo, c, lr,
                                decay, steps_);
        });
    };
    if (c.weight_decay == 0.0 || c.decay_bias)
        return update(0, n_parameters_, c.weight_decay);
    for (index l = 0; l < n_layers(); ++l) {
        update(weight_offset(l), sizes_[l + 1] * sizes_[l], c.weight_decay);
        update(bias_offset(l), sizes_[l + 1], 0.0);
    }
}

template <typename T>
StepStatus Model<T>::train_step(const T* X, Targets<T> targets, index batch) {
    ensure_batch(batch);
    return step(X, dense_targets(targets, batch, nullptr), batch);
}

template <typename T>
EpochStatus Model<T>::train_epoch(const T* X, Targets<T> targets, const std::int64_t* order, index n,
                                  index batch_size) {
    // X is (n, n[0]); order (when given) is a permutation of [0, n)
    const index n_in = sizes_.front(), n_out = sizes_.back();
    ensure_batch(std::min(batch_size, n));
    EpochStatus epoch;
    double total = 0.0;
    for (index start = 0, batch_number = 0; start < n; start += batch_size, ++batch_number) {
        const index rows = std::min(batch_size, n - start);
        const T* Xb;
        const T* Tb;
        if (order) {
            const std::int64_t* picked = order + start;
            for (index i = 0; i < rows; ++i)
                std::copy(X + picked[i] * n_in, X + (picked[i] + 1) * n_in, batch_x_.data() + i * n_in);
            Xb = batch_x_.data();
            Tb = dense_targets(targets, rows, picked);
        } else {
            Xb = X + start * n_in;
            Tb = dense_targets(targets.from_row(start, n_out), rows, nullptr);
        }
        const StepStatus status = step(Xb, Tb, rows);
        if (!status.finite) {
            epoch.finite = false;
            epoch.bad_batch = batch_number;
            epoch.bad_layer = status.bad_layer;
            epoch.loss = status.loss;
            return epoch;
        }
        total += reduction_ == Reduction::mean ? status.loss * double(rows) : status.loss;
    }
    ++epochs_;
    epoch.loss = reduction_ == Reduction::mean ? total / double(n) : total;
    return epoch;
}

template class Model<float>;
template class Model<double>;

}  // namespace bpfast
