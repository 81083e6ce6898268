// Activation kernels. Built with -mavx512f; called only when runtime/dispatch.cpp has seen AVX-512F on the CPU and in the OS.
#include "kernels/elementwise/activation_loops.h"

namespace bpfast {

ActivationKernels<float> activation_kernels_avx512_f32() { return activation_loops_table<float>(); }
ActivationKernels<double> activation_kernels_avx512_f64() { return activation_loops_table<double>(); }

}  // namespace bpfast
