// In-register transposing packers for x86 (AVX2 instructions), shared by
// the AVX2 and AVX-512 micro-kernel units. Include it only from a translation
// unit compiled with -mavx2 (or higher). Everything here has internal
// linkage, so each includer keeps its own copy, compiled with its own flags
// (a shared inline copy could be one built for AVX-512 called on an AVX2 CPU).
//   S is a lane type of 256-bit vectors (F32x8 or F64x4 below).
#pragma once

#include <immintrin.h>

#include "common.h"

namespace bpfast {
namespace x86 {
namespace {

struct F32x8 {
    using T = float;
    using V = __m256;
    static constexpr int lanes = 8;
    static V zero() { return _mm256_setzero_ps(); }
    static V load(const T* p) { return _mm256_loadu_ps(p); }
    static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
};

struct F64x4 {
    using T = double;
    using V = __m256d;
    static constexpr int lanes = 4;
    static V zero() { return _mm256_setzero_pd(); }
    static V load(const T* p) { return _mm256_loadu_pd(p); }
    static void store(T* p, V v) { _mm256_storeu_pd(p, v); }
};

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

inline void transpose_block(__m256 r[8]) { transpose8(r); }
inline void transpose_block(__m256d r[4]) { transpose4(r); }

// panel (depth, NR): panel[p*NR + j] = src[j*ld + p], by lanes x lanes blocks.
// W source rows at a time, walked along the depth: when ld is a multiple of
// 4 KiB all NR rows fall in one L1 set, more than its ways, so a row's cache
// line must be finished before the next group of rows is touched.
template <typename S, int NR>
void pack_b_transposed(index depth, const typename S::T* src, index ld, typename S::T* panel) {
    constexpr int W = S::lanes;
    static_assert(NR % W == 0, "NR must be a whole number of vectors");
    const index whole = depth / W * W;
    for (int part = 0; part < NR / W; ++part)
        for (index p = 0; p < whole; p += W) {
            typename S::V r[W];
            for (int j = 0; j < W; ++j) r[j] = S::load(src + (part * W + j) * ld + p);
            transpose_block(r);
            for (int q = 0; q < W; ++q) S::store(panel + (p + q) * NR + part * W, r[q]);
        }
    for (index p = whole; p < depth; ++p)
        for (int j = 0; j < NR; ++j) panel[p * NR + j] = src[j * ld + p];
}

// panel (depth, MR): panel[p*MR + i] = src[i*ld + p]. When MR is not a
// whole number of vectors, each p's column is stored as whole vectors whose
// tail spills into the next p's slots (or the buffer's slack), and is
// overwritten when that p is stored, so stores go in p order.
template <typename S, int MR>
void pack_a_rows(index depth, const typename S::T* src, index ld, typename S::T* panel) {
    using V = typename S::V;
    constexpr int W = S::lanes;
    constexpr int GROUPS = (MR + W - 1) / W;
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
}  // namespace x86
}  // namespace bpfast
