// The AVX512_BF16 ISA's bfloat16 micro-kernel: VDPBF16PS, two bfloat16
// products per float32 lane per instruction. This unit alone is compiled
// with -mavx512bf16 and is called only when dispatch.cpp has seen the
// feature; the float kernels of that row are the AVX-512 unit's.
//   8 x 32 tile: 16 zmm accumulators, two B vectors and one broadcast pair.
#include <immintrin.h>

#include "kernels/bf16/amx_model.h"
#include "kernels/bf16/pair_kernel_loops.h"
#include "kernels/bf16/pair_lanes_x86.h"
#include "kernels/bf16/pair_pack.h"
#include "kernels/bf16/pair_pack_bf16_x86.h"
#include "kernels/kernel_table.h"
#include "kernels/small_net/small_net_loops.h"

namespace bpfast {
namespace {

constexpr int MR = 8, NV = 2;

struct PairsBf16 : x86::Pairs512 {
    static V dot(V acc, Pairs a, Pairs b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
};

constexpr int NR = NV * PairsBf16::lanes;

PairMicroKernel pair_table() {
    return {"avx512_bf16_8x32", MR, NR, PairLayout::broadcast, 1, &pair_kernel<PairsBf16, MR, NV>,
            &pack_pairs_broadcast<MR>, &x86::pack_pairs_bf16<NR>};
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

// The AMX kernel on the software model of its tiles, with the packers that
// the AMX unit uses (this unit's flags): the amx_model_bf16_packers row, so
// that those packers are tested wherever the CPU has AVX512_BF16.
PairMicroKernel amx_model_table() {
    return {"amx_model_bf16_32x32_vcvt", AMX_MR, AMX_NR, PairLayout::rows, AMX_PAIRS, &amx_pair_kernel<TileModel>,
            &x86::pack_pairs_rows_bf16<AMX_MR>, &x86::pack_pairs_bf16<AMX_NR>, &amx_begin<TileModel>};
}

}  // namespace

// The AVX-512 unit's small-network loops compiled here, where their bfloat16
// rounding (mixed precision's operands) is one VCVTNEPS2BF16 a vector; for
// every row whose CPU has AVX512_BF16 (amx's too, isa/amx.cpp).
SmallNetKernels<float> small_net_f32_avx512_bf16() { return SmallNetLoops<float, 64, 32>::table(); }

// The bfloat16 half of the amx_model_bf16_packers row (BPFAST_ISA only).
extern const IsaKernels amx_model_bf16_packers_kernels{nullptr, nullptr, {}, &amx_model_table,
                                                       &small_net_f32_avx512_bf16};

// The bfloat16 half of the avx512_bf16 row of runtime/dispatch.cpp's registry.
extern const IsaKernels avx512_bf16_kernels{nullptr, nullptr,
                                            FmaProbe{0, 0, nullptr, nullptr, 4.0 * 16 * FMA_CHAINS, &dot_chains},
                                            &pair_table, &small_net_f32_avx512_bf16};

}  // namespace bpfast
