#include "kernels/dense.h"

#include "kernels/elementwise/activation_kernels.h"
#include "kernels/product.h"

namespace bpfast {

namespace {

template <typename T>
struct BiasActivation {
    const T* b;
    Activation act;  // elementwise only; softmax needs whole rows and runs after the GEMM
};

// Epilogue on a finished tile of Z: add the bias, then apply the activation.
template <typename T>
void bias_activation_tile(const void* context, T* c, index ldc, index, index col0, index rows,
                          index cols) {
    const auto& e = *static_cast<const BiasActivation<T>*>(context);
    bias_activation(c, ldc, e.b + col0, rows, cols, e.act);
}

}  // namespace

template <typename P, typename T>
void dense_forward(T* A, const T* X, const T* W, const T* b, index batch, index n_in, index n_out,
                   Activation act) {
    // X is (batch, n_in), W is (n_out, n_in), b is (n_out,), A is (batch, n_out)
    const BiasActivation<T> context{b, act == Activation::softmax ? Activation::identity : act};
    const Epilogue<T> epilogue{&bias_activation_tile<T>, &context};
    product<P>(batch, n_out, n_in, as_matrix(X, n_in), as_transpose(W, n_in), A, n_out, false, &epilogue);
    if (act == Activation::softmax) activation_forward(A, A, batch, n_out, act);
}

template <typename P, typename T>
void dense_backward(T* dX, T* dW, T* db, T* delta, const T* dA, const T* X, const T* W, const T* A,
                    index batch, index n_in, index n_out, Activation act) {
    // dA and A are (batch, n_out), X and dX are (batch, n_in), W and dW are (n_out, n_in)
    // One pass over dA: δ = dA ⊙ σ'(A) row by row, with db summed while the row is in cache.
    activation_backward(delta, db, dA, A, batch, n_out, act);
    weight_gradient<P>(dW, delta, X, batch, n_in, n_out);
    if (dX) input_gradient<P>(dX, delta, W, batch, n_in, n_out);
}

template <typename P, typename T>
void weight_gradient(T* dW, const T* delta, const T* X, index batch, index n_in, index n_out, bool accumulate) {
    product<P>(n_out, n_in, batch, as_transpose(delta, n_out), as_matrix(X, n_in), dW, n_in, accumulate);
}

template <typename P, typename T>
void input_gradient(T* dX, const T* delta, const T* W, index batch, index n_in, index n_out) {
    product<P>(batch, n_in, n_out, as_matrix(delta, n_out), as_matrix(W, n_in), dX, n_in, false);
}

#define BPFAST_INSTANTIATE(P)                                                                       \
    template void dense_forward<P>(Storage<P>*, const Storage<P>*, const Storage<P>*, const Storage<P>*, index,  \
                                   index, index, Activation);                                       \
    template void dense_backward<P>(Storage<P>*, Storage<P>*, Storage<P>*, Storage<P>*, const Storage<P>*,       \
                                    const Storage<P>*, const Storage<P>*, const Storage<P>*, index, index, index, \
                                    Activation);                                                    \
    template void weight_gradient<P>(Storage<P>*, const Storage<P>*, const Storage<P>*, index, index, index, bool); \
    template void input_gradient<P>(Storage<P>*, const Storage<P>*, const Storage<P>*, index, index, index);
BPFAST_FOR_EACH_PRECISION(BPFAST_INSTANTIATE)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
