// A register tile of the blocked GEMM, written once over an ISA's vector
// traits S (S::T, S::V, S::lanes; zero, load, store, broadcast, fmadd, add)
// and included by the ISA units that build micro-kernels from it (avx2.cpp,
// avx512.cpp), each compiling it with its own flags.
//
//   a is (k, ROWS) with row stride lda: A packed, each value broadcast
//   b is (k, NV·lanes) with row stride ldb: B packed, loaded a vector at a time
//   c is (ROWS, NV·lanes) with row stride ldc, overwritten or added to (accumulate)
//
// AHEAD > 0 asks for B's row AHEAD depth steps ahead of the one in use (0: the
// hardware prefetcher's guess alone). Each accumulator sums its depth steps in
// order from zero, so that every tile shape adds each value of C in the same
// order (the measured choice of kernel never changes a result's bits).
#pragma once

#include <immintrin.h>

#include "common.h"

namespace bpfast {
namespace {

template <typename S, int ROWS, int NV, int AHEAD>
void broadcast_tile(index k, const typename S::T* a, index lda, const typename S::T* b, index ldb,
                    typename S::T* c, index ldc, bool accumulate) {
    using V = typename S::V;
    constexpr int W = S::lanes;
    V acc[ROWS][NV];
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 4
        for (int h = 0; h < NV; ++h) acc[i][h] = S::zero();
    for (index p = 0; p < k; ++p, a += lda, b += ldb) {
        if constexpr (AHEAD > 0) {
#pragma GCC unroll 4
            for (int h = 0; h < NV; ++h)
                _mm_prefetch(reinterpret_cast<const char*>(b + AHEAD * ldb + h * W), _MM_HINT_T0);
        }
        V b_row[NV];
#pragma GCC unroll 4
        for (int h = 0; h < NV; ++h) b_row[h] = S::load(b + h * W);
#pragma GCC unroll 16
        for (int i = 0; i < ROWS; ++i) {
            const V a_i = S::broadcast(a + i);
#pragma GCC unroll 4
            for (int h = 0; h < NV; ++h) acc[i][h] = S::fmadd(a_i, b_row[h], acc[i][h]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
        typename S::T* row = c + i * ldc;
#pragma GCC unroll 4
        for (int h = 0; h < NV; ++h)
            S::store(row + h * W, accumulate ? S::add(S::load(row + h * W), acc[i][h]) : acc[i][h]);
    }
}

}  // namespace
}  // namespace bpfast
