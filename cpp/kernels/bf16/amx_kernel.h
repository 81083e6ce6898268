// The AMX micro-kernel of the bfloat16 contract (pair_ukernel.h), written
// once against a tile unit: the real instructions (kernels/isa/amx.cpp) or
// their software model (amx_model.h, kernels/isa/amx_model.cpp, so the
// kernel's packing and tile arithmetic are tested on every CPU).
//
// Tiles (palette 1, 16 rows of at most 64 bytes each):
//   tmm0 tmm1   C tiles of the top 16 rows      16 x 16 float32 each
//   tmm2 tmm3   C tiles of the bottom 16 rows
//   tmm4 tmm5   A: 16 rows x 16 pairs each      (rows layout: a row's pairs contiguous)
//   tmm6 tmm7   B: 16 pairs x 16 columns each   (a B panel of 32 columns, row stride 128 bytes)
// One step of 16 pairs (32 depths) is 4 TDPBF16PS: C(r, c) += A(r) · B(c).
#pragma once

#include <cstdint>

#include "kernels/bf16/pair_ukernel.h"

namespace bpfast {

// LDTILECFG's 64-byte operand (palette 1).
struct alignas(64) TileConfig {
    std::uint8_t palette = 1;
    std::uint8_t start_row = 0;
    std::uint8_t reserved[14] = {};
    std::uint16_t colsb[16] = {};  // bytes per row of each tile
    std::uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG reads 64 bytes");

namespace {

constexpr int AMX_MR = 32, AMX_NR = 32, AMX_PAIRS = 16;  // pairs per A tile row and B tile

inline TileConfig amx_tile_config() {
    TileConfig config;
    for (int t = 0; t < 8; ++t) {
        config.rows[t] = 16;
        config.colsb[t] = 64;
    }
    return config;
}

// c (32, 32) = [c +] Σ_q a(·, q) · b(q, ·); a in rows layout, pairs a multiple of 16.
template <typename Tiles>
void amx_pair_kernel(index pairs, const Bf16Pair* a, const Bf16Pair* b, float* c, index ldc, bool accumulate) {
    const index c_stride = ldc * index(sizeof(float)), a_stride = pairs * index(sizeof(Bf16Pair));
    constexpr index b_stride = AMX_NR * sizeof(Bf16Pair);
    float* c_bottom = c + 16 * ldc;
    if (accumulate) {
        Tiles::template load<0>(c, c_stride);
        Tiles::template load<1>(c + 16, c_stride);
        Tiles::template load<2>(c_bottom, c_stride);
        Tiles::template load<3>(c_bottom + 16, c_stride);
    } else {
        Tiles::template zero<0>();
        Tiles::template zero<1>();
        Tiles::template zero<2>();
        Tiles::template zero<3>();
    }
    const Bf16Pair* a_bottom = a + 16 * pairs;
    for (index q = 0; q < pairs; q += AMX_PAIRS) {
        Tiles::template load<4>(a + q, a_stride);
        Tiles::template load<5>(a_bottom + q, a_stride);
        Tiles::template load<6>(b + q * AMX_NR, b_stride);
        Tiles::template load<7>(b + q * AMX_NR + 16, b_stride);
        Tiles::template dot<0, 4, 6>();
        Tiles::template dot<1, 4, 7>();
        Tiles::template dot<2, 5, 6>();
        Tiles::template dot<3, 5, 7>();
    }
    Tiles::template store<0>(c, c_stride);
    Tiles::template store<1>(c + 16, c_stride);
    Tiles::template store<2>(c_bottom, c_stride);
    Tiles::template store<3>(c_bottom + 16, c_stride);
}

// Loads the tile configuration: called by the loop nest before each run of
// tiles (tile_loop), not once per thread, since other code on the same thread
// (oneDNN, in a process that also runs PyTorch) may release the tiles or load
// its own configuration between two of ours; LDTILECFG costs tens of cycles
// against the thousands of a block of tiles.
template <typename Tiles>
void amx_begin() {
    static const TileConfig config = amx_tile_config();
    Tiles::configure(config);
}

}  // namespace
}  // namespace bpfast
