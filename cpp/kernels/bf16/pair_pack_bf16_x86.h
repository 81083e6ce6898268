// Packers that round float32 to bfloat16 pairs with VCVTNE2PS2BF16, for the
// units compiled with -mavx512bf16 (the AVX512_BF16 and AMX units, and the
// AMX model run on them): the broadcast layout of B panels (both kernels)
// and the rows layout of AMX's A panels, for full panels of lines either
// contiguous along the depth or across lines; everything else goes to the
// portable loops of pair_pack.h. Internal linkage, as pack_x86.h.
#pragma once

#include <immintrin.h>

#include "kernels/bf16/pair_pack.h"

namespace bpfast {
namespace x86 {
namespace {

// 16 lines of 16 pairs each (r[x] = pairs 0..15 of line x) to 16 rows of
// 16 lines each (r[q] = pair q of lines 0..15): a 16 x 16 transpose of
// 32-bit words, by words, quadwords, then 128-bit lanes twice.
inline void transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // u[4i + c]: lines 4i..4i+3 of column 4L + c in each 128-bit lane L
    for (int i = 0; i < 4; ++i) {
        u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; ++c) {
        const __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
        const __m512i w0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
        const __m512i w1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
        r[c] = _mm512_shuffle_i32x4(v0, w0, 0x88);
        r[8 + c] = _mm512_shuffle_i32x4(v0, w0, 0xdd);
        r[4 + c] = _mm512_shuffle_i32x4(v1, w1, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(v1, w1, 0xdd);
    }
}

// 16 pairs of a line whose depths are contiguous: VCVTNE2PS2BF16 rounds 32
// floats (nearest even, NaN kept) into 32 bfloat16 in depth order, which read
// as 32-bit words are the pairs.
inline __m512i line_pairs(const float* line) {
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(line + 16), _mm512_loadu_ps(line));
}

// The pairs of 16 contiguous lines at one depth pair: line k's values at the
// even depth (even[k]) and the odd one (even[stride + k]), rounded together,
// then bfloat16 k of each half side by side, so that word k is line k's pair.
inline __m512i pairs_across(const float* even, index stride) {
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i halves = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(even + stride), _mm512_loadu_ps(even));
    return _mm512_permutexvar_epi16(interleave, halves);
}

// pack_pairs_broadcast<NR> (pair_pack.h) with its two full-panel shapes on
// VCVTNE2PS2BF16: depths contiguous (W's rows in X·Wᵀ), 16 pairs of 16 lines
// at a time, transposed; lines contiguous (rows of X or W), one pair row of
// 16 lines per conversion, its halves interleaved. Other panels, and the
// pairs past the last 16, go to the portable loops.
template <int NR>
void pack_pairs_bf16(const PanelSource& src, index live, index depth, index pairs, Bf16Pair* panel) {
    static_assert(NR % 16 == 0, "whole groups of 16 lines");
    const index whole = depth / 2;
    if (live != NR || (src.depth_stride != 1 && src.x_stride != 1) || whole < 16)
        return pack_pairs_broadcast<NR>(src, live, depth, pairs, panel);
    index done = 0;
    if (src.depth_stride == 1) {
        for (; done + 16 <= whole; done += 16)
            for (int g = 0; g < NR / 16; ++g) {
                __m512i r[16];
                for (int x = 0; x < 16; ++x) r[x] = line_pairs(src.data + (16 * g + x) * src.x_stride + 2 * done);
                transpose16(r);
                for (int q = 0; q < 16; ++q) _mm512_storeu_si512(panel + (done + q) * NR + 16 * g, r[q]);
            }
    } else {
        // bfloat16 k of the even row and k of the odd row side by side: word k = pair of line k
        for (; done < whole; ++done) {
            const float* even = src.data + 2 * done * src.depth_stride;
            for (int g = 0; g < NR / 16; ++g)
                _mm512_storeu_si512(panel + done * NR + 16 * g, pairs_across(even + 16 * g, src.depth_stride));
        }
    }
    // the rest of the depth (and the zero pairs past it)
    const PanelSource rest{src.data + 2 * done * src.depth_stride, src.x_stride, src.depth_stride};
    pack_pairs_broadcast<NR>(rest, live, depth - 2 * done, pairs - done, panel + done * NR);
}

// pack_pairs_rows<W> (pair_pack.h: panel[x*pairs + q]) with its full panels
// on VCVTNE2PS2BF16: depths contiguous (rows of X or δ, AMX's A in X·Wᵀ and
// δ·W), 16 pairs of a line per conversion, stored as they are; lines
// contiguous (δᵀ in δᵀ·X), 16 depth pairs of 16 lines interleaved, then
// transposed so that each line's pairs are contiguous.
template <int W>
void pack_pairs_rows_bf16(const PanelSource& src, index live, index depth, index pairs, Bf16Pair* panel) {
    static_assert(W % 16 == 0, "whole groups of 16 lines");
    constexpr index MAX_REST = 64;  // pairs past the fast part (at most 16 with the GEMM's padding)
    const index whole = depth / 2, fast = whole / 16 * 16;
    if (live != W || (src.depth_stride != 1 && src.x_stride != 1) || fast == 0 || pairs - fast > MAX_REST)
        return pack_pairs_rows<W>(src, live, depth, pairs, panel);
    index done = 0;
    if (src.depth_stride == 1) {
        for (; done + 16 <= whole; done += 16)
            for (int x = 0; x < W; ++x)
                _mm512_storeu_si512(panel + x * pairs + done, line_pairs(src.data + x * src.x_stride + 2 * done));
    } else {
        for (; done + 16 <= whole; done += 16)
            for (int g = 0; g < W / 16; ++g) {
                __m512i r[16];
                for (int q = 0; q < 16; ++q)
                    r[q] = pairs_across(src.data + 2 * (done + q) * src.depth_stride + 16 * g, src.depth_stride);
                transpose16(r);
                for (int x = 0; x < 16; ++x) _mm512_storeu_si512(panel + (16 * g + x) * pairs + done, r[x]);
            }
    }
    // the rest of each line (and the zero pairs past it): a panel of the
    // remaining pairs, copied into place line by line
    const index rest_pairs = pairs - done;
    if (rest_pairs == 0) return;
    Bf16Pair rest[W * MAX_REST];
    const PanelSource tail{src.data + 2 * done * src.depth_stride, src.x_stride, src.depth_stride};
    pack_pairs_rows<W>(tail, live, depth - 2 * done, rest_pairs, rest);
    for (int x = 0; x < W; ++x)
        for (index q = 0; q < rest_pairs; ++q) panel[x * pairs + done + q] = rest[x * rest_pairs + q];
}

}  // namespace
}  // namespace x86
}  // namespace bpfast
