// Optimizer updates. Built with -mavx2 -mfma; called only when runtime/dispatch.cpp has seen both on the CPU.
#include "kernels/elementwise/optim_loops.h"

namespace bpfast {

OptimizerKernels<float> optim_kernels_avx2_f32() { return optim_loops_table<float>(); }
OptimizerKernels<double> optim_kernels_avx2_f64() { return optim_loops_table<double>(); }

}  // namespace bpfast
