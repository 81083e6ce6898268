// The AVX2 + FMA ISA: this unit alone is compiled with -mavx2 -mfma and is
// only called when dispatch.cpp has seen both features on the CPU. It holds
// the micro-kernels, the FMA probe, and the elementwise and small-network
// loops compiled for 32-byte vectors (8 floats or 4 doubles, 16 registers).
//   float:  6 x 16 tile, 12 ymm accumulators (2 vectors of 8 per row)
//   double: 6 x 8 tile,  12 ymm accumulators (2 vectors of 4 per row)
// and, as candidates for the tuning, the same 12 accumulators as 4 rows of 3
// vectors (float 4 x 24, double 4 x 12: 3 loads of B and 4 broadcasts per
// depth step instead of 2 and 6), and the 6-row tile fetching B ahead.
#include <immintrin.h>

#include "kernels/bf16/pair_kernel_loops.h"
#include "kernels/bf16/pair_lanes_x86.h"
#include "kernels/bf16/pair_pack.h"
#include "kernels/elementwise/activation_loops.h"
#include "kernels/elementwise/check_loops.h"
#include "kernels/elementwise/optim_loops.h"
#include "kernels/gemm/broadcast_tile.h"
#include "kernels/gemm/gemm_unit_dimension.h"
#include "kernels/gemm/pack_x86.h"
#include "kernels/kernel_table.h"
#include "kernels/small_net/small_net_loops.h"

namespace bpfast {
namespace {

constexpr int MR = 6;  // rows of the default tile

// The packers' 256-bit lane types, plus what the micro-kernel and the probe need.
struct F32 : x86::F32x8 {
    static V broadcast(const T* p) { return _mm256_broadcast_ss(p); }
    static V set1(double x) { return _mm256_set1_ps(static_cast<float>(x)); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
};

struct F64 : x86::F64x4 {
    static V broadcast(const T* p) { return _mm256_broadcast_sd(p); }
    static V set1(double x) { return _mm256_set1_pd(x); }
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

// A micro-kernel of ROWS rows and NV vectors for the lane type S, with its packers.
template <typename S, int ROWS, int NV>
MicroKernel<typename S::T> tile(const char* name, MicroKernelFn<typename S::T> run) {
    using T = typename S::T;
    constexpr int NR = NV * S::lanes;
    static_assert(ROWS * NR <= MAX_TILE_VALUES && ROWS * NV + NV + 1 <= 16, "the tile must fit the registers");
    return {name, ROWS, NR, run, &x86::pack_a_rows<S, ROWS>, &pack_columns<ROWS, T>, &x86::pack_b_transposed<S, NR>,
            &unit_dimension_product<T>};
}

template <typename T>
KernelTable<T> avx2_table(std::vector<MicroKernel<T>> tiles) {
    return {std::move(tiles), activation_loops_table<T>(), check_loops_table<T>(), optim_loops_table<T>(),
            SmallNetLoops<T, 32, 16>::table()};
}

template <typename S>
KernelTable<typename S::T> avx2_candidates(const char* default_name, const char* wide_name, const char* ahead_name) {
    return avx2_table<typename S::T>({tile<S, MR, 2>(default_name, &ukernel_avx2<S>),
                                      tile<S, 4, 3>(wide_name, &broadcast_tile<S, 4, 3, 0>),
                                      tile<S, MR, 2>(ahead_name, &broadcast_tile<S, MR, 2, 8>)});
}

// bfloat16 pairs on AVX2: each half widened to float32, then two FMAs, high
// halves first (as VDPBF16PS orders them).
struct PairsEmulated : x86::Pairs256 {
    static V dot(V acc, Pairs a, Pairs b) {
        const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
        acc = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(a, high)),
                              _mm256_castsi256_ps(_mm256_and_si256(b, high)), acc);
        return _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(a, 16)),
                               _mm256_castsi256_ps(_mm256_slli_epi32(b, 16)), acc);
    }
};

// 4 x 16: 8 accumulators, the halves of 2 B vectors and of one broadcast A pair in 16 registers.
PairMicroKernel pair_table() {
    return {"avx2_bf16emulated_4x16", 4, 16, PairLayout::broadcast, 1, &pair_kernel<PairsEmulated, 4, 2>,
            &pack_pairs_broadcast<4>, &pack_pairs_broadcast<16>};
}

}  // namespace

// The row of runtime/dispatch.cpp's registry for this ISA.
extern const IsaKernels avx2_kernels{
    [] { return avx2_candidates<F32>("avx2_f32_6x16", "avx2_f32_4x24", "avx2_f32_6x16_ahead8"); },
    [] { return avx2_candidates<F64>("avx2_f64_6x8", "avx2_f64_4x12", "avx2_f64_6x8_ahead8"); },
    {F32::lanes, F64::lanes, &fma_chains<F32>, &fma_chains<F64>},
    &pair_table};

}  // namespace bpfast
