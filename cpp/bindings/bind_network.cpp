// Bindings of the native network (model/network.h) as _core.f32.Network,
// _core.f64.Network (one per precision.h row): validation and conversion only. Weights, gradients and
// optimizer state are numpy views of the native memory, kept alive by the
// network object.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "bindings/bind_common.h"
#include "kernels/elementwise/check_kernels.h"
#include "model/network.h"
#include "names.h"

namespace py = pybind11;

namespace bpfast {
namespace {

// A numpy view of the values at `data` with the given shape, owned by `owner`.
template <typename T>
py::array view(T* data, std::vector<index> shape, py::handle owner) {
    return py::array_t<T>(shape, data, owner);
}

// [W_0, b_0, W_1, b_1, ...] as views of a flat array laid out as the parameters.
template <typename T>
py::list layer_views(const ParameterLayout& layout, T* base, py::handle owner) {
    py::list views;
    for (const ParameterArray& a : layout.arrays()) views.append(view(base + a.offset, a.shape, owner));
    return views;
}

template <typename T>
index batch_of(const In<T>& X, index n_in) {
    expect_ndim(X, 2, "X");
    const index batch = X.shape(0);
    expect_shape(X, {batch, n_in}, "X");
    if (batch == 0) throw py::value_error("X is an empty batch: at least one row is needed");
    return batch;
}

// Targets from a dense (batch, n_out) array or (batch,) labels; exactly one is given.
template <typename T>
Targets<T> targets_from(const std::optional<In<T>>& dense, const std::optional<Labels>& labels, index batch,
                        index n_out) {
    Targets<T> t;
    if (dense) {
        expect_shape(*dense, {batch, n_out}, "T");
        t.dense = dense->data();
    } else if (labels) {
        expect_shape(*labels, {batch}, "T");
        if (first_label_out_of_range(labels->data(), batch, n_out) >= 0)
            throw py::value_error(label_range_message("T", n_out, labels->data(), batch));
        t.labels = labels->data();
    } else {
        throw py::value_error("T must be given");
    }
    return t;
}

// Targets with sample weights, (batch,) finite values, when weights is given.
template <typename T>
Targets<T> weighted(Targets<T> t, const std::optional<In<T>>& weights, index batch) {
    if (!weights) return t;
    expect_shape(*weights, {batch}, "sample_weight");
    if (!all_finite(weights->data(), batch)) throw py::value_error("sample_weight holds NaN or Inf");
    t.weights = weights->data();
    return t;
}

// Network.train_step's fast path (measured in BENCHMARKS.md), for input that
// needs no conversion: C-contiguous, aligned arrays of exactly T (or int64
// labels) of the right shapes, finite, labels in range, lr None or a finite
// positive float. Anything else, or a step that was not finite (and so
// changed nothing), returns None, and Network.train_step validates, converts
// and steps (or raises) as it does for every other call.
template <typename U>
const U* plain(py::handle h, py::ssize_t ndim, index width, index* rows) {
    if (!py::array_t<U, py::array::c_style>::check_(h)) return nullptr;
    const auto a = py::reinterpret_borrow<py::array>(h);
    if (a.ndim() != ndim || (width >= 0 && a.shape(ndim - 1) != width) || !aligned_to(a, alignof(U))) return nullptr;
    *rows = a.shape(0);
    return static_cast<const U*>(a.data());
}

template <typename P>
py::object plain_train_step(Network<P>& net, py::handle X, py::handle Tg, py::handle lr) {
    using T = Storage<P>;
    const index n_in = net.sizes().front(), n_out = net.sizes().back();
    index batch = 0, rows = -1;
    const T* x = plain<T>(X, 2, n_in, &batch);
    Targets<T> t{plain<T>(Tg, 2, n_out, &rows), nullptr};
    if (!t.dense && net.takes_labels()) t.labels = plain<std::int64_t>(Tg, 1, -1, &rows);
    std::optional<double> rate;
    if (!lr.is_none()) rate = PyFloat_CheckExact(lr.ptr()) ? PyFloat_AS_DOUBLE(lr.ptr()) : -1.0;
    if (!x || batch < 1 || rows != batch || (rate && !is_base_rate(*rate))) return py::none();
    StepStatus s{0.0, false};
    {
        py::gil_scoped_release release;
        // The checks _validate makes on the general path (bpfast._validate: batch, targets, _labels),
        // here without Python: the same core functions, all_finite (check_kernels.h) and
        // first_label_out_of_range (model/targets.h), which _core.all_finite and
        // _core.first_label_out_of_range bind for _validate; is_base_rate is _core.base_rate's rule.
        if (all_finite(x, batch * n_in) && (t.dense ? all_finite(t.dense, batch * n_out)
                                                    : first_label_out_of_range(t.labels, batch, n_out) < 0)) {
            std::lock_guard<std::mutex> lock(net.busy());
            s = net.train_step(x, t, batch, rate);
        }
    }
    return s.finite ? py::object(py::float_(s.loss)) : py::none();
}

// Between the batches of an epoch, at most every 50 ms: takes the GIL and
// runs Python's signal handlers. When one raises (KeyboardInterrupt for a
// Ctrl-C), the error stays set and the epoch stops at that batch boundary.
struct SignalCheck {
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    bool raised = false;

