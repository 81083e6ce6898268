// The FMA probe on 256-bit vectors; compiled with -mavx2 -mfma, called only
// when the CPU has them (fma_probe.cpp checks).
#include <immintrin.h>

#include "kernels/probe/fma_probe.h"

namespace bpfast {
namespace {

struct F32 {
    using V = __m256;
    static V set1(double x) { return _mm256_set1_ps(static_cast<float>(x)); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static double sum(V v) {
        alignas(32) float lanes[8];
        _mm256_store_ps(lanes, v);
        double s = 0;
        for (float x : lanes) s += x;
        return s;
    }
};

struct F64 {
    using V = __m256d;
    static V set1(double x) { return _mm256_set1_pd(x); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
    static double sum(V v) {
        alignas(32) double lanes[4];
        _mm256_store_pd(lanes, v);
        return lanes[0] + lanes[1] + lanes[2] + lanes[3];
    }
};

}  // namespace

FmaProbe fma_probe_avx2() { return {8, 4, &fma_chains<F32>, &fma_chains<F64>}; }

}  // namespace bpfast
