// The native network: owns the weights, gradients, optimizer state and an
// activation workspace sized for the largest batch seen, and runs a whole
// training step (forward, loss, backward, update) or epoch in one call.
//
//   layer l maps n[l] inputs to n[l+1] outputs: W_l is (n[l+1], n[l]), b_l is (n[l+1],)
//   parameters are stored flat: W_0, b_0, W_1, b_1, ...; gradients and
//   optimizer state use the same layout.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "common.h"
#include "model/optim.h"
#include "model/small_net_backend.h"
#include "runtime/workspace.h"

namespace bpfast {

enum class LossKind { squared_error, log_loss, binary_cross_entropy, softmax_cross_entropy,
                      sigmoid_cross_entropy };

// Targets of a batch: dense rows (batch, n_out), or class labels (batch,)
// that are one-hot encoded (or taken as 0/1 when the output has one unit).
template <typename T>
struct Targets {
    const T* dense = nullptr;
    const std::int64_t* labels = nullptr;

    // The targets from sample `start` on.
    Targets from_row(index start, index n_out) const {
        return {dense ? dense + start * n_out : nullptr, labels ? labels + start : nullptr};
    }
};

// What a step found: ok, or where the first non-finite value appeared.
struct StepStatus {
    double loss = 0.0;
    bool finite = true;
    int bad_layer = -1;  // first layer with a non-finite gradient, -1 when only the loss is
};

struct EpochStatus {
    double loss = 0.0;      // batch-size-weighted mean (reduction mean) or sum of batch losses
    bool finite = true;
    index bad_batch = -1;   // the batch that stopped the epoch
    int bad_layer = -1;
};

template <typename T>
class Model {
public:
    // activations has one entry per layer, the output activation last.
    Model(std::vector<index> sizes, std::vector<Activation> activations, LossKind loss,
          Reduction reduction);

    index n_layers() const { return static_cast<index>(activations_.size()); }
    const std::vector<index>& sizes() const { return sizes_; }
    // Whether targets may be class labels: every loss but squared error classifies.
    bool takes_labels() const { return loss_ != LossKind::squared_error; }
    index weight_offset(index l) const { return offsets_[l]; }
    index bias_offset(index l) const { return offsets_[l] + sizes_[l + 1] * sizes_[l]; }
    T* parameters() { return params_.data(); }
    T* gradients() { return grads_.data(); }
    index n_parameters() const { return n_parameters_; }
    AlignedVector<T>& state(int which) { return which == 0 ? state_m_ : state_v_; }
    long steps() const { return steps_; }
    long epochs() const { return epochs_; }
    void set_counters(long steps, long epochs) { steps_ = steps; epochs_ = epochs; }
    // Whether a batch of this size runs on the small-network path.
    bool takes_small_path(index batch) const { return small_net_.takes(batch); }
    // Held by the bindings around every call: one call at a time per model.
    std::mutex& busy() { return busy_; }

    // Sets the optimizer and clears its state and its step and epoch counters.
    void set_optimizer(const OptimizerConfig& config);
    const OptimizerConfig& optimizer() const { return optimizer_; }
    // Changes the base learning rate and keeps the optimizer state.
    void set_learning_rate(double lr) { optimizer_.lr = lr; }

    // out (batch, n_out) = the network output for X (batch, n[0]).
    void forward(T* out, const T* X, index batch);
    // The loss of a batch; the weights and gradients are unchanged.
    double loss(const T* X, Targets<T> targets, index batch);
    // Fills the gradients; returns the loss. The weights are unchanged.
    double compute_gradients(const T* X, Targets<T> targets, index batch);
    // One optimizer step; nothing is updated when the loss or a gradient is not finite.
    StepStatus train_step(const T* X, Targets<T> targets, index batch);
    // One epoch over the n rows of X in the given order, in mini-batches.
    EpochStatus train_epoch(const T* X, Targets<T> targets, const std::int64_t* order, index n,
                            index batch_size);

private:
    void ensure_batch(index batch);
    index chunk_rows(index batch) const;
    const T* forward_pass(const T* X, index batch, bool logits_out);
    double loss_and_backward(const T* X, const T* dense_targets, index batch);
    const T* dense_targets(Targets<T> targets, index batch, const std::int64_t* rows);
    StepStatus step(const T* X, const T* Tg, index batch);
    void check_and_update(StepStatus& status);
    int first_non_finite_layer(double* squares);

    std::vector<index> sizes_;
    std::vector<Activation> activations_;
    LossKind loss_;
    Reduction reduction_;
    std::vector<index> offsets_;  // parameter_offsets(sizes_)
    index n_parameters_ = 0;
    // params_ has SmallNetStep's padding past the n_parameters_ values.
    AlignedVector<T> params_, grads_, state_m_, state_v_;
    SmallNetStep<T> small_net_;
    bool gradients_known_finite_ = false;  // set by the last backward pass
    OptimizerConfig optimizer_;
    long steps_ = 0, epochs_ = 0;
    std::mutex busy_;

    // Workspace, sized for the largest batch seen.
    index capacity_ = 0;
    std::vector<std::vector<T>> outputs_;  // outputs_[l] is (batch, n[l+1])
    std::vector<T> grad_a_, grad_b_, delta_, batch_x_, batch_t_;
    std::vector<double> chunk_sums_;
    std::vector<unsigned char> chunk_ok_;
};

}  // namespace bpfast
