// The layer products on the small-network kernels (kernels/small_net), for
// networks whose weight matrices stay in the core's caches: at most
// max_weight_bytes() each (the core's L2 cache), at batches up to MAX_BATCH, no softmax but on the
// output layer, on an ISA that has the kernels. Past those bounds the
// blocked GEMM (and its threads) is as fast or faster. The results agree
// with GemmBackend up to rounding.
//
// The parameter array must have PARAMETER_PADDING values of room past its
// end (the input gradient reads rows of W as whole vectors).
#pragma once

#include <vector>

#include "kernels/small_net/small_net.h"
#include "model/layer_backend.h"
#include "model/parameter_layout.h"
#include "precision.h"
#include "runtime/workspace.h"

namespace bpfast {

// P is the precision (precision.h). These kernels fuse the products with the
// activations and the step, in registers, in one type: they run a precision
// whose products read its storage type T (computes_in_storage) and never take
// another (issue 24: such a precision runs on GemmBackend until it has kernels here).
template <typename P>
class SmallNetBackend final : public LayerBackend<Storage<P>> {
public:
    using T = Storage<P>;

    static constexpr index MAX_BATCH = 256;
    // The largest weight matrix the path takes: the L2 cache of a core, as
    // the OS reports it (1 MiB when it does not say), within 256 KiB to 4 MiB.
    // The forward reads W once per 16 or 32 samples, and the weight gradient
    // and its step read and write W and dW: past L2 the blocked GEMM, which
    // packs W once, does better.
    static index max_weight_bytes();
    static constexpr index PARAMETER_PADDING = 64 / sizeof(T);

    // serial: every product runs on the calling thread, never on the pool (a
    // worker of RowChunks, which runs a whole chunk on one thread).
    SmallNetBackend(const ParameterLayout& layout, const std::vector<Activation>& activations,
                    bool serial = false);

    // Whether this backend runs the network at this batch.
    bool takes(index batch) const { return eligible_ && batch >= 1 && batch <= MAX_BATCH; }
    // The kernels' vector length: batches are padded to a multiple of it.
    index lanes() const { return lanes_; }
    // Sizes every buffer for batches up to this one (start_forward does it
    // for its own batch), so that a serial backend allocates nothing inside
    // a pool task.
    void reserve_batch(index batch);

    // X may also be input_rows(batch), filled by the caller.
    void start_forward(const T* X, index batch) override;
    // Where a caller may write the next forward pass's input rows itself
    // (batch rows of ld_input() values, the first n[0] of each; the rest
    // stay zero) and then pass this pointer to start_forward, which then
    // copies nothing: a gather straight into the padded layout.
    T* input_rows(index batch) {
        reserve_batch(batch);
        return input_rows_.data();
    }
    index ld_input() const { return padded_sizes_.front(); }
    void layer_forward(index l, const T* W, const T* b, Activation act) override;
    const T* output() const override { return output_.data(); }
    T* output_gradient() override { return output_gradient_.data(); }
    void input_gradient(index l, const T* W, T* db_below, Activation act_below) override;
    bool weight_gradient(index l, T* dW, const LayerStep<T>& step) override;

    // A product of at least this many flops per thread is split over the
    // pool's threads (half as many in float64, whose flops take twice as
    // long); below it, a part costs about as much as it saves: in waking and
    // waiting (about half a microsecond per call), and in moving what one
    // core wrote into the other's cache for the next product.
    static constexpr double MIN_FLOPS_PER_PART = double(1 << 20) * 4 / sizeof(T);

private:
    index n_layers() const { return layout_.n_layers(); }
    // Parts for a product of `flops` that can be cut into `blocks` blocks.
    index parts_for(double flops, index blocks) const;
    // Where part p of layer l's units begins, as layer_forward(l) split them
    // (whole tiles of rows); p = parts: n_out(l).
    index unit_bound(index l, index p) const;
    // This thread's features-major copy of the input (layer_forward(0)'s parts).
    const T* thread_input();
    index padded(index n) const { return (n + lanes_ - 1) / lanes_ * lanes_; }

    const ParameterLayout& layout_;
    const SmallNetKernels<T>& kernels_;
    index lanes_;
    bool eligible_;
    bool serial_;
    std::vector<index> padded_sizes_;

    index batch_ = 0, ldt_ = 0;  // the batch, and its padded length (a multiple of lanes)
    index capacity_ = 0;         // the padded batch the buffers hold
    // Each activation is kept samples-major S (ldt, padded width) and
    // features-major F (padded width, ldt); see kernels/small_net/small_net.h.
    // Cache-line aligned, so that rows (whole vectors long) are too.
    AlignedVector<T> input_rows_;              // X, samples-major, when it needs padding
    std::vector<AlignedVector<T>> features_;   // features_[l]: input of layer l, F (l ≥ 1)
    // Layer 0's input F, one copy for each thread that runs a part of the
    // first forward (each makes its own: a copy that another core read last
    // would cost more to overwrite than to make twice).
    AlignedVector<T> thread_inputs_;
    std::vector<char> input_made_;             // by thread slot: made for this batch
    std::vector<AlignedVector<T>> samples_;    // samples_[l], 0 < l < L: the same, S
    AlignedVector<T> output_, output_gradient_;  // Y and dL/dY, (ldt, n_out)
    const T* input_ = nullptr;                 // X or input_rows_
    AlignedVector<T> delta_a_, delta_b_;       // δ of the hidden layers, (ldt, padded width)
    T* delta_ = nullptr;                       // δ of the layer at hand, row stride ld_delta_
    index ld_delta_ = 0;
    T* below_ = nullptr;                       // δ of the layer below, once input_gradient has run
    std::vector<index> unit_parts_;            // by layer: the parts its forward split its units into
};

}  // namespace bpfast
