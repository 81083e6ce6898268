// Products and sums of sizes that size a buffer, checked: an architecture or
// a batch too large for the core is refused with std::length_error (a
// ValueError in Python) instead of a count that wraps around and a buffer
// too small for what is written into it.
#pragma once

#include <stdexcept>
#include <string>

#include "common.h"

namespace bpfast {

// The most values any one buffer of the core may hold: 2^48 (2 PiB of
// float64), far above any memory, and low enough that a count of values
// times 8 bytes, or times a few buffers, never overflows.
constexpr index MAX_VALUES = index(1) << 48;

// a·b, or std::length_error saying `what` when it exceeds MAX_VALUES.
inline index checked_product(index a, index b, const char* what) {
    index result;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &result) || result > MAX_VALUES)
        throw std::length_error(std::string(what) + " would hold more than 2^48 values");
    return result;
}

// a + b, likewise.
inline index checked_sum(index a, index b, const char* what) {
    index result;
    if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &result) || result > MAX_VALUES)
        throw std::length_error(std::string(what) + " would hold more than 2^48 values");
    return result;
}

}  // namespace bpfast
