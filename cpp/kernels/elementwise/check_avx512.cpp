// Whole-array checks. Built with -mavx512f; called only when runtime/dispatch.cpp has seen AVX-512F on the CPU and in the OS.
#include "kernels/elementwise/check_loops.h"

namespace bpfast {

CheckKernels<float> check_kernels_avx512_f32() { return check_loops_table<float>(); }
CheckKernels<double> check_kernels_avx512_f64() { return check_loops_table<double>(); }

}  // namespace bpfast
