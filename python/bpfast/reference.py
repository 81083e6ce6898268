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

from . import network
from ._core import MAX_VALUES

__all__ = [
    "matmul", "weight_gradient", "input_gradient",
    "activation_forward", "activation_backward", "softmax", "softmax_backward",
    "dense_forward", "dense_backward",
    "squared_error", "log_loss", "binary_cross_entropy",
    "softmax_cross_entropy", "sigmoid_cross_entropy", "poisson",
    "softmax_clipped_log_loss", "sigmoid_clipped_log_loss", "loss",
    "sgd_update", "sgd_momentum_update", "adam_update", "clip_by_global_norm",
    "Engine", "Network",
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


# ---------------------------------------------------------------- the engine

class Engine:
    """The numpy twin of the native network in cpp/model/network.h, method for method.

    Weights live in one flat array (W_0, b_0, W_1, b_1, ...) seen through
    per-layer views; gradients and optimizer state share that layout.
    ``loss`` names a loss kernel; the *_cross_entropy ones (and poisson and
    the clipped log-losses) take the logits, so the output layer then runs
    without its activation. set_objective and sample weights are
    scikit-learn's terms of the loss (cpp/model/network.h Objective).
    """

    def __init__(self, sizes, activations, loss, reduction, dtype):
        self.sizes, self.activations = list(sizes), list(activations)
        self.loss_name, self.reduction, self.dtype = loss, reduction, np.dtype(dtype)
        self.takes_logits = loss in ("softmax_cross_entropy", "sigmoid_cross_entropy", "poisson",
                                     "softmax_clipped_log_loss", "sigmoid_clipped_log_loss")
        self.objective = (0.0, 1.0)
        total = 0
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            # the core's limit on the values of one buffer (cpp/runtime/sizes.h), checked as it does
            layer = n_out * n_in + n_out
            for what, count in (("a weight matrix", n_out * n_in), ("a layer", layer), ("the parameters", total + layer)):
                if count > MAX_VALUES:
                    raise ValueError(f"layer {l} ({n_in} -> {n_out}) is too large: {what} would hold more than "
                                     "2^48 values")
            total += layer
        self._params = np.zeros(total, self.dtype)
        self._grads = np.zeros(total, self.dtype)
        self.steps = self.epochs = 0
        self.config = None  # no optimizer until set_optimizer (Network sets its own at once)
        self._m = self._v = np.zeros(0, self.dtype)

    def _views(self, flat):
        views, offset = [], 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            views.append(flat[offset:offset + n_out * n_in].reshape(n_out, n_in))
            offset += n_out * n_in
            views.append(flat[offset:offset + n_out])
            offset += n_out
        return views

    def parameters(self):
        """[W_0, b_0, W_1, b_1, ...] as views of the flat parameter buffer."""
        return self._views(self._params)

    def gradients(self):
        """[dW_0, db_0, ...] as views of the flat gradient buffer (from the last compute_gradients)."""
        return self._views(self._grads)

    def flat_parameters(self):
        """The flat parameter buffer that parameters() views."""
        return self._params

    def flat_gradients(self):
        """The flat gradient buffer that gradients() views (what a process group sums in place)."""
        return self._grads

    def optimizer_state(self):
        """(m, v): momentum or Adam's first moment, and Adam's second moment (empty when unused)."""
        return self._m, self._v

    def set_counters(self, steps, epochs):
        """Set the step and epoch counters the schedules and Adam's bias correction read."""
        self.steps, self.epochs = steps, epochs

    @staticmethod
    def optimizer_state_shapes(settings, n_parameters):
        """((m,), (v,)): momentum or Adam's first moment, and Adam's second, under these settings."""
        adam = settings.kind != "sgd"
        return (n_parameters if adam or settings.momentum != 0 else 0,), (n_parameters if adam else 0,)

    def set_optimizer(self, settings):
        """Use the optimizer that these settings describe (an OptimizerConfig, read field by field as
        its `fields` name them); its state starts afresh."""
        if settings.step_size < 1:
            raise ValueError("step_size must be at least 1")
        if settings.form not in ("pytorch", "sklearn"):
            raise ValueError(f"form must be one of pytorch, sklearn; got {settings.form!r}")
        self.config = {name: getattr(settings, name) for name in settings.fields}
        m_shape, v_shape = self.optimizer_state_shapes(settings, self._params.size)
        self._m, self._v = np.zeros(m_shape, self.dtype), np.zeros(v_shape, self.dtype)
        self.steps = self.epochs = 0

    def learning_rate(self, lr=None):
        """The learning rate of the next step: lr (the configured one when None) under the schedule."""
        c = self.config
        lr = c["lr"] if lr is None else lr
        if c["schedule"] == "step":
            return lr * c["gamma"] ** (self.epochs // c["step_size"])
        if c["schedule"] == "inverse_scaling":
            return lr / (1.0 + self.steps) ** c["power_t"]
        return lr

    # -------------------------------------------------------- passes
    def _targets(self, T, labels, batch):
        if T is not None:
            return T
        n_out = self.sizes[-1]
        if n_out == 1:
            return labels.astype(self.dtype).reshape(-1, 1)
        one_hot = np.zeros((batch, n_out), self.dtype)
        one_hot[np.arange(batch), labels] = 1
        return one_hot

    def _forward(self, X, logits_out):
        """[X, A_1, ..., A_L]; with logits_out the last entry is the output layer's Z."""
        params, outputs = self.parameters(), [X]
        for l, act in enumerate(self.activations):
            if logits_out and l == len(self.activations) - 1:
                act = "identity"
            outputs.append(dense_forward(outputs[-1], params[2 * l], params[2 * l + 1], act))
        return outputs

    def set_objective(self, l2=0.0, value_scale=1.0):
        """scikit-learn's terms of the loss: l2 adds ½·l2·Σ‖W‖²/N to every batch loss and l2·W/N
        to dW (N the batch size or its sum of sample weights); reported data losses are
        multiplied by value_scale."""
        if not (np.isfinite(l2) and l2 >= 0):
            raise ValueError("l2 must be a finite number >= 0")
        if not (np.isfinite(value_scale) and value_scale > 0):
            raise ValueError("value_scale must be a finite positive number")
        self.objective = (float(l2), float(value_scale))

    def _objective(self, Y, T, weights):
        """(value, dL/dY, N) of the loss of outputs Y: the loss kernel's, or with sample
        weights Σ w_i·loss_i / N (N = Σ w_i; 1 for reduction sum), times value_scale,
        plus the L2 term ½·l2·Σ‖W‖² / N."""
        l2, value_scale = self.objective
        mean = self.reduction == "mean"
        if weights is None:
            value, dY = loss(self.loss_name, Y, T, self.reduction)
            norm = float(Y.shape[0]) if mean else 1.0
        else:
            norm = float(np.sum(weights, dtype=np.float64)) if mean else 1.0
            rows = [loss(self.loss_name, Y[i:i + 1], T[i:i + 1], "sum") for i in range(Y.shape[0])]
            value = sum(float(w) * v for w, (v, _) in zip(weights, rows)) / norm
            dY = np.concatenate([g for _, g in rows]) * (weights.astype(np.float64) / norm)[:, None]
            dY = dY.astype(Y.dtype)
        value *= value_scale
        if l2 != 0:
            value += 0.5 * l2 * sum(float(np.sum(W.astype(np.float64) ** 2)) for W in self.parameters()[0::2]) / norm
        return value, dY, norm

    def _loss_and_backward(self, X, T, weights=None, ready=None):
        outputs = self._forward(X, self.takes_logits)
        value, dA, norm = self._objective(outputs[-1], T, weights)
        params, grads = self.parameters(), self.gradients()
        for l in range(len(self.activations) - 1, -1, -1):
            act = self.activations[l]
            if self.takes_logits and l == len(self.activations) - 1:
                act = "identity"
            dA, grads[2 * l][...], grads[2 * l + 1][...] = dense_backward(
                dA, outputs[l], params[2 * l], outputs[l + 1], act, need_dx=l > 0)
            if ready is not None and self.objective[0] == 0:
                ready(l)
        if self.objective[0] != 0:
            for W, dW in zip(params[0::2], grads[0::2]):
                dW += W.dtype.type(self.objective[0] / norm) * W
            for l in range(len(self.activations) - 1, -1, -1):
                if ready is not None:
                    ready(l)
        return value

    def forward(self, X, out):
        """Write the network output for X into out (batch, n_out)."""
        out[...] = self._forward(X, False)[-1]

    def loss(self, X, T, labels, sample_weight=None):
        """The loss of the batch (X with dense targets T or labels) as a float."""
        T = self._targets(T, labels, X.shape[0])
        return self._objective(self._forward(X, self.takes_logits)[-1], T, sample_weight)[0]

    def compute_gradients(self, X, T, labels, sample_weight=None, ready=None):
        """Fill gradients() for the batch; returns its loss. The weights are unchanged.
        ready(layer), when given, is called as each layer's gradients are final, the last first."""
        return self._loss_and_backward(X, self._targets(T, labels, X.shape[0]), sample_weight, ready)

    # -------------------------------------------------------- training
    def _step(self, X, T, lr=None, weights=None):
        """(loss, finite, non_finite_layer); the weights change only when everything is finite.
        lr, when given, is the base learning rate of this step."""
        return self.apply_update(self._loss_and_backward(X, T, weights), lr)

    def apply_update(self, loss, lr=None):
        """One optimizer step from the gradients as they are now, for a batch whose loss was ``loss``;
        (loss, finite, non_finite_layer), and nothing is updated unless everything is finite."""
        value = loss
        if not np.isfinite(value):
            return value, False, -1
        grads = self.gradients()
        for l in range(len(self.activations)):
            if not (np.isfinite(grads[2 * l]).all() and np.isfinite(grads[2 * l + 1]).all()):
                return value, False, l
        c = self.config
        if c["clip_norm"] > 0:
            clip_by_global_norm(grads, c["clip_norm"])
        lr = self.learning_rate(lr)
        # The update on copies first: it is kept only if every new parameter and state value is finite.
        params = [p.copy() for p in self.parameters()]
        m = [a.copy() for a in self._views(self._m)] if self._m.size else None
        v = [a.copy() for a in self._views(self._v)] if self._v.size else None
        with np.errstate(over="ignore", invalid="ignore"):
            for i, (p, g) in enumerate(zip(params, grads)):
                decay = 0.0 if (i % 2 == 1 and not c["decay_bias"]) else c["weight_decay"]
                if c["kind"] == "sgd":
                    sgd_momentum_update(p, g, m[i] if m else None, lr, c["momentum"], c["nesterov"], decay,
                                        form=c["form"])
                else:
                    adam_update(p, g, m[i], v[i], self.steps + 1, lr, c["beta1"], c["beta2"], c["eps"], decay,
                                decoupled=c["kind"] == "adamw", form=c["form"])
        for l in range(len(self.activations)):
            arrays = [a for state in (params, m, v) if state is not None for a in state[2 * l:2 * l + 2]]
            if not all(np.isfinite(a).all() for a in arrays):
                return value, False, l
        self.steps += 1
        for target, new in zip(self.parameters(), params):
            target[...] = new
        for flat, new in ((self._m, m), (self._v, v)):
            if new is not None:
                flat[...] = np.concatenate([a.ravel() for a in new])
        return value, True, -1

    def plain_train_step(self, X, T, lr):
        """The native engine's fast path for input that needs no conversion; here always None."""
        return None

    def train_step(self, X, T, labels, lr=None):
        """One step; lr, when given, is the base learning rate for this step only."""
        return self._step(X, self._targets(T, labels, X.shape[0]), lr)

    def train_epoch(self, X, T, labels, order, batch_size, lr=None, sample_weight=None, begin=0, end=None,
                    total_before=0.0):
        """(loss, finite, non_finite_batch, non_finite_layer, None) for one epoch in mini-batches
        (the native engine's last entry is a KeyboardInterrupt that came as the epoch ended).
        begin and end (batch boundaries) run the batches of rows [begin, end) of the order only;
        a span that ends before the last row returns the running loss total and counts no epoch."""
        n = X.shape[0]
        end = n if end is None else end
        total = total_before
        for number, start in enumerate(range(begin, end, batch_size), start=begin // batch_size):
            rows = np.arange(start, min(start + batch_size, n))
            if order is not None:
                rows = order[rows]
            Tb = self._targets(None if T is None else T[rows], None if labels is None else labels[rows],
                               rows.size)
            value, finite, layer = self._step(X[rows], Tb, lr,
                                              None if sample_weight is None else sample_weight[rows])
            if not finite:
                return value, False, number, layer, None
            total += value * rows.size if self.reduction == "mean" else value
        if end < n:
            return total, True, -1, -1, None
        self.epochs += 1
        return (total / n if self.reduction == "mean" else total), True, -1, -1, None


class Network(network.Network):
    """bpfast.Network over the numpy engine of this module (same API, same checks)."""

    @staticmethod
    def _new_engine(sizes, activations, loss, reduction, dtype):
        return Engine(sizes, activations, loss, reduction, dtype)

    @staticmethod
    def _optimizer_state_shapes(optimizer, n_parameters):
        return Engine.optimizer_state_shapes(optimizer.settings(), n_parameters)
