"""The reference kernels: every kernel of bpfast in numpy, written straight from the math.

Each function has the same name and signature as its native twin in
``bpfast.kernels``. This module imports numpy and nothing of bpfast, so that
a bug in the product cannot leak into the answers it is checked against.

Conventions: a batch X is (batch, n_in) with samples as rows, W is
(n_out, n_in), b is (n_out,), Z = X·Wᵀ + b, A = act(Z).
Backward, with δ = dA ⊙ σ'(A):  dW = δᵀ·X,  db = Σ_rows δ,  dX = δ·W.
"""

import numpy as np


# ---------------------------------------------------------------- bfloat16

def round_to_bfloat16(x):
    """float32 x rounded to the nearest bfloat16 (ties to even), as float32 values.

    bfloat16 is the top half of a float32: its 7 stored significand bits are the
    float32's 23 cut to 7. Rounding adds half of the dropped part's range
    (0x7fff), plus one when the kept part is odd (ties go to even), then drops
    the low 16 bits. NaN stays NaN; a value past the largest bfloat16 becomes ±Inf;
    a float32 subnormal becomes a zero of its sign (as VCVTNE2PS2BF16 rounds it).
    """
    x = np.asarray(x, np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    subnormal = (bits & 0x7F800000) == 0
    rounded = np.where(subnormal, bits & 0x80000000, rounded)
    out = rounded.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), x, out)


def _operand(M, compute):
    """A GEMM operand as `compute` reads it: bfloat16-rounded (as float64, exact) or as it is."""
    if compute is None or compute == M.dtype.name:
        return M
    if compute != "bfloat16":
        raise ValueError(f"compute must be None, the operands' dtype or 'bfloat16'; got {compute!r}")
    if M.dtype != np.float32:
        raise TypeError(f"bfloat16 products round float32 operands; got {M.dtype}")
    return round_to_bfloat16(M).astype(np.float64)


def _product(A, B, compute):
    """A·B as compute does it: bfloat16 operands multiply exactly and sum here in float64,
    the result in A's dtype; otherwise numpy's product in the operands' dtype."""
    if compute is None or compute == A.dtype.name:
        return A @ B
    return (_operand(A, compute) @ _operand(B, compute)).astype(A.dtype)


# ---------------------------------------------------------------- GEMM shapes
# compute: None (the operands' own dtype) or "bfloat16" (float32 operands
# rounded to bfloat16, the products summed in float64 here).

def matmul(A, B, trans_a=False, trans_b=False, compute=None):
    """op(A)·op(B), where op transposes when its flag is set."""
    return _product(A.T if trans_a else A, B.T if trans_b else B, compute)


def weight_gradient(delta, X, compute=None):
    """dW = δᵀ·X, the sum over the batch of the outer products δy·xᵀ."""
    # delta is (batch, n_out), X is (batch, n_in), dW is (n_out, n_in)
    return _product(delta.T, X, compute)


def input_gradient(delta, W, compute=None):
    """dX = δ·W, that is Wᵀ·δy for every sample."""
    # delta is (batch, n_out), W is (n_out, n_in), dX is (batch, n_in)
    return _product(delta, W, compute)


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

def dense_forward(X, W, b, activation, compute=None):
    """A = act(X·Wᵀ + b)."""
    # X is (batch, n_in), W is (n_out, n_in), b is (n_out,), A is (batch, n_out)
    return activation_forward(_product(X, W.T, compute) + b, activation)


def dense_backward(dA, X, W, A, activation, need_dx=True, compute=None):
    """Return (dX, dW, db) from dA, the gradient with respect to the layer output.

    δ = dA ⊙ σ'(A);  dX = δ·W;  dW = δᵀ·X;  db = Σ_rows δ.  dX is None when
    need_dx is false (the first layer has no use for it).
    """
    # dA and A are (batch, n_out), X is (batch, n_in), W is (n_out, n_in)
    delta = activation_backward(dA, A, activation)
    dX = input_gradient(delta, W, compute) if need_dx else None
    return dX, weight_gradient(delta, X, compute), delta.sum(axis=0)


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


def poisson(Z, T, reduction="mean"):
    """Half the Poisson deviance from the log-rate Z (μ = exp z): t·log(t/μ) − t + μ per
    value, the first term 0 where t = 0 (scikit-learn's MLPRegressor). Gradient μ − t."""
    s = _scale(Z, reduction)
    z, t = Z.astype(np.float64), T.astype(np.float64)
    mu = np.exp(z)
    logs = np.log(np.where(t > 0, t, 1.0) / mu)
    value = np.sum(np.where(t > 0, t * logs, 0.0) - t + mu) * s
    return float(value), ((np.exp(Z) - T) * s).astype(Z.dtype)


