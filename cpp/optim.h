// Optimizer updates, in place on one parameter array of n values.
#pragma once

#include "common.h"

namespace bpfast {

// param ← param − lr·grad.
template <typename T>
void sgd_update(T* param, const T* grad, index n, T lr) {
    for (index i = 0; i < n; ++i) param[i] -= lr * grad[i];
}

}  // namespace bpfast
