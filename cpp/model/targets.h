// The targets of a batch: dense rows, or class labels that the step one-hot
// encodes a batch at a time in its workspace; and, optionally, a weight per sample.
#pragma once

#include <cstdint>

#include "common.h"

namespace bpfast {

template <typename T>
struct Targets {
    const T* dense = nullptr;                // (batch, n_out)
    const std::int64_t* labels = nullptr;    // (batch,): classes in [0, n_out), or 0/1 for one output unit
    const T* weights = nullptr;              // (batch,) sample weights, or null: every sample weighs 1

    // The targets from sample `start` on.
    Targets from_row(index start, index n_out) const {
        return {dense ? dense + start * n_out : nullptr, labels ? labels + start : nullptr,
                weights ? weights + start : nullptr};
    }
};

// How many classes labels may name for an output layer of n_out units: n_out,
// or 2 (0 and 1) for a single unit.
inline std::int64_t label_classes(index n_out) { return n_out == 1 ? 2 : n_out; }

// The first of n labels outside [0, label_classes(n_out)), or -1 when all lie in it.
inline index first_label_out_of_range(const std::int64_t* labels, index n, index n_out) {
    const std::int64_t classes = label_classes(n_out);
    for (index i = 0; i < n; ++i)
        if (labels[i] < 0 || labels[i] >= classes) return i;
    return -1;
}

}  // namespace bpfast
