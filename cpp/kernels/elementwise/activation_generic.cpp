// Activation kernels. Portable (baseline ISA).
#include "kernels/elementwise/activation_loops.h"

namespace bpfast {

ActivationKernels<float> activation_kernels_generic_f32() { return activation_loops_table<float>(); }
ActivationKernels<double> activation_kernels_generic_f64() { return activation_loops_table<double>(); }

}  // namespace bpfast
