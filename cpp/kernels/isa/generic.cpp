// The portable ISA (baseline flags: SSE2 on x86-64), the fallback on any CPU:
// its micro-kernel and the elementwise families' loops. No small-network
// path and no FMA probe.
//   micro-kernel: plain C++ over an MR x NR register tile. The fixed trip
//   counts let the compiler unroll the tile and vectorise along NR.
#include <type_traits>

#include "kernels/bf16/pair_kernel_loops.h"
#include "kernels/bf16/pair_pack.h"
#include "kernels/elementwise/activation_loops.h"
#include "kernels/elementwise/check_loops.h"
#include "kernels/elementwise/optim_loops.h"
#include "kernels/gemm/gemm_unit_dimension.h"
#include "kernels/kernel_table.h"

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

template <typename T>
KernelTable<T> generic_table() {
    const char* name = std::is_same_v<T, float> ? "generic_f32_4x8" : "generic_f64_4x8";
    const MicroKernel<T> tile{name, MR, NR, &ukernel_generic<T>, nullptr, &pack_columns<MR, T>, nullptr,
                              &unit_dimension_product<T>};
    return {{tile}, activation_loops_table<T>(), check_loops_table<T>(), optim_loops_table<T>(), {}};
}

PairMicroKernel pair_table() {
    return {"generic_bf16_4x8", MR, NR, PairLayout::broadcast, 1, &pair_kernel_portable<MR, NR>,
            &pack_pairs_broadcast<MR>, &pack_pairs_broadcast<NR>};
}

}  // namespace

// The row of runtime/dispatch.cpp's registry for this ISA.
extern const IsaKernels generic_kernels{&generic_table<float>, &generic_table<double>, {}, &pair_table};

}  // namespace bpfast
