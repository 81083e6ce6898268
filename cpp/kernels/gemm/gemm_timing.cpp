#include "kernels/gemm/gemm_timing.h"

#include <chrono>

#include "runtime/thread_chooser.h"
#include "runtime/threads.h"

namespace bpfast {

template <typename T>
std::vector<double> time_gemm(const MicroKernel<T>& kernel, index M, index N, index K, bool trans_b, int reps,
                              int threads) {
    // A is (M, K), B is (K, N) or its transpose (N, K), C is (M, N)
    const ThreadLimit limit(threads > 0 ? threads : thread_limit());
    std::vector<T> A(static_cast<size_t>(M * K)), B(static_cast<size_t>(K * N)), C(static_cast<size_t>(M * N));
    // Values in [-1, 1) on a fixed pattern: no denormals, no overflow.
    for (size_t i = 0; i < A.size(); ++i) A[i] = T(int(i * 7 % 31) - 15) / T(16);
    for (size_t i = 0; i < B.size(); ++i) B[i] = T(int(i * 11 % 29) - 14) / T(16);
    const MatrixView<T> a = as_matrix(A.data(), K);
    const MatrixView<T> b = trans_b ? as_transpose(B.data(), K) : as_matrix(B.data(), N);
    gemm_with(kernel, M, N, K, a, b, C.data(), N, false);
    std::vector<double> seconds;
    for (int r = 0; r < reps; ++r) {
        const auto start = std::chrono::steady_clock::now();
        gemm_with(kernel, M, N, K, a, b, C.data(), N, false);
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return seconds;
}

template std::vector<double> time_gemm<float>(const MicroKernel<float>&, index, index, index, bool, int, int);
template std::vector<double> time_gemm<double>(const MicroKernel<double>&, index, index, index, bool, int, int);

}  // namespace bpfast
