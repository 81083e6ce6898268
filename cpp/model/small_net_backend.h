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

#include <type_traits>
#include <vector>

#include "kernels/small_net/small_net.h"
#include "model/layer_backend.h"
#include "model/parameter_layout.h"
#include "precision.h"
#include "runtime/workspace.h"

namespace bpfast {

// P is the precision (precision.h). These kernels fuse the products with the
// activations and the step, in registers, in one type: the storage type T.
// Mixed precision (bfloat16 products, float32 kept) runs on the float kernels
// with its product operands rounded to bfloat16 first: a bfloat16 product is
// exact in float, so the values are those of VDPBF16PS up to the order of the
// float sums. The backend keeps rounded copies of what the products read (W,
// the input, δ, and the activations of sigmoid and tanh layers, whose
// derivatives read the unrounded ones); relu's and identity's activations are
// rounded where they are, their derivatives reading only the sign.
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
    bool takes(index batch) const { return eligible_ && batch >= 1 && batch <= MAX_BATCH && within_bf16_limit(batch); }
    // Mixed precision: whether a batch's products are few enough that the
    // float kernels here beat the blocked GEMM's bfloat16 instructions
    // (always true for the other precisions, and where those instructions are
    // emulated on float FMAs anyway). RowChunks asks it of the whole batch.
    bool within_bf16_limit(index batch) const {
        return !ROUNDS_OPERANDS || double(batch) * forward_flops_per_row_ <= bf16_forward_flops_limit();
    }
    // The largest forward pass (in flops, 2·batch·Σ n_in·n_out) that mixed
    // precision runs here: 2^22 where the GEMM has VDPBF16PS (measured on
    // Zen 5: a [64,100,10] batch of 200, 3.0 Mflop, ran faster here; [100,100,10]
    // and [784,128,10] b32, 4.4 and 6.5 Mflop, on the GEMM), 2^20 with AMX
    // (a guess, its software model included, to be measured on a Xeon), no limit otherwise.
    static double bf16_forward_flops_limit();
    // Whether the products read bfloat16-rounded operands (mixed precision).
    static constexpr bool ROUNDS_OPERANDS = std::is_same_v<Compute<P>, BFloat16>;

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
    // Mixed precision only (ROUNDS_OPERANDS; else nothing): dst[0, n) = src[0, n)
    // rounded to bfloat16 (dst may be src).
    void round_into(T* dst, const T* src, index n) const;
    // W_l as the products read it: W itself, or its rounded copy (layer_forward rounds it).
    const T* product_weights(index l, const T* W) const;
    // The first backward call's δ, dL/dY, as the products read it (a rounded copy).
    void round_output_delta();
    // The input activation of layer l (l ≥ 1) as the weight gradient reads it.
    const T* product_samples(index l) const;

    const ParameterLayout& layout_;
    const SmallNetKernels<T>& kernels_;
    index lanes_;
    bool eligible_;
    bool serial_;
    double forward_flops_per_row_ = 0.0;  // 2·Σ n_in·n_out
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
    // Mixed precision's rounded operands: every layer's weights (at the
    // parameter layout's offsets, with its padding), dL/dY, and the samples-major
    // activations of layers whose derivative reads the unrounded ones.
    AlignedVector<T> rounded_weights_, rounded_output_delta_;
    std::vector<AlignedVector<T>> rounded_samples_;  // by layer l ≥ 1, where rounded_apart_[l]
    std::vector<char> rounded_apart_;  // by layer l ≥ 1: its input activation's derivative reads the unrounded one
};

}  // namespace bpfast
