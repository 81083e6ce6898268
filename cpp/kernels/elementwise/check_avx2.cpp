// Whole-array checks. Built with -mavx2 -mfma; called only when runtime/dispatch.cpp has seen both on the CPU.
#include "kernels/elementwise/check_loops.h"

namespace bpfast {

CheckKernels<float> check_kernels_avx2_f32() { return check_loops_table<float>(); }
CheckKernels<double> check_kernels_avx2_f64() { return check_loops_table<double>(); }

}  // namespace bpfast
