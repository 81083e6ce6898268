// The AVX-512 ISA: this unit alone is compiled with -mavx512f (and the AVX2
// packers of pack_x86.h), and is only called when dispatch.cpp has seen
// AVX-512F on the CPU and in the OS. It holds the micro-kernels, the FMA
// probe, and the elementwise and small-network loops compiled for 64-byte
// vectors (16 floats or 8 doubles, 32 registers).
//
// The micro-kernels, each an MR x (NV vectors) tile with A broadcast and B
// loaded, the first of each dtype the default:
//   float:  8 x 32, 12 x 32, 6 x 64, and 12 x 32 fetching B ahead
//   double: 8 x 16, 12 x 16, 6 x 32, and 12 x 16 fetching B ahead
// 8 rows keep 16 accumulators, enough to hide the FMA latency on two ports,
// and divide the batch sizes MLPs use (16, 32, 64, ...) without padding. The
// others keep 24 accumulators (BLIS's Skylake-X tiles, transposed), which
// two FMA ports with a 4-cycle latency need to stay full; 6 x 64 loads 4 B
// vectors per depth step for 6 broadcasts, 12 x 32 loads 2 for 12.
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

constexpr int PAIR_MR = 8;  // rows of the bfloat16 emulation's tile

struct F32 {
    using T = float;
    using V = __m512;
    static constexpr int lanes = 16;
    static V zero() { return _mm512_setzero_ps(); }
    static V load(const T* p) { return _mm512_loadu_ps(p); }
    static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
    static V broadcast(const T* p) { return _mm512_set1_ps(*p); }
    static V set1(double x) { return _mm512_set1_ps(static_cast<float>(x)); }
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
    static V set1(double x) { return _mm512_set1_pd(x); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
    static V add(V a, V b) { return _mm512_add_pd(a, b); }
};

// The micro-kernel of MR rows and NV vectors for the lane type S of dtype
// S::T, with its packers (P: the 256-bit lane type of the same dtype).
template <typename S, typename P, int MR, int NV, int AHEAD = 0>
MicroKernel<typename S::T> tile(const char* name) {
    using T = typename S::T;
    constexpr int NR = NV * S::lanes;
    static_assert(MR * NR <= MAX_TILE_VALUES && MR * NV + NV + 1 <= 32, "the tile must fit the registers");
    return {name, MR, NR, &broadcast_tile<S, MR, NV, AHEAD>, &x86::pack_a_rows<P, MR>, &pack_columns<MR, T>,
            &x86::pack_b_transposed<P, NR>, &unit_dimension_product<T>};
}

template <typename T>
KernelTable<T> avx512_table(std::vector<MicroKernel<T>> tiles) {
    return {std::move(tiles), activation_loops_table<T>(), check_loops_table<T>(), optim_loops_table<T>(),
            SmallNetLoops<T, 64, 32>::table()};
}

// (B fetched 8 depth steps ahead: 8 rows of a panel, 1 KiB of float32, well
// inside L1, and a few hundred cycles early.)
KernelTable<float> f32_table() {
    using S = F32;
    using P = x86::F32x8;
    return avx512_table<float>({tile<S, P, 8, 2>("avx512_f32_8x32"), tile<S, P, 12, 2>("avx512_f32_12x32"),
                                tile<S, P, 6, 4>("avx512_f32_6x64"), tile<S, P, 12, 2, 8>("avx512_f32_12x32_ahead8")});
}

KernelTable<double> f64_table() {
    using S = F64;
    using P = x86::F64x4;
    return avx512_table<double>({tile<S, P, 8, 2>("avx512_f64_8x16"), tile<S, P, 12, 2>("avx512_f64_12x16"),
                                 tile<S, P, 6, 4>("avx512_f64_6x32"), tile<S, P, 12, 2, 8>("avx512_f64_12x16_ahead8")});
}

// bfloat16 pairs without VDPBF16PS: each half widened to float32 (a shift or
// a mask), then two FMAs, high halves first as VDPBF16PS does. The products
// are exact, so this gives the instruction's sums (but for its flushing of
// denormals) at the float32 FMA rate.
struct PairsEmulated : x86::Pairs512 {
    static V dot(V acc, Pairs a, Pairs b) {
        const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
        acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(a, high)),
                              _mm512_castsi512_ps(_mm512_and_si512(b, high)), acc);
        return _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(a, 16)),
                               _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)), acc);
    }
};

PairMicroKernel pair_table() {
    return {"avx512_bf16emulated_8x32", PAIR_MR, 32, PairLayout::broadcast, 1, &pair_kernel<PairsEmulated, PAIR_MR, 2>,
            &pack_pairs_broadcast<PAIR_MR>, &pack_pairs_broadcast<32>};
}

}  // namespace

// The row of runtime/dispatch.cpp's registry for this ISA.
extern const IsaKernels avx512_kernels{&f32_table, &f64_table,
                                       {F32::lanes, F64::lanes, &fma_chains<F32>, &fma_chains<F64>},
                                       &pair_table};

}  // namespace bpfast
