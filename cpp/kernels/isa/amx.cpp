// The AMX ISA's bfloat16 micro-kernel (kernels/bf16/amx_kernel.h) on the
// real tile instructions, its panels packed with VCVTNE2PS2BF16 (every AMX
// CPU has AVX512_BF16). This unit alone is compiled with -mamx-tile
// -mamx-bf16 -mavx512bf16 and is called only when runtime/amx_support.h has
// found AMX on the CPU, enabled by the OS, and granted to this process.
#include <immintrin.h>

#include "kernels/bf16/amx_kernel.h"
#include "kernels/bf16/pair_pack.h"
#include "kernels/bf16/pair_pack_bf16_x86.h"
#include "kernels/kernel_table.h"

namespace bpfast {
namespace {

// The tile unit of amx_kernel.h on the instructions (whose tile operands
// must be literal numbers).
struct HardwareTiles {
    static void configure(const TileConfig& config) {
        __asm__ volatile("" ::: "memory");
        _tile_loadconfig(&config);
    }
    // GCC's tile intrinsics are asm statements that do not declare the memory they read or
    // write: the barriers keep the compiler from moving stores to a panel past a load of it.
    template <int t>
    static void load(const void* base, index stride) {
        __asm__ volatile("" ::: "memory");
        if constexpr (t == 0) _tile_loadd(0, base, stride);
        else if constexpr (t == 1) _tile_loadd(1, base, stride);
        else if constexpr (t == 2) _tile_loadd(2, base, stride);
        else if constexpr (t == 3) _tile_loadd(3, base, stride);
        else if constexpr (t == 4) _tile_loadd(4, base, stride);
        else if constexpr (t == 5) _tile_loadd(5, base, stride);
        else if constexpr (t == 6) _tile_loadd(6, base, stride);
        else _tile_loadd(7, base, stride);
    }
    template <int t>
    static void zero() {
        if constexpr (t == 0) _tile_zero(0);
        else if constexpr (t == 1) _tile_zero(1);
        else if constexpr (t == 2) _tile_zero(2);
        else _tile_zero(3);
    }
    template <int t>
    static void store(void* base, index stride) {
        __asm__ volatile("" ::: "memory");
        if constexpr (t == 0) _tile_stored(0, base, stride);
        else if constexpr (t == 1) _tile_stored(1, base, stride);
        else if constexpr (t == 2) _tile_stored(2, base, stride);
        else _tile_stored(3, base, stride);
    }
    template <int c, int a, int b>
    static void dot() {
        static_assert(a == 4 || a == 5, "A tiles are tmm4 and tmm5");
        static_assert(b == 6 || b == 7, "B tiles are tmm6 and tmm7");
        if constexpr (c == 0) _tile_dpbf16ps(0, 4, 6);
        else if constexpr (c == 1) _tile_dpbf16ps(1, 4, 7);
        else if constexpr (c == 2) _tile_dpbf16ps(2, 5, 6);
        else _tile_dpbf16ps(3, 5, 7);
    }
};

PairMicroKernel pair_table() {
    return {"amx_bf16_32x32", AMX_MR, AMX_NR, PairLayout::rows, AMX_PAIRS, &amx_pair_kernel<HardwareTiles>,
            &x86::pack_pairs_rows_bf16<AMX_MR>, &x86::pack_pairs_bf16<AMX_NR>, &amx_begin<HardwareTiles>};
}

// The probe: TDPBF16PS into the four C tiles from fixed A and B tiles, 4
// instructions of 16 x 16 x 32 products (2 flops each) per round.
double tile_chains(long rounds) {
    amx_begin<HardwareTiles>();
    alignas(64) Bf16Pair a[16 * 16], b[16 * 16];
    for (int i = 0; i < 16 * 16; ++i) a[i] = bf16_pair(0.001f, 0.002f), b[i] = bf16_pair(0.003f, 0.001f);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    __asm__ volatile("" ::: "memory");  // a and b are written before the tiles read them
    _tile_loadd(4, a, 64);
    _tile_loadd(5, a, 64);
    _tile_loadd(6, b, 64);
    _tile_loadd(7, b, 64);
    for (long i = 0; i < rounds; ++i) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    alignas(64) float c[16 * 16];
    _tile_stored(0, c, 64);
    __asm__ volatile("" ::: "memory");  // and c is read after the tile store
    double total = 0;
    for (float v : c) total += v;
    return total;
}

}  // namespace

// isa/avx512_bf16.cpp: the float small-network kernels with VCVTNEPS2BF16 rounding.
SmallNetKernels<float> small_net_f32_avx512_bf16();

// The bfloat16 half of the amx row of runtime/dispatch.cpp's registry.
extern const IsaKernels amx_kernels{nullptr, nullptr, FmaProbe{0, 0, nullptr, nullptr, 4.0 * 16 * 16 * 32 * 2, &tile_chains},
                                    &pair_table, &small_net_f32_avx512_bf16};

}  // namespace bpfast
