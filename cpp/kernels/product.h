// The GEMM that runs a precision's products: gemm in its storage type, or,
// for bfloat16 compute, gemm_bf16 (which rounds the float32 operands as it
// packs them and sums in float32).
#pragma once

#include <type_traits>

#include "kernels/bf16/gemm_bf16.h"
#include "kernels/gemm/gemm.h"
#include "precision.h"

namespace bpfast {

// C (M, N) = [C +] A (M, K) · B (K, N) as precision P computes it, then the epilogue on every tile.
template <typename P>
void product(index M, index N, index K, MatrixView<Storage<P>> A, MatrixView<Storage<P>> B, Storage<P>* C,
             index ldc, bool accumulate, const Epilogue<Storage<P>>* epilogue = nullptr) {
    if constexpr (std::is_same_v<Compute<P>, BFloat16>)
        gemm_bf16(M, N, K, A, B, C, ldc, accumulate, epilogue);
    else
        gemm<Storage<P>>(M, N, K, A, B, C, ldc, accumulate, epilogue);
}

}  // namespace bpfast
