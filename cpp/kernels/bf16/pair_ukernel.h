// The bfloat16 micro-kernel contract (the float contract of gemm/ukernel.h,
// two depths per step): float32 C tiles from bfloat16 pairs (bfloat16.h).
// Written per ISA (kernels/isa/): the VDPBF16PS kernel and its emulation on
// plain AVX-512 and AVX2, AMX's tiles, and a portable loop. The loop nest
// around it (gemm_bf16.cpp) is portable and converts float32 operands to
// pairs while it packs them, through the kernel's packers, so the caller
// keeps and passes float32.
#pragma once

#include "common.h"
#include "kernels/bf16/bfloat16.h"
#include "kernels/gemm/gemm.h"

namespace bpfast {

// How a kernel reads its A panel of mr rows and `pairs` depth pairs:
//   broadcast  a_panel[q*mr + i] = (A(i, 2q), A(i, 2q+1)): a column of pairs
//              per step, broadcast one row at a time (VDPBF16PS kernels)
//   rows       a_panel[i*pairs + q]: each row's pairs contiguous, as AMX
//              loads a tile of A (16 rows of 64 bytes)
// The B panel is always b_panel[q*nr + j] = (B(2q, j), B(2q+1, j)).
enum class PairLayout { broadcast, rows };

// c (mr, nr, row stride ldc) = [c +] Σ_q a_pair(i, q) · b_pair(q, j), float32 sums.
// `pairs` is a multiple of the kernel's pairs_multiple (the packers pad with zeros).
using PairKernelFn = void (*)(index pairs, const Bf16Pair* a_panel, const Bf16Pair* b_panel, float* c, index ldc,
                              bool accumulate);

// The values a panel is packed from: element (x, p) = data[x*x_stride + p*depth_stride],
// x a row of A or a column of B, p the depth.
struct PanelSource {
    const float* data;
    index x_stride;
    index depth_stride;
};

// Packs one panel of `width` (the kernel's mr or nr) lines x `pairs` pairs
// from the first `live` lines and `depth` depths of src, rounding each value
// to bfloat16; lines past live, depths past depth, are zeros.
using PairPackFn = void (*)(const PanelSource& src, index live, index depth, index pairs, Bf16Pair* panel);

struct PairMicroKernel {
    const char* name;  // ISA and tile, as in "avx512_bf16_8x32"
    int mr;
    int nr;
    PairLayout a_layout;
    int pairs_multiple;  // depth blocks are padded to a multiple of this many pairs (AMX: 16)
    PairKernelFn run;
    PairPackFn pack_a;  // mr lines, in a_layout
    PairPackFn pack_b;  // nr lines, broadcast layout
    void (*begin)() = nullptr;  // called on a thread before it runs tiles (AMX: load the tile configuration)
};

// The bfloat16 kernel chosen once for this process (runtime/dispatch.cpp).
const PairMicroKernel& active_pair_micro_kernel();

}  // namespace bpfast
