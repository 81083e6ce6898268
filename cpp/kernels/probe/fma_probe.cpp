// Runs an ISA's FMA probe on the thread pool: one task per thread, all at once.
#include "kernels/probe/fma_probe.h"

#include <stdexcept>
#include <vector>

#include "runtime/dispatch.h"
#include "runtime/threads.h"

namespace bpfast {
namespace {

FmaProbe probe_of(const std::string& isa) {
    bool supported = false;
    FmaProbe probe;
    for (const IsaSupport& s : isa_support())
        if (isa == s.name) supported = s.supported, probe = s.probe;
    if (probe.lanes_f32 == 0 && probe.bf16 == nullptr)
        throw std::invalid_argument("no FMA probe for '" + isa + "' in this build (amx, avx512_bf16, avx512 or avx2)");
    if (!supported) throw std::invalid_argument("this CPU lacks " + isa);
    return probe;
}

}  // namespace

double run_fma_probe(const std::string& isa, ProbeKind kind, long rounds, int threads, double* checksum) {
    const FmaProbe probe = probe_of(isa);
    const bool f64 = kind == ProbeKind::f64, bf16 = kind == ProbeKind::bf16;
    if (bf16 ? probe.bf16 == nullptr : probe.lanes_f32 == 0)
        throw std::invalid_argument("'" + isa + "' has no " + (bf16 ? "bfloat16" : "float") + " probe in this build");
    if (rounds < 1) throw std::invalid_argument("rounds must be at least 1");
    if (threads < 1 || threads > get_num_threads())
        throw std::invalid_argument("threads must be between 1 and the pool's thread count");
    std::vector<double> sums(threads, 0.0);
    parallel_for(threads, [&](index t) {
        sums[t] = bf16 ? probe.bf16(rounds) : f64 ? probe.f64(rounds) : probe.f32(rounds);
    });
    double total = 0;
    for (double s : sums) total += s;
    *checksum = total;
    if (bf16) return probe.bf16_flops_per_round * static_cast<double>(rounds) * threads;
    const int lanes = f64 ? probe.lanes_f64 : probe.lanes_f32;
    return 2.0 * lanes * FMA_CHAINS * static_cast<double>(rounds) * threads;
}

}  // namespace bpfast
