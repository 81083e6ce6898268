// Lane operations on GCC's generic vectors, shared by the loops that are
// compiled once per ISA (optim_loops.h, small_net_loops.h).
#pragma once

#include <cstddef>
#include <utility>

namespace bpfast {
namespace {

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

}  // namespace
}  // namespace bpfast
