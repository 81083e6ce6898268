// The AVX512_BF16 ISA's bfloat16 micro-kernel: VDPBF16PS, two bfloat16
// products per float32 lane per instruction. This unit alone is compiled
// with -mavx512bf16 and is called only when dispatch.cpp has seen the
// feature; the float kernels of that row are the AVX-512 unit's.
//   8 x 32 tile: 16 zmm accumulators, two B vectors and one broadcast pair.
#include <immintrin.h>

#include "kernels/bf16/pair_kernel_loops.h"
#include "kernels/bf16/pair_lanes_x86.h"
#include "kernels/bf16/pair_pack.h"
#include "kernels/kernel_table.h"

namespace bpfast {
namespace {

constexpr int MR = 8, NV = 2;

struct PairsBf16 : x86::Pairs512 {
    static V dot(V acc, Pairs a, Pairs b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
};

constexpr int NR = NV * PairsBf16::lanes;

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

// The B packer (pair_pack.h's pack_pairs_broadcast<NR>) with the two full-panel
// shapes on VCVTNE2PS2BF16: depths contiguous (W's rows in X·Wᵀ), 16 pairs of
// 16 lines at a time, transposed; lines contiguous (rows of X or W), one pair
// row of 16 lines per conversion, its halves interleaved. Other panels, and
// the pairs past the last 16, go to the portable loops.
void pack_b(const PanelSource& src, index live, index depth, index pairs, Bf16Pair* panel) {
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
        const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                    23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        for (; done < whole; ++done) {
            const float* even = src.data + 2 * done * src.depth_stride;
            const float* odd = even + src.depth_stride;
            for (int g = 0; g < NR / 16; ++g) {
                const __m512i halves =
                    (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(odd + 16 * g), _mm512_loadu_ps(even + 16 * g));
                _mm512_storeu_si512(panel + done * NR + 16 * g, _mm512_permutexvar_epi16(interleave, halves));
            }
        }
    }
    // the rest of the depth (and the zero pairs past it)
    const PanelSource rest{src.data + 2 * done * src.depth_stride, src.x_stride, src.depth_stride};
    pack_pairs_broadcast<NR>(rest, live, depth - 2 * done, pairs - done, panel + done * NR);
}

PairMicroKernel pair_table() {
    return {"avx512_bf16_8x32", MR, NR, PairLayout::broadcast, 1, &pair_kernel<PairsBf16, MR, NV>,
            &pack_pairs_broadcast<MR>, &pack_b};
}

// The probe: FMA_CHAINS independent VDPBF16PS chains (acc += a·b over two
// pairs per lane, 4 flops per lane); the products are small, so the chains
// grow slowly and never leave the normal range.
double dot_chains(long rounds) {
    __m512 acc[FMA_CHAINS];
    for (int j = 0; j < FMA_CHAINS; ++j) acc[j] = _mm512_set1_ps(0.5f + 0.01f * j);
    const __m512i a = _mm512_set1_epi32(static_cast<int>(bf16_pair(0.001f, 0.002f)));
    const __m512i b = _mm512_set1_epi32(static_cast<int>(bf16_pair(0.003f, 0.001f)));
    for (long i = 0; i < rounds; ++i) {
#pragma GCC unroll 16
        for (int j = 0; j < FMA_CHAINS; ++j) acc[j] = PairsBf16::dot(acc[j], a, b);
    }
    float total = 0;
    for (int j = 0; j < FMA_CHAINS; ++j) total += _mm512_reduce_add_ps(acc[j]);
    return total;
}

}  // namespace

// The bfloat16 half of the avx512_bf16 row of runtime/dispatch.cpp's registry.
extern const IsaKernels avx512_bf16_kernels{nullptr, nullptr,
                                            FmaProbe{0, 0, nullptr, nullptr, 4.0 * 16 * FMA_CHAINS, &dot_chains},
                                            &pair_table};

}  // namespace bpfast
