// The small-network kernels (kernels/small_net/small_net.h) of the active ISA,
// bound for the tests as the submodules f32.small_net and f64.small_net.
//
// Each function takes plain unpadded arrays, builds the padded buffers the
// kernel's contract asks for, calls the kernel and returns unpadded results:
//   - the batch is padded to ldt, a multiple of lanes, and every samples-major
//     buffer the kernels read as whole vectors to a width that is one too;
//   - W has lanes − 1 values of room past its end (the input gradient's reads);
//   - the padding rows of F_out (past n_out) are zero, as the backend leaves them;
//   - every other padding value of an input is `padding` (finite, by the
//     contract), so that a test can show no result depends on it;
//   - every output buffer starts as NaN, so that a value the kernel should
//     have written but did not shows in the result.
// No math here: validate, pad, call (without the GIL), unpad.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "bindings/bind_common.h"
#include "kernels/small_net/small_net.h"
#include "names.h"
#include "runtime/dispatch.h"
#include "runtime/workspace.h"

namespace py = pybind11;
namespace bpfast {
namespace {

template <typename T>
const SmallNetKernels<T>& kernels_or_throw() {
    const SmallNetKernels<T>& k = active_small_net_kernels<T>();
    if (k.lanes == 0)
        throw std::runtime_error(std::string("the active ISA '") + active_isa() +
                                 "' has no small-network kernels (lanes() is 0)");
    return k;
}

index round_up(index n, index lanes) { return (n + lanes - 1) / lanes * lanes; }

// The shape of a 2-D array with both sizes at least 1; ValueError naming it otherwise.
std::pair<index, index> matrix_shape(const py::array& a, const char* name) {
    expect_ndim(a, 2, name);
    if (a.shape(0) < 1 || a.shape(1) < 1)
        throw py::value_error(std::string(name) + " must have at least one row and one column; got shape " +
                              shape_text(a));
    return {a.shape(0), a.shape(1)};
}

template <typename T>
T not_a_number() {
    return std::numeric_limits<T>::quiet_NaN();
}

// dst (rows, ld) filled with `fill`, then src (rows_src, cols) copied into its top left.
template <typename T>
void copy_padded(T* dst, index ld, index rows, const T* src, index rows_src, index cols, T fill) {
    std::fill(dst, dst + rows * ld, fill);
    for (index i = 0; i < rows_src; ++i) std::copy(src + i * cols, src + (i + 1) * cols, dst + i * ld);
}

// out (rows, cols) = the top left of src (·, ld).
template <typename T>
Out<T> unpadded(const T* src, index ld, index rows, index cols) {
    Out<T> out({rows, cols});
    T* o = out.mutable_data();
    for (index i = 0; i < rows; ++i) std::copy(src + i * ld, src + i * ld + cols, o + i * cols);
    return out;
}

// round_bf16 asked of a kernel: only float has bfloat16 operands.
template <typename T>
void expect_float_if_rounding(bool round_bf16) {
    if (round_bf16 && !std::is_same_v<T, float>)
        throw py::value_error("round_bf16 rounds float32 activations to bfloat16; this is the float64 module");
}

template <typename T>
void bind_small_net_of(py::module_ parent) {
    py::module_ m = parent.def_submodule(
        "small_net", "The small-network kernels of the active ISA on unpadded arrays (for the tests)");

    m.def(
        "lanes", [] { return active_small_net_kernels<T>().lanes; },
        "Vector length of the active small-network kernels; 0 when the ISA has none.");

    m.def(
        "transpose",
        [](In<T> A, double padding) {
            const SmallNetKernels<T>& k = kernels_or_throw<T>();
            const auto [rows, cols] = matrix_shape(A, "A");
            const index L = k.lanes, pr = round_up(rows, L), pc = round_up(cols, L);
            AlignedVector<T> src(pr * pc), dst(pc * pr, not_a_number<T>());
            copy_padded(src.data(), pc, pr, A.data(), rows, cols, T(padding));
            {
                py::gil_scoped_release release;
                k.transpose(dst.data(), pr, src.data(), pc, pr, pc);
            }
            return unpadded(dst.data(), pr, cols, rows);
        },
        py::arg("A"), py::arg("padding") = 0.0, "Aᵀ through the kernel, on blocks padded to lanes.");

    m.def(
        "forward",
        [](In<T> X, In<T> W, In<T> b, bool relu, bool samples, double padding, bool round_bf16) {
            const SmallNetKernels<T>& k = kernels_or_throw<T>();
            expect_float_if_rounding<T>(round_bf16);
            const auto [batch, n_in] = matrix_shape(X, "X");
            const index n_out = matrix_shape(W, "W").first;
            expect_shape(W, {n_out, n_in}, "W");
            expect_shape(b, {n_out}, "b");
            const index L = k.lanes, ldt = round_up(batch, L), ld_s = round_up(n_out, L);
            // F_in (n_in, ldt) = Xᵀ, its columns past the batch `padding`
            AlignedVector<T> F_in(n_in * ldt, T(padding));
            const T* x = X.data();
            for (index m = 0; m < batch; ++m)
                for (index j = 0; j < n_in; ++j) F_in[j * ldt + m] = x[m * n_in + j];
            // F_out (ld_s, ldt): rows past n_out zero, as the backend leaves them
            AlignedVector<T> F_out(ld_s * ldt, T(0));
            std::fill(F_out.begin(), F_out.begin() + n_out * ldt, not_a_number<T>());
            AlignedVector<T> S(samples ? ldt * ld_s : 0, not_a_number<T>());
            {
                py::gil_scoped_release release;
                k.forward(F_out.data(), F_in.data(), W.data(), b.data(), ldt, n_in, n_out, relu,
                          samples ? S.data() : nullptr, ld_s, round_bf16);
            }
            Out<T> A({batch, n_out});
            T* a = A.mutable_data();
            for (index m = 0; m < batch; ++m)
                for (index j = 0; j < n_out; ++j) a[m * n_out + j] = F_out[j * ldt + m];
            py::object s = samples ? py::object(unpadded(S.data(), ld_s, batch, n_out)) : py::object(py::none());
            return py::make_tuple(A, s);
        },
        py::arg("X"), py::arg("W"), py::arg("b"), py::arg("relu"), py::arg("samples") = true,
        py::arg("padding") = 0.0, py::arg("round_bf16") = false,
        "(A, S): A (batch, n_out) = [relu](X·Wᵀ + b) read from the features-major output, and S the "
        "samples-major copy the kernel writes (None when samples is False); both rounded to bfloat16 "
        "when round_bf16 (float32 only).");

    m.def(
        "weight_gradient",
        [](In<T> delta, In<T> X, double padding) {
            const SmallNetKernels<T>& k = kernels_or_throw<T>();
            const auto [batch, n_out] = matrix_shape(delta, "delta");
            const index n_in = matrix_shape(X, "X").second;
            expect_shape(X, {batch, n_in}, "X");
            // X (batch, ld_x), its rows read as whole vectors; δ read in place (ld_delta = n_out)
            const index ld_x = round_up(n_in, k.lanes);
            AlignedVector<T> X_rows(batch * ld_x);
            copy_padded(X_rows.data(), ld_x, batch, X.data(), batch, n_in, T(padding));
            Out<T> dW({n_out, n_in});
            T* dw = dW.mutable_data();
            std::fill(dw, dw + n_out * n_in, not_a_number<T>());
            bool finite;
            {
                py::gil_scoped_release release;
                finite = k.weight_gradient(dw, delta.data(), n_out, X_rows.data(), ld_x, batch, n_in, n_out, nullptr,
                                           0.0, 0.0);
            }
            return py::make_tuple(dW, finite);
        },
        py::arg("delta"), py::arg("X"), py::arg("padding") = 0.0,
        "(dW, finite): dW (n_out, n_in) = deltaᵀ·X; finite False when dW may hold a NaN or Inf.");

    m.def(
        "input_gradient",
        [](In<T> delta, In<T> W, In<T> A_in, const std::string& activation, double padding, bool round_bf16) {
            const SmallNetKernels<T>& k = kernels_or_throw<T>();
            expect_float_if_rounding<T>(round_bf16);
            const Activation act = from_name(ACTIVATION_NAMES, activation, "activation");
            if (act == Activation::softmax)
                throw py::value_error("activation must be elementwise (identity, sigmoid, tanh or relu); got 'softmax'");
            const auto [batch, n_out] = matrix_shape(delta, "delta");
            const index n_in = matrix_shape(W, "W").second;
            expect_shape(W, {n_out, n_in}, "W");
            expect_shape(A_in, {batch, n_in}, "A_in");
            const index L = k.lanes, ldt = round_up(batch, L), ld_out = round_up(n_in, L);
            // The kernel reads δ and A_in up to the batch rounded up to its tile
            // height (at most ldt), and lanes − 1 values past the end of W.
            AlignedVector<T> delta_rows(ldt * n_out), A_rows(ldt * ld_out);
            copy_padded(delta_rows.data(), n_out, ldt, delta.data(), batch, n_out, T(padding));
            copy_padded(A_rows.data(), ld_out, ldt, A_in.data(), batch, n_in, T(padding));
            AlignedVector<T> W_room(n_out * n_in + L - 1, T(padding));
            std::copy(W.data(), W.data() + n_out * n_in, W_room.begin());
            AlignedVector<T> delta_in(ldt * ld_out, not_a_number<T>());
            Out<T> db({n_in});
            std::fill(db.mutable_data(), db.mutable_data() + n_in, not_a_number<T>());
            T* db_in = db.mutable_data();
            bool finite;
            {
                py::gil_scoped_release release;
                finite = k.input_gradient(delta_in.data(), db_in, delta_rows.data(), n_out, W_room.data(), n_in,
                                          A_rows.data(), ld_out, batch, n_in, n_out, act, round_bf16);
            }
            return py::make_tuple(unpadded(delta_in.data(), ld_out, batch, n_in), db, finite);
        },
        py::arg("delta"), py::arg("W"), py::arg("A_in"), py::arg("activation"), py::arg("padding") = 0.0,
        py::arg("round_bf16") = false,
        "(delta_in, db_in, finite): delta_in (batch, n_in) = (delta·W) ⊙ σ'(A_in), σ' from the "
        "activation's output; db_in = Σ over the batch of delta_in; finite False when db_in may hold a NaN or Inf. "
        "round_bf16 (float32 only): delta_in rounded to bfloat16, db_in the sum of the unrounded values.");

    if constexpr (std::is_same_v<T, float>) {
        m.def(
            "round_to_bfloat16",
            [](In<T> x) {
                const SmallNetKernels<T>& k = kernels_or_throw<T>();
                if (x.ndim() != 1) throw py::value_error("x must be 1-D; got shape " + shape_text(x));
                const index n = x.shape(0);
                Out<T> out({n});
                {
                    py::gil_scoped_release release;
                    k.round_to_bfloat16(out.mutable_data(), x.data(), n);
                }
                return out;
            },
            py::arg("x"),
            "x (n,) rounded to bfloat16 by the kernel (each a float32 on the bfloat16 grid): the operands of "
            "mixed precision on this path.");
    }
}

}  // namespace

// Only for a precision that computes in its storage type: the only kind these kernels run (model/small_net_backend.h).
template <typename P>
void bind_small_net(py::module_ m) {
    if constexpr (computes_in_storage<P>) bind_small_net_of<Storage<P>>(m);
}
#define BPFAST_INSTANTIATE(P) template void bind_small_net<P>(py::module_ m);
BPFAST_FOR_EACH_PRECISION(BPFAST_INSTANTIATE)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
