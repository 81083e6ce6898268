// AVX2 + FMA micro-kernels; this file alone is compiled with -mavx2 -mfma and
// is only called when dispatch.cpp has seen both features on the CPU.
//   float:  6 x 16 tile, 12 ymm accumulators (2 vectors of 8 per row)
//   double: 6 x 8 tile,  12 ymm accumulators (2 vectors of 4 per row)
#include <immintrin.h>

#include "ukernel.h"

namespace bpfast {
namespace {

constexpr int MR = 6;

struct F32 {
    using T = float;
    using V = __m256;
    static constexpr int lanes = 8;
    static V zero() { return _mm256_setzero_ps(); }
    static V load(const T* p) { return _mm256_loadu_ps(p); }
    static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
    static V broadcast(const T* p) { return _mm256_broadcast_ss(p); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
};

struct F64 {
    using T = double;
    using V = __m256d;
    static constexpr int lanes = 4;
    static V zero() { return _mm256_setzero_pd(); }
    static V load(const T* p) { return _mm256_loadu_pd(p); }
    static void store(T* p, V v) { _mm256_storeu_pd(p, v); }
    static V broadcast(const T* p) { return _mm256_broadcast_sd(p); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
    static V add(V a, V b) { return _mm256_add_pd(a, b); }
};

template <typename S>
void ukernel_avx2(index k, const typename S::T* a, const typename S::T* b, index ldb,
                  typename S::T* c, index ldc, bool accumulate) {
    // a is (k, 6) packed, b is (k, 2*lanes) with row stride ldb, c is (6, 2*lanes) with row stride ldc
    using V = typename S::V;
    constexpr int W = S::lanes;
    V c00 = S::zero(), c01 = S::zero(), c10 = S::zero(), c11 = S::zero();
    V c20 = S::zero(), c21 = S::zero(), c30 = S::zero(), c31 = S::zero();
    V c40 = S::zero(), c41 = S::zero(), c50 = S::zero(), c51 = S::zero();
    for (index p = 0; p < k; ++p, a += MR, b += ldb) {
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

// 8x8 float transpose: rows r[0..7] in, columns out.
inline void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// 4x4 double transpose.
inline void transpose4(__m256d r[4]) {
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

inline void transpose_block(typename F32::V r[8]) { transpose8(r); }
inline void transpose_block(typename F64::V r[4]) { transpose4(r); }

// panel (depth, 2*lanes): panel[p*2W + j] = src[j*ld + p], by lanes x lanes blocks.
template <typename S>
void pack_b_transposed_avx2(index depth, const typename S::T* src, index ld, typename S::T* panel) {
    using T = typename S::T;
    constexpr int W = S::lanes, NR = 2 * W;
    index p = 0;
    for (; p + W <= depth; p += W)
        for (int half = 0; half < 2; ++half) {
            typename S::V r[W];
            for (int j = 0; j < W; ++j) r[j] = S::load(src + (half * W + j) * ld + p);
            transpose_block(r);
            for (int q = 0; q < W; ++q) S::store(panel + (p + q) * NR + half * W, r[q]);
        }
    for (; p < depth; ++p)
        for (int j = 0; j < NR; ++j) panel[p * NR + j] = src[j * ld + p];
}

// panel (depth, 6): panel[p*6 + i] = src[i*ld + p]. Each p's column is
// stored as a whole vector whose tail spills into the next p's slots (or the
// buffer's slack), and is overwritten when that p is stored, so stores go in p order.
template <typename S>
void pack_a_rows_avx2(index depth, const typename S::T* src, index ld, typename S::T* panel) {
    using V = typename S::V;
    constexpr int W = S::lanes;
    constexpr int GROUPS = (MR + W - 1) / W;  // float: one group of 8 rows; double: two of 4
    index p = 0;
    for (; p + W <= depth; p += W) {
        V r[GROUPS][W];
        for (int g = 0; g < GROUPS; ++g) {
            for (int j = 0; j < W; ++j) {
                const int row = g * W + j;
                r[g][j] = row < MR ? S::load(src + row * ld + p) : S::zero();
            }
            transpose_block(r[g]);
        }
        for (int q = 0; q < W; ++q)
            for (int g = 0; g < GROUPS; ++g) S::store(panel + (p + q) * MR + g * W, r[g][q]);
    }
    for (; p < depth; ++p)
        for (int i = 0; i < MR; ++i) panel[p * MR + i] = src[i * ld + p];
}

}  // namespace

MicroKernel<float> ukernel_avx2_f32() {
    return {"avx2", MR, 2 * F32::lanes, &ukernel_avx2<F32>, &pack_b_transposed_avx2<F32>,
            &pack_a_rows_avx2<F32>};
}
MicroKernel<double> ukernel_avx2_f64() {
    return {"avx2", MR, 2 * F64::lanes, &ukernel_avx2<F64>, &pack_b_transposed_avx2<F64>,
            &pack_a_rows_avx2<F64>};
}

}  // namespace bpfast
