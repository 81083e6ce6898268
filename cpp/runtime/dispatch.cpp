// Chooses the micro-kernels, elementwise and small-network kernels once per
// process: the best ones this CPU supports, unless BPFAST_ISA names one
// (generic|avx2|avx512), so that tests can cover each path.
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/elementwise/elementwise.h"
#include "kernels/small_net/small_net.h"
#include "kernels/gemm/ukernel.h"

namespace bpfast {
namespace {

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

bool cpu_has_avx512f() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();  // also checks that the OS saves the AVX-512 registers
    return __builtin_cpu_supports("avx512f") && cpu_has_avx2_fma();
#else
    return false;
#endif
}

std::string chosen_isa() {
    const char* forced = std::getenv("BPFAST_ISA");
    const bool avx2 = BPFAST_HAVE_AVX2 && cpu_has_avx2_fma();
    const bool avx512 = BPFAST_HAVE_AVX512 && cpu_has_avx512f();
    if (forced && *forced) {
        const std::string name(forced);
        if (name == "generic") return name;
        if (name == "avx2") {
            if (!avx2) throw std::runtime_error("BPFAST_ISA=avx2 but this CPU or build lacks AVX2/FMA");
            return name;
        }
        if (name == "avx512") {
            if (!avx512) throw std::runtime_error("BPFAST_ISA=avx512 but this CPU or build lacks AVX-512F");
            return name;
        }
        throw std::runtime_error("BPFAST_ISA must be generic, avx2 or avx512; got '" + name + "'");
    }
    return avx512 ? "avx512" : avx2 ? "avx2" : "generic";
}

struct Registry {
    std::string isa;
    MicroKernel<float> f32;
    MicroKernel<double> f64;
    ElementwiseKernels elementwise;
    SmallNetKernels<float> small_f32;    // none on the portable path
    SmallNetKernels<double> small_f64;
    Registry() : isa(chosen_isa()) {
#if BPFAST_HAVE_AVX512
        if (isa == "avx512") {
            f32 = ukernel_avx512_f32();
            f64 = ukernel_avx512_f64();
            elementwise = elementwise_avx512();
            small_f32 = small_net_avx512_f32();
            small_f64 = small_net_avx512_f64();
            return;
        }
#endif
#if BPFAST_HAVE_AVX2
        if (isa == "avx2") {
            f32 = ukernel_avx2_f32();
            f64 = ukernel_avx2_f64();
            elementwise = elementwise_avx2();
            small_f32 = small_net_avx2_f32();
            small_f64 = small_net_avx2_f64();
            return;
        }
#endif
        f32 = ukernel_generic_f32();
        f64 = ukernel_generic_f64();
        elementwise = elementwise_generic();
    }
};

const Registry& registry() {
    static const Registry chosen;
    return chosen;
}

}  // namespace

const MicroKernel<float>& active_ukernel_f32() { return registry().f32; }
const MicroKernel<double>& active_ukernel_f64() { return registry().f64; }
const char* active_isa() { return registry().isa.c_str(); }
const ElementwiseKernels& active_elementwise() { return registry().elementwise; }
const SmallNetKernels<float>& active_small_net_f32() { return registry().small_f32; }
const SmallNetKernels<double>& active_small_net_f64() { return registry().small_f64; }

}  // namespace bpfast
