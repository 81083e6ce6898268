// The targets of a batch: dense rows, or class labels that the step one-hot
// encodes a batch at a time in its workspace; and, optionally, a weight per sample.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

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

// The label-range rule's message for the argument `name`, whose labels run from lo to hi
// (the callers format them: Python writes a float label as it writes a float).
inline std::string label_range_message(const std::string& name, index n_out, const std::string& lo,
                                       const std::string& hi) {
    return name + " labels must lie in [0, " + std::to_string(label_classes(n_out)) + "); got values from " + lo +
           " to " + hi;
}

// The same for n labels (n >= 1) as the core holds them.
inline std::string label_range_message(const std::string& name, index n_out, const std::int64_t* labels, index n) {
    const auto [lo, hi] = std::minmax_element(labels, labels + n);
    return label_range_message(name, n_out, std::to_string(*lo), std::to_string(*hi));
}

}  // namespace bpfast
