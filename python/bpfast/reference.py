"""Pure-numpy reference: every kernel of bpfast written straight from the math.

This module is the oracle for the tests and the baseline for the benchmarks.
Each function has the same name and signature as its native twin in
``bpfast.kernels``, and ``reference.Network`` is the same network class as
``bpfast.Network`` running on these kernels instead of the C++ core.

Conventions: a batch X is (batch, n_in) with samples as rows, W is
(n_out, n_in), b is (n_out,), Z = X·Wᵀ + b, A = act(Z).
Backward, with δ = dA ⊙ σ'(A):  dW = δᵀ·X,  db = Σ_rows δ,  dX = δ·W.
"""

import numpy as np

from ._network_base import NetworkBase

__all__ = [
    "matmul", "weight_gradient", "input_gradient",
    "activation_forward", "activation_backward", "softmax", "softmax_backward",
    "dense_forward", "dense_backward",
    "squared_error", "log_loss", "binary_cross_entropy",
    "softmax_cross_entropy", "sigmoid_cross_entropy", "loss",
    "sgd_update", "Network",
]


# ---------------------------------------------------------------- GEMM shapes

def matmul(A, B, trans_a=False, trans_b=False):
    """op(A)·op(B), where op transposes when its flag is set."""
    return (A.T if trans_a else A) @ (B.T if trans_b else B)


def weight_gradient(delta, X):
    """dW = δᵀ·X, the sum over the batch of the outer products δy·xᵀ."""
    # delta is (batch, n_out), X is (batch, n_in), dW is (n_out, n_in)
    return delta.T @ X


def input_gradient(delta, W):
    """dX = δ·W, that is Wᵀ·δy for every sample."""
    # delta is (batch, n_out), W is (n_out, n_in), dX is (batch, n_in)
    return delta @ W


# ---------------------------------------------------------------- activations

def _sigmoid(Z):
    # Split by sign so that exp never overflows.
    out = np.empty_like(Z)
    positive = Z >= 0
    out[positive] = 1 / (1 + np.exp(-Z[positive]))
    e = np.exp(Z[~positive])
    out[~positive] = e / (1 + e)
    return out


