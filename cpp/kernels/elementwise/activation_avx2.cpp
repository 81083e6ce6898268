// Activation kernels. Built with -mavx2 -mfma; called only when runtime/dispatch.cpp has seen both on the CPU.
#include "kernels/elementwise/activation_loops.h"

namespace bpfast {

ActivationKernels<float> activation_kernels_avx2_f32() { return activation_loops_table<float>(); }
ActivationKernels<double> activation_kernels_avx2_f64() { return activation_loops_table<double>(); }

}  // namespace bpfast
