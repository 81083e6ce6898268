#include "model/small_net_backend.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <string>

#include "kernels/bf16/pair_ukernel.h"
#include "kernels/elementwise/activation_kernels.h"
#include "runtime/cpu_info.h"
#include "runtime/threads.h"

namespace bpfast {

template <typename P>
index SmallNetBackend<P>::max_weight_bytes() {
    static const index bytes = [] {
        const long l2 = cache_sizes().l2;
        return std::clamp<index>(l2 > 0 ? index(l2) : index(1) << 20, index(256) << 10, index(4) << 20);
    }();
    return bytes;
}

template <typename P>
double SmallNetBackend<P>::bf16_forward_flops_limit() {
    static const double limit = [] {
        const std::string kernel = active_pair_micro_kernel().name;
        if (kernel.rfind("amx", 0) == 0) return double(1 << 20);
        if (kernel.rfind("avx512_bf16_", 0) == 0) return double(1 << 22);
        return std::numeric_limits<double>::infinity();  // emulated bfloat16 products: float FMAs either way
    }();
    return limit;
}

template <typename P>
SmallNetBackend<P>::SmallNetBackend(const ParameterLayout& layout, const std::vector<Activation>& activations,
                                    bool serial)
    : layout_(layout),
      kernels_(active_small_net_kernels<T>()),
      lanes_(kernels_.lanes),
      eligible_(kernels_.lanes > 0 && (computes_in_storage<P> || (ROUNDS_OPERANDS && kernels_.round_to_bfloat16))),
      serial_(serial) {
    for (index l = 0; eligible_ && l < n_layers(); ++l) {
        if (layout.n_out(l) * layout.n_in(l) * index(sizeof(T)) > max_weight_bytes()) eligible_ = false;
        // softmax needs whole rows; only the output layer may have it
        if (l + 1 < n_layers() && activations[l] == Activation::softmax) eligible_ = false;
    }
    if (!eligible_) return;
    for (index l = 0; l < n_layers(); ++l) forward_flops_per_row_ += 2.0 * double(layout.n_in(l) * layout.n_out(l));
    for (index n : layout.sizes()) padded_sizes_.push_back(padded(n));
    features_.resize(n_layers() + 1);
    samples_.resize(n_layers());
    unit_parts_.assign(static_cast<size_t>(n_layers()), 1);
    if constexpr (ROUNDS_OPERANDS) {
        reserve(rounded_weights_, static_cast<size_t>(layout.n_parameters() + PARAMETER_PADDING));
        std::fill(rounded_weights_.begin(), rounded_weights_.end(), T(0));
        rounded_samples_.resize(n_layers());
        rounded_apart_.assign(static_cast<size_t>(n_layers()), 0);
        for (index l = 1; l < n_layers(); ++l)
            rounded_apart_[l] = activations[l - 1] == Activation::sigmoid || activations[l - 1] == Activation::tanh;
    }
}

template <typename P>
void SmallNetBackend<P>::round_into(T* dst, const T* src, index n) const {
    if constexpr (ROUNDS_OPERANDS) kernels_.round_to_bfloat16(dst, src, n);
}

template <typename P>
const Storage<P>* SmallNetBackend<P>::product_weights(index l, const T* W) const {
    if constexpr (ROUNDS_OPERANDS) return rounded_weights_.data() + layout_.weights(l);
    return W;
}

template <typename P>
void SmallNetBackend<P>::round_output_delta() {
    // dL/dY (ldt, n_out), padding rows included (the input gradient reads them)
    if (!ROUNDS_OPERANDS || delta_ != output_gradient_.data()) return;
    round_into(rounded_output_delta_.data(), delta_, ldt_ * layout_.sizes().back());
    delta_ = rounded_output_delta_.data();
}

template <typename P>
const Storage<P>* SmallNetBackend<P>::product_samples(index l) const {
    if (ROUNDS_OPERANDS && rounded_apart_[l]) return rounded_samples_[l].data();
    return samples_[l].data();
}

template <typename P>
void SmallNetBackend<P>::reserve_batch(index batch) {
    const index ldt = padded(batch);
    if (ldt <= capacity_) return;
    const index widest_hidden =
        n_layers() > 1 ? *std::max_element(padded_sizes_.begin() + 1, padded_sizes_.end() - 1) : index(0);
    reserve(input_rows_, ldt * padded_sizes_[0]);
    for (index l = 1; l <= n_layers(); ++l) reserve(features_[l], padded_sizes_[l] * ldt);
    for (index l = 1; l < n_layers(); ++l) reserve(samples_[l], ldt * padded_sizes_[l]);
    reserve(output_, ldt * layout_.sizes().back());
    reserve(output_gradient_, ldt * layout_.sizes().back());
    if constexpr (ROUNDS_OPERANDS) {
        reserve(rounded_output_delta_, ldt * layout_.sizes().back());
        for (index l = 1; l < n_layers(); ++l)
            if (rounded_apart_[l]) reserve(rounded_samples_[l], ldt * padded_sizes_[l]);
    }
    reserve(delta_a_, ldt * widest_hidden);
    reserve(delta_b_, ldt * widest_hidden);
    if (serial_) reserve(thread_inputs_, static_cast<size_t>(padded_sizes_[0] * ldt));  // its one part's copy
    capacity_ = ldt;
}

template <typename P>
void SmallNetBackend<P>::start_forward(const T* X, index batch) {
    const index ldt = padded(batch), n_in = layout_.n_in(0);
    reserve_batch(batch);
    // X (batch, n_in) -> input (ldt, padded n_in), X itself when it needs no
    // padding; layer_forward(0) makes its features-major copy
    batch_ = batch;
    ldt_ = ldt;
    delta_ = output_gradient_.data();  // the backward pass starts from dL/dY
    ld_delta_ = layout_.sizes().back();
    below_ = nullptr;
    input_ = X;
    if (X == input_rows_.data()) {
        // filled in place by the caller (input_rows), row stride padded n_in
        if (ROUNDS_OPERANDS)
            for (index m = 0; m < batch; ++m) {
                T* row = input_rows_.data() + m * padded_sizes_[0];
                round_into(row, row, n_in);
            }
    } else if (ROUNDS_OPERANDS) {  // the rounded copy, padded
        for (index m = 0; m < batch; ++m) round_into(input_rows_.data() + m * padded_sizes_[0], X + m * n_in, n_in);
        input_ = input_rows_.data();
    } else if (ldt != batch || padded_sizes_[0] != n_in) {
        for (index m = 0; m < batch; ++m)
            std::memcpy(input_rows_.data() + m * padded_sizes_[0], X + m * n_in, sizeof(T) * n_in);
        input_ = input_rows_.data();
    }
}

template <typename P>
const Storage<P>* SmallNetBackend<P>::thread_input() {
    // F (padded n_in, ldt) of the input, made by this thread once per batch
    const index slot = serial_ ? 0 : thread_slot(), size = padded_sizes_[0] * ldt_;
    T* F = thread_inputs_.data() + slot * size;
    if (!input_made_[static_cast<size_t>(slot)]) {
        kernels_.transpose(F, ldt_, input_, padded_sizes_[0], ldt_, padded_sizes_[0]);
        input_made_[static_cast<size_t>(slot)] = 1;
    }
    return F;
}

template <typename P>
void SmallNetBackend<P>::layer_forward(index l, const T* W, const T* b, Activation act) {
    const index ldt = ldt_, n_out = layout_.n_out(l);
    const bool last = l == n_layers() - 1;
    T* F = features_[l + 1].data();
    // The samples-major copy of a hidden layer comes with the forward when the
    // activation is applied there (relu, identity), else after it.
    const bool elementwise_after = act == Activation::sigmoid || act == Activation::tanh;
    T* S = !last && !elementwise_after ? samples_[l + 1].data() : nullptr;
    // Padding rows of F, past n_out, to zero: at this ldt they may hold what a
    // larger batch left there (finite or not), and they reach the padding
    // lanes that the gradient checks add up.
    std::fill(F + n_out * ldt, F + padded_sizes_[l + 1] * ldt, T(0));
    // Split into blocks of rows that are whole tiles: each part computes
    // exactly what the whole call would for its rows (small_net.h).
    const index n_in = layout_.n_in(l), rows = kernels_.forward_rows, blocks = (n_out + rows - 1) / rows;
    const index parts = parts_for(2.0 * double(ldt * n_in * n_out), blocks);
    unit_parts_[static_cast<size_t>(l)] = parts;
    if (l == 0) {  // room for the input's copy of each thread that may run a part
        reserve(thread_inputs_, static_cast<size_t>(parts * padded_sizes_[0] * ldt));
        input_made_.assign(static_cast<size_t>(parts), 0);
    }
    const index ld_s = padded_sizes_[l + 1];
    const T* W_product = product_weights(l, W);
    auto forward_part = [&](index p) {
        const index r0 = unit_bound(l, p), r1 = unit_bound(l, p + 1);
        const T* F_in = l == 0 ? thread_input() : features_[l].data();
        if (ROUNDS_OPERANDS)  // this part's rows of W, rounded
            round_into(rounded_weights_.data() + layout_.weights(l) + r0 * n_in, W + r0 * n_in, (r1 - r0) * n_in);
        kernels_.forward(F + r0 * ldt, F_in, W_product + r0 * n_in, b + r0, ldt, n_in, r1 - r0,
                         act == Activation::relu, S ? S + r0 : nullptr, ld_s, ROUNDS_OPERANDS && S != nullptr);
    };
    parallel_for(parts, forward_part);
    if (elementwise_after) activation_forward(F, F, n_out, ldt, act);
    if (!last) {
        T* S_all = samples_[l + 1].data();
        if (!S) {  // sigmoid, tanh: S keeps the activations their derivative reads, the products a rounded copy
            kernels_.transpose(S_all, padded_sizes_[l + 1], F, ldt, padded_sizes_[l + 1], ldt);
            if (ROUNDS_OPERANDS) {
                round_into(F, F, padded_sizes_[l + 1] * ldt);
                round_into(rounded_samples_[l + 1].data(), S_all, ldt * padded_sizes_[l + 1]);
            }
        }  // else relu, identity: the kernel rounded F and S as it stored them (relu's derivative reads the sign)
        return;
    }
    // the output, (batch, n_out) with no padding: the layout of the loss
    T* Y = output_.data();
    for (index m = 0; m < batch_; ++m)
        for (index j = 0; j < n_out; ++j) Y[m * n_out + j] = F[j * ldt + m];
    if (act == Activation::softmax) activation_forward(Y, Y, batch_, n_out, act);
}

template <typename P>
index SmallNetBackend<P>::unit_bound(index l, index p) const {
    const index n_out = layout_.n_out(l), rows = kernels_.forward_rows, blocks = (n_out + rows - 1) / rows;
    return std::min(n_out, p * blocks / unit_parts_[static_cast<size_t>(l)] * rows);
}

template <typename P>
index SmallNetBackend<P>::parts_for(double flops, index blocks) const {
    if (serial_) return 1;
    const double by_size = flops / MIN_FLOPS_PER_PART;
    return std::max<index>(1, std::min<index>({index(get_num_threads()), index(by_size), blocks}));
}

// The kernels also say whether what they wrote is finite; the step's guard
// checks the update as a whole (network.cpp), so that flag goes unused here.
template <typename P>
bool SmallNetBackend<P>::weight_gradient(index l, T* dW, const LayerStep<T>& layer_step) {
    // Split by rows of dW: each value is the same sum over the batch, in the
    // same order, whatever the split; by the forward's split of these units
    // when it had one, so that each thread works on the rows of δ, F and W
    // that it wrote or read before. A fused step runs on each tile of dW
    // as soon as it is done, in registers, and on the part's biases; any
    // other step on the part's rows right after them, on the same thread.
    const FusedSgd<T>* step = layer_step.sgd;
    round_output_delta();
    const T* input = l == 0 ? input_ : product_samples(l);
    const index n_in = layout_.n_in(l), n_out = layout_.n_out(l);
    const index forward_parts = unit_parts_[static_cast<size_t>(l)];
    const index parts = forward_parts > 1 ? forward_parts : parts_for(2.0 * double(batch_ * n_in * n_out), n_out);
    std::atomic<bool> finite{true};
    auto part = [&](index p) {
        const index r0 = forward_parts > 1 ? unit_bound(l, p) : p * n_out / parts;
        const index r1 = forward_parts > 1 ? unit_bound(l, p + 1) : (p + 1) * n_out / parts;
        const bool ok = kernels_.weight_gradient(dW + r0 * n_in, delta_ + r0, ld_delta_, input, padded_sizes_[l],
                                                 batch_, n_in, r1 - r0, step ? step->W + r0 * n_in : nullptr,
                                                 step ? step->step.lr : 0.0, step ? step->step.weight_decay : 0.0);
        if (step && !(ok & sgd_keeping_old(step->b + r0, step->db + r0, r1 - r0, step->bias_step)))
            finite.store(false, std::memory_order_relaxed);
        if (layer_step.rows && !layer_step.rows(layer_step.context, l, r0, r1))
            finite.store(false, std::memory_order_relaxed);
    };
    parallel_for(parts, part);
    if (below_) {  // the layer below is next
        delta_ = below_;
        ld_delta_ = padded_sizes_[l];
        below_ = nullptr;
    }
    return finite.load(std::memory_order_relaxed);
}

template <typename P>
void SmallNetBackend<P>::input_gradient(index l, const T* W, T* db_below, Activation act_below) {
    // Split by blocks of columns, two vectors wide (the kernel's chunks), or
    // as the forward split the units of layer l − 1 (whole vectors) when that
    // gives at least as many parts, so that each thread reads the activations
    // it wrote and writes the δ its weight gradient reads: each value of δ_in
    // and db_in is the same sum, in the same order, whatever the split.
    // δ_{l−1} becomes the current δ once weight_gradient(l) is done.
    round_output_delta();
    below_ = delta_ == delta_a_.data() ? delta_b_.data() : delta_a_.data();
    W = product_weights(l, W);
    const index n_in = layout_.n_in(l), n_out = layout_.n_out(l), width = 2 * lanes_;
    const index blocks = (n_in + width - 1) / width;
    const index own_parts = parts_for(2.0 * double(batch_ * n_in * n_out), blocks);
    const index below_parts = unit_parts_[static_cast<size_t>(l - 1)];
    const bool as_forward = below_parts > 1 && below_parts >= own_parts;
    const index parts = as_forward ? below_parts : own_parts;
    const T* A_in = samples_[l].data();
    const index ld_out = padded_sizes_[l];
    auto part = [&](index p) {
        const index c0 = as_forward ? unit_bound(l - 1, p) : p * blocks / parts * width;
        const index c1 = as_forward ? unit_bound(l - 1, p + 1) : std::min(n_in, (p + 1) * blocks / parts * width);
        kernels_.input_gradient(below_ + c0, db_below + c0, delta_, ld_delta_, W + c0, n_in, A_in + c0, ld_out,
                                batch_, c1 - c0, n_out, act_below, ROUNDS_OPERANDS);
    };
    // δ_in stored rounded, the operand of layer l − 1's products; db_in sums the unrounded values
    parallel_for(parts, part);
}

#define BPFAST_INSTANTIATE(P) template class SmallNetBackend<P>;
BPFAST_FOR_EACH_PRECISION(BPFAST_INSTANTIATE)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
