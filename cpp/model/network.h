// The native network: owns the weights, their gradients and the optimizer,
// and runs a training step (forward, loss, backward, guard, update) or a
// whole epoch in one call. The per-layer products run on one of two
// backends (layer_backend.h), chosen per batch in backend_for.
//
//   layer l maps n[l] inputs to n[l+1] outputs: W_l is (n[l+1], n[l]), b_l is (n[l+1],)
//   parameters, gradients and optimizer state are flat arrays laid out by ParameterLayout
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "common.h"
#include "model/gemm_backend.h"
#include "model/optim.h"
#include "model/parameter_layout.h"
#include "model/row_chunks.h"
#include "model/small_net_backend.h"
#include "model/targets.h"
#include "precision.h"
#include "runtime/thread_chooser.h"
#include "runtime/workspace.h"

namespace bpfast {

// What a step found. When finite is false nothing was updated, and
// non_finite_layer is the first layer whose gradient holds a NaN or Inf or
// whose update would (in its parameters or optimizer state), or -1 when the
// loss itself is not finite.
struct StepStatus {
    double loss = 0.0;
    bool finite = true;
    index non_finite_layer = -1;
};

struct EpochStatus {
    // The batch-size-weighted mean (reduction mean) or sum of the batch losses;
    // for a span that does not end the epoch, the running total instead (the
    // sum of loss·rows, or of the losses), to be passed on as total_before.
    double loss = 0.0;
    bool finite = true;
    index non_finite_batch = -1;  // the batch that stopped the epoch
    index non_finite_layer = -1;  // as in StepStatus
    bool interrupted = false;     // stopped at a batch boundary because EpochInterrupt asked
};

// The batches of an epoch that one train_epoch call runs: rows [begin, end)
// of its order, begin a multiple of batch_size, so that an epoch run in
// several calls (fit's progress display) takes exactly the steps of one call.
// total_before carries the running loss total of the calls before. Only the
// call whose span reaches the last row ends the epoch.
struct EpochSpan {
    index begin = 0;
    index end = -1;  // -1: the last row
    double total_before = 0.0;
};

// A sparse X in compressed sparse row form (scipy's CSR): row i holds the
// values data[indptr[i]:indptr[i+1]] in the columns indices[indptr[i]:indptr[i+1]]
// (a column named twice adds up, as scipy does).
template <typename T>
struct CsrRows {
    const T* data = nullptr;
    const std::int64_t* indices = nullptr;
    const std::int64_t* indptr = nullptr;  // (n + 1,)
};

// The inputs of a batch: rows picked[0], picked[1], ... of X (a shuffled
// epoch's batch), or X's first rows when picked is null.
template <typename T>
struct BatchRows {
    const T* X = nullptr;
    const std::int64_t* picked = nullptr;
};

// Asked between the batches of an epoch whether to stop there (a Ctrl-C, say).
struct EpochInterrupt {
    bool (*requested)(void* context) = nullptr;
    void* context = nullptr;
    bool check() const { return requested && requested(context); }
};

// Told, during compute_gradients, that layer l's gradients (dW_l and db_l) are final:
// the backward pass reaches the layers last to first, so a process group can start
// summing a layer's gradients while the layers before it are still being computed.
struct GradientsReady {
    void (*ready)(void* context, index layer) = nullptr;
    void* context = nullptr;
    void operator()(index layer) const {
        if (ready) ready(context, layer);
    }
};

// Terms that scikit-learn's MLP adds to the loss (bpfast.sklearn sets them;
// the defaults change nothing). N is the batch size, or the sum of the
// batch's sample weights when it has some (1 for reduction sum).
struct Objective {
    double l2 = 0.0;           // α: ½α·Σ_l ‖W_l‖² / N joins the loss and α·W_l / N each dW_l (biases are not penalised)
    double value_scale = 1.0;  // the reported data loss is multiplied by this (scikit-learn's squared error is
                               // averaged over the outputs while its gradient is that of their sum)
};

// P is the precision (precision.h): the network keeps its weights, gradients,
// optimizer state and activations in T, its storage type, and its backends'
// products read Compute<P>.
template <typename P>
class Network {
public:
    using T = Storage<P>;

    // activations has one entry per layer, the output activation last.
    // std::invalid_argument for a malformed architecture.
    Network(std::vector<index> sizes, std::vector<Activation> activations, LossKind loss, Reduction reduction);

