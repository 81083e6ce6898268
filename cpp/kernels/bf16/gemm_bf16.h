// The GEMM with bfloat16 products: C = [C +] A·B for float32 A, B and C,
// where every value of A and B is rounded to bfloat16 (nearest, ties to
// even) as it is packed and the products are summed in float32. The same
// views, shapes and epilogue as gemm (kernels/gemm/gemm.h).
#pragma once

#include "kernels/gemm/gemm.h"

namespace bpfast {

// C (M, N) = [C +] bf16(A) (M, K) · bf16(B) (K, N), then the epilogue on every
// tile. The result is bitwise the same for any thread count.
void gemm_bf16(index M, index N, index K, MatrixView<float> A, MatrixView<float> B, float* C, index ldc,
               bool accumulate, const Epilogue<float>* epilogue = nullptr);

}  // namespace bpfast
