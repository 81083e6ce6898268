// pybind11 module bpfast._core: validates shapes, takes pointers with the GIL
// held, releases the GIL around the kernel. No math here.
//
// Every kernel is bound twice, in the submodules f32 and f64. Inputs are
// C-contiguous arrays of the submodule's dtype (python/bpfast/kernels.py
// converts once); outputs are caller-owned buffers that must already have the
// right dtype, layout and shape, so a result is never written into a copy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "kernels/elementwise/activations.h"
#include "bindings/bind_common.h"
#include "kernels/elementwise/checks.h"
#include "kernels/gemm/gemm.h"
#include "kernels/dense.h"
#include "kernels/elementwise/losses.h"
#include "model/optim.h"
#include "runtime/threads.h"
#include "kernels/gemm/ukernel.h"
#include "runtime/workspace.h"

namespace py = pybind11;
namespace bpfast {
namespace {

template <typename T>
using LossFn = double (*)(T*, const T*, const T*, index, index, Reduction);

template <typename T>
LossFn<T> loss_from(const std::string& name) {
    if (name == "squared_error") return &squared_error<T>;
    if (name == "log_loss") return &log_loss<T>;
    if (name == "binary_cross_entropy") return &binary_cross_entropy<T>;
    if (name == "softmax_cross_entropy") return &softmax_cross_entropy<T>;
    if (name == "sigmoid_cross_entropy") return &sigmoid_cross_entropy<T>;
    throw py::value_error(
        "loss must be one of squared_error, log_loss, binary_cross_entropy, softmax_cross_entropy, "
        "sigmoid_cross_entropy; got '" + name + "'");
}

template <typename T>
void bind_kernels(py::module_ m) {
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
            gemm<T>(M, N, K, a, b, c, N, false);
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
            gemm<T>(n_out, n_in, batch, as_transpose(delta.data(), n_out), as_matrix(X.data(), n_in), dW,
                    n_in, accumulate);
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
            gemm<T>(batch, n_in, n_out, as_matrix(delta.data(), n_out), as_matrix(W.data(), n_in), dX,
                    n_in, false);
        },
        py::arg("delta"), py::arg("W"), py::arg("out").noconvert());

    m.def(
        "activation_forward",
        [](In<T> Z, const std::string& activation, Out<T> out) {
            const Activation act = activation_from(activation);
            expect_ndim(Z, 2, "Z");
            const index rows = Z.shape(0), cols = Z.shape(1);
            T* A = output(out, {rows, cols}, "out");
            const T* z = Z.data();
            py::gil_scoped_release release;
            activate(z, A, rows, cols, act);
        },
        py::arg("Z"), py::arg("activation"), py::arg("out").noconvert());

    m.def(
        "activation_backward",
        [](In<T> dA, In<T> A, const std::string& activation, Out<T> out) {
            const Activation act = activation_from(activation);
            expect_ndim(A, 2, "A");
            const index rows = A.shape(0), cols = A.shape(1);
            expect_shape(dA, {rows, cols}, "dA");
            T* dZ = output(out, {rows, cols}, "out");
            py::gil_scoped_release release;
            activation_backward(dZ, dA.data(), A.data(), rows, cols, act);
        },
        py::arg("dA"), py::arg("A"), py::arg("activation"), py::arg("out").noconvert());

    m.def(
        "dense_forward",
        [](In<T> X, In<T> W, In<T> b, const std::string& activation, Out<T> out) {
            const Activation act = activation_from(activation);
            expect_ndim(W, 2, "W");
            const index n_out = W.shape(0), n_in = W.shape(1);
            expect_ndim(X, 2, "X");
            const index batch = X.shape(0);
            expect_shape(X, {batch, n_in}, "X");
            expect_shape(b, {n_out}, "b");
            T* A = output(out, {batch, n_out}, "out");
            py::gil_scoped_release release;
            dense_forward<T>(A, X.data(), W.data(), b.data(), batch, n_in, n_out, act);
        },
        py::arg("X"), py::arg("W"), py::arg("b"), py::arg("activation"), py::arg("out").noconvert());

