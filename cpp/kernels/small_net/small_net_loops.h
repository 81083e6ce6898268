// The loops behind small_net.h, written once over GCC's generic vectors and
// included by one translation unit per ISA, which picks the vector width
// (BYTES) and the register count (REGISTERS) that size the tiles.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#ifdef __AVX512BF16__
#include <immintrin.h>
#endif

#include "kernels/bf16/bfloat16.h"
#include "kernels/elementwise/formulas.h"
#include "kernels/small_net/small_net.h"
#include "kernels/elementwise/vector_lanes.h"

namespace bpfast {
namespace {

template <typename T, int BYTES, int REGISTERS>
struct SmallNetLoops {
    typedef T V __attribute__((vector_size(BYTES)));
    static constexpr int L = BYTES / int(sizeof(T));  // lanes
    // Accumulator tiles use half the registers: a forward tile of ROWS rows of
    // one vector (smaller tiles split the depth over several chains); a
    // gradient tile of GRAD_ROWS rows of GRAD_VECTORS vectors.
    static constexpr int ROWS = REGISTERS / 2;
    static constexpr int GRAD_VECTORS = 2;
    static constexpr int GRAD_ROWS = REGISTERS / 4;
    // The input gradient's rows, rounded up to GRAD_ROWS, must stay within the
    // padded batch; the forward's tiles of ROWS rows must be whole L x L blocks
    // for its samples-major store to cover every column it claims.
    static_assert(L % GRAD_ROWS == 0 && ROWS % L == 0, "tile sizes must fit the vector length");

    static V load(const T* p) {
        V v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    static void store(T* p, V v) { std::memcpy(p, &v, sizeof v); }
    // The first count lanes only (the end of a row of a caller's array).
    static void store_first(T* p, V v, index count) {
        if (count >= L) return store(p, v);
        for (index j = 0; j < count; ++j) p[j] = v[j];
    }
    static V broadcast(T x) {
        V v;
        for (int j = 0; j < L; ++j) v[j] = x;
        return v;
    }

    // ---------------------------------------------------------------- transpose
    // One stage of the in-register transpose: swaps bit S of the row index
    // with bit S of the column index, for the rows a (bit S clear) and b = a + S.
    template <int S, std::size_t... I>
    static void swap_bit(V& a, V& b, std::index_sequence<I...>) {
        const V low = __builtin_shufflevector(a, b, ((I & S) == 0 ? I : L + I - S)...);
        const V high = __builtin_shufflevector(a, b, ((I & S) == 0 ? I + S : L + I)...);
        a = low;
        b = high;
    }

    template <int S>
    static void transpose_stage(V (&rows)[L]) {
        if constexpr (S >= 1) {
#pragma GCC unroll 16
            for (int i = 0; i < L; ++i)
                if ((i & S) == 0) swap_bit<S>(rows[i], rows[i + S], std::make_index_sequence<L>{});
            transpose_stage<S / 2>(rows);
        }
    }

    static void transpose(T* dst, index ld_dst, const T* src, index ld_src, index rows, index cols) {
        // src (rows, cols) -> dst (cols, rows) in L x L blocks; rows and cols multiples of L
        for (index i = 0; i < rows; i += L)
            for (index j = 0; j < cols; j += L) {
                V block[L];
#pragma GCC unroll 16
                for (int r = 0; r < L; ++r) block[r] = load(src + (i + r) * ld_src + j);
                transpose_stage<L / 2>(block);
#pragma GCC unroll 16
                for (int r = 0; r < L; ++r) store(dst + (j + r) * ld_dst + i, block[r]);
            }
    }

    // Runs tile.template run<R>(start) over [start, n) in tiles of R rows, then
    // the rest in at most one tile each of R/2, R/4, ..., 1 rows.
    template <int R, typename Tile>
    static void over_rows(index start, index n, const Tile& tile) {
        for (; start + R <= n; start += R) tile.template run<R>(start);
        if constexpr (R > 1) over_rows<R / 2>(start, n, tile);
    }

    // ----------------------------------------------------------------- forward
    struct ForwardTile {
        T* F_out;
        const T* F_in;
        const T* W;
        const T* b;
        index ldt, n_in;
        bool relu_out;
        T* S;  // when not null, also S (ldt, ld_s) = F_outᵀ for tiles of whole L x L blocks
        index ld_s;
        bool round_bf16;

        template <int R>
        __attribute__((noinline)) void run(index n0) const {
            // rows n0..n0+R of F_out (R, ldt) = W rows (R, n_in) · F_in (n_in, ldt) + b
            // The depth is split over KS chains: at least ROWS independent accumulators.
            constexpr int KS = R >= REGISTERS / 2 ? 1 : REGISTERS / 2 / R;
            const T* w = W + n0 * n_in;
            for (index m = 0; m < ldt; m += L) {
                V acc[KS][R];  // the first chain starts from the bias
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r) acc[0][r] = broadcast(b[n0 + r]);
#pragma GCC unroll 16
                for (int s = 1; s < KS; ++s)
#pragma GCC unroll 16
                    for (int r = 0; r < R; ++r) acc[s][r] = V{};
                const T* x = F_in + m;
                index k = 0;
                // Rows addressed from two pointers, one per half of the tile, with
                // the same R/2 row offsets: fewer general registers than R offsets.
                const T* half[2] = {w, w + (R / 2) * n_in};
                for (; k + KS <= n_in; k += KS)
#pragma GCC unroll 16
                    for (int s = 0; s < KS; ++s) {  // KS is up to 16: unrolled whole, the chains stay in registers
                        const V x_k = load(x + (k + s) * ldt);
#pragma GCC unroll 2
                        for (int h = 0; h < (R > 1 ? 2 : 1); ++h)
#pragma GCC unroll 16
                            for (int r = 0; r < (R > 1 ? R / 2 : 1); ++r)
                                acc[s][h * (R / 2) + r] += half[h][r * n_in + k + s] * x_k;
                    }
                for (; k < n_in; ++k) {
                    const V x_k = load(x + k * ldt);
#pragma GCC unroll 16
                    for (int r = 0; r < R; ++r) acc[0][r] += w[r * n_in + k] * x_k;
                }
                // the chains summed in a tree (KS is a power of 2)
#pragma GCC unroll 8
                for (int width = KS / 2; width >= 1; width /= 2)
#pragma GCC unroll 8
                    for (int s = 0; s < width; ++s)
#pragma GCC unroll 16
                        for (int r = 0; r < R; ++r) acc[s][r] += acc[s + width][r];
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r) {
                    if (relu_out) acc[0][r] = relu(acc[0][r]);
                    if (round_bf16) acc[0][r] = rounded_to_bfloat16(acc[0][r]);
                    store(F_out + (n0 + r) * ldt + m, acc[0][r]);
                }
                if constexpr (R % L == 0) {
                    if (S) {  // the tile's L x L blocks, transposed in registers, into S
#pragma GCC unroll 4
                        for (int block = 0; block < R / L; ++block) {
                            V rows[L];
#pragma GCC unroll 16
                            for (int r = 0; r < L; ++r) rows[r] = acc[0][block * L + r];
                            transpose_stage<L / 2>(rows);
#pragma GCC unroll 16
                            for (int r = 0; r < L; ++r) store(S + (m + r) * ld_s + n0 + block * L, rows[r]);
                        }
                    }
                }
            }
        }
    };

