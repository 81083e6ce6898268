#include "layers.h"

#include <algorithm>
#include <vector>

#include "activations.h"
#include "gemm.h"

namespace bpfast {

template <typename T>
void dense_forward(T* A, const T* X, const T* W, const T* b, index batch, index n_in, index n_out,
                   Activation act) {
    // X is (batch, n_in), W is (n_out, n_in), b is (n_out,), A is (batch, n_out)
    gemm<T>(batch, n_out, n_in, as_matrix(X, n_in), as_transpose(W, n_in), A, n_out, false);
    for (index r = 0; r < batch; ++r) {
        T* row = A + r * n_out;
        for (index j = 0; j < n_out; ++j) row[j] += b[j];
        activate_inplace(row, 1, n_out, act);
    }
}

template <typename T>
void bias_gradient(T* db, const T* delta, index batch, index n_out) {
    // delta is (batch, n_out), db is (n_out,)
    std::fill(db, db + n_out, T(0));
    for (index r = 0; r < batch; ++r) {
        const T* row = delta + r * n_out;
        for (index j = 0; j < n_out; ++j) db[j] += row[j];
    }
}

template <typename T>
void dense_backward(T* dX, T* dW, T* db, const T* dA, const T* X, const T* W, const T* A,
                    index batch, index n_in, index n_out, Activation act) {
    // dA and A are (batch, n_out), X and dX are (batch, n_in), W and dW are (n_out, n_in)
    thread_local std::vector<T> delta_buffer;
    delta_buffer.resize(static_cast<size_t>(batch * n_out));
    T* delta = delta_buffer.data();
    activation_backward(delta, dA, A, batch, n_out, act);
    bias_gradient(db, delta, batch, n_out);
    gemm<T>(n_out, n_in, batch, as_transpose(delta, n_out), as_matrix(X, n_in), dW, n_in, false);
    if (dX) gemm<T>(batch, n_in, n_out, as_matrix(delta, n_out), as_matrix(W, n_in), dX, n_in, false);
}

#define BPFAST_INSTANTIATE(T)                                                                    \
    template void dense_forward<T>(T*, const T*, const T*, const T*, index, index, index,        \
                                   Activation);                                                  \
    template void dense_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, index,  \
                                    index, index, Activation);                                   \
    template void bias_gradient<T>(T*, const T*, index, index);
BPFAST_INSTANTIATE(float)
BPFAST_INSTANTIATE(double)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
