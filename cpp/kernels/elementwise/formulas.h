// The formulas that both training backends and the epilogues apply, written
// once over a scalar T or a GCC vector V (the same source serves the
// portable loops, the ISA loops and the small-network tiles).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "common.h"

namespace bpfast {
namespace {

// The type of one value: T itself, or the lanes' type of a vector.
template <typename V, typename = void>
struct Element {
    using type = V;
};
template <typename V>
struct Element<V, std::void_t<decltype(std::declval<V>()[0])>> {
    using type = std::decay_t<decltype(std::declval<V>()[0])>;
};

// max(z, 0); NaN passes through (z < 0 is false for NaN).
template <typename V>
V relu(V z) {
    return z < V{} ? V{} : z;
}

// a > 0 ? g : 0. For a scalar, as a bit mask rather than a branch: relu's
// pattern of signs is random, so a branch mispredicts, while the mask
// vectorises; for a vector, a blend.
template <typename V>
V keep_where_positive(V a, V g) {
    if constexpr (std::is_floating_point_v<V>) {
        using Bits = std::conditional_t<sizeof(V) == 4, std::uint32_t, std::uint64_t>;
        Bits bits;
        std::memcpy(&bits, &g, sizeof bits);
        bits &= Bits(0) - Bits(a > V(0));
        std::memcpy(&g, &bits, sizeof bits);
        return g;
    } else {
        return a > V{} ? g : V{};
    }
}

// g ⊙ σ'(z) for an elementwise activation, with σ' written in terms of its
// output a = σ(z): sigmoid a(1 − a), tanh 1 − a², relu [a > 0], identity 1.
template <Activation A, typename V>
V times_derivative(V g, V a) {
    using E = typename Element<V>::type;
    if constexpr (A == Activation::sigmoid) return g * a * (E(1) - a);
    else if constexpr (A == Activation::tanh) return g * (E(1) - a * a);
    else if constexpr (A == Activation::relu) return keep_where_positive(a, g);
    else return g;
}

// The same with the activation known at run time (softmax is not elementwise
// and is not handled here).
template <typename V>
V times_derivative(V g, V a, Activation act) {
    switch (act) {
        case Activation::sigmoid: return times_derivative<Activation::sigmoid>(g, a);
        case Activation::tanh: return times_derivative<Activation::tanh>(g, a);
        case Activation::relu: return times_derivative<Activation::relu>(g, a);
        default: return g;
    }
}

}  // namespace
}  // namespace bpfast
