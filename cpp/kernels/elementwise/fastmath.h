// exp, sigmoid and tanh written without branches, so that loops over arrays
// vectorise (libm's exp and tanh are scalar calls the compiler cannot). The float
// versions are accurate to a few float ulps; the double versions to a few
// double ulps (relative error near 1e-15), as float64 users expect.
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

// GCC's builtins rather than <cmath>'s float overloads: those are inline
// functions with external linkage, and a copy emitted (say at -O0) in a unit
// built for AVX-512 could be the one the linker keeps for everyone.
static inline float square_root(float x) { return __builtin_sqrtf(x); }
static inline double square_root(double x) { return __builtin_sqrt(x); }
static inline float natural_log(float x) { return __builtin_logf(x); }
static inline double natural_log(double x) { return __builtin_log(x); }

// exp(x) = 2^n · exp(r) with n = round(x·log2 e) and r = x − n·ln 2, |r| ≤ ln2/2.
// x is clamped to [-87.3, 88.3], so the result stays a normal float: exp of
// very negative x gives ~1e-38 instead of a denormal or 0, exp of large x ~2e38.
static inline float exp_fast(float x) {
    x = select(x < -87.3f, -87.3f, x);
    x = select(x > 88.3f, 88.3f, x);
    const float round_magic = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
    const float shifted = x * 1.44269504f + round_magic;
    const float n = shifted - round_magic;
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
    // 2^n: n read from the low bits of shifted (as in the double version), in
    // unsigned arithmetic. Converting n to int and shifting n + 127 was
    // undefined for a NaN x (INT_MIN + 127 shifted left), which softmax and
    // sigmoid meet on a non-finite batch.
    std::uint32_t shifted_bits, magic_bits;
    std::memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
    std::memcpy(&magic_bits, &round_magic, sizeof magic_bits);
    const std::uint32_t bits = (shifted_bits - magic_bits + 127u) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// The same scheme in double: x clamped to [-708, 709] (normal results), a
// Cody–Waite split of ln 2 (its high part has 32 bits, so n·high is exact),
// and the Taylor series to r^13 (remainder below 5e-18 for |r| ≤ ln2/2). The
// integer n is read from the bits of x·log2 e + 1.5·2^52 rather than by a
// double-to-int64 conversion, which AVX2 does not have.
static inline double exp_fast(double x) {
    x = select(x < -708.0, -708.0, x);
    x = select(x > 709.0, 709.0, x);
    const double round_magic = 6755399441055744.0;  // 1.5·2^52
    const double shifted = x * 1.4426950408889634 + round_magic;
    const double n = shifted - round_magic;
    const double r = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;  // 1/13!
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // Unsigned, so that the bits of a NaN x shifted out of range are no undefined behaviour.
    std::uint64_t shifted_bits, magic_bits;
    std::memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
    std::memcpy(&magic_bits, &round_magic, sizeof magic_bits);
    const std::uint64_t bits = (shifted_bits - magic_bits + 1023u) << 52;  // 2^n, n in [-1022, 1023]
    double scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

// 1/(1 + e) has no cancellation, and exp_fast's clamp keeps e finite.
static inline double sigmoid(double x) { return 1.0 / (1.0 + exp_fast(-x)); }

// tanh x = x·P(x²)/Q(x²), P and Q of degree 4 in x², fitted to tanh's
// relative error on [0, 9] (2e-8 in exact arithmetic, at most 6 float ulps as
// computed here); x is clamped to ±9, where tanh is ±1 to float precision, and
// the result to ±1. One division and ten multiply-adds, where the exp form
// below (kept for double) costs an exp, a division and a series. NaN passes.
static inline float tanh_fast(float x) {
    const float c = select(x > 9.0f, 9.0f, select(x < -9.0f, -9.0f, x));
    const float s = c * c;
    float p = 1.342024161e-8f;
    p = p * s + 2.066156421e-5f;
    p = p * s + 3.499014366e-3f;
    p = p * s + 1.338399566e-1f;
    p = p * s + 1.0f;
    float q = 7.804900757e-7f;
    q = q * s + 3.291068309e-4f;
    q = q * s + 2.589027592e-2f;
    q = q * s + 4.671731714e-1f;
    q = q * s + 1.0f;
    const float t = c * p / q;
    return select(t > 1.0f, 1.0f, select(t < -1.0f, -1.0f, t));
}

// In double, tanh |x| = 1 − 2/(exp(2|x|) + 1), or its odd Taylor series to
// a^13 for |x| < 1/16 where that difference would cancel (the series' next
// term is below 1e-19 relative there); the exp form loses at most 4 bits to
// cancellation just past 1/16. The sign is put back at the end.
static inline double tanh_fast(double x) {
    const double a = __builtin_fabs(x);
    const double a2 = a * a;
    double q = 21844.0 / 6081075.0;
    q = q * a2 - 1382.0 / 155925.0;
    q = q * a2 + 62.0 / 2835.0;
    q = q * a2 - 17.0 / 315.0;
    q = q * a2 + 2.0 / 15.0;
    q = q * a2 - 1.0 / 3.0;
    const double series = a + a * a2 * q;
    const double far = 1.0 - 2.0 / (exp_fast(2.0 * a) + 1.0);
    return __builtin_copysign(select(a < 0.0625, series, far), x);
}

}  // namespace bpfast
