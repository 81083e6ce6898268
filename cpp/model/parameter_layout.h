// Where each layer's parameters lie in the flat arrays that hold the weights,
// the gradients and the optimizer state: W_0, b_0, W_1, b_1, ...
//   layer l maps n[l] inputs to n[l+1] outputs: W_l is (n[l+1], n[l]), b_l is (n[l+1],)
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common.h"
#include "runtime/sizes.h"

namespace bpfast {

// One array of the layout: where it begins in the flat arrays, and its shape.
struct ParameterArray {
    index offset;
    std::vector<index> shape;  // W_l: (n_out, n_in); b_l: (n_out,)
};

class ParameterLayout {
public:
    // std::invalid_argument when there are fewer than two sizes or one is not
    // positive, or naming the layer when the parameters would exceed
    // MAX_VALUES (runtime/sizes.h).
    explicit ParameterLayout(std::vector<index> sizes) : sizes_(std::move(sizes)), offsets_{0} {
        if (sizes_.size() < 2) throw std::invalid_argument("a network needs at least two sizes");
        for (index n : sizes_)
            if (n < 1) throw std::invalid_argument("sizes must be positive; got " + std::to_string(n));
        for (size_t l = 0; l + 1 < sizes_.size(); ++l) {
            try {
                const index weights = checked_product(sizes_[l + 1], sizes_[l], "a weight matrix");
                offsets_.push_back(checked_sum(offsets_.back(), checked_sum(weights, sizes_[l + 1], "a layer"),
                                               "the parameters"));
            } catch (const std::length_error& e) {
                throw std::invalid_argument("layer " + std::to_string(l) + " (" + std::to_string(sizes_[l]) +
                                            " -> " + std::to_string(sizes_[l + 1]) + ") is too large: " + e.what());
            }
        }
    }

    const std::vector<index>& sizes() const { return sizes_; }
    index n_layers() const { return static_cast<index>(sizes_.size()) - 1; }
    index n_in(index l) const { return sizes_[l]; }
    index n_out(index l) const { return sizes_[l + 1]; }
    index weights(index l) const { return offsets_[l]; }                       // W_l
    index bias(index l) const { return offsets_[l] + n_out(l) * n_in(l); }    // b_l
    index layer_end(index l) const { return offsets_[l + 1]; }
    index n_parameters() const { return offsets_.back(); }

    // Every array in the order W_0, b_0, W_1, b_1, ...: what the bindings view and
    // what Python asks for (_core.ParameterLayout).
    std::vector<ParameterArray> arrays() const {
        std::vector<ParameterArray> parts;
        for (index l = 0; l < n_layers(); ++l) {
            parts.push_back({weights(l), {n_out(l), n_in(l)}});
            parts.push_back({bias(l), {n_out(l)}});
        }
        return parts;
    }

private:
    std::vector<index> sizes_;
    std::vector<index> offsets_;  // one entry per layer, then the total count
};

}  // namespace bpfast
