// Blocked, packed GEMM (the BLIS loop nest). Portable: the only ISA-specific
// piece is the micro-kernel (with its packers), chosen at run time in dispatch.cpp.
//
//   split C into one block per thread      (parallel_for, tile-aligned)
//   for jc in N step NC                    B block of NC columns
//     for pc in K step KC                  pack B (KC, NC) into NR-wide panels
//                                          (KC: K split evenly, kernels/gemm/blocking.h)
//       for ic in M step MC                pack A (MC, KC) into MR-tall panels
//         for jr, ir                       micro-kernel on an MR x NR tile of C
//
// Edge tiles are zero-padded while packing; the micro-kernel always computes
// a whole tile, and partial tiles go through a small buffer. A small
// column-major A (the δᵀ of a weight gradient) is read in place, unpacked.
//
// Unit dimension: M, N or K of 1 (a single output unit, its weight gradient,
// a rank-1 input gradient) runs as plain loops, without packing.
//
// Skinny path: when M fits in one MC block and B is row-major (the weight and
// input gradients), each B row is read by the micro-kernel in place, so the
// call never pays for packing B (only a ragged last panel is packed). When M
// fits in one MC block but B must be packed (Wᵀ in a small batch's forward
// product), B is packed a few panels at a time, right before their tiles.
#include "kernels/gemm/gemm.h"

#include <algorithm>
#include <vector>

#include "runtime/threads.h"
#include "kernels/gemm/ukernel.h"
#include "runtime/workspace.h"

