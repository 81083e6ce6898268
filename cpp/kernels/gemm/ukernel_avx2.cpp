// AVX2 + FMA micro-kernels; this file alone is compiled with -mavx2 -mfma and
// is only called when dispatch.cpp has seen both features on the CPU.
//   float:  6 x 16 tile, 12 ymm accumulators (2 vectors of 8 per row)
//   double: 6 x 8 tile,  12 ymm accumulators (2 vectors of 4 per row)
#include <immintrin.h>

#include "kernels/gemm/gemm_unit_dimension.h"
#include "kernels/gemm/pack_x86.h"
#include "kernels/gemm/ukernel.h"

namespace bpfast {
namespace {

constexpr int MR = 6;

// The packers' 256-bit lane types, plus what the micro-kernel needs.
struct F32 : x86::F32x8 {
    static V broadcast(const T* p) { return _mm256_broadcast_ss(p); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
};

struct F64 : x86::F64x4 {
    static V broadcast(const T* p) { return _mm256_broadcast_sd(p); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
    static V add(V a, V b) { return _mm256_add_pd(a, b); }
};

template <typename S>
void ukernel_avx2(index k, const typename S::T* a, index lda, const typename S::T* b, index ldb,
                  typename S::T* c, index ldc, bool accumulate) {
    // a is (k, 6) packed, b is (k, 2*lanes) with row stride ldb, c is (6, 2*lanes) with row stride ldc
    using V = typename S::V;
    constexpr int W = S::lanes;
    V c00 = S::zero(), c01 = S::zero(), c10 = S::zero(), c11 = S::zero();
    V c20 = S::zero(), c21 = S::zero(), c30 = S::zero(), c31 = S::zero();
    V c40 = S::zero(), c41 = S::zero(), c50 = S::zero(), c51 = S::zero();
    for (index p = 0; p < k; ++p, a += lda, b += ldb) {
        const V b0 = S::load(b), b1 = S::load(b + W);
        V ai = S::broadcast(a + 0);
        c00 = S::fmadd(ai, b0, c00);
        c01 = S::fmadd(ai, b1, c01);
        ai = S::broadcast(a + 1);
        c10 = S::fmadd(ai, b0, c10);
        c11 = S::fmadd(ai, b1, c11);
        ai = S::broadcast(a + 2);
        c20 = S::fmadd(ai, b0, c20);
        c21 = S::fmadd(ai, b1, c21);
        ai = S::broadcast(a + 3);
        c30 = S::fmadd(ai, b0, c30);
        c31 = S::fmadd(ai, b1, c31);
        ai = S::broadcast(a + 4);
        c40 = S::fmadd(ai, b0, c40);
        c41 = S::fmadd(ai, b1, c41);
        ai = S::broadcast(a + 5);
        c50 = S::fmadd(ai, b0, c50);
        c51 = S::fmadd(ai, b1, c51);
    }
    const V tile[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int i = 0; i < MR; ++i) {
        typename S::T* row = c + i * ldc;
        for (int h = 0; h < 2; ++h)
            S::store(row + h * W, accumulate ? S::add(S::load(row + h * W), tile[i][h]) : tile[i][h]);
    }
}

}  // namespace

MicroKernel<float> ukernel_avx2_f32() {
    return {"avx2", MR, 2 * F32::lanes, &ukernel_avx2<F32>, &x86::pack_b_transposed<x86::F32x8, 16>,
            &x86::pack_a_rows<x86::F32x8, MR>,
            &unit_dimension_product<float>};
}
MicroKernel<double> ukernel_avx2_f64() {
    return {"avx2", MR, 2 * F64::lanes, &ukernel_avx2<F64>, &x86::pack_b_transposed<x86::F64x4, 8>,
            &x86::pack_a_rows<x86::F64x4, MR>,
            &unit_dimension_product<double>};
}

}  // namespace bpfast
