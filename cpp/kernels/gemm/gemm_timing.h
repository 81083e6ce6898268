// Timing a GEMM micro-kernel on this machine, for bpfast's choice among an
// ISA's candidates (python/bpfast/_tuning.py decides; this only measures).
#pragma once

#include <vector>

#include "common.h"
#include "kernels/gemm/ukernel.h"

namespace bpfast {

// Seconds taken by each of `reps` products C (M, N) = A (M, K) · op(B) on
// `kernel` through the whole GEMM (blocking, packing, threads), after one
// untimed product. op(B) is B (K, N) row-major, or with trans_b the transpose
// of a row-major (N, K) matrix (a layer's X·Wᵀ). The operands are made here.
// On `threads` threads (0: as many as gemm would take).
template <typename T>
std::vector<double> time_gemm(const MicroKernel<T>& kernel, index M, index N, index K, bool trans_b, int reps,
                              int threads);

}  // namespace bpfast
