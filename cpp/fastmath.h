// exp, sigmoid and tanh for float written without branches, so that loops
// over arrays vectorise (libm's expf and tanhf are scalar calls, ~20x slower).
// Accurate to a few float ulps, well inside float32's 1e-5 test tolerance.
// The double versions are libm's: float64 users ask for full precision.
//
// Every function here is `static`: each translation unit gets its own copy,
// compiled with that unit's flags. Inline functions with external linkage
// would let the linker keep the AVX2 unit's copy for the portable units too.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace bpfast {

// condition ? a : b with bit masks: GCC does not if-convert a chain of float
// selects (it reports "control flow in loop"), but it vectorises this.
static inline float select(bool condition, float a, float b) {
    const std::uint32_t mask = 0u - std::uint32_t(condition);
    std::uint32_t ia, ib;
    std::memcpy(&ia, &a, sizeof ia);
    std::memcpy(&ib, &b, sizeof ib);
    const std::uint32_t bits = (ia & mask) | (ib & ~mask);
    float out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
}

static inline double select(bool condition, double a, double b) {
    const std::uint64_t mask = 0u - std::uint64_t(condition);
    std::uint64_t ia, ib;
    std::memcpy(&ia, &a, sizeof ia);
    std::memcpy(&ib, &b, sizeof ib);
    const std::uint64_t bits = (ia & mask) | (ib & ~mask);
    double out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
}

// exp(x) = 2^n · exp(r) with n = round(x·log2 e) and r = x − n·ln 2, |r| ≤ ln2/2.
// x is clamped to [-87.3, 88.3], so the result stays a normal float: exp of
// very negative x gives ~1e-38 instead of a denormal or 0, exp of large x ~2e38.
static inline float exp_fast(float x) {
    x = select(x < -87.3f, -87.3f, x);
    x = select(x > 88.3f, 88.3f, x);
    const float round_magic = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
    const float n = (x * 1.44269504f + round_magic) - round_magic;
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;  // ln 2 split in two (Cody–Waite)
    // Taylor series of exp(r) to r^7; the remainder is below 6e-9 for |r| ≤ ln2/2.
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;  // 2^n
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline double exp_fast(double x) { return std::exp(x); }

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

static inline double sigmoid(double x) {
    // Split by sign so that exp never overflows.
    if (x >= 0.0) return 1.0 / (1.0 + std::exp(-x));
    const double e = std::exp(x);
    return e / (1.0 + e);
}

// tanh |x| = 1 − 2/(exp(2|x|) + 1), or its odd Taylor series near 0 where
// that difference would cancel; the sign is put back at the end.
static inline float tanh_fast(float x) {
    const float a = std::fabs(x);
    const float a2 = a * a;
    const float series = a * (1.0f + a2 * (-1.0f / 3.0f + a2 * (2.0f / 15.0f + a2 * (-17.0f / 315.0f))));
    const float far = 1.0f - 2.0f / (exp_fast(2.0f * a) + 1.0f);
    return std::copysign(select(a < 0.0625f, series, far), x);
}

static inline double tanh_fast(double x) { return std::tanh(x); }

}  // namespace bpfast
