// bfloat16: the top half of a float32 (sign, 8-bit exponent, 7 stored
// significand bits). A product of two bfloat16 values is exact in float32
// (8 + 8 significand bits), so bfloat16 GEMMs multiply exactly and only their
// float32 sums round.
//
// The GEMM reads its bfloat16 operands two depths at a time (what VDPBF16PS
// and AMX's TDPBF16PS take): a Bf16Pair holds A(i, 2q) or B(2q, j) in its low
// half and the next depth, 2q + 1, in its high half.
#pragma once

#include <cstdint>
#include <cstring>

namespace bpfast {

using Bf16Pair = std::uint32_t;

// Internal linkage: the units compiled with AVX-512 or AMX flags include these
// too, and an out-of-line copy of theirs must never serve a portable caller.
namespace {

inline std::uint32_t float_bits(float x) {
    std::uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
}

inline float float_of_bits(std::uint32_t u) {
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

// x rounded to the nearest bfloat16, ties to even, as VCVTNE2PS2BF16 does
// it: a NaN stays a (quiet) NaN, ±Inf stays ±Inf, a finite value past the
// largest bfloat16 rounds to ±Inf, and a denormal float32 becomes a zero of
// its sign (the instruction reads denormal inputs as zero), so that every
// path rounds a value to the same bits.
inline std::uint16_t to_bfloat16(float x) {
    const std::uint32_t u = float_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
    if ((u & 0x7f800000u) == 0) return static_cast<std::uint16_t>((u >> 16) & 0x8000u);
    return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// The bits of x rounded to bfloat16 (to_bfloat16's rule, NaN included), as
// a float32 whose low 16 bits are zero: a select, not a branch, so that loops
// over it vectorise.
inline std::uint32_t rounded_bfloat16_bits(std::uint32_t u) {
    const std::uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    const std::uint32_t quiet_nan = (u | 0x00400000u) & 0xffff0000u;
    const std::uint32_t signed_zero = u & 0x80000000u;
    const std::uint32_t finite = (u & 0x7f800000u) == 0 ? signed_zero : rounded;
    return (u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : finite;
}

// values[0, n) rounded to bfloat16 in place (each stays a float32, on the bfloat16 grid).
inline void round_to_bfloat16_in_place(float* values, std::ptrdiff_t n) {
    for (std::ptrdiff_t i = 0; i < n; ++i) {
        std::uint32_t u;
        std::memcpy(&u, values + i, sizeof u);
        u = rounded_bfloat16_bits(u);
        std::memcpy(values + i, &u, sizeof u);
    }
}

inline float from_bfloat16(std::uint16_t h) { return float_of_bits(std::uint32_t(h) << 16); }

// The pair (even, odd) of two depths, each rounded.
inline Bf16Pair bf16_pair(float even, float odd) {
    return std::uint32_t(to_bfloat16(even)) | std::uint32_t(to_bfloat16(odd)) << 16;
}

// The two halves of a pair as floats (exact).
inline float pair_low(Bf16Pair p) { return float_of_bits(p << 16); }
inline float pair_high(Bf16Pair p) { return float_of_bits(p & 0xffff0000u); }

}  // namespace
}  // namespace bpfast
