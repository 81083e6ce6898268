// Elementwise kernels compiled with -mavx512f (16 floats or 8 doubles a
// vector); called only when dispatch.cpp has chosen the AVX-512 path.
#include "kernels/elementwise/elementwise_table.h"

namespace bpfast {

ElementwiseKernels elementwise_avx512() {
    return this_units_kernels();
}

}  // namespace bpfast
