// Optimizer updates. Built with -mavx512f; called only when runtime/dispatch.cpp has seen AVX-512F on the CPU and in the OS.
#include "kernels/elementwise/optim_loops.h"

namespace bpfast {

OptimizerKernels<float> optim_kernels_avx512_f32() { return optim_loops_table<float>(); }
OptimizerKernels<double> optim_kernels_avx512_f64() { return optim_loops_table<double>(); }

}  // namespace bpfast