    const ParameterLayout& layout() const { return layout_; }
    const std::vector<index>& sizes() const { return layout_.sizes(); }
    index n_layers() const { return layout_.n_layers(); }
    // Whether targets may be class labels: every loss but squared error classifies.
    bool takes_labels() const { return loss_ != LossKind::squared_error && loss_ != LossKind::poisson; }
    const Objective& objective() const { return objective_; }
    void set_objective(const Objective& objective) { objective_ = objective; }
    T* parameters() { return params_.data(); }
    T* gradients() { return grads_.data(); }
    Optimizer<P>& optimizer() { return optimizer_; }
    // Whether a batch of this size runs on the small-network backend.
    bool uses_small_net(index batch) const { return small_net_.takes(batch); }
    // How many chunks of rows a batch of this size runs in (row_chunks.h); 1: unchunked.
    index row_chunks(index batch) const { return chunks_.count(batch); }
    // The thread-count chooser of the training steps (runtime/thread_chooser.h).
    const ThreadChooser& thread_chooser() const { return threads_; }
    // Held by the bindings around every call: one call at a time per network.
    std::mutex& busy() { return busy_; }

    // out (batch, n_out) = the network output for X (batch, n[0]).
    void forward(T* out, const T* X, index batch);
    // The loss of a batch; the weights and gradients are unchanged.
    double loss(const T* X, Targets<T> targets, index batch);
    // Fills gradients() for the batch and returns its loss (which may be
    // non-finite); the weights are unchanged.
    // ready, when set, is told of each layer as its gradients become final.
    double compute_gradients(const T* X, Targets<T> targets, index batch, GradientsReady ready = {});
    // compute_gradients over a sparse X of n rows (lbfgs over the whole data),
    // made dense chunk_rows rows at a time, never the whole of X: the loss and
    // gradients of X made dense, to rounding (the sums over rows are taken a
    // chunk at a time, then over the chunks; one chunk gives the same bits).
    double compute_gradients(const CsrRows<T>& X, Targets<T> targets, index n, index chunk_rows);
    // One optimizer step from grads (laid out as the parameters; gradients()
    // or, say, a sum over processes), when the loss and every gradient are
    // finite and the update keeps every parameter and state value finite; grads are scaled in place when
    // clipping. lr, when given, replaces the
    // configured base learning rate for this step.
    StepStatus apply_update(T* grads, double loss, std::optional<double> lr = std::nullopt);
    // compute_gradients then apply_update, in one call.
    StepStatus train_step(const T* X, Targets<T> targets, index batch, std::optional<double> lr = std::nullopt);
    // One epoch (or the span of it that span names) over the n rows of X in
    // the given order (or as they are), in mini-batches; stops at the first
    // batch that is not finite, or after a batch when interrupt asks (the
    // epoch is then not counted).
    EpochStatus train_epoch(const T* X, Targets<T> targets, const std::int64_t* order, index n, index batch_size,
                            std::optional<double> lr = std::nullopt, EpochInterrupt interrupt = {},
                            EpochSpan span = {});
    // The same over a sparse X of n rows: each batch is made dense in the
    // workspace (batch_size rows at most), never the whole of X.
    EpochStatus train_epoch(const CsrRows<T>& X, Targets<T> targets, const std::int64_t* order, index n,
                            index batch_size, std::optional<double> lr = std::nullopt, EpochInterrupt interrupt = {},
                            EpochSpan span = {});

private:
    LayerBackend<T>& backend_for(index batch);
    // The epoch loop; batch_inputs(start, rows, picked) gives the dense (rows, n[0]) inputs of a
    // batch (picked: the rows of X it takes, or null for rows start, start + 1, ...).
    template <typename BatchInputs>
    EpochStatus run_epoch(const BatchInputs& batch_inputs, Targets<T> targets, const std::int64_t* order, index n,
                          index batch_size, std::optional<double> lr, EpochInterrupt interrupt, EpochSpan span);
    const T* forward_pass(LayerBackend<T>& backend, const T* X, index batch, bool logits_out);
    // The forward pass and the data loss of `rows` rows of a batch whose N
    // is norm (batch_norm): returns the loss summed over the rows (Σ_i w_i·loss_i
    // with sample weights); leaves δ_{L−1} (divided by N) in the backend's
    // output gradient and db_{L−1} in grads (laid out as the parameters).
    double forward_and_loss(LayerBackend<T>& backend, const T* X, const T* Tg, const T* weights, index rows,
                            double norm, T* grads);
    // A step taken inside the backward pass: stateless SGD without an L2
    // term in the kernels' registers (weights, biases), any other step by
    // blocks of rows (step_rows, at learning rate lr; N = norm for the L2 term).
    struct FusedStep {
        Network* network = nullptr;
        bool in_registers = false;
        SgdStep weights, biases;
        double lr = 0.0;
        double norm = 1.0;
    };
    // The layers last to first; with a step, each layer's weights and
    // biases take it as soon as their gradients are done. Returns whether
    // every new value is finite (true without a step).
    bool backward_pass(LayerBackend<T>& backend, GradientsReady ready, const FusedStep* step, T* grads);
    // The batch's forward and backward passes cut into `chunks` chunks of rows
    // (row_chunks.h), on the pool: returns the data loss of the batch
    // (divided by N, times value_scale) and leaves each chunk's gradients in chunks_.
    // A chunk gathers its own rows when rows.picked is set.
    double chunked_passes(const BatchRows<T>& rows, const T* Tg, const T* weights, index batch, index chunks,
                          double norm);
    // Over the pool, each span of step_spans_: the chunks' gradients summed
    // into grads_ in chunk order (chunks ≥ 2), then then(span index).
    template <typename Then>
    void sum_chunks(index chunks, const Then& then);
    // loss_and_gradients and step_on_batch, chunked.
    double chunked_loss_and_gradients(const T* X, const T* Tg, const T* weights, index batch, index chunks,
                                      GradientsReady ready);
    StepStatus chunked_step(const BatchRows<T>& rows, const T* Tg, const T* weights, index batch, index chunks,
                            std::optional<double> lr);
    // The batch's rows as one dense (batch, n[0]) array: rows.X itself, or the picked rows gathered.
    const T* gathered(const BatchRows<T>& rows, index batch);
    // The fused step on rows [r0, r1) of layer l (and their biases): the L2 term, then the optimizer's.
    bool step_rows(index l, index r0, index r1, const FusedStep& step);
    double loss_and_gradients(const T* X, const T* dense_targets, const T* weights, index batch,
                              GradientsReady ready = {});
    // One optimizer step on a batch: the gradients then guarded_update, or,
    // for an optimizer that fuses_into_backward, the step taken during the
    // backward pass and undone unless every value is finite.
    StepStatus step_on_batch(const BatchRows<T>& rows, const T* Tg, const T* weights, index batch,
                             std::optional<double> lr);
    // step_on_batch on the thread count threads_ chooses (all allowed, or one
    // where one is faster on this host), timed for it.
    StepStatus chosen_threads_step(const BatchRows<T>& rows, const T* Tg, const T* weights, index batch,
                                   std::optional<double> lr);
    double data_loss(T* delta, const T* Y, const T* Tg, const T* weights, index batch, double* norm);
    // N of a batch: its size, or Σ_i w_i with sample weights, for reduction mean; 1 for reduction sum.
    double batch_norm(const T* weights, index batch) const;
    // The data loss of `rows` rows of a batch whose N is norm, summed over
    // them (Σ_i w_i·loss_i with sample weights), its gradient divided by N in delta.
    double data_loss_sum(T* delta, const T* Y, const T* Tg, const T* weights, index rows, double norm);
    // A sum of losses over a batch divided by its N, as data_loss_sum divided the gradient.
    static double per_norm(double sum, double norm, bool weighted);
    double penalty(T* grads, double norm);
    const T* batch_weights(Targets<T> targets, index batch, const std::int64_t* rows);
    StepStatus guarded_update(T* grads, double loss, std::optional<double> lr);
    index first_non_finite_layer(const T* grads, double* squares);
    const T* dense_targets(Targets<T> targets, index batch, const std::int64_t* rows);
    // Rows of a sparse X made dense in the workspace (room for `room` rows): rows start,
    // start + 1, ..., or the rows picked names when it is not null.
    const T* dense_rows(const CsrRows<T>& X, index start, index rows, const std::int64_t* picked, index room);
    Activation activation_of(index l, bool logits_out) const;

    ParameterLayout layout_;
    std::vector<Activation> activations_;
    LossKind loss_;
    Reduction reduction_;
    Objective objective_;
    // params_ has SmallNetBackend's padding past the parameters.
    AlignedVector<T> params_, grads_;
    Optimizer<P> optimizer_;
    GemmBackend<P> gemm_;
    SmallNetBackend<P> small_net_;
    RowChunks<P> chunks_;
    // The parameters cut into spans for the sum of the chunks' gradients and
    // the step that follows it: within one layer's weights or its biases
    // (which the optimizer may decay apart), of at most SPAN values.
    struct Span {
        index begin, end;
        bool bias;
    };
    static constexpr index SPAN = 2048;
    std::vector<Span> step_spans_;
    std::vector<double> span_penalties_;  // each span's share of the L2 term of a chunked step's loss
    std::mutex busy_;
    ThreadChooser threads_;

    // Workspace, grown to the largest batch seen.
    index largest_batch_ = 0;
    std::vector<T> batch_x_, batch_t_, batch_w_;
    std::vector<double> chunk_sums_;
    AlignedVector<T> gradient_total_;  // compute_gradients over chunks of a sparse X
};

}  // namespace bpfast
