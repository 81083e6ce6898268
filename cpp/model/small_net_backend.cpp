#include "model/small_net_backend.h"

#include <algorithm>
#include <cstring>

#include "kernels/elementwise/activation_kernels.h"

namespace bpfast {

template <typename T>
SmallNetBackend<T>::SmallNetBackend(const ParameterLayout& layout, const std::vector<Activation>& activations)
    : layout_(layout),
      kernels_(active_small_net_kernels<T>()),
      lanes_(kernels_.lanes),
      eligible_(kernels_.lanes > 0) {
    for (index l = 0; eligible_ && l < n_layers(); ++l) {
        if (layout.n_out(l) * layout.n_in(l) * index(sizeof(T)) > MAX_WEIGHT_BYTES) eligible_ = false;
        // softmax needs whole rows; only the output layer may have it
        if (l + 1 < n_layers() && activations[l] == Activation::softmax) eligible_ = false;
    }
    if (!eligible_) return;
    for (index n : layout.sizes()) padded_sizes_.push_back(padded(n));
    features_.resize(n_layers() + 1);
    samples_.resize(n_layers());
}

template <typename T>
void SmallNetBackend<T>::start_forward(const T* X, index batch) {
    const index ldt = padded(batch), n_in = layout_.n_in(0);
    if (ldt > capacity_) {
        const index widest_hidden =
            n_layers() > 1 ? *std::max_element(padded_sizes_.begin() + 1, padded_sizes_.end() - 1) : index(0);
        reserve(input_rows_, ldt * padded_sizes_[0]);
        for (index l = 0; l <= n_layers(); ++l) reserve(features_[l], padded_sizes_[l] * ldt);
        for (index l = 1; l < n_layers(); ++l) reserve(samples_[l], ldt * padded_sizes_[l]);
        reserve(output_, ldt * layout_.sizes().back());
        reserve(output_gradient_, ldt * layout_.sizes().back());
        reserve(delta_a_, ldt * widest_hidden);
        reserve(delta_b_, ldt * widest_hidden);
        capacity_ = ldt;
    }
    // X (batch, n_in) -> input (ldt, padded n_in) -> features_[0] (padded n_in, ldt);
    // X itself when it needs no padding
    batch_ = batch;
    ldt_ = ldt;
    delta_ = output_gradient_.data();  // the backward pass starts from dL/dY
    ld_delta_ = layout_.sizes().back();
    input_ = X;
    if (ldt != batch || padded_sizes_[0] != n_in) {
        for (index m = 0; m < batch; ++m)
            std::memcpy(input_rows_.data() + m * padded_sizes_[0], X + m * n_in, sizeof(T) * n_in);
        input_ = input_rows_.data();
    }
    kernels_.transpose(features_[0].data(), ldt, input_, padded_sizes_[0], ldt, padded_sizes_[0]);
}

template <typename T>
void SmallNetBackend<T>::layer_forward(index l, const T* W, const T* b, Activation act) {
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
    kernels_.forward(F, features_[l].data(), W, b, ldt, layout_.n_in(l), n_out, act == Activation::relu, S,
                     padded_sizes_[l + 1]);
    if (elementwise_after) activation_forward(F, F, n_out, ldt, act);
    if (!last) {
        if (!S) kernels_.transpose(samples_[l + 1].data(), padded_sizes_[l + 1], F, ldt, padded_sizes_[l + 1], ldt);
        return;
    }
    // the output, (batch, n_out) with no padding: the layout of the loss
    T* Y = output_.data();
    for (index m = 0; m < batch_; ++m)
        for (index j = 0; j < n_out; ++j) Y[m * n_out + j] = F[j * ldt + m];
    if (act == Activation::softmax) activation_forward(Y, Y, batch_, n_out, act);
}

// The kernels also say whether what they wrote is finite; the step's guard
// checks the update as a whole (network.cpp), so that flag goes unused here.
template <typename T>
void SmallNetBackend<T>::weight_gradient(index l, T* dW) {
    const T* input = l == 0 ? input_ : samples_[l].data();
    kernels_.weight_gradient(dW, delta_, ld_delta_, input, padded_sizes_[l], batch_, layout_.n_in(l),
                             layout_.n_out(l));
}

template <typename T>
void SmallNetBackend<T>::input_gradient(index l, const T* W, T* db_below, Activation act_below) {
    T* below = delta_ == delta_a_.data() ? delta_b_.data() : delta_a_.data();
    kernels_.input_gradient(below, db_below, delta_, ld_delta_, W, samples_[l].data(), padded_sizes_[l], batch_,
                            layout_.n_in(l), layout_.n_out(l), act_below);
    delta_ = below;
    ld_delta_ = padded_sizes_[l];
}

template class SmallNetBackend<float>;
template class SmallNetBackend<double>;

}  // namespace bpfast
