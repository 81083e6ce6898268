// The kernels of the small-network backend (model/small_net_backend.h): the
// layer products of networks whose weight matrices stay in the core's caches,
// where the blocked GEMM's packing, tiling and epilogue passes cost as much as
// the arithmetic.
//
// The path keeps two copies of each activation:
//   samples-major  S (rows, ld) with S[m][j] = A(m, j)    (the layout of the API)
//   features-major F (cols, ldt) with F[j][m] = A(m, j)   (columns are samples)
// The forward pass reads W in place with F as its vector operand,
// Fᵀ_out = W · Fᵀ_in; the backward pass reads δ and W (or S) in place with
// rows along the inputs. Only the activations (batch x width) are ever
// transposed, never a weight matrix.
//
// Every buffer is padded: ldt (the padded batch) is a multiple of the vector
// length, and so is the row stride of every samples-major buffer the kernels
// read as whole vectors. The padding holds finite values that no result
// depends on.
#pragma once

#include "common.h"

namespace bpfast {

// dst (cols, ld_dst) = src (rows, ld_src)ᵀ; rows and cols multiples of lanes.
template <typename T>
using TransposeFn = void (*)(T* dst, index ld_dst, const T* src, index ld_src, index rows, index cols);

// F_out (n_out, ldt) = W (n_out, n_in) · F_in (n_in, ldt) + b, then relu when
// asked (other activations run afterwards on the whole block). When S is not
// null, also S (ldt, ld_s) = F_outᵀ, the samples-major copy, with its columns
// up to n_out rounded up to lanes (F_out's rows past n_out are its padding).
// round_bf16 (float only): F_out and S hold the activations rounded to
// bfloat16 (RoundToBfloat16Fn's values), the operands of mixed precision's next products.
template <typename T>
using FeaturesForwardFn = void (*)(T* F_out, const T* F_in, const T* W, const T* b, index ldt, index n_in,
                                   index n_out, bool relu, T* S, index ld_s, bool round_bf16);

// dW (n_out, n_in) = δᵀ · X: δ (batch, ld_delta), X (batch, ld_x) samples-major
// with ld_x a multiple of lanes (its rows are read as whole vectors).
// Returns false when dW may hold a NaN or Inf (true: it holds none).
// With W (n_out, n_in) not null, a stateless SGD step from each finished
// tile, while it is in registers: W ← W − lr·(dW + decay·W), the old W
// stored in dW's place (optim_kernels.h's sgd_keeping_old, the same values);
// then returns whether every new value of W is finite.
template <typename T>
using WeightGradientFn = bool (*)(T* dW, const T* delta, index ld_delta, const T* X, index ld_x, index batch,
                                  index n_in, index n_out, T* W, double lr, double decay);

// δ_in (rows, ld_out) = (δ · W) ⊙ σ'(A_in) and db_in (n_in,) = Σ_{m < batch} δ_in[m]:
// δ (rows, ld_delta), W (n_out, n_in) read in place with row stride ld_w,
// A_in (rows, ld_out) the input activation; rows is the batch rounded up to
// the kernel's tile height, a divisor of lanes, so never past the padded
// batch ldt. (A block of columns of a wider δ_in: the pointers at its first
// column, n_in its width, ld_w the whole width.)
// The last vector of a row of W may read up to lanes − 1 values past it.
// Returns false when db_in may hold a NaN or Inf (true: it holds none).
// round_bf16 (float only): δ_in is stored rounded to bfloat16, db_in still
// summing the unrounded values.
template <typename T>
using InputGradientFn = bool (*)(T* delta_in, T* db_in, const T* delta, index ld_delta, const T* W, index ld_w,
                                 const T* A_in, index ld_out, index batch, index n_in, index n_out,
                                 Activation act, bool round_bf16);

// dst[i] = src[i] rounded to bfloat16 (to_bfloat16's rule, kernels/bf16/bfloat16.h),
// each kept as a float on the bfloat16 grid, for i < n; dst may be src. The
// operands of mixed precision's products (precision.h: MixedBFloat16), which
// the float kernels above then multiply exactly and sum in float.
using RoundToBfloat16Fn = void (*)(float* dst, const float* src, index n);

template <typename T>
struct SmallNetKernels {
    int lanes = 0;  // 0: this ISA has no small-network path
    // The forward's row tile: a product split at multiples of it into row
    // blocks gives the same tiles, and so the same values, as the whole.
    int forward_rows = 0;
    TransposeFn<T> transpose = nullptr;
    FeaturesForwardFn<T> forward = nullptr;
    WeightGradientFn<T> weight_gradient = nullptr;
    InputGradientFn<T> input_gradient = nullptr;
    RoundToBfloat16Fn round_to_bfloat16 = nullptr;  // set in the float table only
};

// The kernels chosen for this process (runtime/dispatch.cpp); lanes is 0 on
// the portable ISA, which has none.
template <typename T>
const SmallNetKernels<T>& active_small_net_kernels();

}  // namespace bpfast