    static void forward(T* F_out, const T* F_in, const T* W, const T* b, index ldt, index n_in, index n_out,
                        bool relu_out, T* S, index ld_s, bool round_bf16) {
        over_rows<ROWS>(0, n_out, ForwardTile{F_out, F_in, W, b, ldt, n_in, relu_out, S, ld_s, round_bf16});
        // Tiles of L rows or more (the first n_out rounded down to L) wrote their
        // part of S; the last block, if any, is transposed from F_out.
        const index done = n_out / L * L;
        if (S && done < n_out) transpose(S + done, ld_s, F_out + done * ldt, ldt, L, ldt);
    }

    // --------------------------------------------------------- weight gradient
    template <int VT>
    struct WeightGradientTile {
        T* dW;
        const T* delta;
        index ld_delta;
        const T* X;
        index ld_x, batch, n_in, k0;
        // Σ dW over the tile's vectors: finite when every value is (and, rarely,
        // not when they all are but their sum overflows: the caller then looks
        // again). Additions, not x·0, so that the check runs beside the FMAs.
        // With a step, Σ θ·0 over the new weights instead: exact.
        V* check;
        T* W;  // not null: the SGD step on W's tile from the finished dW (WeightGradientFn)
        T lr, decay;

        template <int R>
        __attribute__((noinline)) void run(index n0) const {
            // dW rows n0..n0+R, columns k0..k0+VT*L: Σ_m δ[m][n0+r] · X[m][k0..]
            V acc[R][VT];
#pragma GCC unroll 16
            for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
                for (int v = 0; v < VT; ++v) acc[r][v] = V{};
            for (index m = 0; m < batch; ++m) {
                const T* x = X + m * ld_x + k0;
                const T* d = delta + m * ld_delta + n0;
                V x_m[VT];
#pragma GCC unroll 4
                for (int v = 0; v < VT; ++v) x_m[v] = load(x + v * L);
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
                    for (int v = 0; v < VT; ++v) acc[r][v] += d[r] * x_m[v];
            }
            if (W) return step(n0, acc);
            V sums[VT];  // per column of vectors, then across: short chains of additions
#pragma GCC unroll 4
            for (int v = 0; v < VT; ++v) {
                sums[v] = acc[0][v];
#pragma GCC unroll 16
                for (int r = 1; r < R; ++r) sums[v] += acc[r][v];
            }
#pragma GCC unroll 4
            for (int v = 0; v < VT; ++v) *check += sums[v];
            if (k0 + VT * L <= n_in) {  // whole vectors: the common case, kept free of branches
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
                    for (int v = 0; v < VT; ++v) store(dW + (n0 + r) * n_in + k0 + v * L, acc[r][v]);
                return;
            }
            for (int r = 0; r < R; ++r)
                for (int v = 0; v < VT; ++v) {
                    const index k = k0 + v * L;
                    if (k < n_in) store_first(dW + (n0 + r) * n_in + k, acc[r][v], n_in - k);
                }
        }

