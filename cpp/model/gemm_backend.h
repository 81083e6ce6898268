// The layer products of any network at any batch on the blocked GEMM
// (kernels/gemm) with the activation epilogues (see layer_backend.h).
#pragma once

#include <vector>

#include "model/layer_backend.h"
#include "model/parameter_layout.h"
#include "precision.h"

namespace bpfast {

// P is the precision (precision.h): the layers' values are kept in T, its
// storage type; the products run as P computes (kernels/product.h).
template <typename P>
class GemmBackend final : public LayerBackend<Storage<P>> {
public:
    using T = Storage<P>;

    explicit GemmBackend(const ParameterLayout& layout) : layout_(layout), outputs_(layout.n_layers()) {}

    void start_forward(const T* X, index batch) override;
    void layer_forward(index l, const T* W, const T* b, Activation act) override;
    const T* output() const override { return outputs_.back().data(); }
    T* output_gradient() override { return delta_.data(); }
    void input_gradient(index l, const T* W, T* db_below, Activation act_below) override;
    bool weight_gradient(index l, T* dW, const LayerStep<T>& step) override;

private:
    const T* input_of(index l) const { return l == 0 ? input_ : outputs_[l - 1].data(); }

    const ParameterLayout& layout_;
    const T* input_ = nullptr;
    index batch_ = 0, capacity_ = 0;  // the batch, and the largest the buffers hold
    std::vector<std::vector<T>> outputs_;  // outputs_[l] is A_l, (batch, n[l+1])
    std::vector<T> delta_, spare_;         // δ of the layer at hand and of the one below, (batch, widest)
    bool below_ready_ = false;             // spare_ holds δ of the layer below (input_gradient ran)
};

}  // namespace bpfast
