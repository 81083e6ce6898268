#include "runtime/amx_support.h"

#include <cerrno>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace bpfast {
namespace {

#if defined(__x86_64__)
constexpr unsigned AMX_BF16_BIT = 1u << 22, AMX_TILE_BIT = 1u << 24;  // CPUID.(7,0):EDX
constexpr unsigned long long XTILE_STATE = (1ull << 17) | (1ull << 18);  // XTILECFG and XTILEDATA in XCR0
constexpr int ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;

unsigned long long xcr0() {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<unsigned long long>(hi) << 32) | lo;
}

AmxSupport find() {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || (edx & (AMX_BF16_BIT | AMX_TILE_BIT)) != (AMX_BF16_BIT | AMX_TILE_BIT))
        return {false, "the CPU reports no AMX-BF16"};
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & bit_OSXSAVE))
        return {false, "the OS has not enabled XSAVE"};
    if ((xcr0() & XTILE_STATE) != XTILE_STATE) return {false, "the OS does not save the AMX tile state (XCR0)"};
#if defined(__linux__)
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        return {false, std::string("Linux refused the AMX tile data permission (arch_prctl ARCH_REQ_XCOMP_PERM: ") +
                           std::strerror(errno) + ")"};
    return {true, ""};
#else
    return {false, "AMX is only asked for on Linux"};
#endif
}
#else
AmxSupport find() { return {false, "not an x86-64 CPU"}; }
#endif

}  // namespace

const AmxSupport& amx_support() {
    static const AmxSupport found = find();
    return found;
}

}  // namespace bpfast