def softmax(Z):
    """Row-wise softmax y_i = exp(z_i) / Σ_k exp(z_k), shifted by the row max."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def softmax_backward(dY, Y):
    """δx = J·δy with J_ij = y_i(1{i=j} − y_j), without forming J.

    (J·δy)_i = y_i δy_i − y_i Σ_j y_j δy_j.
    """
    return Y * (dY - np.sum(dY * Y, axis=1, keepdims=True))


def activation_forward(Z, name):
    """A = act(Z) for identity, sigmoid, tanh, relu or (row-wise) softmax."""
    if name == "identity":
        return Z.copy()
    if name == "sigmoid":
        return _sigmoid(Z)
    if name == "tanh":
        return np.tanh(Z)
    if name == "relu":
        return np.maximum(Z, 0)
    if name == "softmax":
        return softmax(Z)
    raise ValueError(f"activation must be one of identity, sigmoid, tanh, relu, softmax; got {name!r}")


def activation_backward(dA, A, name):
    """dZ = dA ⊙ σ'(Z), with σ' computed from the stored output A.

    sigmoid: y(1−y); tanh: 1−y²; relu: [y>0]; softmax: the Jacobian-vector product.
    """
    if name == "identity":
        return dA.copy()
    if name == "sigmoid":
        return dA * A * (1 - A)
    if name == "tanh":
        return dA * (1 - A * A)
    if name == "relu":
        return np.where(A > 0, dA, 0).astype(dA.dtype)
    if name == "softmax":
        return softmax_backward(dA, A)
    raise ValueError(f"activation must be one of identity, sigmoid, tanh, relu, softmax; got {name!r}")


# ---------------------------------------------------------------- dense layer

def dense_forward(X, W, b, activation):
    """A = act(X·Wᵀ + b)."""
    # X is (batch, n_in), W is (n_out, n_in), b is (n_out,), A is (batch, n_out)
    return activation_forward(X @ W.T + b, activation)


def dense_backward(dA, X, W, A, activation, need_dx=True):
    """Return (dX, dW, db) from dA, the gradient with respect to the layer output.

    δ = dA ⊙ σ'(A);  dX = δ·W;  dW = δᵀ·X;  db = Σ_rows δ.  dX is None when
    need_dx is false (the first layer has no use for it).
    """
    # dA and A are (batch, n_out), X is (batch, n_in), W is (n_out, n_in)
    delta = activation_backward(dA, A, activation)
    dX = input_gradient(delta, W) if need_dx else None
    return dX, weight_gradient(delta, X), delta.sum(axis=0)


# ---------------------------------------------------------------- losses
# Each loss returns (value, gradient). The value is summed over the batch and
# divided by the batch size when reduction is "mean"; so is the gradient.

def _scale(Y, reduction):
    return 1.0 / Y.shape[0] if reduction == "mean" else 1.0


def _clamp_eps(Y):
    return np.finfo(Y.dtype).eps


def squared_error(Y, T, reduction="mean"):
    """½‖y − t‖² per sample; gradient y − t."""
    s = _scale(Y, reduction)
    diff = Y - T
    return float(0.5 * np.sum(diff.astype(np.float64) ** 2) * s), (diff * s).astype(Y.dtype)


def log_loss(Y, T, reduction="mean"):
    """−Σ t·log y per sample, on probabilities Y clamped to [eps, 1]; gradient −t/y."""
    s = _scale(Y, reduction)
    Yc = np.maximum(Y, _clamp_eps(Y))
    value = -np.sum(T.astype(np.float64) * np.log(Yc.astype(np.float64))) * s
    return float(value), (-(T / Yc) * s).astype(Y.dtype)


def binary_cross_entropy(Y, T, reduction="mean"):
    """−Σ [t·log y + (1−t)·log(1−y)] per sample, y clamped to [eps, 1−eps].

    Gradient (y − t) / (y(1 − y)), on the clamped y.
    """
    s = _scale(Y, reduction)
    eps = _clamp_eps(Y)
    Yc = np.clip(Y, eps, 1 - eps)
    y, t = Yc.astype(np.float64), T.astype(np.float64)
    value = -np.sum(t * np.log(y) + (1 - t) * np.log(1 - y)) * s
    return float(value), ((Yc - T) / (Yc * (1 - Yc)) * s).astype(Y.dtype)


def softmax_cross_entropy(Z, T, reduction="mean"):
    """Cross-entropy of softmax(Z) against T, from the logits Z.

    −Σ t·log softmax(z) = Σ t·(lse(z) − z) with lse(z) = m + log Σ exp(z − m),
    m = max z. The gradient with respect to Z is softmax(Z) − t (for rows of T
    that sum to 1).
    """
    s = _scale(Z, reduction)
    z, t = Z.astype(np.float64), T.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    value = np.sum(t * (lse - z)) * s
    return float(value), ((softmax(Z) - T) * s).astype(Z.dtype)


def sigmoid_cross_entropy(Z, T, reduction="mean"):
    """Binary cross-entropy of sigmoid(Z) against T, from the logits Z.

    −[t·log σ(z) + (1−t)·log(1−σ(z))] = max(z, 0) − z·t + log(1 + exp(−|z|)).
    The gradient with respect to Z is σ(Z) − t.
    """
    s = _scale(Z, reduction)
    z, t = Z.astype(np.float64), T.astype(np.float64)
    value = np.sum(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))) * s
    return float(value), ((_sigmoid(Z) - T) * s).astype(Z.dtype)


_LOSSES = {
    "squared_error": squared_error,
    "log_loss": log_loss,
    "binary_cross_entropy": binary_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
    "sigmoid_cross_entropy": sigmoid_cross_entropy,
}


def loss(name, Y, T, reduction="mean"):
    """Dispatch to the loss called ``name``; returns (value, gradient)."""
    try:
        function = _LOSSES[name]
    except KeyError:
        raise ValueError(f"loss must be one of {', '.join(_LOSSES)}; got {name!r}") from None
    return function(Y, T, reduction)


# ---------------------------------------------------------------- optimizer

def sgd_update(param, grad, lr):
    """param ← param − lr·grad, in place."""
    param -= param.dtype.type(lr) * grad


class Network(NetworkBase):
    """The bpfast network running on the numpy kernels of this module."""

    _ops = None  # set below, once the module is complete


import sys as _sys  # noqa: E402

Network._ops = _sys.modules[__name__]
