#include "model/small_net_backend.h"

#include <algorithm>
#include <cstring>

#include "kernels/elementwise/activations.h"
#include "kernels/elementwise/checks.h"
#include "runtime/workspace.h"

namespace bpfast {
namespace {

// db (n,) = Σ_m δ[m] for δ (batch, n), a column at a time in four partial
// sums held in registers (an output layer has few columns; summing into db
// row by row would wait on a store and a load per row).
template <typename T>
void column_sums(T* db, const T* delta, index batch, index n) {
    for (index j = 0; j < n; ++j) {
        T partial[4] = {};
        index m = 0;
        for (; m + 4 <= batch; m += 4)
            for (int u = 0; u < 4; ++u) partial[u] += delta[(m + u) * n + j];
        for (; m < batch; ++m) partial[0] += delta[m * n + j];
        db[j] = (partial[0] + partial[1]) + (partial[2] + partial[3]);
    }
}

}  // namespace

template <typename T>
SmallNetStep<T>::SmallNetStep(const std::vector<index>& sizes, const std::vector<Activation>& activations,
                              const std::vector<index>& offsets)
    : sizes_(sizes),
      offsets_(offsets),
      activations_(activations),
      kernels_(active_small_net(static_cast<T*>(nullptr))),
      lanes_(kernels_.lanes),
      eligible_(kernels_.lanes > 0 && sizes.size() == activations.size() + 1) {
    if (!eligible_) return;  // Model reports a malformed network
    for (index l = 0; l < n_layers(); ++l) {
        const index weights = sizes_[l + 1] * sizes_[l];
        if (weights * index(sizeof(T)) > MAX_WEIGHT_BYTES) eligible_ = false;
        // softmax needs whole rows; only the output layer may have it
        if (l + 1 < n_layers() && activations_[l] == Activation::softmax) eligible_ = false;
    }
    if (!eligible_) return;
    for (index n : sizes_) padded_sizes_.push_back(padded(n));
    features_.resize(n_layers() + 1);
    samples_.resize(n_layers());
}

template <typename T>
void SmallNetStep<T>::ensure_batch(index ldt) {
    if (ldt <= capacity_) return;
    const index widest_hidden = n_layers() > 1
        ? *std::max_element(padded_sizes_.begin() + 1, padded_sizes_.end() - 1) : index(0);
    reserve(input_rows_, ldt * padded_sizes_[0]);
    for (index l = 0; l <= n_layers(); ++l) reserve(features_[l], padded_sizes_[l] * ldt);
    for (index l = 1; l < n_layers(); ++l) reserve(samples_[l], ldt * padded_sizes_[l]);
    reserve(output_, ldt * sizes_.back());
    reserve(output_gradient_, ldt * sizes_.back());
    reserve(delta_a_, ldt * widest_hidden);
    reserve(delta_b_, ldt * widest_hidden);
    capacity_ = ldt;
}

template <typename T>
const T* SmallNetStep<T>::forward(const T* params, const T* X, index batch, bool logits_out) {
    const index ldt = padded(batch), n_in = sizes_[0], last = n_layers() - 1;
    ensure_batch(ldt);
    // X (batch, n_in) -> input (ldt, padded n_in) -> features_[0] (padded n_in, ldt); X
    // itself when it needs no padding
    input_ = X;
    if (ldt != batch || padded_sizes_[0] != n_in) {
        for (index m = 0; m < batch; ++m)
            std::memcpy(input_rows_.data() + m * padded_sizes_[0], X + m * n_in, sizeof(T) * n_in);
        input_ = input_rows_.data();
    }
    kernels_.transpose(features_[0].data(), ldt, input_, padded_sizes_[0], ldt, padded_sizes_[0]);
    for (index l = 0; l <= last; ++l) {
        const Activation act = l == last && logits_out ? Activation::identity : activations_[l];
        const index n_out = sizes_[l + 1];
        T* F = features_[l + 1].data();
        // The samples-major copy of a hidden layer comes with the forward when
        // the activation is applied there (relu, identity), else after it.
        const bool elementwise_after = act == Activation::sigmoid || act == Activation::tanh;
        T* S = l < last && !elementwise_after ? samples_[l + 1].data() : nullptr;
        // Padding rows of F, past n_out, to zero: at this ldt they may hold what a
        // larger batch left there (finite or not), and they reach the padding
        // lanes that the gradient checks add up.
        std::fill(F + n_out * ldt, F + padded_sizes_[l + 1] * ldt, T(0));
        kernels_.forward(F, features_[l].data(), params + offsets_[l], params + offsets_[l] + n_out * sizes_[l],
                         ldt, sizes_[l], n_out, act == Activation::relu, S, padded_sizes_[l + 1]);
        if (elementwise_after) activate(F, F, n_out, ldt, act);
        if (l < last) {
            if (!S)
                kernels_.transpose(samples_[l + 1].data(), padded_sizes_[l + 1], F, ldt, padded_sizes_[l + 1], ldt);
            continue;
        }
        // the output, (batch, n_out) with no padding: the layout of the loss
        T* Y = output_.data();
        for (index m = 0; m < batch; ++m)
            for (index j = 0; j < n_out; ++j) Y[m * n_out + j] = F[j * ldt + m];
        if (act == Activation::softmax) activate(Y, Y, batch, n_out, act);
    }
    return output_.data();
}

template <typename T>
bool SmallNetStep<T>::backward(const T* params, T* grads, index batch, bool logits_out) {
    const index last = n_layers() - 1, n_out = sizes_.back();
    const Activation output_act = logits_out ? Activation::identity : activations_[last];
    T* delta = output_gradient_.data();
    index ld_delta = n_out;
    // δ = dL/dY ⊙ σ'(Y) and db for the output layer, in place
    T* db = grads + offsets_[last] + n_out * sizes_[last];
    if (output_act == Activation::identity) {  // δ is dL/dY: only db to sum
        column_sums(db, delta, batch, n_out);
    } else {
        activation_backward(delta, delta, output_.data(), batch, n_out, output_act, db);
    }
    bool finite = all_finite(db, n_out);
    T* spare = delta_a_.data();
    T* other = delta_b_.data();
    for (index l = last; l >= 0; --l) {
        const index n_in = sizes_[l], n_out_l = sizes_[l + 1];
        const T* input = l == 0 ? input_ : samples_[l].data();
        finite &= kernels_.weight_gradient(grads + offsets_[l], delta, ld_delta, input, padded_sizes_[l], batch,
                                           n_in, n_out_l);
        if (l == 0) break;
        // δ of layer l−1 and its db
        T* db_below = grads + offsets_[l - 1] + n_in * sizes_[l - 1];
        finite &= kernels_.input_gradient(spare, db_below, delta, ld_delta, params + offsets_[l],
                                          samples_[l].data(), padded_sizes_[l], batch, n_in, n_out_l,
                                          activations_[l - 1]);
        delta = spare;
        ld_delta = padded_sizes_[l];
        std::swap(spare, other);
    }
    return finite;
}

template class SmallNetStep<float>;
template class SmallNetStep<double>;

}  // namespace bpfast
