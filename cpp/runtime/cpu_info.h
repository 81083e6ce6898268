// What the CPU and the build report about themselves, for show_config and
// bug reports: cache sizes (as the OS reports them) and the compiler and
// flags the extension was built with.
#pragma once

namespace bpfast {

// Bytes of L1 data, L2 and L3 cache as Linux describes those of CPU 0 (sysconf
// elsewhere); 0 where the OS does not say. l3_cpus: how many CPUs share that
// L3 (0 where the OS does not say).
struct CacheSizes {
    long l1d, l2, l3;
    int l3_cpus = 0;
};
CacheSizes cache_sizes();

// Compiler, its version, build type and the C++ flags common to every file
// (the per-ISA files add -mavx2 -mfma or -mavx512f on top).
struct BuildInfo {
    const char* compiler;
    const char* build_type;
    const char* cxx_flags;
};
BuildInfo build_info();

}  // namespace bpfast
