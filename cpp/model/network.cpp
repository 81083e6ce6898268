#include "model/network.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/elementwise/activation_kernels.h"
#include "kernels/elementwise/check_kernels.h"
#include "kernels/elementwise/losses.h"
#include "runtime/sizes.h"
#include "runtime/threads.h"

namespace bpfast {

namespace {

// sizes, once checked against the activations: the members built after
// layout_ (the backends, the optimizer) read both. ParameterLayout checks the sizes themselves.
std::vector<index> checked_sizes(std::vector<index> sizes, const std::vector<Activation>& activations) {
    if (sizes.size() < 2 || activations.size() != sizes.size() - 1)
        throw std::invalid_argument("a network needs at least two sizes and one activation per layer");
    return sizes;
}

}  // namespace

template <typename P>
Network<P>::Network(std::vector<index> sizes, std::vector<Activation> activations, LossKind loss,
                    Reduction reduction)
    : layout_(checked_sizes(std::move(sizes), activations)),
      activations_(std::move(activations)),
      loss_(loss),
      reduction_(reduction),
      optimizer_(layout_),
      gemm_(layout_),
      small_net_(layout_, activations_),
      chunks_(layout_, activations_) {
    params_.assign(layout_.n_parameters() + SmallNetBackend<P>::PARAMETER_PADDING, T(0));
    grads_.assign(layout_.n_parameters(), T(0));
    auto add_spans = [&](index begin, index end, bool bias) {
        const index pieces = (end - begin + SPAN - 1) / SPAN;
        for (index i = 0; i < pieces; ++i)
            step_spans_.push_back({begin + (end - begin) * i / pieces, begin + (end - begin) * (i + 1) / pieces, bias});
    };
    for (index l = 0; l < n_layers(); ++l) {
        add_spans(layout_.weights(l), layout_.bias(l), false);
        add_spans(layout_.bias(l), layout_.layer_end(l), true);
    }
    span_penalties_.assign(step_spans_.size(), 0.0);
}

// The one place that decides which backend runs a batch.
template <typename P>
LayerBackend<Storage<P>>& Network<P>::backend_for(index batch) {
    if (small_net_.takes(batch)) return small_net_;
    return gemm_;
}

// A loss computed from the logits runs the output layer without its activation.
template <typename P>
Activation Network<P>::activation_of(index l, bool logits_out) const {
    return l == n_layers() - 1 && logits_out ? Activation::identity : activations_[l];
}

template <typename P>
const Storage<P>* Network<P>::forward_pass(LayerBackend<T>& backend, const T* X, index batch, bool logits_out) {
    // X is (batch, n[0]); returns (batch, n[L])
    backend.start_forward(X, batch);
    for (index l = 0; l < n_layers(); ++l)
        backend.layer_forward(l, params_.data() + layout_.weights(l), params_.data() + layout_.bias(l),
                              activation_of(l, logits_out));
    return backend.output();
}

template <typename P>
void Network<P>::forward(T* out, const T* X, index batch) {
    // Inference runs in chunks no larger than the largest training batch (or
    // 1024 rows), so that a big evaluation set does not grow the workspace.
    const index n_in = sizes().front(), n_out = sizes().back();
    const index chunk = std::min(batch, std::max<index>(largest_batch_, 1024));
    for (index start = 0; start < batch; start += chunk) {
        const index rows = std::min(chunk, batch - start);
        const T* Y = forward_pass(backend_for(rows), X + start * n_in, rows, false);
        std::copy(Y, Y + rows * n_out, out + start * n_out);
    }
}

template <typename P>
double Network<P>::loss(const T* X, Targets<T> targets, index batch) {
    const index n_in = sizes().front(), n_out = sizes().back();
    const index chunk = std::min(batch, std::max<index>(largest_batch_, 1024));
    const bool mean = reduction_ == Reduction::mean;
    double total = 0.0, total_norm = 0.0;
    for (index start = 0; start < batch; start += chunk) {
        const index rows = std::min(chunk, batch - start);
        const Targets<T> from = targets.from_row(start, n_out);
        const T* Tg = dense_targets(from, rows, nullptr);
        LayerBackend<T>& backend = backend_for(rows);
        const T* Y = forward_pass(backend, X + start * n_in, rows, takes_logits(loss_));
        double norm = 1.0;
        const double value = data_loss(backend.output_gradient(), Y, Tg, from.weights, rows, &norm);
        total += mean ? value * norm : value;
        total_norm += norm;
    }
    const double value = (mean ? total / total_norm : total) * objective_.value_scale;
    return objective_.l2 != 0.0 ? value + penalty(nullptr, mean ? total_norm : 1.0) : value;
}

// The data loss of a batch (loss_function, or Σ_i w_i·loss_i with sample
// weights) and its gradient in delta, both divided by N (the batch size or
// Σ_i w_i; 1 for reduction sum), which norm receives.
template <typename P>
double Network<P>::data_loss(T* delta, const T* Y, const T* Tg, const T* weights, index batch, double* norm) {
    *norm = batch_norm(weights, batch);
    return per_norm(data_loss_sum(delta, Y, Tg, weights, batch, *norm), *norm, weights != nullptr);
}

template <typename P>
double Network<P>::batch_norm(const T* weights, index batch) const {
    if (reduction_ != Reduction::mean) return 1.0;
    if (!weights) return double(batch);
    double sum = 0.0;
    for (index i = 0; i < batch; ++i) sum += double(weights[i]);
    return sum;
}

// Without sample weights δ is the sum's gradient times T(1)/T(N), the value
// the loss kernels scale by for reduction mean: the same bits as theirs.
template <typename P>
double Network<P>::per_norm(double sum, double norm, bool weighted) {
    return weighted ? sum / norm : sum * double(T(1) / T(norm));
}

template <typename P>
double Network<P>::data_loss_sum(T* delta, const T* Y, const T* Tg, const T* weights, index rows, double norm) {
    // Y, Tg and delta are (rows, n_out); weights (rows,) or null
    const index n_out = sizes().back();
    const LossFn<T> fn = loss_function<T>(loss_);
    if (!weights) {
        const double total = fn(delta, Y, Tg, rows, n_out, Reduction::sum);
        if (norm != 1.0) {
            const T scale = T(1) / T(norm);
            for (index i = 0; i < rows * n_out; ++i) delta[i] *= scale;
        }
        return total;
    }
    double total = 0.0;
    for (index i = 0; i < rows; ++i) {
        T* d = delta + i * n_out;
        total += double(weights[i]) * fn(d, Y + i * n_out, Tg + i * n_out, 1, n_out, Reduction::sum);
        const T scale = T(double(weights[i]) / norm);
        for (index j = 0; j < n_out; ++j) d[j] *= scale;
    }
    return total;
}

// Objective::l2's term of the loss, its gradient added to grads unless null.
template <typename P>
double Network<P>::penalty(T* grads, double norm) {
    double value = 0.0;
    for (index l = 0; l < n_layers(); ++l) {
        const index w = layout_.weights(l);
        value += l2_penalty(grads ? grads + w : nullptr, params_.data() + w, layout_.bias(l) - w, objective_.l2, norm);
    }
    return value;
}

template <typename P>
const Storage<P>* Network<P>::batch_weights(Targets<T> targets, index batch, const std::int64_t* rows) {
    // returns (batch,) weights or null; rows (when given) picks the samples
    if (!targets.weights || !rows) return targets.weights;
    T* w = reserve(batch_w_, static_cast<size_t>(batch));
    for (index i = 0; i < batch; ++i) w[i] = targets.weights[rows[i]];
    return w;
}

template <typename P>
const Storage<P>* Network<P>::dense_targets(Targets<T> targets, index batch, const std::int64_t* rows) {
    // returns (batch, n_out) targets; rows (when given) picks the samples
    const index n_out = sizes().back();
    if (targets.dense && !rows) return targets.dense;
    T* t = reserve(batch_t_, static_cast<size_t>(checked_product(batch, n_out, "the targets of this batch")));
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

template <typename P>
double Network<P>::forward_and_loss(LayerBackend<T>& backend, const T* X, const T* Tg, const T* weights,
                                    index rows, double norm, T* grads) {
    // δ_{L−1} = dL/dY ⊙ σ'(Y)
    const bool logits = takes_logits(loss_);
    const index last = n_layers() - 1, n_out = sizes().back();
    const T* Y = forward_pass(backend, X, rows, logits);
    T* delta = backend.output_gradient();
    const double sum = data_loss_sum(delta, Y, Tg, weights, rows, norm);
    activation_backward(delta, grads + layout_.bias(last), delta, Y, rows, n_out, activation_of(last, logits));
    return sum;
}

template <typename P>
bool Network<P>::backward_pass(LayerBackend<T>& backend, GradientsReady ready, const FusedStep* step, T* grads) {
    // db_l is final before this loop (the last layer) or after input_gradient(l + 1),
    // dW_l after weight_gradient(l). Each layer's input gradient reads W_l
    // before a fused step changes it.
    bool finite = true;
    for (index l = n_layers() - 1; l >= 0; --l) {
        if (l > 0)
            backend.input_gradient(l, params_.data() + layout_.weights(l), grads + layout_.bias(l - 1),
                                   activations_[l - 1]);
        LayerStep<T> layer_step;
        FusedSgd<T> sgd;
        if (step && step->in_registers) {
            sgd = FusedSgd<T>{params_.data() + layout_.weights(l), step->weights, params_.data() + layout_.bias(l),
                              grads + layout_.bias(l), step->biases};
            layer_step.sgd = &sgd;
        } else if (step) {
            layer_step.rows = [](void* context, index layer, index r0, index r1) {
                auto* self = static_cast<const FusedStep*>(context);
                return self->network->step_rows(layer, r0, r1, *self);
            };
            layer_step.context = const_cast<FusedStep*>(step);
        }
        finite &= backend.weight_gradient(l, grads + layout_.weights(l), layer_step);
        ready(l);
    }
    return finite;
}

template <typename P>
bool Network<P>::step_rows(index l, index r0, index r1, const FusedStep& step) {
    // rows [r0, r1) of W_l and b_l: the L2 term joins dW (as penalty() adds
    // it), then the optimizer's step, keeping the old values
    T* params = params_.data();
    T* grads = grads_.data();
    const index n_in = layout_.n_in(l), w = layout_.weights(l) + r0 * n_in, count = (r1 - r0) * n_in;
    if (objective_.l2 != 0.0) l2_gradient(grads + w, params + w, count, objective_.l2, step.norm);
    const bool weights_ok = optimizer_.step_span(params, grads, w, count, step.lr, false);
    return optimizer_.step_span(params, grads, layout_.bias(l) + r0, r1 - r0, step.lr, true) && weights_ok;
}

template <typename P>
double Network<P>::loss_and_gradients(const T* X, const T* Tg, const T* weights, index batch,
                                      GradientsReady ready) {
    largest_batch_ = std::max(largest_batch_, batch);
    if (const index chunks = chunks_.count(batch); chunks > 1)
        return chunked_loss_and_gradients(X, Tg, weights, batch, chunks, ready);
    LayerBackend<T>& backend = backend_for(batch);
    const double norm = batch_norm(weights, batch);
    double value = per_norm(forward_and_loss(backend, X, Tg, weights, batch, norm, grads_.data()), norm,
                            weights != nullptr) *
                   objective_.value_scale;
    // The L2 term, when set, joins the gradients after every layer.
    const bool tell_each = objective_.l2 == 0.0;
    backward_pass(backend, tell_each ? ready : GradientsReady{}, nullptr, grads_.data());
    if (!tell_each) {
        value += penalty(grads_.data(), norm);
        for (index l = n_layers() - 1; l >= 0; --l) ready(l);
    }
    return value;
}

template <typename P>
StepStatus Network<P>::step_on_batch(const BatchRows<T>& rows, const T* Tg, const T* weights, index batch,
                                     std::optional<double> lr) {
    if (!optimizer_.fuses_into_backward())
        return guarded_update(grads_.data(), loss_and_gradients(gathered(rows, batch), Tg, weights, batch), lr);
    largest_batch_ = std::max(largest_batch_, batch);
    if (const index chunks = chunks_.count(batch); chunks > 1)
        return chunked_step(rows, Tg, weights, batch, chunks, lr);
    const T* X = gathered(rows, batch);
    // The fused step: each layer's weights and biases step as soon as their
    // gradients are done, while they are in cache (and, split over threads,
    // on the thread that computed them), the old values kept. The same
    // values as guarded_update's separate pass.
    LayerBackend<T>& backend = backend_for(batch);
    FusedStep step;
    step.network = this;
    StepStatus status;
    step.norm = batch_norm(weights, batch);
    status.loss = per_norm(forward_and_loss(backend, X, Tg, weights, batch, step.norm, grads_.data()), step.norm,
                           weights != nullptr) *
                  objective_.value_scale;
    // the L2 term of the loss from the weights before the step (its gradient joins each block of rows)
    if (objective_.l2 != 0.0) status.loss += penalty(nullptr, step.norm);
    if (!std::isfinite(status.loss)) {
        status.finite = false;
        return status;
    }
    step.in_registers = optimizer_.stateless_sgd() && objective_.l2 == 0.0;
    step.weights = optimizer_.fused_step(lr, false);
    step.biases = optimizer_.fused_step(lr, true);
    step.lr = optimizer_.learning_rate(lr);
    const bool finite = backward_pass(backend, {}, &step, grads_.data());
    status.non_finite_layer = optimizer_.finish_fused_step(params_.data(), grads_.data(), finite);
    status.finite = status.non_finite_layer < 0;
    return status;
}

namespace {

// dst (count, n), row stride ld_dst, = rows picked[0], ..., picked[count − 1] of X (·, n). Rows of a
// large X come from memory in an order no prefetcher guesses: each row is
// asked for (every cache line of it) GATHER_AHEAD rows before it is copied.
template <typename T>
void gather_rows(T* dst, index ld_dst, const T* X, const std::int64_t* picked, index count, index n) {
    constexpr index GATHER_AHEAD = 4;
    for (index i = 0; i < count; ++i) {
        if (i + GATHER_AHEAD < count) {
            const char* ahead = reinterpret_cast<const char*>(X + picked[i + GATHER_AHEAD] * n);
            for (index offset = 0; offset < n * index(sizeof(T)); offset += 64) __builtin_prefetch(ahead + offset);
        }
        std::copy(X + picked[i] * n, X + (picked[i] + 1) * n, dst + i * ld_dst);
    }
}

}  // namespace

template <typename P>
const Storage<P>* Network<P>::gathered(const BatchRows<T>& rows, index batch) {
    if (!rows.picked) return rows.X;
    const index n_in = sizes().front();
    T* X = reserve(batch_x_, static_cast<size_t>(batch * n_in));
    gather_rows(X, n_in, rows.X, rows.picked, batch, n_in);
    return X;
}

template <typename P>
double Network<P>::chunked_passes(const BatchRows<T>& rows, const T* Tg, const T* weights, index batch,
                                  index chunks, double norm) {
    // the batch's X (batch, n_in) (its rows picked from rows.X when rows.picked
    // is set), Tg (batch, n_out), weights (batch,) or null; chunk c takes rows
    // [first_row(c), first_row(c + 1)) of each, on worker c mod tasks(chunks)
    const index n_in = sizes().front(), n_out = sizes().back();
    chunks_.prepare(batch, chunks);
    const index workers = RowChunks<P>::tasks(chunks);
    parallel_for(workers, [&](index w) {
        for (index c = w; c < chunks; c += workers) {
            const index first = chunks_.first_row(batch, chunks, c);
            const index count = chunks_.first_row(batch, chunks, c + 1) - first;
            SmallNetBackend<P>& backend = chunks_.worker(w);
            const T* X = rows.X + first * n_in;
            if (rows.picked) {  // this chunk's rows of a shuffled epoch, gathered on the core that reads
                                // them, straight into the worker's padded input
                T* own = backend.input_rows(count);
                gather_rows(own, backend.ld_input(), rows.X, rows.picked + first, count, n_in);
                X = own;
            }
            T* grads = chunks_.gradients(c);
            chunks_.loss(c) = forward_and_loss(backend, X, Tg + first * n_out, weights ? weights + first : nullptr,
                                               count, norm, grads);
            backward_pass(backend, {}, nullptr, grads);
        }
    });
    double sum = 0.0;
    for (index c = 0; c < chunks; ++c) sum += chunks_.loss(c);
    return per_norm(sum, norm, weights != nullptr) * objective_.value_scale;
}

template <typename P>
template <typename Then>
void Network<P>::sum_chunks(index chunks, const Then& then) {
    T* grads = grads_.data();
    parallel_for(index(step_spans_.size()), [&](index s) {
        const Span& span = step_spans_[static_cast<size_t>(s)];
        // ((g_0 + g_1) + g_2) + ...: the first two in one pass, each other chunk in one more
        const T* first = chunks_.gradients(0);
        const T* second = chunks_.gradients(1);
        for (index i = span.begin; i < span.end; ++i) grads[i] = first[i] + second[i];
        for (index c = 2; c < chunks; ++c) {
            const T* part = chunks_.gradients(c);
            for (index i = span.begin; i < span.end; ++i) grads[i] += part[i];
        }
        then(s);
    });
}

template <typename P>
double Network<P>::chunked_loss_and_gradients(const T* X, const T* Tg, const T* weights, index batch,
                                              index chunks, GradientsReady ready) {
    const double norm = batch_norm(weights, batch);
    double value = chunked_passes({X, nullptr}, Tg, weights, batch, chunks, norm);
    sum_chunks(chunks, [](index) {});
    if (objective_.l2 != 0.0) value += penalty(grads_.data(), norm);
    for (index l = n_layers() - 1; l >= 0; --l) ready(l);
    return value;
}

template <typename P>
StepStatus Network<P>::chunked_step(const BatchRows<T>& rows, const T* Tg, const T* weights, index batch,
                                    index chunks, std::optional<double> lr) {
    // The chunks' passes, then one pass over the parameters that sums their
    // gradients, adds the L2 term and steps (keeping the old values), span by
    // span on the pool: the values of step_on_batch's separate pass over the summed gradients.
    const double norm = batch_norm(weights, batch);
    StepStatus status;
    status.loss = chunked_passes(rows, Tg, weights, batch, chunks, norm);
    if (!std::isfinite(status.loss)) {
        status.finite = false;
        return status;
    }
    const double rate = optimizer_.learning_rate(lr);
    const bool l2 = objective_.l2 != 0.0;
    T* params = params_.data();
    T* grads = grads_.data();
    std::atomic<bool> finite{true};
    sum_chunks(chunks, [&](index s) {
        const Span& span = step_spans_[static_cast<size_t>(s)];
        const index count = span.end - span.begin;
        // the L2 term: its share of the loss, from the weights before the step, and its gradient
        span_penalties_[static_cast<size_t>(s)] =
            l2 && !span.bias ? l2_penalty(grads + span.begin, params + span.begin, count, objective_.l2, norm) : 0.0;
        if (!optimizer_.step_span(params, grads, span.begin, count, rate, span.bias))
            finite.store(false, std::memory_order_relaxed);
    });
    for (double share : span_penalties_) status.loss += share;  // in span order
    const bool loss_finite = std::isfinite(status.loss);
    status.non_finite_layer =
        optimizer_.finish_fused_step(params, grads, loss_finite && finite.load(std::memory_order_relaxed));
    if (!loss_finite) status.non_finite_layer = -1;  // the loss itself (its L2 term) is not finite
    status.finite = loss_finite && status.non_finite_layer < 0;
    return status;
}

template <typename P>
double Network<P>::compute_gradients(const T* X, Targets<T> targets, index batch, GradientsReady ready) {
    return loss_and_gradients(X, dense_targets(targets, batch, nullptr), targets.weights, batch, ready);
}

template <typename P>
index Network<P>::first_non_finite_layer(const T* grads, double* squares) {
    // The first layer whose gradient holds a NaN or Inf, or -1 and Σ g² over
    // every gradient in squares (clipping needs it), summed over chunks that
    // do not depend on the thread count, in a fixed order.
    const index n = layout_.n_parameters(), chunks = (n + CHUNK - 1) / CHUNK;
    double* partial = reserve(chunk_sums_, static_cast<size_t>(chunks));
    for_each_chunk(n, [&](index lo, index hi) { partial[lo / CHUNK] = sum_of_squares(grads + lo, hi - lo); });
    double total = 0.0;
    for (index i = 0; i < chunks; ++i) total += partial[i];
    *squares = total;
    if (std::isfinite(total)) return -1;
    for (index l = 0; l < n_layers(); ++l) {  // per layer only to name the culprit
        const index begin = layout_.weights(l), end = layout_.layer_end(l);
        if (!all_finite(grads + begin, end - begin)) return l;
    }
    // Every value is finite but Σ g² overflows: clipping scales by max_norm / ∞ = 0,
    // as torch.nn.utils.clip_grad_norm_ and the reference do.
    return -1;
}

template <typename P>
StepStatus Network<P>::guarded_update(T* grads, double loss, std::optional<double> lr) {
    // Nothing changes unless the loss, every gradient and every value the
    // update writes (parameters and optimizer state) are finite.
    StepStatus status;
    status.loss = loss;
    if (!std::isfinite(loss)) {
        status.finite = false;
        return status;
    }
    if (optimizer_.clips()) {
        double squares = 0.0;
        status.non_finite_layer = first_non_finite_layer(grads, &squares);
        if (status.non_finite_layer >= 0) {
            status.finite = false;
            return status;
        }
        optimizer_.clip(grads, squares);
    }
    // A NaN or Inf in a gradient gives one in the update: the optimizer's
    // step, which refuses non-finite results, stands guard for both.
    status.non_finite_layer = optimizer_.step(params_.data(), grads, lr);
    status.finite = status.non_finite_layer < 0;
    return status;
}

template <typename P>
StepStatus Network<P>::apply_update(T* grads, double loss, std::optional<double> lr) {
    return guarded_update(grads, loss, lr);
}

template <typename P>
StepStatus Network<P>::chosen_threads_step(const BatchRows<T>& rows, const T* Tg, const T* weights, index batch,
                                           std::optional<double> lr) {
    const int allowed = get_num_threads();
    if (allowed <= 1 || !adaptive_threads()) return step_on_batch(rows, Tg, weights, batch, lr);
    const ThreadLimit limit(threads_.next(batch, allowed));
    const double start = steady_seconds();
    const StepStatus status = step_on_batch(rows, Tg, weights, batch, lr);
    threads_.record(steady_seconds() - start);
    return status;
}

template <typename P>
StepStatus Network<P>::train_step(const T* X, Targets<T> targets, index batch, std::optional<double> lr) {
    return chosen_threads_step({X, nullptr}, dense_targets(targets, batch, nullptr), targets.weights, batch, lr);
}

template <typename P>
template <typename BatchInputs>
EpochStatus Network<P>::run_epoch(const BatchInputs& batch_inputs, Targets<T> targets, const std::int64_t* order,
                                  index n, index batch_size, std::optional<double> lr, EpochInterrupt interrupt,
                                  EpochSpan span) {
    // order (when given) is a permutation of [0, n)
    const index n_out = sizes().back();
    const index end = span.end < 0 ? n : span.end;
    EpochStatus epoch;
    double total = span.total_before;
    for (index start = span.begin, batch_number = span.begin / batch_size; start < end;
         start += batch_size, ++batch_number) {
        const index rows = std::min(batch_size, n - start);
        const std::int64_t* picked = order ? order + start : nullptr;
        const BatchRows<T> Xb = batch_inputs(start, rows, picked);
        const T* Tb;
        const T* Wb;
        if (picked) {
            Tb = dense_targets(targets, rows, picked);
            Wb = batch_weights(targets, rows, picked);
        } else {
            Tb = dense_targets(targets.from_row(start, n_out), rows, nullptr);
            Wb = targets.from_row(start, n_out).weights;
        }
        const StepStatus status = chosen_threads_step(Xb, Tb, Wb, rows, lr);
        if (!status.finite) {
            epoch.finite = false;
            epoch.non_finite_batch = batch_number;
            epoch.non_finite_layer = status.non_finite_layer;
            epoch.loss = status.loss;
            return epoch;
        }
        total += reduction_ == Reduction::mean ? status.loss * double(rows) : status.loss;
        if (start + batch_size < end && interrupt.check()) {
            epoch.interrupted = true;
            return epoch;
        }
    }
    if (end < n) {  // a span before the last: the epoch goes on in the next call
        epoch.loss = total;
        return epoch;
    }
    optimizer_.end_epoch();
    epoch.loss = reduction_ == Reduction::mean ? total / double(n) : total;
    return epoch;
}

template <typename P>
EpochStatus Network<P>::train_epoch(const T* X, Targets<T> targets, const std::int64_t* order, index n,
                                    index batch_size, std::optional<double> lr, EpochInterrupt interrupt,
                                    EpochSpan span) {
    // X is (n, n[0]): a batch in order is a slice of it, a shuffled one is
    // gathered by the step (chunk by chunk, when it runs in chunks)
    const index n_in = sizes().front();
    auto inputs = [&](index start, index, const std::int64_t* picked) -> BatchRows<T> {
        return picked ? BatchRows<T>{X, picked} : BatchRows<T>{X + start * n_in, nullptr};
    };
    return run_epoch(inputs, targets, order, n, batch_size, lr, interrupt, span);
}

template <typename P>
const Storage<P>* Network<P>::dense_rows(const CsrRows<T>& X, index start, index rows, const std::int64_t* picked,
                                index room) {
    // returns (rows, n[0]): each row scattered into a zeroed buffer (a column named twice adds up)
    const index n_in = sizes().front();
    T* dense = reserve(batch_x_, static_cast<size_t>(checked_product(room, n_in, "a dense batch of X")));
    std::fill(dense, dense + rows * n_in, T(0));
    for (index i = 0; i < rows; ++i) {
        const index r = picked ? picked[i] : start + i;
        T* row = dense + i * n_in;
        for (std::int64_t k = X.indptr[r]; k < X.indptr[r + 1]; ++k) row[X.indices[k]] += X.data[k];
    }
    return dense;
}

template <typename P>
EpochStatus Network<P>::train_epoch(const CsrRows<T>& X, Targets<T> targets, const std::int64_t* order, index n,
                                    index batch_size, std::optional<double> lr, EpochInterrupt interrupt,
                                    EpochSpan span) {
    // X holds n sparse rows of n[0] columns; each batch is made dense in the workspace
    const index room = std::min(batch_size, n);
    auto inputs = [&](index start, index rows, const std::int64_t* picked) -> BatchRows<T> {
        return {dense_rows(X, start, rows, picked, room), nullptr};
    };
    return run_epoch(inputs, targets, order, n, batch_size, lr, interrupt, span);
}

template <typename P>
double Network<P>::compute_gradients(const CsrRows<T>& X, Targets<T> targets, index n, index chunk_rows) {
    // Per chunk c of N_c = norm rows (or weight): value_c and g_c are means over
    // the chunk, so the whole data's are Σ_c N_c·value_c / Σ_c N_c and likewise
    // for g (sums, with N_c = 1, for reduction sum). The L2 term joins once.
    const index n_out = sizes().back(), n_params = layout_.n_parameters();
    const index chunk = std::min(chunk_rows, n);
    if (chunk >= n) {
        const T* Xd = dense_rows(X, 0, n, nullptr, n);
        return loss_and_gradients(Xd, dense_targets(targets, n, nullptr), targets.weights, n);
    }
    T* total = reserve(gradient_total_, static_cast<size_t>(n_params));
    std::fill(total, total + n_params, T(0));
    T* grads = grads_.data();
    double value = 0.0, total_norm = 0.0;
    for (index start = 0; start < n; start += chunk) {
        const index rows = std::min(chunk, n - start);
        const Targets<T> from = targets.from_row(start, n_out);
        const T* Xd = dense_rows(X, start, rows, nullptr, chunk);
        const T* Tg = dense_targets(from, rows, nullptr);
        LayerBackend<T>& backend = backend_for(rows);
        largest_batch_ = std::max(largest_batch_, rows);
        const double norm = batch_norm(from.weights, rows);
        value += forward_and_loss(backend, Xd, Tg, from.weights, rows, norm, grads) * objective_.value_scale;
        backward_pass(backend, {}, nullptr, grads);
        const T weight = T(norm);
        for (index i = 0; i < n_params; ++i) total[i] += weight * grads[i];
        total_norm += norm;
    }
    const bool mean = reduction_ == Reduction::mean;
    const T inverse = T(1.0 / (mean ? total_norm : 1.0));
    for (index i = 0; i < n_params; ++i) grads[i] = total[i] * inverse;
    value /= mean ? total_norm : 1.0;
    return objective_.l2 != 0.0 ? value + penalty(grads, mean ? total_norm : 1.0) : value;
}

#define BPFAST_INSTANTIATE(P) template class Network<P>;
BPFAST_FOR_EACH_PRECISION(BPFAST_INSTANTIATE)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