namespace bpfast {
namespace {

constexpr index MIN_FLOPS_PER_THREAD = 1 << 19;  // below this, extra threads cost more than they save
constexpr index PARTS_PER_THREAD = 4;
constexpr index PACK_SLACK = 8;  // packers may store up to this many values past a panel
constexpr index SHALLOW_DEPTH = 32;  // depth up to which tile_loop walks C by rows of tiles
constexpr index PANELS_PER_PACK = 4;  // B panels packed at a time for a single block of rows

// Pack rows [0, rows) x depth [0, depth) of A into panels of mr rows:
// panel q holds a[q*mr*depth + p*mr + i] = A(q*mr + i, p), zero past `rows`.
// Full panels go to the micro-kernel's packers when it has them (a row-major
// A to its transposing packer, a column-major A to its column copy); the
// transposing packer may store a few values past its panel, so a caller
// that packs the next panel in another thread passes may_spill = false,
// and the last panel is packed without it.
template <typename T>
void pack_a(const MatrixView<T>& A, index rows, index depth, const MicroKernel<T>& kernel, T* out,
            bool may_spill = true) {
    const int mr = kernel.mr;
    for (index q = 0; q < rows; q += mr) {
        const index live = std::min<index>(mr, rows - q);
        const T* src = A.data + q * A.row_stride;
        const bool spill_ok = may_spill || q + mr < rows;
        if (live == mr && A.col_stride == 1 && kernel.pack_a_rows && spill_ok) {
            kernel.pack_a_rows(depth, src, A.row_stride, out);
        } else if (A.col_stride == 1) {
            // Row-major: read each row once, contiguously.
            for (index i = 0; i < live; ++i)
                for (index p = 0; p < depth; ++p) out[p * mr + i] = src[i * A.row_stride + p];
        } else if (live == mr && A.row_stride == 1 && kernel.pack_a_columns) {
            kernel.pack_a_columns(depth, src, A.col_stride, out);  // a transposed A: columns are contiguous
        } else {
            for (index p = 0; p < depth; ++p)
                for (index i = 0; i < live; ++i) out[p * mr + i] = src[i * A.row_stride + p * A.col_stride];
        }
        for (index i = live; i < mr; ++i)
            for (index p = 0; p < depth; ++p) out[p * mr + i] = T(0);
        out += mr * depth;
    }
}

// Pack depth [0, depth) x columns [0, cols) of B into panels of nr columns:
// panel q holds b[q*nr*depth + p*nr + j] = B(p, q*nr + j), zero past `cols`.
// Full panels of a transposed B (row_stride 1) go to the ISA's transposing
// packer when it has one.
template <typename T>
void pack_b(const MatrixView<T>& B, index depth, index cols, const MicroKernel<T>& kernel, T* out) {
    const int nr = kernel.nr;
    for (index q = 0; q < cols; q += nr) {
        const index live = std::min<index>(nr, cols - q);
        const T* src = B.data + q * B.col_stride;
        if (live == nr && B.row_stride == 1 && kernel.pack_b_transposed) {
            kernel.pack_b_transposed(depth, src, B.col_stride, out);
            out += nr * depth;
            continue;
        }
        for (index p = 0; p < depth; ++p) {
            T* dst = out + p * nr;
            const T* row = src + p * B.row_stride;
            if (B.col_stride == 1)
                for (index j = 0; j < live; ++j) dst[j] = row[j];
            else
                for (index j = 0; j < live; ++j) dst[j] = row[j * B.col_stride];
            for (index j = live; j < nr; ++j) dst[j] = T(0);
        }
        out += nr * depth;
    }
}

template <typename T>
struct Block {
    const MicroKernel<T>* kernel;  // the call's micro-kernel, read once by gemm_with
    const GemmBlocking* blocks;    // and its blocks
    index M, N, K;
    MatrixView<T> A, B;
    T* C;
    index ldc;
    bool accumulate;
    const Epilogue<T>* epilogue;
    index row0, col0;  // where this block sits in the caller's C, for the epilogue
    const T* packed_a;  // all of A packed once by the caller (shared by the parts), or null
    // Packing room per thread, made by the caller before the parts run:
    // thread slot s packs A at scratch + s * slot_size and B right after it
    // (so a worker that joins a later call never grows a buffer of its own).
    T* scratch;
    index slot_size, slots;
};

// This thread's packing room in g.scratch, or (for a thread past the slots
// the caller made, should the thread count change during a call) its own.
template <typename T>
T* packing_room(const Block<T>& g) {
    const int slot = thread_slot();
    if (slot < g.slots) return g.scratch + slot * g.slot_size;
    thread_local std::vector<T> own;
    return reserve_aligned(own, static_cast<size_t>(g.slot_size));
}

// Whole cache lines' worth of values (16 floats or more), for offsets.
constexpr index round_to_lines(index n) { return (n + 15) / 16 * 16; }

// The room for a block of A at its largest, whatever the call's M and K.
index a_room(const GemmBlocking& blocks, int mr) { return round_to_lines((blocks.mc + mr) * blocks.kc + PACK_SLACK); }

// Rows of A up to which the column parts share one packing of A.
index shared_a_max_rows(const GemmBlocking& blocks) { return 4 * blocks.mc; }

// Pack all of A (M, K), depth block by depth block: block pc starts at
// pc * round_up(M, mr), as gemm_block expects of Block::packed_a. Split into
// `tasks` ranges of whole panels on the pool (packing only copies, so the
// result is the same however it is split).
template <typename T>
void pack_all_of_a(const MatrixView<T>& A, index M, index K, const MicroKernel<T>& kernel, T* out,
                   index tasks) {
    const index mr = kernel.mr, panels = (M + mr - 1) / mr, m_pad = panels * mr;
    const index KC = depth_step(K, gemm_blocking<T>(kernel).kc);
    tasks = std::max<index>(1, std::min(tasks, panels));
    auto pack_range = [&](index t) {
        const index q0 = t * panels / tasks, q1 = (t + 1) * panels / tasks;
        const index r0 = q0 * mr, rows = std::min(M, q1 * mr) - r0;
        for (index pc = 0; pc < K; pc += KC) {
            const index kc = std::min(KC, K - pc);
            const MatrixView<T> block{A.data + r0 * A.row_stride + pc * A.col_stride, A.row_stride,
                                      A.col_stride};
            pack_a(block, rows, kc, kernel, out + pc * m_pad + r0 * kc, tasks == 1);
        }
    };
    if (tasks == 1) return pack_range(0);
    parallel_for(tasks, pack_range);
}

// Where the panels of an operand block are: packed (panel q at
// packed + q*width*kc, width = mr for A, nr for B), except that the first
// in_place_extent rows (of A) or columns (of B) are read in place with the
// given stride: a small column-major A (the δᵀ of a weight gradient), with
// its column stride; on the skinny path a row-major B, with its row stride.
template <typename T>
struct Panels {
    const T* packed;
    const T* in_place = nullptr;
    index stride = 0;
    index in_place_extent = 0;
};

// Column-major A blocks spanning at most this many bytes are read in place:
// small enough to stay in L1 without their columns evicting each other.
constexpr index IN_PLACE_A_MAX_BYTES = 16 << 10;

// The panels of the (mc, kc) block of A at A_block: in place when it is
// column-major and small, else packed into buffer (only the ragged last
// panel, in the first case).
template <typename T>
Panels<T> a_panels(const MatrixView<T>& A_block, index mc, index kc, const MicroKernel<T>& kernel,
                    T* buffer) {
    const int mr = kernel.mr;
    if (A_block.row_stride == 1 && kc * A_block.col_stride * index(sizeof(T)) <= IN_PLACE_A_MAX_BYTES) {
        const Panels<T> panels{buffer, A_block.data, A_block.col_stride, mc / mr * mr};
        if (panels.in_place_extent < mc) {
            const MatrixView<T> ragged{A_block.data + panels.in_place_extent, 1, A_block.col_stride};
            pack_a(ragged, mc - panels.in_place_extent, kc, kernel, buffer);
        }
        return panels;
    }
    pack_a(A_block, mc, kc, kernel, buffer);
    return Panels<T>{buffer};
}

// The two inner loops: every MR x NR tile of an (mc, nc) block of C, from
// the A and B panels. C points at the block; row0 and col0 say where it sits
// in the caller's C, for the epilogue.
template <typename T>
void tile_loop(const MicroKernel<T>& kernel, index mc, index nc, index kc, const Panels<T>& a,
               const Panels<T>& b, T* C, index ldc, bool add, const Epilogue<T>* epilogue,
               index row0, index col0) {
    const int mr = kernel.mr, nr = kernel.nr;
    alignas(64) T edge[MAX_TILE_VALUES];  // room for any mr x nr tile (the ISA units check theirs)
    auto tile = [&](index ir, index jr) {
        const bool in_place = jr < b.in_place_extent;
        const T* b_panel = in_place ? b.in_place + jr : b.packed + (jr - b.in_place_extent) / nr * nr * kc;
        const index ldb = in_place ? b.stride : nr;
        const index n_live = std::min<index>(nr, nc - jr), m_live = std::min<index>(mr, mc - ir);
        const bool a_in_place = ir < a.in_place_extent;
        const T* a_panel = a_in_place ? a.in_place + ir : a.packed + (ir - a.in_place_extent) / mr * mr * kc;
        const index lda = a_in_place ? a.stride : mr;
        T* c = C + ir * ldc + jr;
        if (m_live == mr && n_live == nr) {
            kernel.run(kc, a_panel, lda, b_panel, ldb, c, ldc, add);
        } else {
            kernel.run(kc, a_panel, lda, b_panel, ldb, edge, nr, false);
            for (index i = 0; i < m_live; ++i)
                for (index j = 0; j < n_live; ++j)
                    c[i * ldc + j] = add ? c[i * ldc + j] + edge[i * nr + j] : edge[i * nr + j];
        }
        if (epilogue) epilogue->apply(epilogue->context, c, ldc, row0 + ir, col0 + jr, m_live, n_live);
    };
    // Ask for a tile's rows of C ahead of time: when C is larger than the
    // cache, their misses then overlap the arithmetic of the tile before.
    auto prefetch_c = [&](index ir, index jr) {
        const T* c = C + ir * ldc + jr;
        const index last = std::min<index>(nr, nc - jr) - 1;  // the tile's last column, inside C
        for (index i = 0; i < std::min<index>(mr, mc - ir); ++i) {
            __builtin_prefetch(c + i * ldc, 1);
            __builtin_prefetch(c + i * ldc + last, 1);
        }
    };
    if (kc <= SHALLOW_DEPTH) {
        // Shallow: the panels are tiny and the time goes into storing C, so
        // walk C row panel by row panel, fetching the next tile to the right.
        for (index ir = 0; ir < mc; ir += mr)
            for (index jr = 0; jr < nc; jr += nr) {
                if (jr + nr < nc) prefetch_c(ir, jr + nr);
                tile(ir, jr);
            }
        return;
    }
    // Deep: keep one B panel in L1 while the A panels go by. The next tile is
    // below this one; rows a multiple of 4 KiB apart share an L1 set, so
    // fetching them early would evict the rows being written.
    const bool prefetch_below = (ldc * index(sizeof(T))) % 4096 != 0;
    for (index jr = 0; jr < nc; jr += nr)
        for (index ir = 0; ir < mc; ir += mr) {
            if (prefetch_below && ir + mr < mc) prefetch_c(ir + mr, jr);
            tile(ir, jr);
        }
}

// One thread's share: the whole loop nest on a block of C.
template <typename T>
void gemm_block(const Block<T>& g) {
    const MicroKernel<T>& kernel = *g.kernel;
    const int mr = kernel.mr, nr = kernel.nr;
    const GemmBlocking& blocks = *g.blocks;
    const index MC = blocks.mc, KC = depth_step(g.K, blocks.kc), NC = blocks.nc;
    const bool skinny = g.M <= MC && g.B.col_stride == 1;
    T* const a_packed = packing_room(g);
    T* const b_packed = a_packed + a_room(blocks, mr);
    // The panels of rows [ic, ic + mc) of A in depth block [pc, pc + kc): from
    // the caller's packing of all of A, or packed here.
    auto a_block_at = [&](index ic, index mc, index pc, index kc) {
        if (g.packed_a) return Panels<T>{g.packed_a + pc * ((g.M + mr - 1) / mr * mr) + ic * kc};
        const MatrixView<T> A_block{g.A.data + ic * g.A.row_stride + pc * g.A.col_stride, g.A.row_stride,
                                    g.A.col_stride};
        return a_panels(A_block, mc, kc, kernel, a_packed);
    };

    for (index jc = 0; jc < g.N; jc += NC) {
        const index nc = std::min(NC, g.N - jc);
        for (index pc = 0; pc < g.K; pc += KC) {
            const index kc = std::min(KC, g.K - pc);
            const bool add = g.accumulate || pc > 0;
            const MatrixView<T> B_block{g.B.data + pc * g.B.row_stride + jc * g.B.col_stride,
                                        g.B.row_stride, g.B.col_stride};
            Panels<T> panels{b_packed};
            if (skinny) {
                panels = {b_packed, B_block.data, B_block.row_stride, nc / nr * nr};
                if (panels.in_place_extent < nc) {
                    const MatrixView<T> ragged{B_block.data + panels.in_place_extent, B_block.row_stride, 1};
                    pack_b(ragged, kc, nc - panels.in_place_extent, kernel, b_packed);
                }
            } else if (g.M <= MC) {
                // One block of rows: each B panel serves this block alone, so pack a
                // few panels at a time, just before their tiles read them (from L2,
                // not from the L3 a whole packed B block would have gone to).
                const Panels<T> a_block = a_block_at(0, g.M, pc, kc);
                for (index j0 = 0; j0 < nc; j0 += PANELS_PER_PACK * nr) {
                    const index width = std::min<index>(PANELS_PER_PACK * nr, nc - j0);
                    pack_b(MatrixView<T>{B_block.data + j0 * B_block.col_stride, B_block.row_stride, B_block.col_stride},
                           kc, width, kernel, b_packed);
                    tile_loop(kernel, g.M, width, kc, a_block, Panels<T>{b_packed}, g.C + jc + j0, g.ldc, add,
                              pc + kc == g.K ? g.epilogue : nullptr, g.row0, g.col0 + jc + j0);
                }
                continue;
            } else {
                pack_b(B_block, kc, nc, kernel, b_packed);
            }
            for (index ic = 0; ic < g.M; ic += MC) {
                const index mc = std::min(MC, g.M - ic);
                tile_loop(kernel, mc, nc, kc, a_block_at(ic, mc, pc, kc), panels, g.C + ic * g.ldc + jc, g.ldc, add,
                          pc + kc == g.K ? g.epilogue : nullptr, g.row0 + ic, g.col0 + jc);
            }
        }
    }
}

// For a tall A on several threads: each B block is packed once, by all
// threads together, into a shared buffer; then the threads take MC-row
// blocks of A in turn, each packing its own A block.
template <typename T>
void gemm_shared_b(const Block<T>& g, index threads) {
    const MicroKernel<T>& kernel = *g.kernel;
    const int mr = kernel.mr, nr = kernel.nr;
    const GemmBlocking& blocks = *g.blocks;
    const index MC = blocks.mc, KC = depth_step(g.K, blocks.kc), NC = blocks.nc;
    thread_local std::vector<T> shared_b;
    const index depth = std::min(KC, g.K);
    T* const b_packed =
        reserve_aligned(shared_b, static_cast<size_t>((std::min(NC, g.N) + nr - 1) / nr * nr * depth));
    const index row_blocks = (g.M + MC - 1) / MC;

    for (index jc = 0; jc < g.N; jc += NC) {
        const index nc = std::min(NC, g.N - jc);
        const index panels = (nc + nr - 1) / nr;
        for (index pc = 0; pc < g.K; pc += KC) {
            const index kc = std::min(KC, g.K - pc);
            const bool add = g.accumulate || pc > 0;
            const MatrixView<T> B_block{g.B.data + pc * g.B.row_stride + jc * g.B.col_stride,
                                        g.B.row_stride, g.B.col_stride};
            const index groups = std::min<index>(panels, PARTS_PER_THREAD * threads);
            parallel_for(groups, [&](index grp) {
                const index q0 = grp * panels / groups, q1 = (grp + 1) * panels / groups;
                const MatrixView<T> part{B_block.data + q0 * nr * B_block.col_stride, B_block.row_stride,
                                         B_block.col_stride};
                pack_b(part, kc, std::min(nc, q1 * nr) - q0 * nr, kernel, b_packed + q0 * nr * kc);
            });
            // Tasks are (row block, column group) pairs: small enough to balance
            // the threads, wide enough that packing an A block again per group is cheap.
            const index col_groups = std::max<index>(1, std::min<index>(panels / 32, 4));
            parallel_for(row_blocks * col_groups, [&](index task) {
                T* const a_packed = packing_room(g);
                const index blk = task / col_groups, grp = task % col_groups;
                const index ic = blk * MC, mc = std::min(MC, g.M - ic);
                const index j0 = grp * panels / col_groups * nr;
                const index j1 = std::min(nc, (grp + 1) * panels / col_groups * nr);
                const MatrixView<T> A_block{g.A.data + ic * g.A.row_stride + pc * g.A.col_stride,
                                            g.A.row_stride, g.A.col_stride};
                tile_loop(kernel, mc, j1 - j0, kc, a_panels(A_block, mc, kc, kernel, a_packed),
                          Panels<T>{b_packed + j0 * kc},
                          g.C + ic * g.ldc + jc + j0, g.ldc, add, pc + kc == g.K ? g.epilogue : nullptr,
                          g.row0 + ic, g.col0 + jc + j0);
            });
        }
    }
}

// C (M, N) = A·B through Cᵀ (N, M) = Bᵀ·Aᵀ in a scratch buffer, then copied
// into C and the epilogue run on all of C at once.
template <typename T>
void gemm_few_columns(const MicroKernel<T>& kernel, index M, index N, index K, MatrixView<T> A, MatrixView<T> B,
                      T* C, index ldc, const Epilogue<T>* epilogue) {
    thread_local std::vector<T> scratch;
    T* Ct = reserve_aligned(scratch, static_cast<size_t>(N * M));
    const MatrixView<T> Bt{B.data, B.col_stride, B.row_stride}, At{A.data, A.col_stride, A.row_stride};
    gemm_with<T>(kernel, N, M, K, Bt, At, Ct, M, false, nullptr);
    for (index i = 0; i < M; ++i)
        for (index j = 0; j < N; ++j) C[i * ldc + j] = Ct[j * M + i];
    if (epilogue) epilogue->apply(epilogue->context, C, ldc, 0, 0, M, N);
}

}  // namespace

template <typename T>
void gemm(index M, index N, index K, MatrixView<T> A, MatrixView<T> B, T* C, index ldc,
          bool accumulate, const Epilogue<T>* epilogue) {
    gemm_with<T>(active_micro_kernel<T>(), M, N, K, A, B, C, ldc, accumulate, epilogue);
}

template <typename T>
void gemm_with(const MicroKernel<T>& kernel, index M, index N, index K, MatrixView<T> A, MatrixView<T> B, T* C,
               index ldc, bool accumulate, const Epilogue<T>* epilogue) {
    // A is (M, K), B is (K, N), C is (M, N) with row stride ldc
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (index i = 0; i < M; ++i) {
            if (!accumulate) std::fill(C + i * ldc, C + i * ldc + N, T(0));
            if (epilogue) epilogue->apply(epilogue->context, C + i * ldc, ldc, i, 0, 1, N);
        }
        return;
    }
    if ((M == 1 || N == 1 || K == 1) && kernel.unit_dimension &&
        kernel.unit_dimension(M, N, K, A, B, C, ldc, accumulate)) {
        if (epilogue) epilogue->apply(epilogue->context, C, ldc, 0, 0, M, N);
        return;
    }
    // Few columns (the output layer of a classifier: 10 units, say) leave
    // most of an NR-wide tile as padding; as rows of Cᵀ = Bᵀ·Aᵀ they fill
    // MR-tall tiles far better. Each value is the same sum, in the same
    // order, as the direct product would give.
    const index padded_as_rows = (N + kernel.mr - 1) / kernel.mr * kernel.mr;
    if (!accumulate && N < kernel.nr && padded_as_rows < kernel.nr && M >= 2 * kernel.nr)
        return gemm_few_columns(kernel, M, N, K, A, B, C, ldc, epilogue);
    const index row_tiles = (M + kernel.mr - 1) / kernel.mr;
    const index col_tiles = (N + kernel.nr - 1) / kernel.nr;
    // A few parts per thread, handed out dynamically, so that a thread slowed
    // by a busy core does not hold up the rest.
    const index by_size = std::max<index>(1, 2 * M * N * K / MIN_FLOPS_PER_THREAD);
    const index threads = std::min<index>(get_num_threads(), by_size);
    // Split the longer side, except that a B that must be packed (not
    // row-major) is split by columns whenever each thread gets some: row
    // parts would each pack all of B, column parts pack a share each.
    const bool b_packed = B.col_stride != 1;
    const bool split_cols = col_tiles >= row_tiles || (b_packed && col_tiles >= 2 * threads);
    const index tiles = split_cols ? col_tiles : row_tiles;
    index parts = threads <= 1 ? 1 : std::min<index>({PARTS_PER_THREAD * threads, tiles, by_size});
    // Few parts: a whole number per thread, or the last one runs alone (3 parts on 2 threads take 2 rounds).
    if (parts > threads && parts < PARTS_PER_THREAD * threads) parts = parts / threads * threads;

