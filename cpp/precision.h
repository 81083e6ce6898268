// The precisions the core is built for, each one row: the storage type (what
// is kept: weights, gradients, optimizer state, activations between layers),
// the compute type (what the products read: the GEMM operands), and the names
// Python sees (the dtype name and the submodule of bpfast._core).
//
// Adding a precision: a row below, its name in BPFAST_FOR_EACH_PRECISION, a row
// in python/bpfast/_precision.py, and kernels for its compute type. Every row
// today computes in its storage type, so no conversion runs anywhere; a row
// whose types differ (issue 24: float32 kept, bfloat16 products) stops at
// compute_operand until the packing converts.
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

// Every precision, once: X(Float32) X(Float64). The explicit instantiations of
// model/ and the bindings of _core expand it, so none of them names a precision.
#define BPFAST_FOR_EACH_PRECISION(X) X(Float32) X(Float64)

template <typename P>
using Storage = typename P::storage;
template <typename P>
using Compute = typename P::compute;

// Whether the products of P read the stored values as they are.
template <typename P>
inline constexpr bool computes_in_storage = std::is_same_v<Storage<P>, Compute<P>>;

// The operand of a product (weights, activations, deltas) as the compute type
// reads it: the one place where a precision that stores one type and computes
// in another converts. The products write their results in the storage type
// (a bfloat16 product accumulates in float32). Today every row computes in its
// storage type and this returns its argument.
template <typename P>
const Compute<P>* compute_operand(const Storage<P>* values) {
    static_assert(computes_in_storage<P>,
                  "issue 24: this precision computes in another type than it stores; its operands must be "
                  "converted to the compute type (while the GEMM packs its panels), not read as they are");
    return values;
}

}  // namespace bpfast
