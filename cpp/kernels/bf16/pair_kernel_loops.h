// Register-tile kernels of the bfloat16 contract (pair_ukernel.h) in the
// broadcast layout, for any lane type. Internal linkage: each ISA unit
// instantiates them with its own flags.
//
// A lane type S has V (float32 lanes), Pairs (as many bfloat16 pairs),
// load_pairs, broadcast_pair, zero, load, store, add, and
//   dot(acc, a, b) = acc + a_odd·b_odd + a_even·b_even per lane
// (VDPBF16PS's order: the high halves first), each product exact.
#pragma once

#include "kernels/bf16/pair_ukernel.h"

namespace bpfast {
namespace {

// c (MR, NV*lanes) = [c +] Σ_q a(·, q) · b(q, ·), a in broadcast layout
template <typename S, int MR, int NV>
void pair_kernel(index pairs, const Bf16Pair* a, const Bf16Pair* b, float* c, index ldc, bool accumulate) {
    using V = typename S::V;
    using Pairs = typename S::Pairs;
    constexpr int W = S::lanes, NR = NV * W;
    V acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int h = 0; h < NV; ++h) acc[i][h] = S::zero();
    for (index q = 0; q < pairs; ++q, a += MR, b += NR) {
        Pairs b_row[NV];
#pragma GCC unroll 4
        for (int h = 0; h < NV; ++h) b_row[h] = S::load_pairs(b + h * W);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            const Pairs a_i = S::broadcast_pair(a[i]);
#pragma GCC unroll 4
            for (int h = 0; h < NV; ++h) acc[i][h] = S::dot(acc[i][h], a_i, b_row[h]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
        float* row = c + i * ldc;
#pragma GCC unroll 4
        for (int h = 0; h < NV; ++h)
            S::store(row + h * W, accumulate ? S::add(S::load(row + h * W), acc[i][h]) : acc[i][h]);
    }
}

// The portable kernel: plain C++ over an MR x NR tile, the same sums in the same order.
template <int MR, int NR>
void pair_kernel_portable(index pairs, const Bf16Pair* a, const Bf16Pair* b, float* c, index ldc, bool accumulate) {
    float acc[MR][NR] = {};
    for (index q = 0; q < pairs; ++q, a += MR, b += NR)
        for (int i = 0; i < MR; ++i) {
            const float a_even = pair_low(a[i]), a_odd = pair_high(a[i]);
            for (int j = 0; j < NR; ++j) {
                acc[i][j] += a_odd * pair_high(b[j]);
                acc[i][j] += a_even * pair_low(b[j]);
            }
        }
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

}  // namespace
}  // namespace bpfast