    m.def(
        "dense_backward",
        [](In<T> dA, In<T> X, In<T> W, In<T> A, const std::string& activation,
           std::optional<Out<T>> dX_out, Out<T> dW_out, Out<T> db_out) {
            const Activation act = activation_from(activation);
            expect_ndim(W, 2, "W");
            const index n_out = W.shape(0), n_in = W.shape(1);
            expect_ndim(X, 2, "X");
            const index batch = X.shape(0);
            expect_shape(X, {batch, n_in}, "X");
            expect_shape(A, {batch, n_out}, "A");
            expect_shape(dA, {batch, n_out}, "dA");
            T* dW = output(dW_out, {n_out, n_in}, "dW");
            T* db = output(db_out, {n_out}, "db");
            T* dX = dX_out ? output(*dX_out, {batch, n_in}, "dX") : nullptr;
            thread_local std::vector<T> delta_buffer;
            T* delta = reserve(delta_buffer, static_cast<size_t>(batch * n_out));
            py::gil_scoped_release release;
            dense_backward<T>(dX, dW, db, delta, dA.data(), X.data(), W.data(), A.data(), batch, n_in, n_out,
                              act);
        },
        py::arg("dA"), py::arg("X"), py::arg("W"), py::arg("A"), py::arg("activation"), py::arg("dX").noconvert(),
        py::arg("dW").noconvert(), py::arg("db").noconvert());

    m.def(
        "loss",
        [](const std::string& name, In<T> Y, In<T> Tg, const std::string& reduction, Out<T> grad) {
            const LossFn<T> fn = loss_from<T>(name);
            const Reduction r = reduction_from(reduction);
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
        [](Out<T> param, In<T> grad, double lr) {
            const std::vector<index> shape(param.shape(), param.shape() + param.ndim());
            T* p = output(param, shape, "param");
            expect_shape(grad, shape, "grad");
            py::gil_scoped_release release;
            sgd_update<T>(p, grad.data(), static_cast<index>(param.size()), static_cast<T>(lr));
        },
        py::arg("param").noconvert(), py::arg("grad"), py::arg("lr"));
}

}  // namespace
}  // namespace bpfast

PYBIND11_MODULE(_core, m) {
    m.doc() = "bpfast's compiled kernels; use them through bpfast.kernels";
    // Choose the micro-kernel now, so that a bad BPFAST_ISA fails at import.
    m.attr("isa") = std::string(bpfast::active_isa());
    m.def("set_num_threads", [](int n) {
        if (n < 1) throw py::value_error("n must be a positive number of threads; got " + std::to_string(n));
        bpfast::set_num_threads(n);
    }, py::arg("n"), "Use n threads (the caller included) in the kernels.");
    m.def("get_num_threads", &bpfast::get_num_threads, "Threads the kernels use.");
    m.def("threads_started", &bpfast::threads_started,
          "How many OS threads the pool has started since import; it does not grow per call.");
    py::module_ f32 = m.def_submodule("f32", "float32 kernels and model");
    py::module_ f64 = m.def_submodule("f64", "float64 kernels and model");
    bpfast::bind_kernels<float>(f32);
    bpfast::bind_kernels<double>(f64);
    bpfast::bind_network(f32, f64);
    m.def("all_finite", [](py::array a) -> py::object {
        // Native check for C-contiguous float32/float64 arrays; None means "not handled".
        if (!(a.flags() & py::array::c_style) || !bpfast::aligned_to(a, a.itemsize())) return py::none();
        const auto n = static_cast<bpfast::index>(a.size());
        if (a.dtype().is(py::dtype::of<float>()))
            return py::bool_(bpfast::all_finite(static_cast<const float*>(a.data()), n));
        if (a.dtype().is(py::dtype::of<double>()))
            return py::bool_(bpfast::all_finite(static_cast<const double*>(a.data()), n));
        return py::none();
    }, py::arg("array"), "Whether a C-contiguous float array holds no NaN or Inf; None for other arrays.");
    m.def("buffer_growths", &bpfast::buffer_growths,
          "How many times a native work buffer has grown since import (steady state: never).");
}
