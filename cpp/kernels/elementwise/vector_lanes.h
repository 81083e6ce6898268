// GCC's generic vectors and lane operations on them, shared by the loops that
// are compiled once per ISA (activation_loops.h, check_loops.h, small_net_loops.h).
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

namespace bpfast {
namespace {

// GCC's generic vector of 64 bytes of T: one zmm, two ymm or four xmm, by the
// unit's flags. Used where the vectoriser will not turn a loop into one.
template <typename T>
struct Vector512Of;
template <>
struct Vector512Of<float> {
    typedef float type __attribute__((vector_size(64)));
};
template <>
struct Vector512Of<double> {
    typedef double type __attribute__((vector_size(64)));
};
template <typename T>
using Vector512 = typename Vector512Of<T>::type;

// v += v rotated by H lanes, then the same for H/2, ..., 1: lane 0 ends up
// with the sum of all lanes (in the order of a tree); call with H = lanes/2
// and I = 0, ..., lanes−1. By reference: a 64-byte vector is not passed in
// registers on the baseline ABI.
template <std::size_t H, typename V, std::size_t... I>
void fold_lanes(V& v, std::index_sequence<I...> lanes) {
    if constexpr (H > 0) {
        constexpr std::size_t L = sizeof...(I);
        v += __builtin_shufflevector(v, v, ((I + H) % L)...);
        fold_lanes<H / 2>(v, lanes);
    }
}

// Whether every lane of v is finite: v·0 is 0 in a finite lane and NaN in
// any other, and the sum of the lanes is NaN when one of them is. The one
// finiteness test of the project: the whole-array check folds its partial
// sums with it, the small-network kernels the sums of what they wrote.
template <typename V>
bool all_lanes_finite(const V& v) {
    using E = std::decay_t<decltype(v[0])>;
    constexpr std::size_t L = sizeof(V) / sizeof(E);
    V zeros = v * E(0);
    fold_lanes<L / 2>(zeros, std::make_index_sequence<L>{});
    return zeros[0] == 0;
}

}  // namespace
}  // namespace bpfast