    static bool requested(void* context) {
        auto& self = *static_cast<SignalCheck*>(context);
        const auto now = std::chrono::steady_clock::now();
        if (now - self.last < std::chrono::milliseconds(50)) return false;
        self.last = now;
        py::gil_scoped_acquire gil;
        self.raised = PyErr_CheckSignals() != 0;
        return self.raised;
    }
};

// compute_gradients' ready: calls a Python callable with each layer whose gradients are
// final, taking the GIL for the call. After an exception in it the other layers are not
// told; the exception is raised when compute_gradients returns.
struct ReadyCall {
    py::function* call = nullptr;
    bool failed = false;
    std::optional<py::error_already_set> error;

    static void ready(void* context, index layer) {
        auto& self = *static_cast<ReadyCall*>(context);
        if (self.failed) return;
        py::gil_scoped_acquire gil;
        try {
            (*self.call)(layer);
        } catch (py::error_already_set& e) {
            self.failed = true;
            self.error = std::move(e);
        }
    }
};

// order as row indices of an n-row X, or null when not given.
inline const std::int64_t* order_of(const std::optional<Labels>& order, index n) {
    if (!order) return nullptr;
    expect_shape(*order, {n}, "order");
    const std::int64_t* o = order->data();
    for (index i = 0; i < n; ++i)
        if (o[i] < 0 || o[i] >= n) throw py::value_error("order must hold row indices of X");
    return o;
}

// Runs run(interrupt) (one epoch) without the GIL, under the network's lock, and
// returns (loss, finite, non_finite_batch, non_finite_layer, pending).
template <typename P, typename Run>
py::tuple epoch_call(Network<P>& net, const Run& run) {
    EpochStatus e;
    SignalCheck signals;
    {
        py::gil_scoped_release release;
        std::lock_guard<std::mutex> lock(net.busy());
        e = run(EpochInterrupt{&SignalCheck::requested, &signals});
    }
    if (signals.raised) throw py::error_already_set();  // the handler's exception, as it raised it
    // A signal that came during the last batches: its exception is returned, not raised, so
    // that the caller can record the epoch, which is complete, before raising it.
    py::object pending = py::none();
    if (PyErr_CheckSignals() != 0) pending = py::error_already_set().value();
    return py::make_tuple(e.loss, e.finite, e.non_finite_batch, e.non_finite_layer, pending);
}

// A CSR matrix of n_cols columns from scipy's three arrays, checked: indptr
// (n + 1,) from 0, non-decreasing, up to the number of values; every column
// index in range; every value finite.
// The dense rows compute_gradients_csr makes at a time, by default.
constexpr index SPARSE_CHUNK_BYTES = index(8) << 20;

template <typename T>
CsrRows<T> csr_of(const In<T>& data, const Labels& indices, const Labels& indptr, index n_cols) {
    expect_ndim(indptr, 1, "X_indptr");
    expect_ndim(data, 1, "X_data");
    const index n = indptr.shape(0) - 1, nnz = data.shape(0);
    if (n < 1) throw py::value_error("X is an empty batch: at least one row is needed");
    expect_shape(indices, {nnz}, "X_indices");
    const std::int64_t* p = indptr.data();
    if (p[0] != 0 || p[n] != nnz) throw py::value_error("X_indptr must run from 0 to the number of values");
    for (index i = 0; i < n; ++i)
        if (p[i + 1] < p[i]) throw py::value_error("X_indptr must be non-decreasing");
    const std::int64_t* c = indices.data();
    for (index k = 0; k < nnz; ++k)
        if (c[k] < 0 || c[k] >= n_cols)
            throw py::value_error("X_indices must be column indices in [0, " + std::to_string(n_cols) + ")");
    if (!all_finite(data.data(), nnz)) throw py::value_error("X holds NaN or Inf");
    return {data.data(), c, p};
}

template <typename P>
void bind_network_of(py::module_ m) {
    using T = Storage<P>;
    using N = Network<P>;
    py::class_<N>(m, "Network", "The native network: weights, gradients, optimizer and workspace.")
        .def(py::init([](std::vector<index> sizes, const std::vector<std::string>& activations,
                         const std::string& loss, const std::string& reduction) {
                 std::vector<Activation> acts;
                 for (const auto& a : activations) acts.push_back(from_name(ACTIVATION_NAMES, a, "activation"));
                 return new N(std::move(sizes), std::move(acts), from_name(LOSS_NAMES, loss, "loss"),
                              from_name(REDUCTION_NAMES, reduction, "reduction"));
             }),
             py::arg("sizes"), py::arg("activations"), py::arg("loss"), py::arg("reduction"))
        .def("parameters", [](py::object self) {
            N& net = self.cast<N&>();
            return layer_views(net.layout(), net.parameters(), self);
        }, "[W_0, b_0, W_1, b_1, ...] as views of the native weights")
        .def("gradients", [](py::object self) {
            N& net = self.cast<N&>();
            return layer_views(net.layout(), net.gradients(), self);
        }, "[dW_0, db_0, ...] as views of the native gradients of the last compute_gradients (a step may overwrite "
           "them: every optimizer's step keeps the old weights there until it knows its update is finite)")
        .def("flat_parameters", [](py::object self) {
            N& net = self.cast<N&>();
            return view(net.parameters(), {net.layout().n_parameters()}, self);
        }, "the parameters as one flat view (W_0, b_0, W_1, b_1, ...), the memory parameters() views")
        .def("flat_gradients", [](py::object self) {
            N& net = self.cast<N&>();
            return view(net.gradients(), {net.layout().n_parameters()}, self);
        }, "the gradients as one flat view laid out as flat_parameters(), the memory gradients() views: "
           "what a process group sums in place between compute_gradients and apply_update")
        .def("optimizer_state", [](py::object self) {
            N& net = self.cast<N&>();
            AlignedVector<T>& m1 = net.optimizer().first_moment();
            AlignedVector<T>& m2 = net.optimizer().second_moment();
            return py::make_tuple(view(m1.data(), {static_cast<index>(m1.size())}, self),
                                  view(m2.data(), {static_cast<index>(m2.size())}, self));
        }, "(m, v): the optimizer's flat state, laid out as the parameters; m is SGD's velocity or Adam's "
           "first moment, v Adam's second; empty when not kept")
        .def_property_readonly("sizes", [](N& net) { return net.sizes(); }, "the layer widths")
        .def("uses_small_net", &N::uses_small_net, py::arg("batch"),
             "Whether a batch of this size runs on the small-network backend (model/small_net_backend.h)")
        .def("row_chunks", &N::row_chunks, py::arg("batch"),
             "How many chunks of rows a batch of this size is cut into, each run whole on one thread "
             "(model/row_chunks.h); 1: unchunked")
        // The counters change inside a step, which runs without the GIL: read
        // and set them under the network's lock.
        .def_property_readonly("steps", [](N& net) {
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(net.busy());
            return net.optimizer().steps();
        })
        .def_property_readonly("epochs", [](N& net) {
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(net.busy());
            return net.optimizer().epochs();
        })
        .def("set_counters", [](N& net, long steps, long epochs) {
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(net.busy());
            net.optimizer().set_counters(steps, epochs);
        }, py::arg("steps"), py::arg("epochs"))
        .def("set_optimizer", [](N& net, const OptimizerConfig& config) {
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(net.busy());
            net.optimizer().configure(config);
        }, py::arg("config"), "new optimizer settings (an OptimizerConfig); clears its state and counters")
        .def_static("optimizer_state_shapes", [](const OptimizerConfig& config, index n_parameters) {
            const auto [m, v] = Optimizer<P>::state_sizes(config, n_parameters);
            return py::make_tuple(py::make_tuple(m), py::make_tuple(v));
        }, py::arg("config"), py::arg("n_parameters"),
           "the shapes of optimizer_state()'s (m, v) that these settings keep for n_parameters parameters")
        .def("forward", [](N& net, In<T> X, Out<T> out) {
            const index batch = batch_of(X, net.sizes().front());
            T* y = output(out, {batch, net.sizes().back()}, "out");
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(net.busy());
            net.forward(y, X.data(), batch);
        }, py::arg("X"), py::arg("out").noconvert())
        .def("loss", [](N& net, In<T> X, std::optional<In<T>> dense, std::optional<Labels> labels,
                        std::optional<In<T>> weights) {
            const index batch = batch_of(X, net.sizes().front());
            const Targets<T> t = weighted(targets_from<T>(dense, labels, batch, net.sizes().back()), weights, batch);
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(net.busy());
            return net.loss(X.data(), t, batch);
        }, py::arg("X"), py::arg("T"), py::arg("labels"), py::arg("sample_weight") = py::none(),
           "the loss of a batch (a weighted mean with sample_weight)")
        .def("compute_gradients", [](N& net, In<T> X, std::optional<In<T>> dense, std::optional<Labels> labels,
                                     std::optional<In<T>> weights, std::optional<py::function> ready) {
            const index batch = batch_of(X, net.sizes().front());
            const Targets<T> t = weighted(targets_from<T>(dense, labels, batch, net.sizes().back()), weights, batch);
            ReadyCall call;
            GradientsReady hook;
            if (ready) {
                call.call = &*ready;
                hook = GradientsReady{&ReadyCall::ready, &call};
            }
            double value;
            {
                py::gil_scoped_release release;
                std::lock_guard<std::mutex> lock(net.busy());
                value = net.compute_gradients(X.data(), t, batch, hook);
            }
            if (call.error) throw *call.error;
            return value;
        }, py::arg("X"), py::arg("T"), py::arg("labels"), py::arg("sample_weight") = py::none(),
           py::arg("ready") = py::none(),
           "fills gradients(); returns the loss. ready(layer), when given, is called (from the thread that "
           "called, with the GIL) as each layer's gradients become final, the last layer first; it runs while the "
           "network is busy, so it may read gradients but must not call the network's methods")
        .def("compute_gradients_csr", [](N& net, In<T> data, Labels indices, Labels indptr,
                                         std::optional<In<T>> dense, std::optional<Labels> labels,
                                         std::optional<In<T>> weights, std::optional<index> chunk_rows) {
            const index n_in = net.sizes().front();
            const CsrRows<T> X = csr_of(data, indices, indptr, n_in);
            const index n = indptr.shape(0) - 1;
            const Targets<T> t = weighted(targets_from<T>(dense, labels, n, net.sizes().back()), weights, n);
            const index chunk = chunk_rows.value_or(
                std::max<index>(256, SPARSE_CHUNK_BYTES / (n_in * static_cast<index>(sizeof(T)))));
            if (chunk < 1) throw py::value_error("chunk_rows must be positive");
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(net.busy());
            return net.compute_gradients(X, t, n, chunk);
        }, py::arg("X_data"), py::arg("X_indices"), py::arg("X_indptr"), py::arg("T"), py::arg("labels"),
           py::arg("sample_weight") = py::none(), py::arg("chunk_rows") = py::none(),
           "compute_gradients over a sparse X given as scipy's CSR arrays (the whole data, for lbfgs): "
           "chunk_rows rows made dense at a time (default: 8 MiB of dense rows, at least 256), never the whole "
           "of X; the loss and gradients of X made dense, to rounding, and to the bit when one chunk holds X")
        .def("set_objective", [](N& net, double l2, double value_scale) {
            if (!(std::isfinite(l2) && l2 >= 0.0)) throw py::value_error("l2 must be a finite number >= 0");
            if (!(std::isfinite(value_scale) && value_scale > 0.0))
                throw py::value_error("value_scale must be a finite positive number");
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(net.busy());
            net.set_objective(Objective{l2, value_scale});
        }, py::arg("l2") = 0.0, py::arg("value_scale") = 1.0,
           "scikit-learn's terms of the loss (model/network.h Objective): l2 adds ½·l2·Σ‖W‖²/N to the loss "
           "and l2·W/N to dW (N the batch size or its sum of sample weights); the reported data loss is "
           "multiplied by value_scale")
        .def_property_readonly("threads_chosen", [](N& net) {
            return py::make_tuple(net.thread_chooser().chosen(), net.thread_chooser().trials());
        }, "(the thread count the steps' last trial chose, trials finished): see _core.set_adaptive_threads")
        .def_property_readonly("objective", [](N& net) {
            return py::make_tuple(net.objective().l2, net.objective().value_scale);
        }, "(l2, value_scale)")
        .def("train_step", [](N& net, In<T> X, std::optional<In<T>> dense, std::optional<Labels> labels,
                              py::object lr) {
            const index batch = batch_of(X, net.sizes().front());
            const Targets<T> t = targets_from<T>(dense, labels, batch, net.sizes().back());
            const std::optional<double> rate = base_rate(lr);
            StepStatus s;
            {
                py::gil_scoped_release release;
                std::lock_guard<std::mutex> lock(net.busy());
                s = net.train_step(X.data(), t, batch, rate);
            }
            return py::make_tuple(s.loss, s.finite, s.non_finite_layer);
        }, py::arg("X"), py::arg("T"), py::arg("labels"), py::arg("lr") = py::none(),
           "one step, at base learning rate lr when given; returns (loss, finite, non_finite_layer) and "
           "updates nothing unless finite")
        .def("apply_update", [](N& net, double loss, py::object lr) {
            const std::optional<double> rate = base_rate(lr);
            StepStatus s;
            {
                py::gil_scoped_release release;
                std::lock_guard<std::mutex> lock(net.busy());
                s = net.apply_update(net.gradients(), loss, rate);
            }
            return py::make_tuple(s.loss, s.finite, s.non_finite_layer);
        }, py::arg("loss"), py::arg("lr") = py::none(),
           "one optimizer step from gradients() as they are now (filled by compute_gradients, perhaps changed "
           "since, say summed over processes); loss is the batch loss, which must be finite; returns "
           "(loss, finite, non_finite_layer) and updates nothing unless finite")
        .def("plain_train_step", &plain_train_step<P>, py::arg("X"), py::arg("T"), py::arg("lr"),
             "train_step for input that needs no conversion or check: the loss, or None (nothing done)")
        .def("train_epoch", [](N& net, In<T> X, std::optional<In<T>> dense, std::optional<Labels> labels,
                               std::optional<Labels> order, index batch_size, py::object lr,
                               std::optional<In<T>> weights, index begin, std::optional<index> end,
                               double total_before) {
            const index n = batch_of(X, net.sizes().front());
            const Targets<T> t = weighted(targets_from<T>(dense, labels, n, net.sizes().back()), weights, n);
            if (batch_size < 1) throw py::value_error("batch_size must be positive");
            const EpochSpan span{begin, end.value_or(n), total_before};
            if (span.begin < 0 || span.begin % batch_size != 0 || span.end <= span.begin || span.end > n ||
                (span.end < n && span.end % batch_size != 0))
                throw py::value_error("begin and end must be batch boundaries with 0 <= begin < end <= " +
                                      std::to_string(n) + "; got " + std::to_string(span.begin) + " and " +
                                      std::to_string(span.end));
            if (!std::isfinite(total_before)) throw py::value_error("total_before must be finite");
            const std::optional<double> rate = base_rate(lr);
            const std::int64_t* o = order_of(order, n);
            return epoch_call(net, [&](EpochInterrupt interrupt) {
                return net.train_epoch(X.data(), t, o, n, batch_size, rate, interrupt, span);
            });
        }, py::arg("X"), py::arg("T"), py::arg("labels"), py::arg("order"), py::arg("batch_size"),
           py::arg("lr") = py::none(), py::arg("sample_weight") = py::none(), py::arg("begin") = 0,
           py::arg("end") = py::none(), py::arg("total_before") = 0.0,
           "one epoch; returns (loss, finite, non_finite_batch, non_finite_layer, pending). begin and end "
           "(batch boundaries) run only the batches of rows [begin, end) of the order, carrying the running loss "
           "total in total_before; a span that ends before the last row returns that running total as loss and "
           "does not count the epoch. A signal whose "
           "Python handler raises (KeyboardInterrupt for Ctrl-C) stops it after the batch at hand, within "
           "about 50 ms, and that exception is raised; the weights are those after that batch. pending is "
           "such an exception when the signal came after the last check, the epoch complete, else None")
        .def("train_epoch_csr", [](N& net, In<T> data, Labels indices, Labels indptr, std::optional<In<T>> dense,
                                   std::optional<Labels> labels, std::optional<Labels> order, index batch_size,
                                   py::object lr, std::optional<In<T>> weights) {
            const CsrRows<T> X = csr_of(data, indices, indptr, net.sizes().front());
            const index n = indptr.shape(0) - 1;
            const Targets<T> t = weighted(targets_from<T>(dense, labels, n, net.sizes().back()), weights, n);
            if (batch_size < 1) throw py::value_error("batch_size must be positive");
            const std::optional<double> rate = base_rate(lr);
            const std::int64_t* o = order_of(order, n);
            return epoch_call(net, [&](EpochInterrupt interrupt) {
                return net.train_epoch(X, t, o, n, batch_size, rate, interrupt);
            });
        }, py::arg("X_data"), py::arg("X_indices"), py::arg("X_indptr"), py::arg("T"), py::arg("labels"),
           py::arg("order"), py::arg("batch_size"), py::arg("lr") = py::none(), py::arg("sample_weight") = py::none(),
           "train_epoch over a sparse X given as scipy's CSR arrays (data, indices, indptr; the columns are the "
           "network's inputs): each batch is made dense in the workspace, never the whole of X");
}

}  // namespace

template <typename P>
void bind_network(py::module_ m) {
    bind_network_of<P>(m);
}
#define BPFAST_INSTANTIATE(P) template void bind_network<P>(py::module_ m);
BPFAST_FOR_EACH_PRECISION(BPFAST_INSTANTIATE)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