    // Packing room for every thread that may run a part, made here, by the
    // caller: per thread, a block of A and a block of B as wide as the widest part.
    const GemmBlocking& blocks = gemm_blocking<T>(kernel);
    const bool shared_b = parts > 1 && M > shared_a_max_rows(blocks);
    const index widest = split_cols ? std::min(N, (tiles + parts - 1) / parts * kernel.nr) : N;
    const index b_room = shared_b ? 0 : round_to_lines((std::min(blocks.nc, widest) + kernel.nr - 1) / kernel.nr *
                                                       kernel.nr * std::min(blocks.kc, K));
    const index slot_size = a_room(blocks, kernel.mr) + b_room;
    // (the shared-B path hands out more tasks than parts: any thread of the pool may take one)
    const index slots = shared_b ? index(get_num_threads()) : std::max<index>(1, std::min<index>(get_num_threads(), parts));
    thread_local std::vector<T> packing;
    T* const scratch = reserve_aligned(packing, static_cast<size_t>(slots * slot_size));

    if (shared_b)
        return gemm_shared_b(
            Block<T>{&kernel, &blocks, M, N, K, A, B, C, ldc, accumulate, epilogue, 0, 0, nullptr, scratch, slot_size,
                     slots},
            threads);

    // Column parts of a short A share one packing of it, done here once.
    const T* packed_a = nullptr;
    if (parts > 1 && split_cols) {
        thread_local std::vector<T> shared_a;
        const index m_pad = (M + kernel.mr - 1) / kernel.mr * kernel.mr;
        T* buffer = reserve_aligned(shared_a, static_cast<size_t>(m_pad * K + PACK_SLACK));
        // Worth splitting when each thread gets a good share (a few 4 KiB pages).
        const index pack_tasks = M * K >= (64 << 10) / index(sizeof(T)) ? threads : 1;
        pack_all_of_a(A, M, K, kernel, buffer, pack_tasks);
        packed_a = buffer;
    }

