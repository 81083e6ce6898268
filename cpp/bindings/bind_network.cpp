// Bindings of the native network (network.h): validation and conversion only.
// Weights, gradients and optimizer state are exposed as numpy views of the
// native memory, kept alive by the model object.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "bindings/bind_common.h"
#include "kernels/elementwise/checks.h"
#include "model/network.h"

namespace py = pybind11;

namespace bpfast {
namespace {

LossKind loss_kind_from(const std::string& name) {
    if (name == "squared_error") return LossKind::squared_error;
    if (name == "log_loss") return LossKind::log_loss;
    if (name == "binary_cross_entropy") return LossKind::binary_cross_entropy;
    if (name == "softmax_cross_entropy") return LossKind::softmax_cross_entropy;
    if (name == "sigmoid_cross_entropy") return LossKind::sigmoid_cross_entropy;
    throw py::value_error("loss must be one of squared_error, log_loss, binary_cross_entropy, "
                          "softmax_cross_entropy, sigmoid_cross_entropy; got '" + name + "'");
}

OptimizerKind optimizer_kind_from(const std::string& name) {
    if (name == "sgd") return OptimizerKind::sgd;
    if (name == "adam") return OptimizerKind::adam;
    if (name == "adamw") return OptimizerKind::adamw;
    throw py::value_error("optimizer must be one of sgd, adam, adamw; got '" + name + "'");
}

Schedule schedule_from(const std::string& name) {
    if (name == "constant") return Schedule::constant;
    if (name == "step") return Schedule::step;
    if (name == "inverse_scaling") return Schedule::inverse_scaling;
    throw py::value_error("schedule must be one of constant, step, inverse_scaling; got '" + name + "'");
}

using Labels = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

// A numpy view of `count` values at `data` with the given shape, owned by `owner`.
template <typename T>
py::array view(T* data, std::vector<index> shape, py::handle owner) {
    return py::array_t<T>(shape, data, owner);
}

template <typename T>
py::list parameter_views(Model<T>& model, T* base, py::handle owner) {
    py::list views;
    const auto& n = model.sizes();
    for (index l = 0; l < model.n_layers(); ++l) {
        views.append(view(base + model.weight_offset(l), {n[l + 1], n[l]}, owner));
        views.append(view(base + model.bias_offset(l), {n[l + 1]}, owner));
    }
    return views;
}

// Targets from a dense (batch, n_out) array or (batch,) labels; exactly one is given.
template <typename T>
Targets<T> targets_from(const std::optional<In<T>>& dense, const std::optional<Labels>& labels,
                        index batch, index n_out) {
    Targets<T> t;
    if (dense) {
        expect_shape(*dense, {batch, n_out}, "T");
        t.dense = dense->data();
    } else if (labels) {
        expect_shape(*labels, {batch}, "labels");
        const std::int64_t* l = labels->data();
        const std::int64_t classes = n_out == 1 ? 2 : n_out;
        for (index i = 0; i < batch; ++i)
            if (l[i] < 0 || l[i] >= classes)
                throw py::value_error("labels must lie in [0, " + std::to_string(classes) + "); got " +
                                      std::to_string(l[i]));
        t.labels = l;
    } else {
        throw py::value_error("T or labels must be given");
    }
    return t;
}

template <typename T>
index batch_of(const In<T>& X, index n_in) {
    expect_ndim(X, 2, "X");
    const index batch = X.shape(0);
    expect_shape(X, {batch, n_in}, "X");
    if (batch == 0) throw py::value_error("X is an empty batch: at least one row is needed");
    return batch;
}

// Sets a model's learning rate for one call (when rate > 0) and restores the
// base rate when the call ends, also by an exception.
template <typename T>
class LearningRateForCall {
public:
    LearningRateForCall(Model<T>& model, double rate) : model_(model), base_(model.optimizer().lr) {
        if (rate > 0.0) model.set_learning_rate(rate);
    }
    ~LearningRateForCall() { model_.set_learning_rate(base_); }
    LearningRateForCall(const LearningRateForCall&) = delete;
    LearningRateForCall& operator=(const LearningRateForCall&) = delete;

private:
    Model<T>& model_;
    double base_;
};

// train_step for the plain case, with no conversion and no Python-level checks:
// X and T already C-contiguous arrays of T with the right shapes (or int64
// labels in range), all finite, and lr None or a finite positive float.
// Anything else returns None before touching the model, and the caller's
// validating path takes over (and raises the precise error). Returns the
// loss, or (loss, False, bad_layer) when a loss or gradient was not finite.
template <typename T>
py::object try_train_step(Model<T>& model, py::handle X, py::handle T_, py::handle lr) {
    using Dense = py::array_t<T, py::array::c_style>;
    using IntLabels = py::array_t<std::int64_t, py::array::c_style>;
    const index n_in = model.sizes().front(), n_out = model.sizes().back();
    if (!Dense::check_(X)) return py::none();
    const auto x = py::reinterpret_borrow<py::array>(X);
    if (x.ndim() != 2 || x.shape(1) != n_in || x.shape(0) < 1 || !aligned_to(x, alignof(T)))
        return py::none();
    const index batch = x.shape(0);
    Targets<T> t;
    index target_count = 0;
    if (Dense::check_(T_)) {
        const auto dense = py::reinterpret_borrow<py::array>(T_);
        if (dense.ndim() != 2 || dense.shape(0) != batch || dense.shape(1) != n_out ||
            !aligned_to(dense, alignof(T)))
            return py::none();
        t.dense = static_cast<const T*>(dense.data());
        target_count = batch * n_out;
    } else if (model.takes_labels() && IntLabels::check_(T_)) {
        const auto labels = py::reinterpret_borrow<py::array>(T_);
        if (labels.ndim() != 1 || labels.shape(0) != batch || !aligned_to(labels, alignof(std::int64_t)))
            return py::none();
        t.labels = static_cast<const std::int64_t*>(labels.data());
        const std::int64_t classes = n_out == 1 ? 2 : n_out;
        for (index i = 0; i < batch; ++i)
            if (t.labels[i] < 0 || t.labels[i] >= classes) return py::none();
    } else {
        return py::none();
    }
    double rate = 0.0;
    if (!lr.is_none()) {
        if (!PyFloat_CheckExact(lr.ptr())) return py::none();
        rate = PyFloat_AS_DOUBLE(lr.ptr());
        if (!(std::isfinite(rate) && rate > 0.0)) return py::none();
    }
    const T* x_data = static_cast<const T*>(x.data());
    StepStatus s;
    {
        py::gil_scoped_release release;
        if (!all_finite(x_data, batch * n_in) || (t.dense && !all_finite(t.dense, target_count)))
            s.finite = false;
        if (s.finite) {
            std::lock_guard<std::mutex> lock(model.busy());
            const LearningRateForCall<T> rate_for_call(model, rate);
            s = model.train_step(x_data, t, batch);
        } else {
            s.bad_layer = -2;  // the inputs: nothing ran
        }
    }
    if (s.bad_layer == -2) return py::none();
    if (s.finite) return py::float_(s.loss);
    return py::make_tuple(s.loss, s.finite, s.bad_layer);
}

// A network's train_step as a plain CPython function (METH_FASTCALL) bound
// to its model: a small network's step is a few microseconds, and a Python
// method around the call plus pybind11's argument dispatch would add a tenth
// of a microsecond. Its self is a capsule holding the model, with a
// DirectStep as context: strong references to the Python model object (which
// owns the model) and to a weakref.WeakMethod of the network's validating
// train_step (weak, so that the function, kept on the network, makes no cycle).
//
// Called as train_step(X, T), (X, T, lr) or (X, T, lr=...): the plain case
// runs try_train_step. Anything else (other arguments, input to convert or
// refuse, a step that was not finite and so changed nothing) is passed on, as
// called, to the validating train_step, which converts, steps or raises.
struct DirectStep {
    PyObject* model;
    PyObject* validating;
};

template <typename T>
PyObject* direct_train_step(PyObject* capsule, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    PyObject* lr = nullptr;
    if (!kwnames && (nargs == 2 || nargs == 3))
        lr = nargs == 3 ? args[2] : Py_None;
    else if (kwnames && nargs == 2 && PyTuple_GET_SIZE(kwnames) == 1 &&
             PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "lr") == 0)
        lr = args[2];
    if (lr) {
        auto* model = static_cast<Model<T>*>(PyCapsule_GetPointer(capsule, nullptr));
        if (!model) return nullptr;
        try {
            py::object result = try_train_step<T>(*model, args[0], args[1], lr);
            if (PyFloat_CheckExact(result.ptr())) return result.release().ptr();
        } catch (py::error_already_set& e) {
            e.restore();
            return nullptr;
        } catch (const std::exception& e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
            return nullptr;
        }
    }
    const auto* context = static_cast<const DirectStep*>(PyCapsule_GetContext(capsule));
    PyObject* validating = PyObject_CallNoArgs(context->validating);  // the bound method, or None
    if (!validating) return nullptr;
    if (validating == Py_None) {
        Py_DECREF(validating);
        PyErr_SetString(PyExc_RuntimeError, "train_step: its network no longer exists");
        return nullptr;
    }
    PyObject* result = PyObject_Vectorcall(validating, args, static_cast<size_t>(nargs), kwnames);
    Py_DECREF(validating);
    return result;
}

template <typename T>
py::object make_direct_train_step(py::object model_object, py::object validating) {
    static PyMethodDef definition = {
        "train_step",
        reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&direct_train_step<T>)),
        METH_FASTCALL | METH_KEYWORDS,
        "train_step(X, T, lr=None)\n--\n\n"
        "One optimizer step on the batch (X, T); returns that batch's loss (see Network.train_step)."};
    Model<T>& model = model_object.cast<Model<T>&>();
    auto release_context = [](PyObject* self) {
        auto* context = static_cast<DirectStep*>(PyCapsule_GetContext(self));
        if (!context) return;
        Py_XDECREF(context->model);
        Py_XDECREF(context->validating);
        delete context;
    };
    const auto capsule = py::reinterpret_steal<py::object>(PyCapsule_New(&model, nullptr, release_context));
    if (!capsule) throw py::error_already_set();
    auto* context = new DirectStep{model_object.inc_ref().ptr(), validating.inc_ref().ptr()};
    if (PyCapsule_SetContext(capsule.ptr(), context) != 0) {
        Py_DECREF(context->model);
        Py_DECREF(context->validating);
        delete context;
        throw py::error_already_set();
    }
    PyObject* function = PyCFunction_NewEx(&definition, capsule.ptr(), nullptr);
    if (!function) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(function);
}

