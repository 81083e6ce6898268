"""Network.gradients against central finite differences and against hand-derived closed forms.

Float64 only. Central differences with eps = 1e-6:
    ∂L/∂θ ≈ (L(θ + eps) − L(θ − eps)) / (2 eps)
Tolerance: max|finite difference − analytic| over all parameters must be at
most 1e-6 × max(1, max|analytic|). Closed forms: 1e-12 × max(1, max|expected|).
Relu nets are drawn so that no hidden pre-activation lies within 1e-3 of the
kink at 0, far beyond what an eps perturbation can move it.
"""

import zlib

import numpy as np
import pytest

import bpfast
from bpfast import reference
from conftest import assert_close

EPS = 1e-6
FD_RTOL = 1e-6

HIDDEN = ("relu", "sigmoid", "tanh", "identity")
LOSS_OUTPUTS = {
    "squared_error": ("identity", "sigmoid", "softmax"),
    "cross_entropy": ("sigmoid", "softmax"),
    "log_loss": ("sigmoid", "softmax"),
    "binary_cross_entropy": ("sigmoid",),
}
COMBOS = [(h, o, l) for h in HIDDEN for l, outs in LOSS_OUTPUTS.items() for o in outs]


def finite_difference_gradients(net, X, T):
    """[(dW, db), ...] by central differences on net.loss, perturbing each parameter in place."""
    result = []
    for layer in net.layers:
        grads = []
        for param in (layer.W, layer.b):  # the live arrays: writing into them changes the net
            g = np.empty_like(param)
            for idx in np.ndindex(param.shape):
                saved = param[idx]
                param[idx] = saved + EPS
                plus = net.loss(X, T)
                param[idx] = saved - EPS
                minus = net.loss(X, T)
                param[idx] = saved
                g[idx] = (plus - minus) / (2 * EPS)
            grads.append(g)
        result.append(tuple(grads))
    return result


def assert_gradients_match_fd(analytic, numeric):
    scale = max(1.0, max(float(np.max(np.abs(a))) for pair in analytic for a in pair))
    err = max(float(np.max(np.abs(a - n))) for pa, pn in zip(analytic, numeric) for a, n in zip(pa, pn))
    assert err <= FD_RTOL * scale, f"finite-difference error {err:.3e} > {FD_RTOL:.0e} × {scale:.3g}"
    # Guard against a vacuous pass: the gradient must not be identically zero.
    assert any(np.any(a != 0) for pair in analytic for a in pair)


def targets_for(rng, output, batch, n_out, hard):
    if output == "softmax":
        if hard:
            T = np.zeros((batch, n_out))
            T[np.arange(batch), rng.integers(0, n_out, batch)] = 1
            return T
        P = np.exp(rng.standard_normal((batch, n_out)))
        return P / P.sum(axis=1, keepdims=True)
    if output == "sigmoid":
        return rng.integers(0, 2, (batch, n_out)).astype(float) if hard else rng.uniform(0.05, 0.95, (batch, n_out))
    return rng.standard_normal((batch, n_out))


def make_problem(cls, rng, sizes, activation, output, loss, reduction, batch=3, hard=False):
    """A float64 net with random (non-zero) biases and a batch whose relu pre-activations avoid the kink."""
    net = cls(sizes, activation=activation, output=output, loss=loss, reduction=reduction, dtype="float64",
              seed=int(rng.integers(1 << 30)))
    for layer in net.layers:
        layer.b = 0.5 * rng.standard_normal(layer.n_out)
    hidden = [activation] * (len(sizes) - 2) if isinstance(activation, str) else list(activation)
    for _ in range(1000):
        X = rng.standard_normal((batch, sizes[0]))
        if "relu" not in hidden or min_relu_margin(net, X, hidden) > 1e-3:
            break
    else:
        raise AssertionError("could not draw a batch away from the relu kink")
    return net, X, targets_for(rng, output, batch, sizes[-1], hard)


def min_relu_margin(net, X, hidden):
    """The smallest |Z| over relu layers, with the forward pass written out in numpy."""
    A, margin = X, np.inf
    for layer, act in zip(net.layers[:-1], hidden):
        Z = A @ layer.W.T + layer.b
        if act == "relu":
            margin = min(margin, float(np.min(np.abs(Z))))
        A = {"relu": np.maximum(Z, 0), "sigmoid": 1 / (1 + np.exp(-Z)), "tanh": np.tanh(Z), "identity": Z}[act]
    return margin


@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("hidden,output,loss", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_gradients_match_finite_differences(cls, hidden, output, loss, reduction):
    rng = np.random.default_rng(zlib.crc32(f"{hidden}-{output}-{loss}-{reduction}".encode()))
    net, X, T = make_problem(cls, rng, [4, 5, 3], hidden, output, loss, reduction,
                             hard=(reduction == "sum"))
    before = [p.copy() for p in net.parameters()]
    analytic = net.gradients(X, T)
    numeric = finite_difference_gradients(net, X, T)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.parameters()))
    assert_gradients_match_fd(analytic, numeric)


