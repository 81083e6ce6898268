// Blocked, packed GEMM (the BLIS loop nest). Portable: the only ISA-specific
// piece is the micro-kernel, chosen at run time in dispatch.cpp.
//
//   for jc in N step NC            B block of NC columns
//     for pc in K step KC          pack B (KC, NC) into NR-wide panels
//       for ic in M step MC        pack A (MC, KC) into MR-tall panels
//         for jr, ir               micro-kernel on an MR x NR tile of C
//
// Edge tiles are zero-padded while packing; the micro-kernel always computes
// a whole tile, and partial tiles go through a small buffer.
#include "gemm.h"

#include <algorithm>
#include <vector>

#include "ukernel.h"

namespace bpfast {
namespace {

constexpr index MC = 72;    // rows of A per block: a multiple of every MR we use
constexpr index KC = 256;   // depth per block: an A panel and a B panel stay in L1
constexpr index NC = 3072;  // columns of B per block: the packed B block stays in L2/L3

// Pack rows [0, rows) x depth [0, depth) of A into panels of mr rows:
// panel q holds a[q*mr*depth + p*mr + i] = A(q*mr + i, p), zero past `rows`.
template <typename T>
void pack_a(const MatrixView<T>& A, index rows, index depth, int mr, T* out) {
    for (index q = 0; q < rows; q += mr) {
        const index live = std::min<index>(mr, rows - q);
        const T* src = A.data + q * A.row_stride;
        for (index p = 0; p < depth; ++p) {
            T* dst = out + p * mr;
            for (index i = 0; i < live; ++i) dst[i] = src[i * A.row_stride + p * A.col_stride];
            for (index i = live; i < mr; ++i) dst[i] = T(0);
        }
        out += mr * depth;
    }
}

// Pack depth [0, depth) x columns [0, cols) of B into panels of nr columns:
// panel q holds b[q*nr*depth + p*nr + j] = B(p, q*nr + j), zero past `cols`.
template <typename T>
void pack_b(const MatrixView<T>& B, index depth, index cols, int nr, T* out) {
    for (index q = 0; q < cols; q += nr) {
        const index live = std::min<index>(nr, cols - q);
        const T* src = B.data + q * B.col_stride;
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
const MicroKernel<T>& active_ukernel();
template <>
const MicroKernel<float>& active_ukernel<float>() { return active_ukernel_f32(); }
template <>
const MicroKernel<double>& active_ukernel<double>() { return active_ukernel_f64(); }

template <typename T>
void scale_or_zero(index M, index N, T* C, index ldc, bool accumulate) {
    if (accumulate) return;
    for (index i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, T(0));
}

}  // namespace

template <typename T>
void gemm(index M, index N, index K, MatrixView<T> A, MatrixView<T> B, T* C, index ldc,
          bool accumulate) {
    // A is (M, K), B is (K, N), C is (M, N) with row stride ldc
    if (M <= 0 || N <= 0) return;
    if (K <= 0) return scale_or_zero(M, N, C, ldc, accumulate);

    const MicroKernel<T>& kernel = active_ukernel<T>();
    const int mr = kernel.mr, nr = kernel.nr;
    thread_local std::vector<T> a_packed, b_packed;
    a_packed.resize(static_cast<size_t>(MC + mr) * KC);
    b_packed.resize(static_cast<size_t>(NC + nr) * KC);
    alignas(64) T edge[16 * 32];  // room for any mr x nr tile we ship

    for (index jc = 0; jc < N; jc += NC) {
        const index nc = std::min(NC, N - jc);
        for (index pc = 0; pc < K; pc += KC) {
            const index kc = std::min(KC, K - pc);
            const bool add = accumulate || pc > 0;
            const MatrixView<T> B_block{B.data + pc * B.row_stride + jc * B.col_stride,
                                        B.row_stride, B.col_stride};
            pack_b(B_block, kc, nc, nr, b_packed.data());
            for (index ic = 0; ic < M; ic += MC) {
                const index mc = std::min(MC, M - ic);
                const MatrixView<T> A_block{A.data + ic * A.row_stride + pc * A.col_stride,
                                            A.row_stride, A.col_stride};
                pack_a(A_block, mc, kc, mr, a_packed.data());
                for (index jr = 0; jr < nc; jr += nr) {
                    const T* b_panel = b_packed.data() + (jr / nr) * nr * kc;
                    const index n_live = std::min<index>(nr, nc - jr);
                    for (index ir = 0; ir < mc; ir += mr) {
                        const T* a_panel = a_packed.data() + (ir / mr) * mr * kc;
                        const index m_live = std::min<index>(mr, mc - ir);
                        T* c = C + (ic + ir) * ldc + (jc + jr);
                        if (m_live == mr && n_live == nr) {
                            kernel.run(kc, a_panel, b_panel, c, ldc, add);
                            continue;
                        }
                        kernel.run(kc, a_panel, b_panel, edge, nr, false);
                        for (index i = 0; i < m_live; ++i)
                            for (index j = 0; j < n_live; ++j)
                                c[i * ldc + j] = add ? c[i * ldc + j] + edge[i * nr + j]
                                                     : edge[i * nr + j];
                    }
                }
            }
        }
    }
}

template void gemm<float>(index, index, index, MatrixView<float>, MatrixView<float>, float*,
                          index, bool);
template void gemm<double>(index, index, index, MatrixView<double>, MatrixView<double>, double*,
                           index, bool);

}  // namespace bpfast
