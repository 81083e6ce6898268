// The per-layer products of a training step, behind one interface with two
// implementations: GemmBackend (blocked GEMM and elementwise epilogues, any
// size) and SmallNetBackend (in-register kernels for weight matrices that
// stay in cache, at small batches). Network runs the step around them
// (forward, loss, backward, guard, update) once for both and picks the
// backend for each batch in Network::backend_for.
//
//   A_l is the output of layer l (batch, n[l+1]); A_{-1} is X (batch, n[0])
//   δ_l = dL/dZ_l (batch, n[l+1]), the gradient at layer l's pre-activation
#pragma once

#include "common.h"
#include "kernels/elementwise/optim_kernels.h"

namespace bpfast {

// A stateless SGD step taken by a layer's weights W as soon as their
// gradient dW is done, while it is still in the caches of the threads that
// wrote it: W ← W − lr·(dW + λW), and dW ← the old W (optim_kernels.h's
// sgd_keeping_old), from which Network undoes the step if some value of it
// is not finite.
// The layer's biases b take their step (bias_step) in the same call, db being
// final by then. In Network's layout b follows W, and db follows dW.
template <typename T>
struct FusedSgd {
    T* W;
    SgdStep step;
    T* b;
    T* db;
    SgdStep bias_step;
};

// The step a layer takes inside the backward pass (Network's fused step), as
// soon as its gradients are final: stateless SGD in the kernels' registers
// (sgd), or any other step on rows [r0, r1) of layer l's weights and biases
// (rows, which runs on the calling thread and returns whether every new
// value is finite). Neither: no step.
template <typename T>
struct LayerStep {
    const FusedSgd<T>* sgd = nullptr;
    bool (*rows)(void* context, index l, index r0, index r1) = nullptr;
    void* context = nullptr;
    bool any() const { return sgd || rows; }
};

// T is the storage type of the network's precision (precision.h): every
// array that crosses this interface is kept in it.
template <typename T>
class LayerBackend {
public:
    virtual ~LayerBackend() = default;

    // Takes X (batch, n[0]) as the input of the next forward pass; X must stay
    // valid until the backward pass ends. Sizes the buffers for the batch.
    virtual void start_forward(const T* X, index batch) = 0;
    // A_l = act(A_{l-1} · W_lᵀ + b_l), layers in order 0, 1, ..., L−1.
    virtual void layer_forward(index l, const T* W, const T* b, Activation act) = 0;
    // A_{L−1}, the network output (batch, n_out), row-major.
    virtual const T* output() const = 0;
    // Where the loss writes dL/dY (batch, n_out), row-major; the step turns it
    // into δ_{L−1} in place before the backward pass.
    virtual T* output_gradient() = 0;

    // The backward pass, from δ_{L−1} in output_gradient(), layers in order
    // L−1, ..., 0, each layer's input gradient (read from the W it had in the
    // forward pass) before its weight gradient, which ends the layer.
    // δ_{l−1} = (δ_l · W_l) ⊙ σ'(A_{l−1}) with act_below the activation of
    // layer l−1, and db_{l−1} = Σ_rows δ_{l−1}; l ≥ 1.
    virtual void input_gradient(index l, const T* W, T* db_below, Activation act_below) = 0;
    // dW_l (n[l+1], n[l]) = δ_lᵀ · A_{l−1}. With a step, the layer's weights
    // and biases then take it at once, each block of rows on the thread that
    // computed it (LayerStep); returns whether every new value is finite
    // (true without a step).
    virtual bool weight_gradient(index l, T* dW, const LayerStep<T>& step) = 0;
};

}  // namespace bpfast
