// One instruction set's kernels: the table each ISA unit (kernels/isa/<name>.cpp)
// fills and runtime/dispatch.cpp's registry lists, one row per ISA.
#pragma once

#include <vector>

#include "kernels/elementwise/activation_kernels.h"
#include "kernels/elementwise/check_kernels.h"
#include "kernels/elementwise/optim_kernels.h"
#include "kernels/bf16/pair_ukernel.h"
#include "kernels/gemm/ukernel.h"
#include "kernels/probe/fma_probe.h"
#include "kernels/small_net/small_net.h"

namespace bpfast {

// Every kernel family of one ISA in dtype T.
template <typename T>
struct KernelTable {
    std::vector<MicroKernel<T>> micro_kernels;  // the GEMM's candidates, the default first (ukernel.h)
    ActivationKernels<T> activation;
    CheckKernels<T> check;
    OptimizerKernels<T> optim;
    SmallNetKernels<T> small_net;  // lanes 0: none on this ISA
};

// What an ISA unit exports: its tables, built only once dispatch.cpp has seen
// that the CPU runs the ISA, its bfloat16 micro-kernel, and its FMA probe
// (lanes 0: none).
struct IsaKernels {
    KernelTable<float> (*f32)();
    KernelTable<double> (*f64)();
    FmaProbe probe;
    PairMicroKernel (*bf16)();
    // A bfloat16 unit's float small-network kernels, which replace those of
    // the row's float tables: the same loops, rounding to bfloat16 with the
    // unit's VCVTNEPS2BF16 instead of integer operations (null: none).
    SmallNetKernels<float> (*small_net_f32)() = nullptr;
};

}  // namespace bpfast
