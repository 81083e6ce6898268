// Elementwise kernels compiled with -mavx2 -mfma; called only when
// dispatch.cpp has seen both features on the CPU.
#include "kernels/elementwise/elementwise_table.h"

namespace bpfast {

ElementwiseKernels elementwise_avx2() {
    return this_units_kernels();
}

}  // namespace bpfast
