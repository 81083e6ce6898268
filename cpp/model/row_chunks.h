// The small step on every core. A batch is cut into chunks of rows whose
// size depends on the batch, the network and the precision, never on the
// thread count. Each chunk's forward and backward passes run whole on one
// thread, on a serial SmallNetBackend (a worker), into the chunk's own
// gradients; Network then sums those in chunk order. Any thread count, and
// any assignment of chunks to workers, gives the same bits.
//
// Worker w of W = tasks(chunks) runs chunks w, w + W, w + 2W, ...: a fixed
// assignment, so that every worker's buffers are sized before the parallel
// part (prepare) and none is touched by two threads at once.
//
// It pays where a layer-by-layer split cannot: a net of a few thousand
// parameters at a batch of a few hundred rows, whose products are too small
// to split by units (scikit-learn's defaults). Past a few hundred KiB of
// parameters, each chunk's copy of the gradients would cost more memory
// traffic than it saves, and the layer split (or the blocked GEMM) runs it.
//
//   chunk c covers rows [first_row(c), first_row(c + 1)) of the batch
//   gradients(c) (n_parameters,) holds that chunk's dW and db, laid out as the parameters
#pragma once

#include <memory>
#include <vector>

#include "model/parameter_layout.h"
#include "model/small_net_backend.h"
#include "precision.h"
#include "runtime/workspace.h"

namespace bpfast {

template <typename P>
class RowChunks {
public:
    using T = Storage<P>;

    // A batch is cut into a power of two of chunks (2, 4, 8 or 16 threads
    // then share them evenly) of at least MIN_ROWS rows each, at most
    // MAX_CHUNKS, and more only where a chunk would have more than the
    // small-network backend's MAX_BATCH rows. Chunks are whole groups of
    // rows (the small kernels' vector length, to which they pad a batch), as
    // even as those allow. Shorter chunks sum fewer rows per weight-gradient
    // tile and repeat each chunk's fixed costs: on Zen 5 the [64,100,10] b200
    // step ran best in 2 chunks in float64 and in 4 in float32 (BENCHMARKS.md).
    static constexpr index MIN_ROWS = sizeof(T) == 8 ? 64 : 48;
    static constexpr index MAX_CHUNKS = 16;
    // The largest set of gradients a chunk keeps: it must stay in the cache
    // of the core that writes it until the sum reads it.
    static constexpr index MAX_GRADIENT_BYTES = index(256) << 10;

    RowChunks(const ParameterLayout& layout, const std::vector<Activation>& activations);

    // How many chunks a batch is cut into; 1 when it runs unchunked (it is
    // too short to cut, the net is not one the small backend takes, or its
    // gradients are too large to copy per chunk).
    index count(index batch) const;
    // The first row of chunk c of `chunks` (c = chunks: the batch).
    index first_row(index batch, index chunks, index c) const;
    // The most rows any of the chunks has.
    index longest(index batch, index chunks) const;
    // How many workers run `chunks` chunks: one per thread, at most one per chunk.
    static index tasks(index chunks);

    // Makes room for the chunks of a batch, and readies tasks(chunks) workers
    // for them, each with its buffers (its input rows too) for the longest
    // chunk (call before the parallel part).
    void prepare(index batch, index chunks);
    // Worker w (inside the parallel part, on one thread at a time).
    SmallNetBackend<P>& worker(index w) { return *workers_[static_cast<size_t>(w)]; }
    // Chunk c's gradients, laid out as the parameters.
    T* gradients(index c) { return gradients_.data() + c * stride_; }
    // Chunk c's loss, Σ over its rows (before any division by the batch's N).
    double& loss(index c) { return losses_[static_cast<size_t>(c)]; }

private:
    const ParameterLayout& layout_;
    const std::vector<Activation>& activations_;
    bool eligible_;  // the small backend takes this net, and its gradients are small enough
    index stride_;   // n_parameters rounded up to whole cache lines
    index group_;    // rows per group: the worker's vector length
    std::vector<std::unique_ptr<SmallNetBackend<P>>> workers_;
    AlignedVector<T> gradients_;
    std::vector<double> losses_;
};

}  // namespace bpfast
