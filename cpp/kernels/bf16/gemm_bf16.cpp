// The bfloat16 GEMM's loop nest (the BLIS nest of kernels/gemm/gemm.cpp, with
// every operand packed, since packing is where float32 becomes bfloat16):
//
//   for jc in N step NC
//     for pc in K step KC                 KC depths = kc pairs (blocking.h)
//       pack the B block (KC, NC) once, shared      [all threads, by panels]
//       and, when A is short, all of A's (M, KC) too
//       for each (row block of MC, group of columns)  [all threads, by tasks]
//         pack this A block (MC, KC) unless shared
//         for jr, ir: micro-kernel on an MR x NR tile of C
//
// Products with a unit dimension run as plain loops (unit_dimension below).
//
// Each operand value is rounded once per depth block it is packed in, and
// every tile's sum runs over the depth blocks in order whatever thread takes
// it, so the result does not depend on the thread count.
#include "kernels/bf16/gemm_bf16.h"

#include <algorithm>
#include <vector>

#include "kernels/bf16/pair_ukernel.h"
#include "runtime/threads.h"
#include "runtime/workspace.h"

namespace bpfast {
namespace {

constexpr index MIN_FLOPS_PER_THREAD = 1 << 19;  // as gemm.cpp: below this, extra threads cost more than they save
constexpr index TASKS_PER_THREAD = 4;
constexpr index MAX_EDGE = 32;  // no kernel's mr or nr is larger

index round_up(index n, index step) { return (n + step - 1) / step * step; }

// depth_step (blocking.h) for a kernel that pads every depth block to a
// multiple of `granule` depths (AMX: 32): blocks of about equal depth, each a
// multiple of the granule (and of 16), none deeper than cap.
index pair_depth_step(index K, index cap, index granule) {
    const index blocks = (K + cap - 1) / cap, step = std::max<index>(16, granule);
    const index even = round_up((K + blocks - 1) / blocks, step);
    return even < cap ? even : cap;
}

// Packs lines [0, lines) of src, `width` at a time, into consecutive panels
// of width x pairs.
void pack_lines(PairPackFn pack, int width, const PanelSource& src, index lines, index depth, index pairs,
                Bf16Pair* out) {
    for (index x = 0; x < lines; x += width) {
        const PanelSource at{src.data + x * src.x_stride, src.x_stride, src.depth_stride};
        pack(at, std::min<index>(width, lines - x), depth, pairs, out);
        out += width * pairs;
    }
}

// Every tile of an (mc, nc) block of C from its packed A and B panels.
void tile_loop(const PairMicroKernel& kernel, index mc, index nc, index pairs, const Bf16Pair* a, const Bf16Pair* b,
               float* C, index ldc, bool add, const Epilogue<float>* epilogue, index row0, index col0) {
    const int mr = kernel.mr, nr = kernel.nr;
    if (kernel.begin) kernel.begin();
    alignas(64) float edge[MAX_EDGE * MAX_EDGE];
    for (index jr = 0; jr < nc; jr += nr) {
        const Bf16Pair* b_panel = b + jr * pairs;
        const index n_live = std::min<index>(nr, nc - jr);
        for (index ir = 0; ir < mc; ir += mr) {
            const Bf16Pair* a_panel = a + ir * pairs;
            const index m_live = std::min<index>(mr, mc - ir);
            float* c = C + ir * ldc + jr;
            if (m_live == mr && n_live == nr) {
                kernel.run(pairs, a_panel, b_panel, c, ldc, add);
            } else {
                kernel.run(pairs, a_panel, b_panel, edge, nr, false);
                for (index i = 0; i < m_live; ++i)
                    for (index j = 0; j < n_live; ++j)
                        c[i * ldc + j] = add ? c[i * ldc + j] + edge[i * nr + j] : edge[i * nr + j];
            }
            if (epilogue) epilogue->apply(epilogue->context, c, ldc, row0 + ir, col0 + jr, m_live, n_live);
        }
    }
}

// Cᵀ (N, M) = Bᵀ·Aᵀ into scratch, then copied into C: few columns (a
// classifier's 10 outputs) fill MR-tall tiles far better than NR-wide ones.
// Each value is the same sum, in the same order.
void gemm_few_columns(index M, index N, index K, MatrixView<float> A, MatrixView<float> B, float* C, index ldc,
                      const Epilogue<float>* epilogue) {
    thread_local std::vector<float> scratch;
    float* Ct = reserve_aligned(scratch, static_cast<size_t>(N * M));
    gemm_bf16(N, M, K, {B.data, B.col_stride, B.row_stride}, {A.data, A.col_stride, A.row_stride}, Ct, M, false);
    for (index i = 0; i < M; ++i)
        for (index j = 0; j < N; ++j) C[i * ldc + j] = Ct[j * M + i];
    if (epilogue) epilogue->apply(epilogue->context, C, ldc, 0, 0, M, N);
}

// C = [C +] A·B when M, N or K is 1 (a net's single output unit, its weight
// gradient, a rank-1 input gradient, a batch of one), as plain loops over
// values rounded as they are read: an MR x NR tile would be mostly padding.
// The sums are those of the tiles, in depth order, each product exact.
//   N == 1: C(i) = Σ_p A(i, p) B(p)       M == 1: C(j) = Σ_p A(p) B(p, j)       K == 1: C(i, j) = A(i) B(j)
void unit_dimension(index M, index N, index K, const MatrixView<float>& A, const MatrixView<float>& B, float* C,
                    index ldc, bool accumulate) {
    auto r = [](float x) { return from_bfloat16(to_bfloat16(x)); };
    thread_local std::vector<float> rounded;
    if (N == 1) {
        float* b = reserve(rounded, static_cast<size_t>(K));
        for (index p = 0; p < K; ++p) b[p] = r(B.data[p * B.row_stride]);
        for (index i = 0; i < M; ++i) {
            float sum = 0.0f;
            for (index p = 0; p < K; ++p) sum += r(A.data[i * A.row_stride + p * A.col_stride]) * b[p];
            C[i * ldc] = accumulate ? C[i * ldc] + sum : sum;
        }
    } else if (M == 1) {
        float* sums = reserve(rounded, static_cast<size_t>(N + K));
        float* a = sums + N;
        for (index p = 0; p < K; ++p) a[p] = r(A.data[p * A.col_stride]);
        if (B.col_stride == 1) {  // rows of B contiguous: walk them in depth order
            std::fill(sums, sums + N, 0.0f);
            for (index p = 0; p < K; ++p)
                for (index j = 0; j < N; ++j) sums[j] += a[p] * r(B.data[p * B.row_stride + j]);
        } else {  // B = Wᵀ: each column's depths contiguous, one sum at a time (the same order)
            for (index j = 0; j < N; ++j) {
                float sum = 0.0f;
                for (index p = 0; p < K; ++p) sum += a[p] * r(B.data[p * B.row_stride + j * B.col_stride]);
                sums[j] = sum;
            }
        }
        for (index j = 0; j < N; ++j) C[j] = accumulate ? C[j] + sums[j] : sums[j];
    } else {  // K == 1
        for (index i = 0; i < M; ++i) {
            const float a = r(A.data[i * A.row_stride]);
            for (index j = 0; j < N; ++j) {
                const float product = a * r(B.data[j * B.col_stride]);
                C[i * ldc + j] = accumulate ? C[i * ldc + j] + product : product;
            }
        }
    }
}

}  // namespace

// The pairs the blocked path below packs into for an (M, N, K) product: B's
// block, then A shared or a slot per thread. Enough for either layout at any
// thread count, and growing with M, N and K, so that a smaller product (a
// smaller batch), which may run on fewer threads, without a shared A, or with
// a shorter depth block, fits in what a larger one made: the depth block at
// its cap (pair_depth_step never exceeds it), a shared A of up to 4 row
// blocks (the most the path shares).
static index blocked_room(index M, index N, index K, const PairMicroKernel& kernel) {
    const GemmBlocking& blocks = pair_gemm_blocking();
    const index mr = kernel.mr, nr = kernel.nr, MC = blocks.mc, NC = blocks.nc;
    const index max_pairs = round_up((std::min(2 * blocks.kc, K) + 1) / 2, kernel.pairs_multiple);
    const index m_pad = round_up(M, mr);
    const index b_size = round_up(std::min(NC, N), nr) * max_pairs;
    const index shared = round_up(std::min(m_pad, 4 * round_up(MC, mr)) * max_pairs, 16);
    const index slots = get_num_threads() * round_up(round_up(std::min(MC, m_pad), mr) * max_pairs, 16);
    return round_up(b_size, 16) + std::max(shared, slots) + 32;
}

void gemm_bf16(index M, index N, index K, MatrixView<float> A, MatrixView<float> B, float* C, index ldc,
               bool accumulate, const Epilogue<float>* epilogue) {
    // A is (M, K), B is (K, N), C is (M, N) with row stride ldc
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (index i = 0; i < M; ++i) {
            if (!accumulate) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
            if (epilogue) epilogue->apply(epilogue->context, C + i * ldc, ldc, i, 0, 1, N);
        }
        return;
    }
    if (M == 1 || N == 1 || K == 1) {
        unit_dimension(M, N, K, A, B, C, ldc, accumulate);
        if (epilogue) epilogue->apply(epilogue->context, C, ldc, 0, 0, M, N);
        return;
    }
    const PairMicroKernel& kernel = active_pair_micro_kernel();
    const index mr = kernel.mr, nr = kernel.nr;
    thread_local std::vector<Bf16Pair> room;
    if (!accumulate && N < nr && round_up(N, mr) < nr && M >= 2 * nr) {
        // the blocked path's room too, so that a product of fewer rows (a
        // smaller batch), which takes that path, finds it made
        reserve_aligned(room, static_cast<size_t>(blocked_room(M, N, K, kernel)));
        return gemm_few_columns(M, N, K, A, B, C, ldc, epilogue);
    }

