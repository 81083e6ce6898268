// Optimizer updates. Portable (baseline ISA).
#include "kernels/elementwise/optim_loops.h"

namespace bpfast {

OptimizerKernels<float> optim_kernels_generic_f32() { return optim_loops_table<float>(); }
OptimizerKernels<double> optim_kernels_generic_f64() { return optim_loops_table<double>(); }

}  // namespace bpfast
