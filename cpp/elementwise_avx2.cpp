// Elementwise kernels compiled with -mavx2 -mfma; called only when
// dispatch.cpp has seen both features on the CPU.
#include "elementwise.h"
#include "elementwise_loops.h"

namespace bpfast {

ElementwiseKernels elementwise_avx2() {
    return {&activate_loop<float>, &activate_loop<double>, &softmax_rows_loop<float>,
            &softmax_rows_loop<double>};
}

}  // namespace bpfast
