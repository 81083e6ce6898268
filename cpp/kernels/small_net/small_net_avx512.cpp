// The small-network kernels compiled with -mavx512f: 64-byte vectors (16
// floats or 8 doubles) and 32 registers; called only when dispatch.cpp has
// chosen the AVX-512 path.
#include "kernels/small_net/small_net_loops.h"

namespace bpfast {

SmallNetKernels<float> small_net_kernels_avx512_f32() { return SmallNetLoops<float, 64, 32>::table(); }
SmallNetKernels<double> small_net_kernels_avx512_f64() { return SmallNetLoops<double, 64, 32>::table(); }

}  // namespace bpfast
