// Portable elementwise kernels (baseline ISA).
#include "elementwise.h"
#include "elementwise_loops.h"

namespace bpfast {

ElementwiseKernels elementwise_generic() {
    return {&activate_loop<float>, &activate_loop<double>, &softmax_rows_loop<float>,
            &softmax_rows_loop<double>};
}

}  // namespace bpfast
