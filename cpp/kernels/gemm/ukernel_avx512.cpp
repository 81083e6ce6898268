// AVX-512 micro-kernels; this file alone is compiled with -mavx512f (and the
// AVX2 packers of pack_x86.h), and is only called when dispatch.cpp has seen
// AVX-512F on the CPU and in the OS.
//   float:  MR x 32 tile (2 zmm of 16 per row)
//   double: MR x 16 tile (2 zmm of 8 per row)
// MR = 8 keeps 16 accumulators, enough to hide the FMA latency on two ports,
// and divides the batch sizes MLPs use (16, 32, 64, ...) without padding.
#include <immintrin.h>

#include "kernels/gemm/gemm_unit_dimension.h"
#include "kernels/gemm/pack_x86.h"
#include "kernels/gemm/ukernel.h"

namespace bpfast {
namespace {

// 12 x 32 measured no faster on 1024-square products and slower at batch 16 and 32.
constexpr int MR = 8;
constexpr int NV = 2;  // vectors per row of the tile

struct F32 {
    using T = float;
    using V = __m512;
    static constexpr int lanes = 16;
    static V zero() { return _mm512_setzero_ps(); }
    static V load(const T* p) { return _mm512_loadu_ps(p); }
    static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
    static V broadcast(const T* p) { return _mm512_set1_ps(*p); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
};

struct F64 {
    using T = double;
    using V = __m512d;
    static constexpr int lanes = 8;
    static V zero() { return _mm512_setzero_pd(); }
    static V load(const T* p) { return _mm512_loadu_pd(p); }
    static void store(T* p, V v) { _mm512_storeu_pd(p, v); }
    static V broadcast(const T* p) { return _mm512_set1_pd(*p); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
    static V add(V a, V b) { return _mm512_add_pd(a, b); }
};

template <typename S>
void ukernel_avx512(index k, const typename S::T* a, index lda, const typename S::T* b, index ldb,
                    typename S::T* c, index ldc, bool accumulate) {
    // a is (k, MR) with row stride lda, b is (k, NV*lanes) with row stride ldb, c is (MR, NV*lanes) with row stride ldc
    using V = typename S::V;
    constexpr int W = S::lanes;
    V acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int h = 0; h < NV; ++h) acc[i][h] = S::zero();
    for (index p = 0; p < k; ++p, a += lda, b += ldb) {
        V b_row[NV];
#pragma GCC unroll 4
        for (int h = 0; h < NV; ++h) b_row[h] = S::load(b + h * W);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            const V a_i = S::broadcast(a + i);
#pragma GCC unroll 4
            for (int h = 0; h < NV; ++h) acc[i][h] = S::fmadd(a_i, b_row[h], acc[i][h]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
        typename S::T* row = c + i * ldc;
#pragma GCC unroll 4
        for (int h = 0; h < NV; ++h)
            S::store(row + h * W, accumulate ? S::add(S::load(row + h * W), acc[i][h]) : acc[i][h]);
    }
}

}  // namespace

MicroKernel<float> ukernel_avx512_f32() {
    return {"avx512", MR, NV * F32::lanes, &ukernel_avx512<F32>,
            &x86::pack_b_transposed<x86::F32x8, NV * F32::lanes>, &x86::pack_a_rows<x86::F32x8, MR>,
            &unit_dimension_product<float>};
}
MicroKernel<double> ukernel_avx512_f64() {
    return {"avx512", MR, NV * F64::lanes, &ukernel_avx512<F64>,
            &x86::pack_b_transposed<x86::F64x4, NV * F64::lanes>, &x86::pack_a_rows<x86::F64x4, MR>,
            &unit_dimension_product<double>};
}

}  // namespace bpfast
