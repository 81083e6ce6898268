#include "kernels/gemm/blocking.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/bf16/pair_ukernel.h"
#include "kernels/gemm/ukernel.h"

namespace bpfast {
namespace {

// What a cache the OS does not describe is taken to be.
constexpr long FALLBACK_L2 = 512L << 10;
constexpr long FALLBACK_L3_PER_CPU = 2L << 20;

// Ceilings measured on a Zen 4 core (BENCHMARKS.md, "GEMM blocks from the
// caches"): depths past 512 gained nothing (the C tile's load and store are
// already under 1% of a block's work), and more rows than 72 per A block
// gained nothing either, while the rows of a block are also the unit the
// threads share out and the bound of the skinny path.
constexpr index KC_MAX = 512;
constexpr index MC_MAX = 72;
constexpr index NC_MAX = 8192;

constexpr index round_down(index n, index step) { return n / step * step; }
constexpr index round_up(index n, index step) { return (n + step - 1) / step * step; }

// Forced blocks may not ask for more packing room than this (values of the A
// block, mc x kc, and of the B block, kc x nc): 16 and 64 MiB of float32.
constexpr long long MAX_A_BLOCK_VALUES = 1LL << 22;
constexpr long long MAX_B_BLOCK_VALUES = 1LL << 24;

// "mc,kc,nc" as three positive integers; throws std::invalid_argument naming the variable.
GemmBlocking parse_blocks(const char* text) {
    const std::string what = std::string("BPFAST_GEMM_BLOCKS must be three positive integers \"mc,kc,nc\"; got '") +
                             text + "'";
    index values[3];
    const char* p = text;
    for (int i = 0; i < 3; ++i) {
        char* end = nullptr;
        const long long v = std::strtoll(p, &end, 10);
        if (end == p || v <= 0 || v > (1 << 20)) throw std::invalid_argument(what);
        values[i] = static_cast<index>(v);
        p = end;
        if (i < 2) {
            if (*p != ',') throw std::invalid_argument(what);
            ++p;
        }
    }
    if (*p != '\0') throw std::invalid_argument(what);
    if (static_cast<long long>(values[0]) * values[1] > MAX_A_BLOCK_VALUES ||
        static_cast<long long>(values[1]) * values[2] > MAX_B_BLOCK_VALUES)
        throw std::invalid_argument("BPFAST_GEMM_BLOCKS asks for blocks too large to pack: mc*kc must be at most " +
                                    std::to_string(MAX_A_BLOCK_VALUES) + " and kc*nc at most " +
                                    std::to_string(MAX_B_BLOCK_VALUES) + " values; got '" + text + "'");
    return {values[0], values[1], values[2]};
}

// The blocks of kernel, one of the candidates of T: mc and nc fit its tile,
// while kc, which fixes the order of every sum (a depth block is summed, then
// added to C), comes from the ISA's first candidate whichever kernel runs, so
// that every candidate gives the same bits.
template <typename T>
GemmBlocking choose(const MicroKernel<T>& kernel) {
    const MicroKernel<T>& first = micro_kernel_candidates<T>().front();
    const std::string& forced = gemm_blocks_forced();
    if (!forced.empty()) {
        const GemmBlocking b = parse_blocks(forced.c_str());
        return {round_up(b.mc, kernel.mr), b.kc, round_up(b.nc, kernel.nr)};
    }
    const CacheSizes caches = cache_sizes();
    const index kc = blocking_for(caches, first.mr, first.nr, int(sizeof(T))).kc;
    return blocks_for_depth(caches, kc, kernel.mr, kernel.nr, int(sizeof(T)));
}

}  // namespace

GemmBlocking blocking_for(const CacheSizes& caches, int mr, int nr, int value_bytes) {
    const long l2 = caches.l2 > 0 ? caches.l2 : FALLBACK_L2;
    // kc: the A block (MC_MAX x kc) and two B panels (kc x nr: the one in use
    // and the next) within half of L2, the rest of L2 left to C's lines and
    // the B block passing through. (One B panel fills L1 at kc = L1d / (nr *
    // value_bytes), 256 on a 32 KiB L1d; deeper panels spill to L2, and the
    // measured products were as fast or faster up to 512, so L2 is the bound.)
    const index per_depth = (MC_MAX + 2 * index(nr)) * value_bytes;
    const index kc = std::clamp<index>(round_down(l2 / 2 / per_depth, 64), 64, KC_MAX);
    return blocks_for_depth(caches, kc, mr, nr, value_bytes);
}

GemmBlocking blocks_for_depth(const CacheSizes& caches, index kc, int mr, int nr, int value_bytes) {
    const long l2 = caches.l2 > 0 ? caches.l2 : FALLBACK_L2;
    const long l3_per_cpu = caches.l3 > 0 ? caches.l3 / std::max(1, caches.l3_cpus) : FALLBACK_L3_PER_CPU;
    // mc: the A block (mc x kc) within half of L2
    const index mc = std::clamp<index>(round_down(l2 / 2 / (kc * value_bytes), mr), mr, round_down(MC_MAX, mr));
    // nc: the B block (kc x nc) within half of this core's share of L3
    const index nc = std::clamp<index>(round_down(l3_per_cpu / 2 / (kc * value_bytes), nr), 4 * index(nr),
                                       round_down(NC_MAX, nr));
    return {mc, kc, nc};
}

const std::string& gemm_blocks_forced() {
    static const std::string text = [] {
        const char* value = std::getenv("BPFAST_GEMM_BLOCKS");
        return std::string(value ? value : "");
    }();
    return text;
}

template <typename T>
const GemmBlocking& gemm_blocking(const MicroKernel<T>& kernel) {
    // one per candidate, made at the first call (a malformed BPFAST_GEMM_BLOCKS throws then)
    static const std::vector<GemmBlocking> per_candidate = [] {
        std::vector<GemmBlocking> blocks;
        for (const MicroKernel<T>& candidate : micro_kernel_candidates<T>()) blocks.push_back(choose(candidate));
        return blocks;
    }();
    const std::vector<MicroKernel<T>>& candidates = micro_kernel_candidates<T>();
    for (size_t at = 0; at < candidates.size(); ++at)
        if (&candidates[at] == &kernel) return per_candidate[at];
    throw std::invalid_argument(std::string("gemm_blocking: ") + kernel.name + " is not a candidate of this ISA");
}

template <typename T>
const GemmBlocking& gemm_blocking() {
    return gemm_blocking<T>(active_micro_kernel<T>());
}

const GemmBlocking& pair_gemm_blocking() {
    static const GemmBlocking chosen = [] {
        const PairMicroKernel& kernel = active_pair_micro_kernel();
        const std::string& forced = gemm_blocks_forced();
        // depths in pairs of 4 bytes, so the float32 rule applies as it is
        GemmBlocking b = forced.empty() ? blocking_for(cache_sizes(), kernel.mr, kernel.nr, 4) : parse_blocks(forced.c_str());
        if (!forced.empty()) b.kc = (b.kc + 1) / 2;
        const index multiple = kernel.pairs_multiple;
        return GemmBlocking{round_up(b.mc, kernel.mr), std::max(multiple, b.kc / multiple * multiple),
                            round_up(b.nc, kernel.nr)};
    }();
    return chosen;
}

template const GemmBlocking& gemm_blocking<float>();
template const GemmBlocking& gemm_blocking<double>();
template const GemmBlocking& gemm_blocking<float>(const MicroKernel<float>&);
template const GemmBlocking& gemm_blocking<double>(const MicroKernel<double>&);

}  // namespace bpfast
