// The precisions the core is built for, each one row: the storage type (what
// is kept: weights, gradients, optimizer state, activations between layers),
// the compute type (what the products read: the GEMM operands), and the names
// Python sees (the dtype name and the submodule of bpfast._core).
//
// Adding a precision: a row below, its name in BPFAST_FOR_EACH_PRECISION, a row
// in python/bpfast/_precision.py, and kernels for its compute type (the
// products of kernels/product.h). A row whose types differ (float32 kept,
// bfloat16 products) converts its operands while the GEMM packs them, and
// nowhere else.
#pragma once

#include <type_traits>

namespace bpfast {

template <typename StorageType, typename ComputeType>
struct Precision {
    using storage = StorageType;
    using compute = ComputeType;
};

struct Float32 : Precision<float, float> {
    static constexpr const char* name = "float32";
    static constexpr const char* submodule = "f32";
};

struct Float64 : Precision<double, double> {
    static constexpr const char* name = "float64";
    static constexpr const char* submodule = "f64";
};

// The compute type of mixed precision: the products read bfloat16 (values
// rounded to nearest even, kernels/bf16/bfloat16.h) and sum in float32.
struct BFloat16 {};

// Mixed precision: float32 kept (master weights, gradients, optimizer state,
// activations), bfloat16 products summed in float32.
struct MixedBFloat16 : Precision<float, BFloat16> {
    static constexpr const char* name = "mixed_bfloat16";
    static constexpr const char* submodule = "f32_bf16";
};

// Every precision, once. The explicit instantiations of model/ and kernels/dense.cpp
// and the bindings of _core expand it, so none of them names a precision.
#define BPFAST_FOR_EACH_PRECISION(X) X(Float32) X(Float64) X(MixedBFloat16)

template <typename P>
using Storage = typename P::storage;
template <typename P>
using Compute = typename P::compute;

// Whether the products of P read the stored values as they are.
template <typename P>
inline constexpr bool computes_in_storage = std::is_same_v<Storage<P>, Compute<P>>;

}  // namespace bpfast
