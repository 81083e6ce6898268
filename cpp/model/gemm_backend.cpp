#include "model/gemm_backend.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "kernels/dense.h"
#include "kernels/elementwise/activation_kernels.h"
#include "runtime/sizes.h"
#include "runtime/threads.h"
#include "runtime/workspace.h"

namespace bpfast {

template <typename P>
void GemmBackend<P>::start_forward(const T* X, index batch) {
    if (batch > capacity_) {
        const auto& n = layout_.sizes();
        const index widest = *std::max_element(n.begin() + 1, n.end());
        const index rows = checked_product(batch, widest, "the workspace for this batch");
        for (index l = 0; l < layout_.n_layers(); ++l) reserve(outputs_[l], batch * n[l + 1]);
        reserve(delta_, rows);
        reserve(spare_, rows);
        capacity_ = batch;
    }
    input_ = X;
    batch_ = batch;
    below_ready_ = false;
}

template <typename P>
void GemmBackend<P>::layer_forward(index l, const T* W, const T* b, Activation act) {
    dense_forward<P>(outputs_[l].data(), input_of(l), W, b, batch_,
                  layout_.n_in(l), layout_.n_out(l), act);
}

template <typename P>
void GemmBackend<P>::input_gradient(index l, const T* W, T* db_below, Activation act_below) {
    // δ_l (batch, n_out), W (n_out, n_in), δ_{l−1} (batch, n_in) into spare_
    const index n_in = layout_.n_in(l), n_out = layout_.n_out(l);
    T* below = spare_.data();
    bpfast::input_gradient<P>(below, delta_.data(), W, batch_, n_in, n_out);
    activation_backward(below, db_below, below, outputs_[l - 1].data(), batch_, n_in, act_below);
    below_ready_ = true;
}

template <typename P>
bool GemmBackend<P>::weight_gradient(index l, T* dW, const LayerStep<T>& step) {
    // δ_l (batch, n_out), A_{l−1} (batch, n_in), dW (n_out, n_in)
    const index n_in = layout_.n_in(l), n_out = layout_.n_out(l);
    bpfast::weight_gradient<P>(dW, delta_.data(), input_of(l), batch_, n_in, n_out);
    // The step on this layer while its dW is still in the caches.
    std::atomic<bool> finite{true};
    if (const FusedSgd<T>* sgd = step.sgd) {
        for_each_chunk(n_out * n_in, [&](index lo, index hi) {
            if (!sgd_keeping_old(sgd->W + lo, dW + lo, hi - lo, sgd->step)) finite.store(false, std::memory_order_relaxed);
        });
        if (!sgd_keeping_old(sgd->b, sgd->db, n_out, sgd->bias_step)) finite.store(false, std::memory_order_relaxed);
    } else if (step.rows) {
        // blocks of about CHUNK values, whole rows (an elementwise step: any split writes the same values)
        const index blocks = std::min(n_out, std::max<index>(1, n_out * n_in / CHUNK));
        parallel_for(blocks, [&](index p) {
            if (!step.rows(step.context, l, p * n_out / blocks, (p + 1) * n_out / blocks))
                finite.store(false, std::memory_order_relaxed);
        });
    }
    if (below_ready_) std::swap(delta_, spare_);  // the layer below is next
    below_ready_ = false;
    return finite.load(std::memory_order_relaxed);
}

#define BPFAST_INSTANTIATE(P) template class GemmBackend<P>;
BPFAST_FOR_EACH_PRECISION(BPFAST_INSTANTIATE)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
