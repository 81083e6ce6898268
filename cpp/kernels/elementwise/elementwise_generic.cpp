// Portable elementwise kernels (baseline ISA).
#include "kernels/elementwise/elementwise_table.h"

namespace bpfast {

ElementwiseKernels elementwise_generic() {
    return this_units_kernels();
}

}  // namespace bpfast