@pytest.mark.parametrize("output,loss", [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"),
                                         ("identity", "squared_error"), ("softmax", "log_loss")])
def test_deeper_net_with_mixed_activations(output, loss):
    rng = np.random.default_rng(7)
    net, X, T = make_problem(bpfast.Network, rng, [3, 6, 5, 4, 2], ["tanh", "relu", "sigmoid"], output, loss,
                             "mean", batch=5)
    assert_gradients_match_fd(net.gradients(X, T), finite_difference_gradients(net, X, T))


@pytest.mark.parametrize("n_out", [1, 4])
def test_integer_labels_match_finite_differences(n_out):
    rng = np.random.default_rng(11)
    output = "sigmoid" if n_out == 1 else "softmax"
    net, X, _ = make_problem(bpfast.Network, rng, [4, 5, n_out], "tanh", output, "cross_entropy", "mean", batch=6)
    labels = rng.integers(0, 2 if n_out == 1 else n_out, size=6)
    assert_gradients_match_fd(net.gradients(X, labels), finite_difference_gradients(net, X, labels))


def sigma(z):
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
@pytest.mark.parametrize("n,batch", [(1, 1), (3, 4), (7, 13)])
def test_single_sigmoid_unit_closed_form(cls, n, batch):
    # With ŷ = σ(w·x + b) and cross-entropy summed over the batch, ∂L/∂(w, b) = Σ (ŷ − y) x̃, x̃ = (x, 1).
    rng = np.random.default_rng(n * 100 + batch)
    net = cls([n, 1], output="sigmoid", loss="cross_entropy", reduction="sum", dtype="float64", seed=3)
    net.layers[0].b = [0.3]
    X = rng.standard_normal((batch, n))
    y = rng.integers(0, 2, batch).astype(float)
    w, b = net.layers[0].W[0], net.layers[0].b[0]
    y_hat = sigma(X @ w + b)
    X_tilde = np.hstack([X, np.ones((batch, 1))])
    expected = ((y_hat - y)[:, None] * X_tilde).sum(axis=0)
    [(dW, db)] = net.gradients(X, y.reshape(-1, 1))
    assert dW.shape == (1, n) and db.shape == (1,)
    assert_close(dW[0], expected[:n], np.float64)
    assert_close(db, expected[n:], np.float64)
    # Integer labels are the same targets.
    [(dW2, db2)] = net.gradients(X, y.astype(np.int64))
    assert_close(dW2[0], expected[:n], np.float64)
    assert_close(db2, expected[n:], np.float64)


@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
@pytest.mark.parametrize("n_in,n_1,n_2", [(1, 1, 1), (3, 4, 2), (5, 7, 3)])
def test_two_layer_sigmoid_closed_form(cls, n_in, n_1, n_2):
    # Squared error ½‖y − t‖², batch 1, sigmoid everywhere:
    #   δ2 = (y − t) ⊙ σ'(z2),  δ1 = (W2ᵀ δ2) ⊙ σ'(z1),  ∂L/∂W1 = δ1 ⊗ x,  ∂L/∂W2 = δ2 ⊗ a1.
    rng = np.random.default_rng(n_in + 10 * n_1 + 100 * n_2)
    net = cls([n_in, n_1, n_2], activation="sigmoid", output="sigmoid", loss="squared_error", reduction="sum",
              dtype="float64", seed=5)
    net.layers[0].b = rng.standard_normal(n_1)
    net.layers[1].b = rng.standard_normal(n_2)
    x = rng.standard_normal(n_in)
    t = rng.uniform(0, 1, n_2)
    W1, b1, W2, b2 = net.layers[0].W, net.layers[0].b, net.layers[1].W, net.layers[1].b
    z1 = W1 @ x + b1
    a1 = sigma(z1)
    z2 = W2 @ a1 + b2
    y = sigma(z2)
    grad_C = y - t
    delta2 = grad_C * y * (1 - y)
    delta1 = (W2.T @ delta2) * a1 * (1 - a1)
    [(dW1, db1), (dW2, db2)] = net.gradients(x[None, :], t[None, :])
    assert_close(dW1, np.outer(delta1, x), np.float64)
    assert_close(db1, delta1, np.float64)
    assert_close(dW2, np.outer(delta2, a1), np.float64)
    assert_close(db2, delta2, np.float64)
    assert_close(net.loss(x[None, :], t[None, :]), 0.5 * np.sum((y - t) ** 2), np.float64)


def test_combos_cover_every_allowed_pair():
    # The combination table above is the library's table of allowed (loss, output) pairs.
    from bpfast import _validate
    assert {l: set(o) for l, o in LOSS_OUTPUTS.items()} == {l: set(o) for l, o in _validate.LOSS_OUTPUTS.items()}
    assert set(HIDDEN) == set(_validate.ACTIVATIONS)
    assert len(COMBOS) == len(HIDDEN) * sum(len(o) for o in LOSS_OUTPUTS.values()) == 32