        // θ ← θ − lr·(g + λθ) on W's tile from the tile's g = dW, the old θ
        // stored where dW goes: the formula and the order of operations of
        // optim_loops.h's sgd_element, so that the values are those of the
        // separate pass (sgd_keeping_old).
        template <int R>
        void step(index n0, const V (&acc)[R][VT]) const {
            V zero_sums = V{};
            const V lr_v = broadcast(lr), decay_v = broadcast(decay);
            for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
                for (int v = 0; v < VT; ++v) {
                    const index k = k0 + v * L, offset = (n0 + r) * n_in + k;
                    if (k + L <= n_in) {
                        const V old = load(W + offset);
                        const V g = acc[r][v] + decay_v * old;
                        const V updated = old - lr_v * g;
                        store(W + offset, updated);
                        store(dW + offset, old);
                        zero_sums += updated * T(0);
                    } else {
                        for (index j = 0; k + j < n_in; ++j) {
                            const T old = W[offset + j];
                            const T g = acc[r][v][j] + decay * old;
                            const T updated = old - lr * g;
                            W[offset + j] = updated;
                            dW[offset + j] = old;
                            zero_sums[0] += updated * T(0);
                        }
                    }
                }
            *check += zero_sums;
        }
    };

    static bool weight_gradient(T* dW, const T* delta, index ld_delta, const T* X, index ld_x, index batch,
                                index n_in, index n_out, T* W, double lr, double decay) {
        constexpr index CHUNK = GRAD_VECTORS * L;
        V check = V{};
        index k0 = 0;
        const T lr_t = T(lr), decay_t = T(decay);
        for (; k0 + L < n_in; k0 += CHUNK)  // more than one vector left: GRAD_VECTORS at a time
            over_rows<GRAD_ROWS>(0, n_out,
                                 WeightGradientTile<GRAD_VECTORS>{dW, delta, ld_delta, X, ld_x, batch, n_in, k0,
                                                                  &check, W, lr_t, decay_t});
        if (k0 < n_in)
            over_rows<GRAD_ROWS>(0, n_out,
                                 WeightGradientTile<1>{dW, delta, ld_delta, X, ld_x, batch, n_in, k0, &check, W,
                                                       lr_t, decay_t});
        return all_lanes_finite(check);
    }

    // ---------------------------------------------------------- input gradient
    template <int VT>
    struct InputGradientChunk {
        T* delta_in;
        T* db_in;
        const T* delta;
        index ld_delta;
        const T* W;
        index ld_w;
        const T* A_in;
        index ld_out, batch, rows, n_in, n_out, k0;
        Activation act;
        V* check;  // Σ db, as in WeightGradientTile
        bool round_bf16;

        template <int R>
        void tile(index m0, V (&db)[VT]) const {
            // rows m0..m0+R, columns k0..k0+VT*L of δ_in = (δ · W) ⊙ σ'(A_in)
            V acc[R][VT];
#pragma GCC unroll 16
            for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
                for (int v = 0; v < VT; ++v) acc[r][v] = V{};
            const T* d = delta + m0 * ld_delta;
            for (index n = 0; n < n_out; ++n) {
                V w_n[VT];
#pragma GCC unroll 4
                for (int v = 0; v < VT; ++v) w_n[v] = load(W + n * ld_w + k0 + v * L);
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
                    for (int v = 0; v < VT; ++v) acc[r][v] += d[r * ld_delta + n] * w_n[v];
            }
#pragma GCC unroll 16
            for (int r = 0; r < R; ++r) {
                const index offset = (m0 + r) * ld_out + k0;
#pragma GCC unroll 4
                for (int v = 0; v < VT; ++v) {
                    const V g = times_derivative(acc[r][v], load(A_in + offset + v * L), act);
                    store(delta_in + offset + v * L, round_bf16 ? rounded_to_bfloat16(g) : g);
                    if (m0 + r < batch) db[v] += g;
                }
            }
        }

