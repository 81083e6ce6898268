// The kernels of bpfast.kernels: validates shapes, takes pointers with the GIL
// held, releases the GIL around the kernel. No math here.
//
// Every kernel is bound once per precision (precision.h), in its submodule
// (f32, f64), on its storage type. Inputs are
// C-contiguous arrays of the submodule's dtype (python/bpfast/kernels.py
// converts once); outputs are caller-owned buffers that must already have the
// right dtype, layout and shape, so a result is never written into a copy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "bindings/bind_common.h"
#include "kernels/dense.h"
#include "kernels/elementwise/activation_kernels.h"
#include "kernels/elementwise/check_kernels.h"
#include "kernels/elementwise/losses.h"
#include "kernels/elementwise/optim_kernels.h"
#include "kernels/product.h"
#include "names.h"
#include "runtime/workspace.h"

namespace py = pybind11;
namespace bpfast {
namespace {

struct LayerSizes {
    index batch, n_in, n_out;
};

// A dense layer's sizes from X (batch, n_in) and W (n_out, n_in); the ValueError names the argument that does not fit.
LayerSizes layer_sizes(const py::array& X, const py::array& W) {
    expect_ndim(W, 2, "W");
    const index n_out = W.shape(0), n_in = W.shape(1);
    expect_ndim(X, 2, "X");
    const index batch = X.shape(0);
    expect_shape(X, {batch, n_in}, "X");
    return {batch, n_in, n_out};
}

template <typename P>
void bind_kernels_of(py::module_ m) {
    using T = Storage<P>;
    m.def(
        "matmul",
        [](In<T> A, In<T> B, bool trans_a, bool trans_b, Out<T> out) {
            expect_ndim(A, 2, "A");
            expect_ndim(B, 2, "B");
            const index M = trans_a ? A.shape(1) : A.shape(0), K = trans_a ? A.shape(0) : A.shape(1);
            const index KB = trans_b ? B.shape(1) : B.shape(0), N = trans_b ? B.shape(0) : B.shape(1);
            if (K != KB)
                throw py::value_error("A and B do not chain: op(A) is (" + std::to_string(M) + ", " +
                                      std::to_string(K) + ") but op(B) is (" + std::to_string(KB) +
                                      ", " + std::to_string(N) + ")");
            T* c = output(out, {M, N}, "out");
            const MatrixView<T> a = trans_a ? as_transpose(A.data(), M) : as_matrix(A.data(), K);
            const MatrixView<T> b = trans_b ? as_transpose(B.data(), K) : as_matrix(B.data(), N);
            py::gil_scoped_release release;
            product<P>(M, N, K, a, b, c, N, false);
        },
        py::arg("A"), py::arg("B"), py::arg("trans_a"), py::arg("trans_b"), py::arg("out").noconvert());

    m.def(
        "weight_gradient",
        [](In<T> delta, In<T> X, Out<T> out, bool accumulate) {
            expect_ndim(delta, 2, "delta");
            const index batch = delta.shape(0), n_out = delta.shape(1);
            expect_ndim(X, 2, "X");
            const index n_in = X.shape(1);
            expect_shape(X, {batch, n_in}, "X");
            T* dW = output(out, {n_out, n_in}, "out");
            py::gil_scoped_release release;
            weight_gradient<P>(dW, delta.data(), X.data(), batch, n_in, n_out, accumulate);
        },
        py::arg("delta"), py::arg("X"), py::arg("out").noconvert(), py::arg("accumulate"));

    m.def(
        "input_gradient",
        [](In<T> delta, In<T> W, Out<T> out) {
            expect_ndim(delta, 2, "delta");
            const index batch = delta.shape(0), n_out = delta.shape(1);
            expect_ndim(W, 2, "W");
            const index n_in = W.shape(1);
            expect_shape(W, {n_out, n_in}, "W");
            T* dX = output(out, {batch, n_in}, "out");
            py::gil_scoped_release release;
            input_gradient<P>(dX, delta.data(), W.data(), batch, n_in, n_out);
        },
        py::arg("delta"), py::arg("W"), py::arg("out").noconvert());

    m.def(
        "activation_forward",
        [](In<T> Z, const std::string& activation, Out<T> out) {
            const Activation act = from_name(ACTIVATION_NAMES, activation, "activation");
            expect_ndim(Z, 2, "Z");
            const index rows = Z.shape(0), cols = Z.shape(1);
            T* A = output(out, {rows, cols}, "out");
            const T* z = Z.data();
            py::gil_scoped_release release;
            activation_forward(A, z, rows, cols, act);
        },
        py::arg("Z"), py::arg("activation"), py::arg("out").noconvert());

    m.def(
        "activation_backward",
        [](In<T> dA, In<T> A, const std::string& activation, Out<T> out) {
            const Activation act = from_name(ACTIVATION_NAMES, activation, "activation");
            expect_ndim(A, 2, "A");
            const index rows = A.shape(0), cols = A.shape(1);
            expect_shape(dA, {rows, cols}, "dA");
            T* dZ = output(out, {rows, cols}, "out");
            py::gil_scoped_release release;
            activation_backward(dZ, static_cast<T*>(nullptr), dA.data(), A.data(), rows, cols, act);
        },
        py::arg("dA"), py::arg("A"), py::arg("activation"), py::arg("out").noconvert());

    m.def(
        "dense_forward",
        [](In<T> X, In<T> W, In<T> b, const std::string& activation, Out<T> out) {
            const Activation act = from_name(ACTIVATION_NAMES, activation, "activation");
            const auto [batch, n_in, n_out] = layer_sizes(X, W);
            expect_shape(b, {n_out}, "b");
            T* A = output(out, {batch, n_out}, "out");
            py::gil_scoped_release release;
            dense_forward<P>(A, X.data(), W.data(), b.data(), batch, n_in, n_out, act);
        },
        py::arg("X"), py::arg("W"), py::arg("b"), py::arg("activation"), py::arg("out").noconvert());

    m.def(
        "dense_backward",
        [](In<T> dA, In<T> X, In<T> W, In<T> A, const std::string& activation,
           std::optional<Out<T>> dX_out, Out<T> dW_out, Out<T> db_out) {
            const Activation act = from_name(ACTIVATION_NAMES, activation, "activation");
            const auto [batch, n_in, n_out] = layer_sizes(X, W);
            expect_shape(A, {batch, n_out}, "A");
            expect_shape(dA, {batch, n_out}, "dA");
            T* dW = output(dW_out, {n_out, n_in}, "dW");
            T* db = output(db_out, {n_out}, "db");
            T* dX = dX_out ? output(*dX_out, {batch, n_in}, "dX") : nullptr;
            thread_local std::vector<T> delta_buffer;
            T* delta = reserve(delta_buffer, static_cast<size_t>(batch * n_out));
            py::gil_scoped_release release;
            dense_backward<P>(dX, dW, db, delta, dA.data(), X.data(), W.data(), A.data(), batch, n_in, n_out,
                              act);
        },
        py::arg("dA"), py::arg("X"), py::arg("W"), py::arg("A"), py::arg("activation"), py::arg("dX").noconvert(),
        py::arg("dW").noconvert(), py::arg("db").noconvert());

    m.def(
        "loss",
        [](const std::string& name, In<T> Y, In<T> Tg, const std::string& reduction, Out<T> grad) {
            const LossFn<T> fn = loss_function<T>(from_name(LOSS_NAMES, name, "loss"));
            const Reduction r = from_name(REDUCTION_NAMES, reduction, "reduction");
            expect_ndim(Y, 2, "Y");
            const index batch = Y.shape(0), n = Y.shape(1);
            expect_shape(Tg, {batch, n}, "T");
            if (batch == 0) throw py::value_error("Y is an empty batch: at least one row is needed");
            T* g = output(grad, {batch, n}, "grad");
            py::gil_scoped_release release;
            return fn(g, Y.data(), Tg.data(), batch, n, r);
        },
        py::arg("name"), py::arg("Y"), py::arg("T"), py::arg("reduction"), py::arg("grad").noconvert());

    m.def(
        "sgd_update",
        [](Out<T> param, In<T> grad, std::optional<Out<T>> velocity, double lr, double momentum, bool nesterov,
           double weight_decay, const std::string& form) {
            const std::vector<index> shape(param.shape(), param.shape() + param.ndim());
            T* p = output(param, shape, "param");
            expect_shape(grad, shape, "grad");
            T* b = velocity ? output(*velocity, shape, "velocity") : nullptr;
            if (momentum != 0.0 && !b) throw py::value_error("velocity must be given when momentum is not 0");
            const SgdStep s{lr, momentum, nesterov, weight_decay, from_name(UPDATE_FORM_NAMES, form, "form")};
            py::gil_scoped_release release;
            sgd_update<T>(p, grad.data(), b, static_cast<index>(param.size()), s);
        },
        py::arg("param").noconvert(), py::arg("grad"), py::arg("velocity").noconvert().none(true), py::arg("lr"),
        py::arg("momentum"), py::arg("nesterov"), py::arg("weight_decay"), py::arg("form") = "pytorch");

    m.def(
        "adam_update",
        [](Out<T> param, In<T> grad, Out<T> m1, Out<T> m2, long step, double lr, double beta1, double beta2,
           double eps, double weight_decay, bool decoupled, const std::string& form) {
            const std::vector<index> shape(param.shape(), param.shape() + param.ndim());
            T* p = output(param, shape, "param");
            expect_shape(grad, shape, "grad");
            T* m = output(m1, shape, "m");
            T* v = output(m2, shape, "v");
            if (step < 1) throw py::value_error("step must be at least 1; got " + std::to_string(step));
            const AdamStep s{step, lr, beta1, beta2, eps, weight_decay, decoupled,
                             from_name(UPDATE_FORM_NAMES, form, "form")};
            py::gil_scoped_release release;
            adam_update<T>(p, grad.data(), m, v, static_cast<index>(param.size()), s);
        },
        py::arg("param").noconvert(), py::arg("grad"), py::arg("m").noconvert(), py::arg("v").noconvert(),
        py::arg("step"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("decoupled"), py::arg("form") = "pytorch");

    m.def(
        "clip_by_global_norm",
        [](const std::vector<py::array>& grads, double max_norm) {
            // Every array is scaled in place: each must already be an array of T (never a converted copy).
            std::vector<std::pair<T*, index>> arrays;
            for (size_t i = 0; i < grads.size(); ++i) {
                const std::string name = "grads[" + std::to_string(i) + "]";
                if (!Out<T>::check_(grads[i]))
                    throw py::type_error(name + " must be an array of the dtype of grads[0]");
                auto g = py::reinterpret_borrow<Out<T>>(grads[i]);
                const std::vector<index> shape(g.shape(), g.shape() + g.ndim());
                arrays.emplace_back(output(g, shape, name.c_str()), static_cast<index>(g.size()));
            }
            py::gil_scoped_release release;
            double squares = 0.0;
            for (const auto& [g, n] : arrays) squares += sum_of_squares(g, n);
            const double factor = clipping_factor(max_norm, squares);
            if (factor < 1.0)
                for (const auto& [g, n] : arrays) scale_in_place(g, n, factor);
            return std::sqrt(squares);
        },
        py::arg("grads"), py::arg("max_norm"));
}

}  // namespace

template <typename P>
void bind_kernels(py::module_ m) {
    bind_kernels_of<P>(m);
}
#define BPFAST_INSTANTIATE(P) template void bind_kernels<P>(py::module_ m);
BPFAST_FOR_EACH_PRECISION(BPFAST_INSTANTIATE)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
