// The FMA probe on 512-bit vectors; compiled with -mavx512f, called only when
// the CPU and the OS support AVX-512F (fma_probe.cpp checks).
#include <immintrin.h>

#include "kernels/probe/fma_probe.h"

namespace bpfast {
namespace {

struct F32 {
    using V = __m512;
    static V set1(double x) { return _mm512_set1_ps(static_cast<float>(x)); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static double sum(V v) {
        alignas(64) float lanes[16];
        _mm512_store_ps(lanes, v);
        double s = 0;
        for (float x : lanes) s += x;
        return s;
    }
};

struct F64 {
    using V = __m512d;
    static V set1(double x) { return _mm512_set1_pd(x); }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
    static double sum(V v) {
        alignas(64) double lanes[8];
        _mm512_store_pd(lanes, v);
        double s = 0;
        for (double x : lanes) s += x;
        return s;
    }
};

}  // namespace

FmaProbe fma_probe_avx512() { return {16, 8, &fma_chains<F32>, &fma_chains<F64>}; }

}  // namespace bpfast
