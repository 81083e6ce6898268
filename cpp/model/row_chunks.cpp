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
}

template <typename P>
index RowChunks<P>::count(index batch) const {
    if (!eligible_) return 1;
    const index by_size = (batch + SmallNetBackend<P>::MAX_BATCH - 1) / SmallNetBackend<P>::MAX_BATCH;
    if (by_size > MAX_CHUNKS) return 1;  // more chunks than the gradients may be copied for: unchunked
    // a power of two, so that 2, 4, 8 or 16 threads share the chunks evenly
    index chunks = 1;
    while (chunks * 2 <= std::min(batch / MIN_ROWS, MAX_CHUNKS)) chunks *= 2;
    return std::max(chunks, by_size);
}

template <typename P>
index RowChunks<P>::first_row(index batch, index chunks, index c) {
    const index groups = (batch + GROUP - 1) / GROUP;
    return std::min(batch, groups * c / chunks * GROUP);
}

template <typename P>
void RowChunks<P>::prepare(index chunks, index input_values) {
    const auto threads = static_cast<size_t>(get_num_threads());
    while (workers_.size() < threads)
        workers_.push_back(std::make_unique<SmallNetBackend<P>>(layout_, activations_, true));
    if (inputs_.size() < threads) inputs_.resize(threads);
    for (size_t slot = 0; slot < threads; ++slot) reserve(inputs_[slot], static_cast<size_t>(input_values));
    reserve(gradients_, static_cast<size_t>(chunks * stride_));
    reserve(losses_, static_cast<size_t>(chunks));
}

template <typename P>
SmallNetBackend<P>& RowChunks<P>::worker() {
    return *workers_[static_cast<size_t>(thread_slot())];
}

template <typename P>
Storage<P>* RowChunks<P>::input_buffer() {
    return inputs_[static_cast<size_t>(thread_slot())].data();
}

#define BPFAST_INSTANTIATE(P) template class RowChunks<P>;
BPFAST_FOR_EACH_PRECISION(BPFAST_INSTANTIATE)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
