#include "model/row_chunks.h"

#include <algorithm>

#include "runtime/threads.h"

namespace bpfast {

template <typename P>
RowChunks<P>::RowChunks(const ParameterLayout& layout, const std::vector<Activation>& activations)
    : layout_(layout), activations_(activations) {
    constexpr index line = 64 / index(sizeof(T));
    stride_ = (layout.n_parameters() + line - 1) / line * line;
    workers_.push_back(std::make_unique<SmallNetBackend<P>>(layout, activations, true));
    eligible_ = workers_[0]->takes(1) && stride_ * index(sizeof(T)) <= MAX_GRADIENT_BYTES;
    group_ = std::max<index>(1, workers_[0]->lanes());
}

template <typename P>
index RowChunks<P>::count(index batch) const {
    if (!eligible_ || !workers_[0]->within_bf16_limit(batch)) return 1;
    const index by_size = (batch + SmallNetBackend<P>::MAX_BATCH - 1) / SmallNetBackend<P>::MAX_BATCH;
    if (by_size > MAX_CHUNKS) return 1;  // more chunks than the gradients may be copied for: unchunked
    // a power of two, so that 2, 4, 8 or 16 threads share the chunks evenly
    index chunks = 1;
    while (chunks * 2 <= std::min(batch / MIN_ROWS, MAX_CHUNKS)) chunks *= 2;
    return std::max(chunks, by_size);
}

template <typename P>
index RowChunks<P>::first_row(index batch, index chunks, index c) const {
    const index groups = (batch + group_ - 1) / group_;
    return std::min(batch, groups * c / chunks * group_);
}

template <typename P>
index RowChunks<P>::longest(index batch, index chunks) const {
    const index groups = (batch + group_ - 1) / group_;
    return std::min(batch, (groups + chunks - 1) / chunks * group_);
}

template <typename P>
index RowChunks<P>::tasks(index chunks) {
    return std::min<index>(get_num_threads(), chunks);
}

template <typename P>
void RowChunks<P>::prepare(index batch, index chunks) {
    // every worker that this call or a later one with the pool's count (the
    // thread chooser lowers it for some steps) may run, so that none grows later
    const index rows = longest(batch, chunks);
    const index workers = std::max(tasks(chunks), std::min<index>(pool_threads(), chunks));
    while (index(workers_.size()) < workers)
        workers_.push_back(std::make_unique<SmallNetBackend<P>>(layout_, activations_, true));
    for (index w = 0; w < workers; ++w) workers_[static_cast<size_t>(w)]->reserve_batch(rows);
    reserve(gradients_, static_cast<size_t>(chunks * stride_));
    reserve(losses_, static_cast<size_t>(chunks));
}

#define BPFAST_INSTANTIATE(P) template class RowChunks<P>;
BPFAST_FOR_EACH_PRECISION(BPFAST_INSTANTIATE)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
