#include "kernels/elementwise/losses.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/elementwise/activation_kernels.h"
#include "kernels/elementwise/fastmath.h"

namespace bpfast {
namespace {

template <typename T>
T reduction_scale(index batch, Reduction r) {
    return r == Reduction::mean ? T(1) / T(batch) : T(1);
}

// Σ term(i) over [0, n) in double, over LANES independent partial sums:
// one running sum is a chain of dependent additions the compiler may not
// reorder (no -ffast-math), which runs at one add per FP-add latency.
constexpr int LANES = 8;

template <typename Term>
double lane_sum(index n, const Term& term) {
    double partial[LANES] = {};
    index i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; ++k) partial[k] += term(i + k);
    for (; i < n; ++i) partial[0] += term(i);
    double total = 0.0;
    for (double p : partial) total += p;
    return total;
}

}  // namespace

template <typename T>
double squared_error(T* grad, const T* Y, const T* Tg, index batch, index n, Reduction r) {
    // Y, Tg and grad are (batch, n)
    const T s = reduction_scale<T>(batch, r);
    const double total = lane_sum(batch * n, [&](index i) {
        const T diff = Y[i] - Tg[i];
        grad[i] = diff * s;
        return double(diff) * double(diff);
    });
    return 0.5 * total * double(s);
}

template <typename T>
double log_loss(T* grad, const T* Y, const T* Tg, index batch, index n, Reduction r) {
    // Y, Tg and grad are (batch, n)
    const T s = reduction_scale<T>(batch, r);
    const T eps = std::numeric_limits<T>::epsilon();
    double total = 0.0;
    for (index i = 0; i < batch * n; ++i) {
        const T y = std::max(Y[i], eps);
        total -= double(Tg[i]) * std::log(double(y));
        grad[i] = -(Tg[i] / y) * s;
    }
    return total * double(s);
}

template <typename T>
double binary_cross_entropy(T* grad, const T* Y, const T* Tg, index batch, index n, Reduction r) {
    // Y, Tg and grad are (batch, n)
    const T s = reduction_scale<T>(batch, r);
    const T eps = std::numeric_limits<T>::epsilon();
    double total = 0.0;
    for (index i = 0; i < batch * n; ++i) {
        const T y = std::min(std::max(Y[i], eps), T(1) - eps);
        const double yd = y, td = Tg[i];
        total -= td * std::log(yd) + (1.0 - td) * std::log(1.0 - yd);
        grad[i] = (y - Tg[i]) / (y * (T(1) - y)) * s;
    }
    return total * double(s);
}

template <typename T>
double softmax_cross_entropy(T* grad, const T* Z, const T* Tg, index batch, index n, Reduction r) {
    // Z, Tg and grad are (batch, n); each row is one sample
    const T s = reduction_scale<T>(batch, r);
    double total = 0.0;
    for (index row = 0; row < batch; ++row) {
        const T* z = Z + row * n;
        const T* t = Tg + row * n;
        T* g = grad + row * n;
        T m, log_sum;  // log Σ_j exp(z_j) = m + log_sum, with m = max_j z_j
        softmax_rows(g, &m, &log_sum, z, 1, n);
        // −log softmax_j = (m − z_j) + log_sum, in double: adding m first would
        // round a small loss to the float spacing at |m|
        total += lane_sum(n, [&](index j) { return double(t[j]) * ((double(m) - double(z[j])) + double(log_sum)); });
        for (index j = 0; j < n; ++j) g[j] = (g[j] - t[j]) * s;  // softmax − t
    }
    return total * double(s);
}

template <typename T>
double sigmoid_cross_entropy(T* grad, const T* Z, const T* Tg, index batch, index n, Reduction r) {
    // Z, Tg and grad are (batch, n)
    const T s = reduction_scale<T>(batch, r);
    double total = 0.0;
    for (index i = 0; i < batch * n; ++i) {
        const double z = Z[i], t = Tg[i];
        total += std::max(z, 0.0) - z * t + std::log1p(std::exp(-std::abs(z)));
        grad[i] = (sigmoid(Z[i]) - Tg[i]) * s;
    }
    return total * double(s);
}

template <typename T>
double poisson(T* grad, const T* Z, const T* Tg, index batch, index n, Reduction r) {
    // Z, Tg and grad are (batch, n)
    const T s = reduction_scale<T>(batch, r);
    double total = 0.0;
    for (index i = 0; i < batch * n; ++i) {
        const T mu = std::exp(Z[i]);
        const double t = Tg[i], m = mu;
        total += (t > 0.0 ? t * std::log(t / m) : 0.0) - t + m;
        grad[i] = (mu - Tg[i]) * s;
    }
    return total * double(s);
}

