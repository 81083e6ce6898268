// General matrix multiply for the three shapes backprop needs, without
// materialising a transpose: each operand is a strided view.
//   forward          Z  = X · Wᵀ     A = X (batch, n_in),  B = Wᵀ view of W (n_out, n_in)
//   weight gradient  dW = δᵀ · X     A = δᵀ view of δ (batch, n_out), B = X
//   input gradient   dX = δ · W      A = δ,                B = W
#pragma once

#include "common.h"
#include "kernels/gemm/blocking.h"

namespace bpfast {

// Element (i, j) of the view is data[i * row_stride + j * col_stride].
template <typename T>
struct MatrixView {
    const T* data;
    index row_stride;
    index col_stride;
};

// A row-major (rows, cols) matrix.
template <typename T>
MatrixView<T> as_matrix(const T* data, index cols) { return {data, cols, 1}; }

// The transpose of a row-major (rows, cols) matrix, seen as (cols, rows).
template <typename T>
MatrixView<T> as_transpose(const T* data, index cols) { return {data, 1, cols}; }

// Applied to each finished tile of C while it is still in cache: the rows
// [row0, row0 + rows) and columns [col0, col0 + cols) of C, starting at c.
template <typename T>
struct Epilogue {
    void (*apply)(const void* context, T* c, index ldc, index row0, index col0, index rows,
                  index cols);
    const void* context;
};

// C (M, N) = A (M, K) · B (K, N), or C += A · B when accumulate is set, then
// the epilogue (if any) on every tile. C is row-major with row stride ldc.
// Runs on the thread pool when the product is big enough; the result is
// bitwise the same for any thread count.
template <typename T>
void gemm(index M, index N, index K, MatrixView<T> A, MatrixView<T> B, T* C, index ldc,
          bool accumulate, const Epilogue<T>* epilogue = nullptr);

// gemm on a given micro-kernel, one of micro_kernel_candidates<T>() (gemm
// itself runs the active one): the same bits, only the speed differs. For
// timing the candidates.
template <typename T>
void gemm_with(const MicroKernel<T>& kernel, index M, index N, index K, MatrixView<T> A, MatrixView<T> B, T* C,
               index ldc, bool accumulate, const Epilogue<T>* epilogue = nullptr);

}  // namespace bpfast
