// Portable micro-kernel: plain C++ over an MR x NR register tile. The fixed
// trip counts let the compiler unroll the tile and vectorise along NR with the
// baseline ISA (SSE2 on x86-64).
#include "kernels/gemm/gemm_unit_dimension.h"
#include "kernels/gemm/ukernel.h"

namespace bpfast {
namespace {

constexpr int MR = 4;
constexpr int NR = 8;

template <typename T>
void ukernel_generic(index k, const T* a, index lda, const T* b, index ldb, T* c, index ldc,
                     bool accumulate) {
    // a is (k, MR) with row stride lda, b is (k, NR) with row stride ldb, c is (MR, NR) with row stride ldc
    T acc[MR][NR] = {};
    for (index p = 0; p < k; ++p) {
        const T* a_col = a + p * lda;
        const T* b_row = b + p * ldb;
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < NR; ++j) acc[i][j] += a_col[i] * b_row[j];
    }
    for (int i = 0; i < MR; ++i) {
        T* c_row = c + i * ldc;
        if (accumulate)
            for (int j = 0; j < NR; ++j) c_row[j] += acc[i][j];
        else
            for (int j = 0; j < NR; ++j) c_row[j] = acc[i][j];
    }
}

}  // namespace

MicroKernel<float> ukernel_generic_f32() {
    return {"generic", MR, NR, &ukernel_generic<float>, nullptr, nullptr, &unit_dimension_product<float>};
}
MicroKernel<double> ukernel_generic_f64() {
    return {"generic", MR, NR, &ukernel_generic<double>, nullptr, nullptr, &unit_dimension_product<double>};
}

}  // namespace bpfast
