// Block sizes of the GEMM loop nest (gemm.cpp), from the cache sizes the CPU
// reports and the micro-tile of the kernel in use.
//
//   kc  depth of a block. The inner loops keep one B panel (kc x nr) close
//       (L1, spilling to L2) while the A panels of the block stream past it
//       from L2; the deeper the block, the fewer times C is read and written.
//   mc  rows of A per block. The packed A block (mc x kc) stays in L2, next
//       to the B panels on their way to L1.
//   nc  columns of B per block. The packed B block (kc x nc) stays in this
//       core's share of L3.
#pragma once

#include <string>

#include "common.h"
#include "runtime/cpu_info.h"

namespace bpfast {

struct GemmBlocking {
    index mc, kc, nc;
};

template <typename T>
struct MicroKernel;  // kernels/gemm/ukernel.h

// The rule, for a micro-tile of mr x nr values of value_bytes each. Pure, so
// that tests can give it any cache sizes; caches the OS does not report (0)
// count as small ones of current x86 CPUs (512 KiB L2, 2 MiB of L3 per CPU).
// The L1d size does not enter (see kc below).
GemmBlocking blocking_for(const CacheSizes& caches, int mr, int nr, int value_bytes);

// The rule's mc and nc for an mr x nr tile under a given depth kc.
GemmBlocking blocks_for_depth(const CacheSizes& caches, index kc, int mr, int nr, int value_bytes);

// The depth of the blocks of a K-deep product: ceil(K / kc) blocks of about
// equal depth (rounded up to a multiple of 16, or kc where that is less),
// none deeper than kc; the last takes what is left. An even split keeps a
// product of depth kc + 16 from running a 16-deep block.
inline index depth_step(index K, index kc) {
    const index blocks = (K + kc - 1) / kc;
    const index even = ((K + blocks - 1) / blocks + 15) / 16 * 16;
    return even < kc ? even : kc;
}

// The blocking gemm uses for T with `kernel`, one of micro_kernel_candidates<T>():
// blocking_for this CPU with mc and nc for the kernel's tile but kc for the
// first candidate's, so that the depth blocks, and with them the order of
// every sum, are the same whichever candidate runs; or what
// BPFAST_GEMM_BLOCKS="mc,kc,nc" sets (mc rounded up to a multiple of mr and
// nc to one of nr). Chosen once per process and candidate; a malformed
// BPFAST_GEMM_BLOCKS throws std::invalid_argument (at import).
template <typename T>
const GemmBlocking& gemm_blocking(const MicroKernel<T>& kernel);

// The blocking of the kernel in use (active_micro_kernel<T>()).
template <typename T>
const GemmBlocking& gemm_blocking();

// The blocking of the bfloat16 GEMM (kernels/bf16/gemm_bf16.cpp), whose kc
// counts depth pairs (4 bytes, as a float32) and is a multiple of the
// kernel's pairs_multiple; BPFAST_GEMM_BLOCKS gives its kc in depths.
const GemmBlocking& pair_gemm_blocking();

// BPFAST_GEMM_BLOCKS as the process read it, once (empty: the rule's blocks).
const std::string& gemm_blocks_forced();

}  // namespace bpfast
