// The micro-kernel contract, shared by every ISA (the BLIS split: only this
// tiny function is written per instruction set; blocking and packing are
// portable and live in gemm.cpp). An ISA unit (kernels/isa/) describes each
// of its micro-kernels as a MicroKernel: its tile and the packers that fill
// panels of that tile's shape.
#pragma once

#include <cstddef>
#include <vector>

#include "common.h"
#include "kernels/gemm/gemm.h"

namespace bpfast {

// c (mr, nr, row stride ldc) = [c +] a_panel · b_panel over k steps, where
//   a_panel holds k columns of mr values: a_panel[p*lda + i] = A(i, p)
//   b_panel holds k rows of nr values:    b_panel[p*ldb + j] = B(p, j)
// a_panel is a packed panel (lda = mr) or columns of a column-major A (the
// δᵀ of the weight gradient) read in place; b_panel is a packed panel
// (ldb = nr) or, on the skinny path, rows of a row-major B read in place.
// Edge tiles are zero-padded before the kernel sees them, so it always
// computes a whole tile.
template <typename T>
using MicroKernelFn = void (*)(index k, const T* a_panel, index lda, const T* b_panel, index ldb, T* c,
                               index ldc, bool accumulate);

// Packs one full B panel from a transposed source: B(p, j) = src[j*ld + p],
// i.e. nr rows of a row-major matrix (W in the forward X·Wᵀ) become one
// panel with panel[p*nr + j] = src[j*ld + p]. Optional (null: the portable
// loop in gemm.cpp); an ISA can do it with in-register transposes.
template <typename T>
using PackTransposedFn = void (*)(index depth, const T* src, index ld, T* panel);

// Packs one full A panel from a row-major source: panel[p*mr + i] = src[i*ld + p]
// for i < mr. It may store up to 8 values past the end of the panel (the
// buffer has room); panels are packed in order, so the next one overwrites them.
template <typename T>
using PackRowsFn = void (*)(index depth, const T* src, index ld, T* panel);

// Packs one full A panel from a column-major source (a transposed A, whose
// columns are contiguous): panel[p*mr + i] = src[p*ld + i] for i < mr.
template <typename T>
using PackColumnsFn = void (*)(index depth, const T* src, index ld, T* panel);

// C = [C +] A·B when M, N or K is 1, as plain loops (an MR x NR tile would
// be mostly padding); returns false, touching nothing, for a shape it does
// not take. See gemm_unit_dimension.h.
template <typename T>
using UnitDimensionFn = bool (*)(index M, index N, index K, const MatrixView<T>& A, const MatrixView<T>& B,
                                 T* C, index ldc, bool accumulate);

// The most values a tile may hold (gemm.cpp's buffer for edge tiles).
constexpr int MAX_TILE_VALUES = 16 * 32;

// One micro-kernel and the packers of its tile; a null packer leaves that
// case to the portable loops of gemm.cpp. An ISA may offer several for a
// dtype (KernelTable::micro_kernels); each must sum every value of C in the
// same order as the others (from zero, one FMA per depth step in increasing
// depth, then added to C), so that any of them gives the same bits and the
// choice among them is a matter of speed alone.
template <typename T>
struct MicroKernel {
    const char* name;  // ISA, dtype and tile, as in "avx2_f32_6x16"
    int mr;
    int nr;
    MicroKernelFn<T> run;
    PackRowsFn<T> pack_a_rows = nullptr;
    PackColumnsFn<T> pack_a_columns = nullptr;
    PackTransposedFn<T> pack_b_transposed = nullptr;
    UnitDimensionFn<T> unit_dimension = nullptr;
};

// Portable packers for a tile of MR rows, instantiated by each ISA unit
// with its own flags (internal linkage: each unit keeps its copy).
namespace {

// panel (depth, MR): panel[p*MR + i] = src[p*ld + i], MR contiguous values
// per step, with a trip count the compiler knows.
template <int MR, typename T>
void pack_columns(index depth, const T* src, index ld, T* panel) {
    for (index p = 0; p < depth; ++p)
        for (int i = 0; i < MR; ++i) panel[p * MR + i] = src[p * ld + i];
}

}  // namespace

// The micro-kernel in use (runtime/dispatch.cpp): one of the candidates
// below, the first until use_micro_kernel picks another (bpfast's tuning does,
// python/bpfast/_tuning.py). Results are the same bits whichever it is.
template <typename T>
const MicroKernel<T>& active_micro_kernel();

// Every micro-kernel the chosen ISA has for T, its default (the one it ran
// before there was a choice) first.
template <typename T>
const std::vector<MicroKernel<T>>& micro_kernel_candidates();

// Runs candidate `at` from now on; std::out_of_range past the last.
template <typename T>
void use_micro_kernel(std::size_t at);

}  // namespace bpfast
