// GEMM products with a unit dimension, as plain loops; included by each
// micro-kernel unit (the anonymous namespace gives each its own copy, built
// with that unit's flags) and reached through MicroKernel::unit_dimension.
#pragma once

#include "kernels/gemm/gemm.h"

namespace bpfast {
namespace {

// Products with a dimension of 1 (a net's single output unit, its weight
// gradient, or a rank-1 input gradient) as plain loops: an MR x NR tile
// would be mostly padding. Returns false for shapes it does not take.
//   N == 1: C(i) = Σ_p A(i, p) B(p)         a dot product per row
//   M == 1: C(j) = Σ_p A(p) B(p, j)         rows of B summed, B row-major
//   K == 1: C(i, j) = A(i) B(j)             an outer product, B row-major
template <typename T>
bool unit_dimension_product(index M, index N, index K, const MatrixView<T>& A,
                                const MatrixView<T>& B, T* C, index ldc, bool accumulate) {
    constexpr int LANES = 8;
    if (N == 1) {
        for (index i = 0; i < M; ++i) {
            const T* a = A.data + i * A.row_stride;
            T partial[LANES] = {};
            index p = 0;
            if (A.col_stride == 1 && B.row_stride == 1)
                for (; p + LANES <= K; p += LANES)
                    for (int k = 0; k < LANES; ++k) partial[k] += a[p + k] * B.data[p + k];
            T sum = T(0);
            for (; p < K; ++p) sum += a[p * A.col_stride] * B.data[p * B.row_stride];
            for (int k = 0; k < LANES; ++k) sum += partial[k];
            C[i * ldc] = accumulate ? C[i * ldc] + sum : sum;
        }
        return true;
    }
    if (B.col_stride != 1 || (M != 1 && K != 1)) return false;
    for (index i = 0; i < M; ++i) {
        T* c = C + i * ldc;
        if (K == 1) {
            const T a = A.data[i * A.row_stride];
            for (index j = 0; j < N; ++j) c[j] = accumulate ? c[j] + a * B.data[j] : a * B.data[j];
            continue;
        }
        if (!accumulate)
            for (index j = 0; j < N; ++j) c[j] = T(0);
        for (index p = 0; p < K; ++p) {
            const T a = A.data[i * A.row_stride + p * A.col_stride];
            const T* b = B.data + p * B.row_stride;
            for (index j = 0; j < N; ++j) c[j] += a * b[j];
        }
    }
    return true;
}

}  // namespace
}  // namespace bpfast
