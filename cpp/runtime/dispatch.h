// Which instruction set the kernels run on: chosen once per process, the
// first of runtime/dispatch.cpp's table that this CPU supports, unless
// BPFAST_ISA names one (generic, avx2 or avx512), so that tests can cover
// every path on one machine.
#pragma once

#include <vector>

#include "kernels/probe/fma_probe.h"

namespace bpfast {

// "avx512", "avx2" or "generic"; throws std::runtime_error for a bad BPFAST_ISA.
const char* active_isa();

// Every instruction set this build has kernels for, in priority order,
// whether this CPU supports it, and its FMA probe (lanes 0: none).
struct IsaSupport {
    const char* name;
    bool supported;
    FmaProbe probe;
};
std::vector<IsaSupport> isa_support();

}  // namespace bpfast
