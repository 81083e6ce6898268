// The table of instruction sets, in priority order, each with every kernel
// family built for it; the first one the CPU supports (or the one BPFAST_ISA
// names) serves the whole process.
#include "runtime/dispatch.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/elementwise/activation_kernels.h"
#include "kernels/elementwise/check_kernels.h"
#include "kernels/elementwise/optim_kernels.h"
#include "kernels/gemm/ukernel.h"
#include "kernels/small_net/small_net.h"

namespace bpfast {
namespace {

// Every kernel family of one instruction set, in both dtypes.
template <typename T>
struct KernelTables {
    MicroKernel<T> gemm;
    ActivationKernels<T> activation;
    CheckKernels<T> check;
    OptimizerKernels<T> optim;
    SmallNetKernels<T> small_net;  // lanes 0: none on this ISA
};

struct Isa {
    const char* name;
    bool (*cpu_supports)();
    KernelTables<float> (*f32)();
    KernelTables<double> (*f64)();
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

bool always() { return true; }

const Isa ISAS[] = {  // in priority order
#if BPFAST_HAVE_AVX512
    {"avx512", &cpu_has_avx512f,
     [] { return KernelTables<float>{ukernel_avx512_f32(), activation_kernels_avx512_f32(),
                                     check_kernels_avx512_f32(), optim_kernels_avx512_f32(),
                                     small_net_kernels_avx512_f32()}; },
     [] { return KernelTables<double>{ukernel_avx512_f64(), activation_kernels_avx512_f64(),
                                      check_kernels_avx512_f64(), optim_kernels_avx512_f64(),
                                      small_net_kernels_avx512_f64()}; }},
#endif
#if BPFAST_HAVE_AVX2
    {"avx2", &cpu_has_avx2_fma,
     [] { return KernelTables<float>{ukernel_avx2_f32(), activation_kernels_avx2_f32(), check_kernels_avx2_f32(),
                                     optim_kernels_avx2_f32(), small_net_kernels_avx2_f32()}; },
     [] { return KernelTables<double>{ukernel_avx2_f64(), activation_kernels_avx2_f64(), check_kernels_avx2_f64(),
                                      optim_kernels_avx2_f64(), small_net_kernels_avx2_f64()}; }},
#endif
    {"generic", &always,
     [] { return KernelTables<float>{ukernel_generic_f32(), activation_kernels_generic_f32(),
                                     check_kernels_generic_f32(), optim_kernels_generic_f32(), {}}; },
     [] { return KernelTables<double>{ukernel_generic_f64(), activation_kernels_generic_f64(),
                                      check_kernels_generic_f64(), optim_kernels_generic_f64(), {}}; }},
};

const Isa& chosen_isa() {
    const char* forced = std::getenv("BPFAST_ISA");
    if (!forced || !*forced) {
        for (const Isa& isa : ISAS)
            if (isa.cpu_supports()) return isa;
    }
    const std::string name(forced);
    std::string known;
    for (const Isa& isa : ISAS) {
        if (name == isa.name) {
            if (!isa.cpu_supports())
                throw std::runtime_error("BPFAST_ISA=" + name + " but this CPU lacks it");
            return isa;
        }
        known += (known.empty() ? "" : ", ") + std::string(isa.name);
    }
    throw std::runtime_error("BPFAST_ISA must be one of " + known + " on this build; got '" + name + "'");
}

struct Registry {
    const Isa& isa = chosen_isa();
    KernelTables<float> f32 = isa.f32();
    KernelTables<double> f64 = isa.f64();
};

const Registry& registry() {
    static const Registry chosen;
    return chosen;
}

template <typename T>
const KernelTables<T>& tables();
template <>
const KernelTables<float>& tables<float>() { return registry().f32; }
template <>
const KernelTables<double>& tables<double>() { return registry().f64; }

}  // namespace

const char* active_isa() { return registry().isa.name; }

std::vector<IsaSupport> isa_support() {
    std::vector<IsaSupport> table;
    for (const Isa& isa : ISAS) table.push_back({isa.name, isa.cpu_supports()});
    return table;
}

template <typename T>
const MicroKernel<T>& active_micro_kernel() { return tables<T>().gemm; }
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
    template const ActivationKernels<T>& active_activation_kernels<T>();          \
    template const CheckKernels<T>& active_check_kernels<T>();                    \
    template const OptimizerKernels<T>& active_optim_kernels<T>();                \
    template const SmallNetKernels<T>& active_small_net_kernels<T>();
BPFAST_INSTANTIATE(float)
BPFAST_INSTANTIATE(double)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
