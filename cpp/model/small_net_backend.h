// The forward and backward passes of a training step on the small-network
// path (the kernels and the two layouts are described in small_net.h). The
// model uses it in place of the layer-by-layer GEMMs when takes() says so;
// the results agree with the GEMM path up to rounding.
//
//   parameters are laid out as in Model: W_0, b_0, W_1, b_1, ...; the
//   parameter array must have kernels.lanes values of room past its end
//   (the input gradient reads rows of W as whole vectors).
#pragma once

#include <vector>

#include "common.h"
#include "kernels/small_net/small_net.h"
#include "runtime/workspace.h"

namespace bpfast {

template <typename T>
class SmallNetStep {
public:
    // The largest batch and weight matrix the path takes. Past them the
    // blocked GEMM (and its threads) is as fast: on the project machine, at
    // batch 256, or with a 128 KiB float32 weight matrix.
    static constexpr index MAX_BATCH = 128;
    static constexpr index MAX_WEIGHT_BYTES = 64 * 1024;
    // Room the parameter array needs past its end.
    static constexpr index PARAMETER_PADDING = 64 / sizeof(T);

    // offsets: parameter_offsets(sizes), the layout of the parameter array.
    SmallNetStep(const std::vector<index>& sizes, const std::vector<Activation>& activations,
                 const std::vector<index>& offsets);

    // Whether the path runs this network at this batch.
    bool takes(index batch) const { return eligible_ && batch >= 1 && batch <= MAX_BATCH; }

    // The network output Y (batch, n_out) for X (batch, n[0]); with
    // logits_out, the output layer's activation is left out.
    const T* forward(const T* params, const T* X, index batch, bool logits_out);

    // Where the loss writes dL/dY (batch, n_out) before backward; it has
    // rows up to the padded batch.
    T* output_gradient() { return output_gradient_.data(); }

    // The gradients of every parameter from dL/dY in output_gradient(), for
    // the batch and the X of the last forward (X must still be there); dL/dY
    // is overwritten. Returns true when
    // every gradient is finite, false when one may not be.
    bool backward(const T* params, T* grads, index batch, bool logits_out);

private:
    index n_layers() const { return static_cast<index>(activations_.size()); }
    index padded(index n) const { return (n + lanes_ - 1) / lanes_ * lanes_; }
    void ensure_batch(index padded_batch);

    std::vector<index> sizes_, offsets_, padded_sizes_;
    std::vector<Activation> activations_;
    const SmallNetKernels<T>& kernels_;
    index lanes_;
    bool eligible_;

    index capacity_ = 0;  // padded batch the buffers hold
    // Cache-line aligned, so that rows (whole vectors long) are too.
    AlignedVector<T> input_rows_;                 // X, samples-major (ldt, padded n[0])
    std::vector<AlignedVector<T>> features_;      // features_[l]: input of layer l, (padded n[l], ldt)
    std::vector<AlignedVector<T>> samples_;       // samples_[l], 0 < l < L: the same, samples-major
    AlignedVector<T> output_, output_gradient_;   // Y and dL/dY, (ldt, n_out)
    const T* input_ = nullptr;                    // X or input_rows_: the last forward's input
    AlignedVector<T> delta_a_, delta_b_;          // δ of the hidden layers, (ldt, padded width)
};

}  // namespace bpfast
