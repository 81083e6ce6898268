// Packers that round float32 to bfloat16 pairs (pair_ukernel.h), written as
// plain loops over the two source shapes the GEMM sees: depth contiguous
// (a row of X or W read along its inputs) or lines contiguous (rows of δ or
// X read across). Internal linkage: each ISA unit includes it and compiles
// the loops with its own flags.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/bf16/pair_ukernel.h"

namespace bpfast {
namespace {

constexpr index PAIR_BLOCK = 16;  // pairs of a line rounded at a time (a row of 32 floats)

// The pairs (line[2q], line[2q+1]) for q in [0, n), n <= PAIR_BLOCK, of a
// line whose depths are contiguous: each float rounded as bits
// (rounded_bfloat16_bits, to_bfloat16's rule), then the two top halves of
// each 64-bit word joined, in loops the compiler vectorises.
inline void round_line_pairs(const float* line, index n, Bf16Pair* out) {
    std::uint32_t bits[2 * PAIR_BLOCK];
    std::memcpy(bits, line, sizeof(float) * 2 * n);
    for (index i = 0; i < 2 * n; ++i) bits[i] = rounded_bfloat16_bits(bits[i]);
    for (index q = 0; q < n; ++q) out[q] = (bits[2 * q] >> 16) | (bits[2 * q + 1] & 0xffff0000u);
}

// panel[q*W + x] = pair (src(x, 2q), src(x, 2q+1)): broadcast layout.
template <int W>
void pack_pairs_broadcast(const PanelSource& src, index live, index depth, index pairs, Bf16Pair* panel) {
    const index whole = depth / 2;  // pairs with both depths inside
    if (src.x_stride == 1 && live == W) {
        // lines contiguous: two source rows give one row of pairs
        for (index q = 0; q < whole; ++q) {
            const float* even = src.data + 2 * q * src.depth_stride;
            const float* odd = even + src.depth_stride;
            Bf16Pair* out = panel + q * W;
            for (int x = 0; x < W; ++x) out[x] = bf16_pair(even[x], odd[x]);
        }
    } else if (src.depth_stride == 1) {
        // depths contiguous (a row of W in X·Wᵀ): round a block of pairs per line, then store them across
        for (index q0 = 0; q0 < whole; q0 += PAIR_BLOCK) {
            const index n = std::min(PAIR_BLOCK, whole - q0);
            Bf16Pair block[W][PAIR_BLOCK];
            for (index x = 0; x < live; ++x) round_line_pairs(src.data + x * src.x_stride + 2 * q0, n, block[x]);
            for (index q = 0; q < n; ++q) {
                Bf16Pair* out = panel + (q0 + q) * W;
                for (index x = 0; x < live; ++x) out[x] = block[x][q];
                for (index x = live; x < W; ++x) out[x] = 0;
            }
        }
    } else {
        for (index x = 0; x < live; ++x) {
            const float* line = src.data + x * src.x_stride;
            for (index q = 0; q < whole; ++q)
                panel[q * W + x] = bf16_pair(line[2 * q * src.depth_stride], line[(2 * q + 1) * src.depth_stride]);
        }
        for (index q = 0; q < whole; ++q)
            for (index x = live; x < W; ++x) panel[q * W + x] = 0;
    }
    for (index q = whole; q < pairs; ++q)
        for (index x = 0; x < W; ++x) {
            const bool odd_tail = 2 * q < depth && x < live;  // depth is odd: this pair's high half is padding
            panel[q * W + x] = odd_tail ? bf16_pair(src.data[x * src.x_stride + 2 * q * src.depth_stride], 0.0f) : 0;
        }
}

// panel[x*pairs + q] = pair (src(x, 2q), src(x, 2q+1)): rows layout.
template <int W>
void pack_pairs_rows(const PanelSource& src, index live, index depth, index pairs, Bf16Pair* panel) {
    const index whole = depth / 2;
    for (index x = 0; x < W; ++x) {
        Bf16Pair* out = panel + x * pairs;
        if (x >= live) {
            std::fill(out, out + pairs, Bf16Pair(0));
            continue;
        }
        const float* line = src.data + x * src.x_stride;
        if (src.depth_stride == 1)
            for (index q0 = 0; q0 < whole; q0 += PAIR_BLOCK)
                round_line_pairs(line + 2 * q0, std::min(PAIR_BLOCK, whole - q0), out + q0);
        else
            for (index q = 0; q < whole; ++q)
                out[q] = bf16_pair(line[2 * q * src.depth_stride], line[(2 * q + 1) * src.depth_stride]);
        index q = whole;
        if (2 * q < depth) out[q++] = bf16_pair(line[2 * whole * src.depth_stride], 0.0f);
        std::fill(out + q, out + pairs, Bf16Pair(0));
    }
}

}  // namespace
}  // namespace bpfast
