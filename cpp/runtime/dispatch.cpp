// The registry of instruction sets, in priority order, one row each: its
// name, whether this CPU runs it, and its kernel table (kernels/isa/<name>.cpp).
// The first one the CPU supports (or the one BPFAST_ISA names) serves the
// whole process.
#include "runtime/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/kernel_table.h"
#include "runtime/amx_support.h"

namespace bpfast {

// Defined by the ISA units, each compiled with its own flags.
extern const IsaKernels generic_kernels, avx2_kernels, avx512_kernels, avx512_bf16_kernels, amx_kernels,
    amx_model_kernels, amx_model_bf16_packers_kernels;

namespace {

// kernels gives the float tables; bf16, when set, the bfloat16 kernel and
// probe (else kernels' own). A row that is not automatic runs only when
// BPFAST_ISA names it.
struct Isa {
    const char* name;
    bool (*cpu_supports)();
    const IsaKernels& kernels;
    const IsaKernels* bf16 = nullptr;
    bool automatic = true;
    const IsaKernels& bf16_kernels() const { return bf16 ? *bf16 : kernels; }
};

[[maybe_unused]] bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

[[maybe_unused]] bool cpu_has_avx512f() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();  // also checks that the OS saves the AVX-512 registers
    return __builtin_cpu_supports("avx512f") && cpu_has_avx2_fma();
#else
    return false;
#endif
}

[[maybe_unused]] bool cpu_has_avx512_bf16() {
#if defined(__x86_64__) || defined(__i386__)
    // (the bfloat16 units also use AVX512BW's word permutes)
    return cpu_has_avx512f() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

// (every CPU with AMX has AVX512_BF16, which the AMX unit's packers use)
[[maybe_unused]] bool cpu_runs_amx() { return cpu_has_avx512_bf16() && amx_support().usable; }

bool always() { return true; }

const Isa ISAS[] = {  // in priority order
#if BPFAST_HAVE_AVX512
    {"amx", &cpu_runs_amx, avx512_kernels, &amx_kernels},
    {"avx512_bf16", &cpu_has_avx512_bf16, avx512_kernels, &avx512_bf16_kernels},
    {"avx512", &cpu_has_avx512f, avx512_kernels},
#endif
#if BPFAST_HAVE_AVX2
    {"avx2", &cpu_has_avx2_fma, avx2_kernels},
#endif
    {"generic", &always, generic_kernels},
    {"amx_model", &always, generic_kernels, &amx_model_kernels, false},
#if BPFAST_HAVE_AVX512
    {"amx_model_bf16_packers", &cpu_has_avx512_bf16, avx512_kernels, &amx_model_bf16_packers_kernels, false},
#endif
};

const Isa& chosen_isa() {
    const char* forced = std::getenv("BPFAST_ISA");
    if (!forced || !*forced) {
        for (const Isa& isa : ISAS)
            if (isa.automatic && isa.cpu_supports()) return isa;
    }
    const std::string name(forced);
    std::string known;
    for (const Isa& isa : ISAS) {
        if (name == isa.name) {
            if (!isa.cpu_supports())
                throw std::runtime_error("BPFAST_ISA=" + name + " but this CPU lacks it" +
                                         (name == "amx" ? " (" + amx_support().why + ")" : std::string()));
            return isa;
        }
        known += (known.empty() ? "" : ", ") + std::string(isa.name);
    }
    throw std::runtime_error("BPFAST_ISA must be one of " + known + " on this build; got '" + name + "'");
}

// The row's float tables, with its bfloat16 unit's small-network kernels where it has them.
KernelTable<float> float_tables(const Isa& isa) {
    KernelTable<float> table = isa.kernels.f32();
    if (isa.bf16 && isa.bf16->small_net_f32) table.small_net = isa.bf16->small_net_f32();
    return table;
}

struct Registry {
    const Isa& isa = chosen_isa();
    KernelTable<float> f32 = float_tables(isa);
    KernelTable<double> f64 = isa.kernels.f64();
    PairMicroKernel bf16 = isa.bf16_kernels().bf16();
};

const Registry& registry() {
    static const Registry chosen;
    return chosen;
}

// The micro-kernel candidate in use per dtype (each call of gemm reads it once).
template <typename T>
std::atomic<std::size_t> micro_kernel_in_use{0};

template <typename T>
const KernelTable<T>& tables();
template <>
const KernelTable<float>& tables<float>() { return registry().f32; }
template <>
const KernelTable<double>& tables<double>() { return registry().f64; }

}  // namespace

const char* active_isa() { return registry().isa.name; }

std::vector<IsaSupport> isa_support() {
    std::vector<IsaSupport> table;
    for (const Isa& isa : ISAS) {
        FmaProbe probe = isa.kernels.probe;
        probe.bf16_flops_per_round = isa.bf16_kernels().probe.bf16_flops_per_round;
        probe.bf16 = isa.bf16_kernels().probe.bf16;
        table.push_back({isa.name, isa.cpu_supports(), probe});
    }
    return table;
}

const PairMicroKernel& active_pair_micro_kernel() { return registry().bf16; }
template <typename T>
const MicroKernel<T>& active_micro_kernel() {
    return tables<T>().micro_kernels[micro_kernel_in_use<T>.load(std::memory_order_relaxed)];
}
template <typename T>
const std::vector<MicroKernel<T>>& micro_kernel_candidates() { return tables<T>().micro_kernels; }
template <typename T>
void use_micro_kernel(std::size_t at) {
    if (at >= tables<T>().micro_kernels.size())
        throw std::out_of_range("no micro-kernel candidate " + std::to_string(at));
    micro_kernel_in_use<T>.store(at, std::memory_order_relaxed);
}
template <typename T>
const ActivationKernels<T>& active_activation_kernels() { return tables<T>().activation; }
template <typename T>
const CheckKernels<T>& active_check_kernels() { return tables<T>().check; }
template <typename T>
const OptimizerKernels<T>& active_optim_kernels() { return tables<T>().optim; }
template <typename T>
const SmallNetKernels<T>& active_small_net_kernels() { return tables<T>().small_net; }

#define BPFAST_INSTANTIATE(T)                                                     \
    template const MicroKernel<T>& active_micro_kernel<T>();                      \
    template const std::vector<MicroKernel<T>>& micro_kernel_candidates<T>();     \
    template void use_micro_kernel<T>(std::size_t);                               \
    template const ActivationKernels<T>& active_activation_kernels<T>();          \
    template const CheckKernels<T>& active_check_kernels<T>();                    \
    template const OptimizerKernels<T>& active_optim_kernels<T>();                \
    template const SmallNetKernels<T>& active_small_net_kernels<T>();
BPFAST_INSTANTIATE(float)
BPFAST_INSTANTIATE(double)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