template <typename T>
double softmax_clipped_log_loss(T* grad, const T* Z, const T* Tg, index batch, index n, Reduction r) {
    // Z, Tg and grad are (batch, n); each row is one sample
    const T s = reduction_scale<T>(batch, r);
    const T eps = std::numeric_limits<T>::epsilon();
    double total = 0.0;
    softmax_rows(grad, static_cast<T*>(nullptr), static_cast<T*>(nullptr), Z, batch, n);
    for (index row = 0; row < batch; ++row) {
        const T* t = Tg + row * n;
        T* g = grad + row * n;
        for (index j = 0; j < n; ++j) {
            if (t[j] != T(0)) total -= double(t[j]) * std::log(double(std::clamp(g[j], eps, T(1) - eps)));
            g[j] = (g[j] - t[j]) * s;
        }
    }
    return total * double(s);
}

template <typename T>
double sigmoid_clipped_log_loss(T* grad, const T* Z, const T* Tg, index batch, index n, Reduction r) {
    // Z, Tg and grad are (batch, n)
    const T s = reduction_scale<T>(batch, r);
    const T eps = std::numeric_limits<T>::epsilon();
    double total = 0.0;
    for (index i = 0; i < batch * n; ++i) {
        const T p = sigmoid(Z[i]), t = Tg[i];
        const T clipped = std::clamp(p, eps, T(1) - eps);
        if (t != T(0)) total -= double(t) * std::log(double(clipped));
        if (t != T(1)) total -= double(T(1) - t) * std::log(double(T(1) - clipped));
        grad[i] = (p - t) * s;
    }
    return total * double(s);
}

template <typename T>
void l2_gradient(T* dW, const T* W, index n, double alpha, double norm) {
    // W and dW are (n,)
    const T c = T(alpha / norm);
    for (index i = 0; i < n; ++i) dW[i] += c * W[i];
}

template <typename T>
double l2_penalty(T* dW, const T* W, index n, double alpha, double norm) {
    // W and dW are (n,)
    if (dW) l2_gradient(dW, W, n, alpha, norm);
    return 0.5 * alpha * lane_sum(n, [&](index i) { return double(W[i]) * double(W[i]); }) / norm;
}

template <typename T>
LossFn<T> loss_function(LossKind kind) {
    switch (kind) {
        case LossKind::squared_error: return &squared_error<T>;
        case LossKind::log_loss: return &log_loss<T>;
        case LossKind::binary_cross_entropy: return &binary_cross_entropy<T>;
        case LossKind::softmax_cross_entropy: return &softmax_cross_entropy<T>;
        case LossKind::sigmoid_cross_entropy: return &sigmoid_cross_entropy<T>;
        case LossKind::poisson: return &poisson<T>;
        case LossKind::softmax_clipped_log_loss: return &softmax_clipped_log_loss<T>;
        case LossKind::sigmoid_clipped_log_loss: return &sigmoid_clipped_log_loss<T>;
    }
    return &squared_error<T>;
}

#define BPFAST_INSTANTIATE(T)                                                                     \
    template double squared_error<T>(T*, const T*, const T*, index, index, Reduction);           \
    template double log_loss<T>(T*, const T*, const T*, index, index, Reduction);                \
    template double binary_cross_entropy<T>(T*, const T*, const T*, index, index, Reduction);    \
    template double softmax_cross_entropy<T>(T*, const T*, const T*, index, index, Reduction);   \
    template double sigmoid_cross_entropy<T>(T*, const T*, const T*, index, index, Reduction);   \
    template double poisson<T>(T*, const T*, const T*, index, index, Reduction);                 \
    template double softmax_clipped_log_loss<T>(T*, const T*, const T*, index, index, Reduction); \
    template double sigmoid_clipped_log_loss<T>(T*, const T*, const T*, index, index, Reduction); \
    template double l2_penalty<T>(T*, const T*, index, double, double);                          \
    template void l2_gradient<T>(T*, const T*, index, double, double);                           \
    template LossFn<T> loss_function<T>(LossKind);
BPFAST_INSTANTIATE(float)
BPFAST_INSTANTIATE(double)
#undef BPFAST_INSTANTIATE

}  // namespace bpfast
