// The parts of pair_kernel_loops.h's lane types that do not depend on how a
// pair is multiplied: float32 accumulators and 32-bit pairs in 512-bit
// (Pairs512) or 256-bit (Pairs256) vectors. Each ISA unit derives its lane
// type and adds dot. Include only from a unit compiled with -mavx512f
// (Pairs512) or -mavx2 (Pairs256); internal linkage, as pack_x86.h.
#pragma once

#include <immintrin.h>

#include "kernels/bf16/bfloat16.h"

namespace bpfast {
namespace x86 {
namespace {

#ifdef __AVX512F__
struct Pairs512 {
    using V = __m512;
    using Pairs = __m512i;
    static constexpr int lanes = 16;
    static V zero() { return _mm512_setzero_ps(); }
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static Pairs load_pairs(const Bf16Pair* p) { return _mm512_loadu_si512(p); }
    static Pairs broadcast_pair(Bf16Pair p) { return _mm512_set1_epi32(static_cast<int>(p)); }
};
#endif

struct Pairs256 {
    using V = __m256;
    using Pairs = __m256i;
    static constexpr int lanes = 8;
    static V zero() { return _mm256_setzero_ps(); }
    static V load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static Pairs load_pairs(const Bf16Pair* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static Pairs broadcast_pair(Bf16Pair p) { return _mm256_set1_epi32(static_cast<int>(p)); }
};

}  // namespace
}  // namespace x86
}  // namespace bpfast