def _clipped(P):
    eps = _clamp_eps(P)
    return np.clip(P, eps, 1 - eps).astype(np.float64)


def _t_log(t, p):
    """t·log p with 0·log p = 0."""
    return np.where(t != 0, t * np.log(p), 0.0)


def softmax_clipped_log_loss(Z, T, reduction="mean"):
    """scikit-learn's multiclass log-loss from the logits: −Σ t·log p on p = softmax(Z)
    clipped to [eps, 1 − eps]; gradient softmax(Z) − t."""
    s = _scale(Z, reduction)
    P = softmax(Z)
    value = -np.sum(_t_log(T.astype(np.float64), _clipped(P))) * s
    return float(value), ((P - T) * s).astype(Z.dtype)


def sigmoid_clipped_log_loss(Z, T, reduction="mean"):
    """scikit-learn's binary log-loss from the logits: −Σ [t·log p + (1−t)·log(1−p)] on
    p = σ(Z) clipped to [eps, 1 − eps]; gradient σ(Z) − t."""
    s = _scale(Z, reduction)
    P = _sigmoid(Z)
    p, t = _clipped(P), T.astype(np.float64)
    value = -np.sum(_t_log(t, p) + _t_log(1 - t, 1 - p)) * s
    return float(value), ((P - T) * s).astype(Z.dtype)


_LOSSES = {
    "squared_error": squared_error,
    "log_loss": log_loss,
    "binary_cross_entropy": binary_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
    "sigmoid_cross_entropy": sigmoid_cross_entropy,
    "poisson": poisson,
    "softmax_clipped_log_loss": softmax_clipped_log_loss,
    "sigmoid_clipped_log_loss": sigmoid_clipped_log_loss,
}


def loss(name, Y, T, reduction="mean"):
    """Dispatch to the loss called ``name``; returns (value, gradient)."""
    try:
        function = _LOSSES[name]
    except KeyError:
        raise ValueError(f"loss must be one of {', '.join(_LOSSES)}; got {name!r}") from None
    return function(Y, T, reduction)


# ---------------------------------------------------------------- optimizers
# Transcriptions of PyTorch's documented update formulas (see bpfast.optim), and
# with form="sklearn" of scikit-learn's MLP solvers.

def sgd_update(param, grad, lr):
    """param ← param − lr·grad, in place."""
    param -= param.dtype.type(lr) * grad


def sgd_momentum_update(param, grad, velocity, lr, momentum, nesterov, weight_decay, *, form="pytorch"):
    """torch.optim.SGD: g ← g + λθ; b ← μb + g; g ← g + μb (Nesterov) or b; θ ← θ − lr·g.

    form="sklearn": g ← g + λθ; b ← μb − lr·g; θ ← θ + μb − lr·g (Nesterov) or θ + b.
    """
    t = param.dtype.type
    g = grad + t(weight_decay) * param
    if momentum != 0 and form == "sklearn":
        velocity[...] = t(momentum) * velocity - t(lr) * g
        param += t(momentum) * velocity - t(lr) * g if nesterov else velocity
        return
    if momentum != 0:
        velocity[...] = t(momentum) * velocity + g
        g = g + t(momentum) * velocity if nesterov else velocity
    param -= t(lr) * g


def adam_update(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled, *, form="pytorch"):
    """torch.optim.Adam (L2 in the gradient) or AdamW (decoupled decay), step ≥ 1.

    form="sklearn" places ε as scikit-learn does: θ ← θ − lr·√(1−β2ᵗ)/(1−β1ᵗ) · m/(√v + ε).
    """
    t = param.dtype.type
    g = grad
    if decoupled:
        param *= t(1.0 - lr * weight_decay)
    else:
        g = grad + t(weight_decay) * param
    m[...] = t(beta1) * m + (t(1) - t(beta1)) * g
    v[...] = t(beta2) * v + (t(1) - t(beta2)) * g * g
    if form == "sklearn":
        param -= t(lr * np.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step)) * m / (np.sqrt(v) + t(eps))
        return
    step_size = t(lr / (1.0 - beta1 ** step))
    root_correction2 = t(np.sqrt(1.0 - beta2 ** step))
    param -= step_size * m / (np.sqrt(v) / root_correction2 + t(eps))


def clip_by_global_norm(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_: scale all grads in place by max_norm / (norm + 1e-6)
    when that is below 1, norm being their global L2 norm; returns that norm."""
    with np.errstate(over="ignore"):  # a norm that overflows gives the factor 0, as in torch
        norm = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
    coef = max_norm / (norm + 1e-6)
    if coef < 1:
        for g in grads:
            g *= g.dtype.type(coef)
    return float(norm)


# Every public function of this module is a kernel, in the order written.
__all__ = [name for name, value in list(globals().items())
           if callable(value) and not name.startswith("_") and getattr(value, "__module__", None) == __name__]