template <typename T>
void bind_model(py::module_ m) {
    using M = Model<T>;
    py::class_<M>(m, "Model", "The native network: weights, gradients, optimizer state and workspace.")
        .def(py::init([](std::vector<index> sizes, const std::vector<std::string>& activations,
                         const std::string& loss, const std::string& reduction) {
                 std::vector<Activation> acts;
                 for (const auto& a : activations) acts.push_back(activation_from(a));
                 for (index n : sizes)
                     if (n < 1) throw py::value_error("sizes must be positive; got " + std::to_string(n));
                 if (sizes.size() < 2 || acts.size() != sizes.size() - 1)
                     throw py::value_error("need at least two sizes and one activation per layer");
                 return new M(std::move(sizes), std::move(acts), loss_kind_from(loss),
                              reduction_from(reduction));
             }),
             py::arg("sizes"), py::arg("activations"), py::arg("loss"), py::arg("reduction"))
        .def("parameters", [](py::object self) {
            M& model = self.cast<M&>();
            return parameter_views(model, model.parameters(), self);
        }, "[W_0, b_0, W_1, b_1, ...] as views of the native weights")
        .def("gradients", [](py::object self) {
            M& model = self.cast<M&>();
            return parameter_views(model, model.gradients(), self);
        }, "[dW_0, db_0, ...] as views of the native gradients of the last compute_gradients")
        .def("state", [](py::object self, int which) {
            M& model = self.cast<M&>();
            AlignedVector<T>& s = model.state(which);
            return view(s.data(), {static_cast<index>(s.size())}, self);
        }, py::arg("which"), "flat optimizer state: 0 is momentum or Adam's m, 1 is Adam's v")
        .def("takes_small_path", &M::takes_small_path, py::arg("batch"),
             "Whether a batch of this size trains on the small-network path (small_net.h)")
        // The counters change inside a step, which runs without the GIL: read
        // and set them under the model's lock.
        .def_property_readonly("steps", [](M& model) {
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(model.busy());
            return model.steps();
        })
        .def_property_readonly("epochs", [](M& model) {
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(model.busy());
            return model.epochs();
        })
        .def("set_counters", [](M& model, long steps, long epochs) {
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(model.busy());
            model.set_counters(steps, epochs);
        }, py::arg("steps"), py::arg("epochs"))
        .def("set_optimizer",
             [](M& model, const std::string& kind, double lr, double momentum, bool nesterov,
                double beta1, double beta2, double eps, double weight_decay, bool decay_bias,
                double clip_norm, const std::string& schedule, index step_size, double gamma,
                double power_t) {
                 OptimizerConfig c;
                 c.kind = optimizer_kind_from(kind);
                 c.lr = lr;
                 c.momentum = momentum;
                 c.nesterov = nesterov;
                 c.beta1 = beta1;
                 c.beta2 = beta2;
                 c.eps = eps;
                 c.weight_decay = weight_decay;
                 c.decay_bias = decay_bias;
                 c.clip_norm = clip_norm;
                 c.schedule = schedule_from(schedule);
                 c.step_size = step_size < 1 ? 1 : step_size;
                 c.gamma = gamma;
                 c.power_t = power_t;
                 std::lock_guard<std::mutex> lock(model.busy());
                 model.set_optimizer(c);
             },
             py::arg("kind"), py::arg("lr"), py::arg("momentum"), py::arg("nesterov"), py::arg("beta1"),
             py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("decay_bias"),
             py::arg("clip_norm"), py::arg("schedule"), py::arg("step_size"), py::arg("gamma"),
             py::arg("power_t"))
        .def("set_learning_rate", [](M& model, double lr) {
            std::lock_guard<std::mutex> lock(model.busy());
            model.set_learning_rate(lr);
        }, py::arg("lr"), "change the base learning rate and keep the optimizer state")
        .def("forward", [](M& model, In<T> X, Out<T> out) {
            const index batch = batch_of(X, model.sizes().front());
            T* y = output(out, {batch, model.sizes().back()}, "out");
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(model.busy());
            model.forward(y, X.data(), batch);
        }, py::arg("X"), py::arg("out").noconvert())
        .def("loss", [](M& model, In<T> X, std::optional<In<T>> dense, std::optional<Labels> labels) {
            const index batch = batch_of(X, model.sizes().front());
            const Targets<T> t = targets_from<T>(dense, labels, batch, model.sizes().back());
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(model.busy());
            return model.loss(X.data(), t, batch);
        }, py::arg("X"), py::arg("T"), py::arg("labels"), "the loss of a batch")
        .def("compute_gradients", [](M& model, In<T> X, std::optional<In<T>> dense,
                                     std::optional<Labels> labels) {
            const index batch = batch_of(X, model.sizes().front());
            const Targets<T> t = targets_from<T>(dense, labels, batch, model.sizes().back());
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(model.busy());
            return model.compute_gradients(X.data(), t, batch);
        }, py::arg("X"), py::arg("T"), py::arg("labels"))
        .def("train_step", [](M& model, In<T> X, std::optional<In<T>> dense,
                              std::optional<Labels> labels, std::optional<double> lr) {
            const index batch = batch_of(X, model.sizes().front());
            const Targets<T> t = targets_from<T>(dense, labels, batch, model.sizes().back());
            if (lr && !(std::isfinite(*lr) && *lr > 0.0))
                throw py::value_error("lr must be a finite positive number");
            StepStatus s;
            {
                py::gil_scoped_release release;
                std::lock_guard<std::mutex> lock(model.busy());
                const LearningRateForCall<T> rate_for_call(model, lr ? *lr : 0.0);
                s = model.train_step(X.data(), t, batch);
            }
            return py::make_tuple(s.loss, s.finite, s.bad_layer);
        }, py::arg("X"), py::arg("T"), py::arg("labels"), py::arg("lr") = py::none(),
           "one step (at base learning rate lr for this step only, when given); returns "
           "(loss, finite, bad_layer) and updates nothing unless finite")
        .def("try_train_step", &try_train_step<T>, py::arg("X"), py::arg("T"), py::arg("lr"),
             "train_step on inputs that need no conversion; None (and nothing done) otherwise")
        .def("direct_train_step", &make_direct_train_step<T>, py::arg("validating"),
             "A network's train_step as a plain function bound to this model; validating is a "
             "weakref.WeakMethod of the network's validating train_step, which takes every call the "
             "plain case does not")
        .def("train_epoch", [](M& model, In<T> X, std::optional<In<T>> dense,
                               std::optional<Labels> labels, std::optional<Labels> order,
                               index batch_size) {
            const index n = batch_of(X, model.sizes().front());
            const Targets<T> t = targets_from<T>(dense, labels, n, model.sizes().back());
            if (batch_size < 1) throw py::value_error("batch_size must be positive");
            const std::int64_t* o = nullptr;
            if (order) {
                expect_shape(*order, {n}, "order");
                o = order->data();
                for (index i = 0; i < n; ++i)
                    if (o[i] < 0 || o[i] >= n) throw py::value_error("order must hold row indices of X");
            }
            EpochStatus e;
            {
                py::gil_scoped_release release;
                std::lock_guard<std::mutex> lock(model.busy());
                e = model.train_epoch(X.data(), t, o, n, batch_size);
            }
            return py::make_tuple(e.loss, e.finite, e.bad_batch, e.bad_layer);
        }, py::arg("X"), py::arg("T"), py::arg("labels"), py::arg("order"), py::arg("batch_size"),
           "one epoch; returns (loss, finite, bad_batch, bad_layer)");
}

}  // namespace

void bind_network(py::module_ f32, py::module_ f64) {
    bind_model<float>(f32);
    bind_model<double>(f64);
}

}  // namespace bpfast
