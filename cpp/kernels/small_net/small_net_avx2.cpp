// The small-network kernels compiled with -mavx2 -mfma: 32-byte vectors (8
// floats or 4 doubles) and 16 registers; called only when dispatch.cpp has
// seen both features on the CPU.
#include "kernels/small_net/small_net_loops.h"

namespace bpfast {

SmallNetKernels<float> small_net_kernels_avx2_f32() { return SmallNetLoops<float, 32, 16>::table(); }
SmallNetKernels<double> small_net_kernels_avx2_f64() { return SmallNetLoops<double, 32, 16>::table(); }

}  // namespace bpfast
