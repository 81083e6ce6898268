// Whether this process may run AMX's bfloat16 tiles, found once: the CPU
// reports AMX-TILE and AMX-BF16 (CPUID leaf 7), the OS saves the tile state
// (XCR0 bits 17 and 18), and Linux grants this process the tile data
// (arch_prctl ARCH_REQ_XCOMP_PERM). When one is missing, `why` says which,
// for show_config.
#pragma once

#include <string>

namespace bpfast {

struct AmxSupport {
    bool usable = false;
    std::string why;  // empty when usable
};

const AmxSupport& amx_support();

}  // namespace bpfast
