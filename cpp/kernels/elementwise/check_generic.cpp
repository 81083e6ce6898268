// Whole-array checks. Portable (baseline ISA).
#include "kernels/elementwise/check_loops.h"

namespace bpfast {

CheckKernels<float> check_kernels_generic_f32() { return check_loops_table<float>(); }
CheckKernels<double> check_kernels_generic_f64() { return check_loops_table<double>(); }

}  // namespace bpfast