    const GemmBlocking& blocks = pair_gemm_blocking();
    const index MC = blocks.mc, NC = blocks.nc, KC = pair_depth_step(K, 2 * blocks.kc, 2 * kernel.pairs_multiple);
    const index threads = std::min<index>(get_num_threads(), std::max<index>(1, 2 * M * N * K / MIN_FLOPS_PER_THREAD));
    const index row_blocks = (M + MC - 1) / MC;
    const index max_pairs = round_up((std::min(KC, K) + 1) / 2, kernel.pairs_multiple);
    // A short A is packed whole, once per depth block, and shared by every task.
    const bool shared_a = row_blocks <= 4 && threads > 1;
    const index m_pad = round_up(M, mr);

    // Room made here, by the caller: the shared B block (and A), then a slot per thread for its A block.
    const index b_size = round_up(std::min(NC, N), nr) * max_pairs;
    const index a_shared_size = shared_a ? m_pad * max_pairs : 0;
    const index slot_size = shared_a ? 0 : round_up(round_up(std::min(MC, m_pad), mr) * max_pairs, 16);
    // a slot for each thread that may take a task: parallel_for runs n tasks on at most n threads
    const index max_tasks = TASKS_PER_THREAD * threads + row_blocks;
    const index slots = shared_a ? 0 : std::min<index>(get_num_threads(), max_tasks);
    Bf16Pair* const b_packed = reserve_aligned(room, static_cast<size_t>(blocked_room(M, N, K, kernel)));
    Bf16Pair* const a_all = b_packed + round_up(b_size, 16);
    Bf16Pair* const slot_room = a_all + round_up(a_shared_size, 16);

