// A software model of the AMX instructions the AMX kernel uses, as Intel's
// Software Developer's Manual describes them: LDTILECFG (palette 1),
// TILELOADD, TILEZERO, TDPBF16PS (see dot) and TILESTORED. (The Intrinsics
// Guide's pseudocode of _tile_dpbf16ps adds each product into C in turn
// instead; the two differ in the last bits, so the tests compare the kernel
// with the reference within bounds, never bitwise.) Slow, exact, and for
// tests: it lets amx_kernel.h run on any CPU (BPFAST_ISA=amx_model).
#pragma once

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "kernels/bf16/amx_kernel.h"

namespace bpfast {
namespace {

struct TileModel {
    struct Tile {
        int rows = 0, colsb = 0;
        unsigned char bytes[16][64];
    };
    struct State {
        bool configured = false;
        Tile tile[8];
    };
    static State& state() {
        thread_local State s;
        return s;
    }
    static Tile& tile(int t) {
        State& s = state();
        if (!s.configured) throw std::logic_error("AMX model: a tile instruction before LDTILECFG");
        return s.tile[t];
    }
    static float daz(float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; }
    static float ftz(float x) { return daz(x); }

    static void configure(const TileConfig& config) {
        if (config.palette != 1) throw std::logic_error("AMX model: only palette 1 is modelled");
        State& s = state();
        for (int t = 0; t < 8; ++t) {
            if (config.rows[t] > 16 || config.colsb[t] > 64 || config.colsb[t] % 4)
                throw std::logic_error("AMX model: a tile past 16 rows of 64 bytes");
            s.tile[t].rows = config.rows[t];
            s.tile[t].colsb = config.colsb[t];
            std::memset(s.tile[t].bytes, 0, sizeof s.tile[t].bytes);
        }
        s.configured = true;
    }
    template <int t>
    static void load(const void* base, index stride) {
        Tile& d = tile(t);
        std::memset(d.bytes, 0, sizeof d.bytes);
        for (int r = 0; r < d.rows; ++r)
            std::memcpy(d.bytes[r], static_cast<const unsigned char*>(base) + r * stride, d.colsb);
    }
    template <int t>
    static void zero() { std::memset(tile(t).bytes, 0, sizeof tile(t).bytes); }
    template <int t>
    static void store(void* base, index stride) {
        const Tile& s = tile(t);
        for (int r = 0; r < s.rows; ++r) std::memcpy(static_cast<unsigned char*>(base) + r * stride, s.bytes[r], s.colsb);
    }
    // C (rows, colsb/4 float32) += A (rows, k pairs) · B (k rows, colsb/4 pairs), as the SDM
    // writes TDPBF16PS: per element, the even products summed over k into one float32
    // temporary and the odd ones into another (each starting at zero), then C + (even + odd),
    // every sum rounded to nearest even, denormal inputs (C included) read as zero and denormal
    // results flushed to zero.
    template <int c, int a, int b>
    static void dot() {
        Tile &C = tile(c), &A = tile(a), &B = tile(b);
        if (C.rows != A.rows || A.colsb / 4 != B.rows || C.colsb != B.colsb)
            throw std::logic_error("AMX model: TDPBF16PS on tiles of mismatched shapes");
        for (int m = 0; m < C.rows; ++m) {
            float acc[16], even[16] = {}, odd[16] = {};
            std::memcpy(acc, C.bytes[m], C.colsb);
            for (int k = 0; k < A.colsb / 4; ++k) {
                Bf16Pair a_pair;
                std::memcpy(&a_pair, A.bytes[m] + 4 * k, 4);
                for (int n = 0; n < C.colsb / 4; ++n) {
                    Bf16Pair b_pair;
                    std::memcpy(&b_pair, B.bytes[k] + 4 * n, 4);
                    even[n] = ftz(even[n] + daz(pair_low(a_pair)) * daz(pair_low(b_pair)));
                    odd[n] = ftz(odd[n] + daz(pair_high(a_pair)) * daz(pair_high(b_pair)));
                }
            }
            for (int n = 0; n < C.colsb / 4; ++n) acc[n] = ftz(daz(acc[n]) + ftz(even[n] + odd[n]));
            std::memcpy(C.bytes[m], acc, C.colsb);
        }
    }
};

}  // namespace
}  // namespace bpfast
