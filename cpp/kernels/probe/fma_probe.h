// The FMA peak probe: how many floating-point operations per second one core
// (or several) can do at best, as a yardstick for the GEMM and training-step
// figures of the benchmark suite. Not used by the kernels.
//
// Each ISA's unit (kernels/isa/) runs FMA_CHAINS independent chains acc = acc·a + b on full
// vectors held in registers: no loads, no stores, enough chains to cover the
// FMA latency on every port. One round is FMA_CHAINS vector FMAs, that is
// 2·lanes·FMA_CHAINS flops.
#pragma once

#include <string>

namespace bpfast {

constexpr int FMA_CHAINS = 12;

// One ISA's probe: rounds -> a sum over the chains (so that the work is kept);
// lanes 0 where the ISA has none.
// A bfloat16 probe (VDPBF16PS chains, AMX tiles) reports its own flops per round.
struct FmaProbe {
    int lanes_f32 = 0, lanes_f64 = 0;
    double (*f32)(long rounds) = nullptr;
    double (*f64)(long rounds) = nullptr;
    double bf16_flops_per_round = 0;
    double (*bf16)(long rounds) = nullptr;
};

// Runs the probe of `isa` ("avx512", "avx2"; for bf16 also "avx512_bf16" or "amx") in `threads` tasks at once on
// the thread pool (which must have that many threads), `rounds` rounds each.
// Returns the flops done; *checksum gets the chains' sum. Throws
// std::invalid_argument for an ISA this build or this CPU lacks.
enum class ProbeKind { f32, f64, bf16 };
double run_fma_probe(const std::string& isa, ProbeKind kind, long rounds, int threads, double* checksum);

// The loop each ISA unit with a probe instantiates with its vector type S
// (T, lanes, set1, fmadd, store: the micro-kernel's lane type).
template <typename S>
double fma_chains(long rounds) {
    // acc is FMA_CHAINS vectors; a, b are constants: acc converges to b / (1 − a) = 1, never denormal
    using V = typename S::V;
    V acc[FMA_CHAINS];
    for (int j = 0; j < FMA_CHAINS; ++j) acc[j] = S::set1(0.5 + 0.01 * j);
    const V a = S::set1(0.999), b = S::set1(0.001);
    for (long i = 0; i < rounds; ++i) {
#pragma GCC unroll 16
        for (int j = 0; j < FMA_CHAINS; ++j) acc[j] = S::fmadd(acc[j], a, b);
    }
    double total = 0;
    for (int j = 0; j < FMA_CHAINS; ++j) {
        typename S::T lanes[S::lanes];
        S::store(lanes, acc[j]);
        double sum = 0;
        for (int k = 0; k < S::lanes; ++k) sum += lanes[k];
        total += sum;
    }
    return total;
}

}  // namespace bpfast