    const PanelSource a_source{A.data, A.row_stride, A.col_stride}, b_source{B.data, B.col_stride, B.row_stride};
    for (index jc = 0; jc < N; jc += NC) {
        const index nc = std::min(NC, N - jc);
        const index b_panels = (nc + nr - 1) / nr, a_panels = m_pad / mr;
        for (index pc = 0; pc < K; pc += KC) {
            const index kc = std::min(KC, K - pc);
            const index pairs = round_up((kc + 1) / 2, kernel.pairs_multiple);
            const bool add = accumulate || pc > 0;
            const Epilogue<float>* last = pc + kc == K ? epilogue : nullptr;
            // Pack B's panels (and A's, when shared) in groups of panels on the pool.
            const PanelSource b_block{b_source.data + jc * b_source.x_stride + pc * b_source.depth_stride,
                                      b_source.x_stride, b_source.depth_stride};
            const PanelSource a_block{a_source.data + pc * a_source.depth_stride, a_source.x_stride,
                                      a_source.depth_stride};
            const index b_groups = std::min<index>(b_panels, TASKS_PER_THREAD * threads);
            const index a_groups = shared_a ? std::min<index>(a_panels, TASKS_PER_THREAD * threads) : 0;
            auto pack_group = [&](index g) {
                const bool is_b = g < b_groups;
                const index groups = is_b ? b_groups : a_groups, panels = is_b ? b_panels : a_panels;
                const index q = is_b ? g : g - b_groups, width = is_b ? nr : mr;
                const index p0 = q * panels / groups, p1 = (q + 1) * panels / groups;
                const PanelSource& src = is_b ? b_block : a_block;
                const PanelSource from{src.data + p0 * width * src.x_stride, src.x_stride, src.depth_stride};
                const index extent = is_b ? nc : M;
                pack_lines(is_b ? kernel.pack_b : kernel.pack_a, int(width), from,
                           std::min(extent, p1 * width) - p0 * width, kc, pairs,
                           (is_b ? b_packed : a_all) + p0 * width * pairs);
            };
            if (threads > 1) parallel_for(b_groups + a_groups, pack_group);
            else for (index g = 0; g < b_groups; ++g) pack_group(g);
            // Tasks: (row block, column group) pairs, enough to balance the threads.
            const index col_groups = threads == 1 ? 1 : std::clamp<index>((TASKS_PER_THREAD * threads + row_blocks - 1) / row_blocks, 1,
                                                       std::max<index>(1, b_panels / 2));
            auto run_task = [&](index task) {
                const index blk = task / col_groups, grp = task % col_groups;
                const index ic = blk * MC, mc = std::min(MC, M - ic);
                const index j0 = grp * b_panels / col_groups * nr, j1 = std::min(nc, (grp + 1) * b_panels / col_groups * nr);
                const Bf16Pair* a_panels_at;
                if (shared_a) {
                    a_panels_at = a_all + ic * pairs;
                } else {
                    const int slot = thread_slot();
                    thread_local std::vector<Bf16Pair> own;  // a thread past the slots made above
                    Bf16Pair* mine = slot < slots ? slot_room + slot * slot_size
                                                  : reserve_aligned(own, static_cast<size_t>(slot_size));
                    const PanelSource rows{a_block.data + ic * a_block.x_stride, a_block.x_stride, a_block.depth_stride};
                    pack_lines(kernel.pack_a, mr, rows, mc, kc, pairs, mine);
                    a_panels_at = mine;
                }
                tile_loop(kernel, mc, j1 - j0, pairs, a_panels_at, b_packed + j0 * pairs, C + ic * ldc + jc + j0, ldc,
                          add, last, ic, jc + j0);
            };
            const index tasks = row_blocks * col_groups;
            if (threads > 1 && tasks > 1) parallel_for(tasks, run_task);
            else for (index t = 0; t < tasks; ++t) run_task(t);
        }
    }
}

}  // namespace bpfast