        __attribute__((noinline)) void run() const {
            V db[VT];
#pragma GCC unroll 4
            for (int v = 0; v < VT; ++v) db[v] = V{};
            for (index m0 = 0; m0 < rows; m0 += GRAD_ROWS) tile<GRAD_ROWS>(m0, db);
#pragma GCC unroll 4
            for (int v = 0; v < VT; ++v) {
                const index k = k0 + v * L;
                if (k < n_in) store_first(db_in + k, db[v], n_in - k);
                *check += db[v];
            }
        }
    };

    static bool input_gradient(T* delta_in, T* db_in, const T* delta, index ld_delta, const T* W, index ld_w,
                               const T* A_in, index ld_out, index batch, index n_in, index n_out, Activation act,
                               bool round_bf16) {
        const index rows = (batch + GRAD_ROWS - 1) / GRAD_ROWS * GRAD_ROWS;
        constexpr index CHUNK = GRAD_VECTORS * L;
        V check = V{};
        index k0 = 0;
        for (; k0 + L < n_in; k0 += CHUNK)
            InputGradientChunk<GRAD_VECTORS>{delta_in, db_in, delta, ld_delta, W,   ld_w, A_in, ld_out,
                                             batch,    rows,  n_in,  n_out,    k0,  act,  &check, round_bf16}
                .run();
        if (k0 < n_in)
            InputGradientChunk<1>{delta_in, db_in, delta, ld_delta, W,  ld_w, A_in, ld_out,
                                  batch,    rows,  n_in,  n_out,    k0, act,  &check, round_bf16}
                .run();
        return all_lanes_finite(check);
    }

    // ------------------------------------------------------ bfloat16 rounding
    typedef std::uint32_t U32 __attribute__((vector_size(BYTES)));

    // rounded_bfloat16_bits on a vector of float bits: the same selects, lane by lane.
    static U32 rounded_bfloat16_bits(U32 u) {
        const U32 rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
        const U32 quiet_nan = (u | 0x00400000u) & 0xffff0000u;
        const U32 signed_zero = u & 0x80000000u;
        const U32 no_exponent = U32((u & 0x7f800000u) == 0u);  // zero or denormal: all ones where so
        const U32 is_nan = U32((u & 0x7fffffffu) > 0x7f800000u);
        const U32 finite = (signed_zero & no_exponent) | (rounded & ~no_exponent);
        return (quiet_nan & is_nan) | (finite & ~is_nan);
    }

    // v's values rounded to bfloat16 (float only; the float64 path never asks).
    static V rounded_to_bfloat16(V v) {
#ifdef __AVX512BF16__
        if constexpr (std::is_same_v<T, float> && BYTES == 64) {  // the instruction rounds by the same rule
            const __m256i halves = (__m256i)_mm512_cvtneps_pbh((__m512)v);
            return (V)_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16);
        }
#endif
        if constexpr (std::is_same_v<T, float>) {
            U32 u;
            std::memcpy(&u, &v, sizeof u);
            u = rounded_bfloat16_bits(u);
            std::memcpy(&v, &u, sizeof v);
        }
        return v;
    }

    static void round_to_bfloat16(float* dst, const float* src, index n) {
        index i = 0;
        if constexpr (std::is_same_v<T, float>) {
            for (; i + L <= n; i += L) store(dst + i, rounded_to_bfloat16(load(src + i)));
        }
        for (; i < n; ++i) {
            std::uint32_t u;
            std::memcpy(&u, src + i, sizeof u);
            u = bpfast::rounded_bfloat16_bits(u);
            std::memcpy(dst + i, &u, sizeof u);
        }
    }

    static SmallNetKernels<T> table() {
        SmallNetKernels<T> k;
        k.lanes = L;
        k.forward_rows = ROWS;
        k.transpose = &transpose;
        k.forward = &forward;
        k.weight_gradient = &weight_gradient;
        k.input_gradient = &input_gradient;
        if constexpr (std::is_same_v<T, float>) k.round_to_bfloat16 = &round_to_bfloat16;
        return k;
    }
};

}  // namespace
}  // namespace bpfast