    // Part p gets tiles [p*tiles/parts, (p+1)*tiles/parts): a fixed, tile-aligned split.
    auto run_part = [&](index p) {
        const index t0 = p * tiles / parts, t1 = (p + 1) * tiles / parts;
        Block<T> g{&kernel, &blocks, M, N, K, A, B, C, ldc, accumulate, epilogue, 0, 0, packed_a, scratch, slot_size,
                   slots};
        if (split_cols) {
            g.col0 = t0 * kernel.nr;
            g.N = std::min(N, t1 * kernel.nr) - g.col0;
            g.B.data += g.col0 * B.col_stride;
            g.C += g.col0;
        } else {
            g.row0 = t0 * kernel.mr;
            g.M = std::min(M, t1 * kernel.mr) - g.row0;
            g.A.data += g.row0 * A.row_stride;
            g.C += g.row0 * ldc;
        }
        gemm_block(g);
    };
    if (parts <= 1) return run_part(0);
    parallel_for(parts, run_part);
}

template void gemm<float>(index, index, index, MatrixView<float>, MatrixView<float>, float*, index,
                          bool, const Epilogue<float>*);
template void gemm<double>(index, index, index, MatrixView<double>, MatrixView<double>, double*,
                           index, bool, const Epilogue<double>*);
template void gemm_with<float>(const MicroKernel<float>&, index, index, index, MatrixView<float>, MatrixView<float>,
                               float*, index, bool, const Epilogue<float>*);
template void gemm_with<double>(const MicroKernel<double>&, index, index, index, MatrixView<double>,
                                MatrixView<double>, double*, index, bool, const Epilogue<double>*);

}  // namespace bpfast
