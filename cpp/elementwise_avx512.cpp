// Elementwise kernels compiled with -mavx512f (16 floats or 8 doubles a
// vector); called only when dispatch.cpp has chosen the AVX-512 path.
#include "elementwise.h"
#include "elementwise_loops.h"

namespace bpfast {

ElementwiseKernels elementwise_avx512() {
    return {&activate_loop<float>, &activate_loop<double>, &softmax_rows_loop<float>,
            &softmax_rows_loop<double>};
}

}  // namespace bpfast
