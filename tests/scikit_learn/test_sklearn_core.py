"""The core's scikit-learn conventions against numpy formulas and bpfast.reference.

scikit-learn's MLP solvers differ from PyTorch's formulas in three places the
core now covers: SGD keeps its velocity with the learning rate inside it, Adam
adds ε to √v before the bias correction, and the loss carries an L2 term
α·Σ‖W‖²/(2N) over a batch of N samples (or of sample weights summing to N),
with sample weights inside the average, and MLPRegressor's Poisson loss.

The kernel tests build the expected values in float64 numpy from the formulas
in the module docstrings of scikit-learn's MLP (not from its code); the
objective's tests (L2 term, sample weights, sparse chunks) take them from
bpfast.reference's engine run in float64, the suite's one oracle for a whole
network. Each compares them with the native result. Tolerance: 1e-12 relative to max(1, max|expected|)
in float64, 1e-5 in float32.
"""

import numpy as np
import pytest
from scipy.special import xlogy

from bpfast import _core, kernels, reference
from conftest import DTYPES, assert_close, precision

F64 = np.float64


# ---------------------------------------------------------------- optimizer kernels

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_velocity_form_with_changing_lr(dtype, nesterov):
    rng = np.random.default_rng(1)
    n, mu = 37, 0.9
    param = rng.normal(size=n).astype(dtype)
    velocity = np.zeros(n, dtype)
    p, v = param.astype(F64), np.zeros(n)
    for step, lr in enumerate([0.1, 0.1, 0.02, 0.004, 0.5]):
        grad = rng.normal(size=n).astype(dtype)
        g = grad.astype(F64)
        kernels.sgd_momentum_update(param, grad, velocity, lr, mu, nesterov, 0.0, form="sklearn")
        v = mu * v - lr * g
        p = p + (mu * v - lr * g if nesterov else v)
        assert_close(param, p, dtype)
        assert_close(velocity, v, dtype)


def test_sgd_forms_differ_when_lr_changes_and_agree_otherwise():
    rng = np.random.default_rng(2)
    start = rng.normal(size=20)
    grads = [rng.normal(size=20) for _ in range(3)]
    finals = {}
    for form in ("pytorch", "sklearn"):
        for lrs in ((0.1, 0.1, 0.1), (0.1, 0.01, 0.5)):
            p, v = start.copy(), np.zeros(20)
            for g, lr in zip(grads, lrs):
                kernels.sgd_momentum_update(p, g, v, lr, 0.9, False, 0.0, form=form)
            finals[form, lrs] = p
    np.testing.assert_allclose(finals["pytorch", (0.1,) * 3], finals["sklearn", (0.1,) * 3], rtol=1e-13)
    assert np.abs(finals["pytorch", (0.1, 0.01, 0.5)] - finals["sklearn", (0.1, 0.01, 0.5)]).max() > 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_sklearn_epsilon_placement(dtype):
    rng = np.random.default_rng(3)
    n, lr, b1, b2, eps = 29, 0.01, 0.9, 0.999, 1e-3  # a large ε shows where it sits
    param = rng.normal(size=n).astype(dtype)
    m, v = np.zeros(n, dtype), np.zeros(n, dtype)
    p, m64, v64 = param.astype(F64), np.zeros(n), np.zeros(n)
    for t in range(1, 6):
        grad = rng.normal(size=n).astype(dtype)
        g = grad.astype(F64)
        kernels.adam_update(param, grad, m, v, t, lr, b1, b2, eps, 0.0, False, form="sklearn")
        m64 = b1 * m64 + (1 - b1) * g
        v64 = b2 * v64 + (1 - b2) * g * g
        p = p - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m64 / (np.sqrt(v64) + eps)
        assert_close(param, p, dtype)
    torch_form = param.astype(F64).copy()
    kernels.adam_update(torch_form, np.ones(n), np.zeros(n), np.zeros(n), 1, lr, b1, b2, eps, 0.0, False)
    sk_form = param.astype(F64).copy()
    kernels.adam_update(sk_form, np.ones(n), np.zeros(n), np.zeros(n), 1, lr, b1, b2, eps, 0.0, False,
                        form="sklearn")
    assert np.abs(torch_form - sk_form).max() > 1e-6  # the placements differ visibly at this ε


def test_unknown_form_is_refused():
    with pytest.raises(ValueError, match="form"):
        kernels.adam_update(np.zeros(3), np.ones(3), np.zeros(3), np.zeros(3), 1, 0.1, 0.9, 0.999, 1e-8, 0.0,
                            False, form="keras")


# ---------------------------------------------------------------- Poisson loss

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_poisson_loss_value_and_gradient(dtype, reduction):
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(7, 3)).astype(dtype)
    T = rng.poisson(1.5, size=(7, 3)).astype(dtype)  # zeros included
    assert (T == 0).any()
    value, grad = kernels.loss("poisson", Z, T, reduction)
    mu = np.exp(Z.astype(F64))
    per_value = xlogy(T.astype(F64), T.astype(F64) / mu) - T + mu
    scale = 1 / 7 if reduction == "mean" else 1.0
    assert_close(value, per_value.sum() * scale, dtype)
    assert_close(grad, (mu - T) * scale, dtype)


# ---------------------------------------------------------------- the network's objective

def reference_objective(sizes, output, loss, params, X, T, weights, alpha, value_scale):
    """(loss, [dW_0, db_0, ...]) of sklearn's objective on a net with tanh hidden layers, from
    bpfast.reference's engine in float64: a weighted mean over the batch of the loss, divided
    by N = Σw, plus α·Σ‖W‖²/(2N); the data term times value_scale."""
    engine = reference.Engine(sizes, ["tanh", output], loss, "mean", F64)
    for p, value in zip(engine.parameters(), params):
        p[...] = value
    engine.set_objective(l2=alpha, value_scale=value_scale)
    value = engine.compute_gradients(X, T, None, weights)
    return value, [g.copy() for g in engine.gradients()]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["squared_error", "poisson", "softmax_cross_entropy"])
@pytest.mark.parametrize("weighted", [False, True])
def test_objective_loss_and_gradients(dtype, loss, weighted):
    rng = np.random.default_rng(5)
    sizes, n = [4, 6, 3], 11
    output = "softmax" if loss == "softmax_cross_entropy" else "identity"
    core = precision(dtype).core
    net = core.Network(sizes, ["tanh", output], loss, "mean")
    for p in net.parameters():
        p[...] = rng.normal(scale=0.5, size=p.shape)
    alpha, value_scale = 0.3, (1 / 3 if loss == "squared_error" else 1.0)
    net.set_objective(l2=alpha, value_scale=value_scale)
    assert net.objective == (alpha, value_scale)
    X = rng.normal(size=(n, 4)).astype(dtype)
    labels = rng.integers(0, 3, size=n)
    if loss == "softmax_cross_entropy":
        T, dense, lab = np.eye(3)[labels], None, labels
    elif loss == "poisson":
        T = rng.poisson(1.0, size=(n, 3)).astype(F64)
        dense, lab = T.astype(dtype), None
    else:
        T = rng.normal(size=(n, 3))
        dense, lab = T.astype(dtype), None
    weights = rng.uniform(0.2, 3.0, size=n) if weighted else None
    w_arg = None if weights is None else weights.astype(dtype)
    params64 = [p.astype(F64) for p in net.parameters()]
    expected_value, expected_grads = reference_objective(sizes, output, loss, params64, X.astype(F64), T, weights,
                                                         alpha, value_scale)
    value = net.compute_gradients(X, dense, lab, w_arg)
    assert_close(value, expected_value, dtype)
    for got, want in zip(net.gradients(), expected_grads):
        assert_close(got, want, dtype)
    assert_close(net.loss(X, dense, lab, w_arg), expected_value, dtype)


def test_weighted_epoch_matches_weighted_steps():
    """train_epoch with sample weights and an order = one weighted step per gathered batch."""
    rng = np.random.default_rng(6)
    nets = [_core.f64.Network([3, 5, 2], ["relu", "identity"], "squared_error", "mean") for _ in range(2)]
    start = [rng.normal(size=p.shape) for p in nets[0].parameters()]
    for net in nets:
        for p, s in zip(net.parameters(), start):
            p[...] = s
        net.set_optimizer(_core.OptimizerConfig(
            kind="sgd", lr=0.05, momentum=0.9, nesterov=True, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
            decay_bias=False, clip_norm=0.0, schedule="constant", step_size=1, gamma=1.0, power_t=0.0,
            form="sklearn"))
        net.set_objective(l2=0.01, value_scale=0.5)
    X, T = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    w = rng.uniform(0.5, 2.0, size=10)
    order = rng.permutation(10)
    epoch_loss, finite, *_ = nets[0].train_epoch(X, T, None, order, 4, 0.05, w)
    assert finite
    total = 0.0
    for start_row in range(0, 10, 4):
        rows = order[start_row:start_row + 4]
        value = nets[1].compute_gradients(X[rows], T[rows], None, w[rows])
        nets[1].apply_update(value, 0.05)
        total += value * len(rows)
    assert_close(epoch_loss, total / 10, F64)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert_close(a, b, F64)


def test_bad_objective_and_weights_are_refused():
    net = _core.f64.Network([2, 1], ["identity"], "squared_error", "mean")
    with pytest.raises(ValueError, match="l2"):
        net.set_objective(l2=-1.0)
    with pytest.raises(ValueError, match="value_scale"):
        net.set_objective(value_scale=0.0)
    X, T = np.ones((3, 2)), np.ones((3, 1))
    with pytest.raises(ValueError, match="sample_weight"):
        net.loss(X, T, None, np.ones(2))
    with pytest.raises(ValueError, match="sample_weight"):
        net.compute_gradients(X, T, None, np.array([1.0, np.nan, 1.0]))


# ---------------------------------------------------------------- scikit-learn's clipped log-losses

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_clipped_log_losses(dtype, kind):
    """Values on probabilities clipped to [eps, 1 − eps], gradients p − t; logits far
    out (±60) where the clipping shows, and soft targets."""
    rng = np.random.default_rng(7)
    Z = rng.normal(scale=3.0, size=(9, 4))
    Z[0, 0], Z[1, 1], Z[2, :] = 60.0, -60.0, [60.0, -60.0, 0.0, 1.0]
    Z = Z.astype(dtype)
    T = np.eye(4)[rng.integers(0, 4, 9)] if kind == "softmax" else rng.integers(0, 2, (9, 4)).astype(F64)
    T[3] = [0.25, 0.25, 0.5, 0.0] if kind == "softmax" else [0.3, 0.7, 1.0, 0.0]
    eps = np.finfo(dtype).eps
    z = Z.astype(F64)
    if kind == "softmax":
        P = np.exp(z - z.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        clipped = np.clip(P, eps, 1 - eps)
        rows = -xlogy(T, clipped).sum(axis=1)
    else:
        P = 1 / (1 + np.exp(-z))
        clipped = np.clip(P, eps, 1 - eps)
        rows = -(xlogy(T, clipped) + xlogy(1 - T, 1 - clipped)).sum(axis=1)
    value, grad = kernels.loss(f"{kind}_clipped_log_loss", Z, T.astype(dtype))
    assert_close(value, rows.mean(), dtype, rtol=1e-12 if dtype == F64 else 1e-5)
    assert_close(grad, (P - T) / 9, dtype)
    exact, _ = kernels.loss(f"{kind}_cross_entropy", Z, T.astype(dtype))
    assert exact > value + 1.0  # the exact value counts the sure wrong answers in full


# ---------------------------------------------------------------- sparse epochs

def csr_arrays(X):
    return X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shuffled", [False, True])
def test_csr_epoch_equals_dense_epoch(dtype, shuffled):
    """train_epoch_csr makes each batch dense and then runs the dense step: the weights,
    losses and optimizer state are those of train_epoch on X.toarray(), bit for bit."""
    import scipy.sparse
    rng = np.random.default_rng(8)
    X = scipy.sparse.random(37, 9, density=0.3, format="csr", random_state=1, dtype=dtype)
    X.data[:] = rng.normal(size=X.nnz)
    # Row 0 names its first column twice: the two values add up, as in X.toarray().
    first = X.indptr[1]
    data = np.concatenate([X.data[:first], [1.5], X.data[first:]]).astype(dtype)
    indices = np.concatenate([X.indices[:first], X.indices[:1], X.indices[first:]])
    indptr = np.concatenate([[0], X.indptr[1:] + 1])
    X = scipy.sparse.csr_matrix((data, indices, indptr), shape=X.shape)
    assert X.nnz == data.size and not X.has_canonical_format
    labels = rng.integers(0, 3, 37)
    weights = rng.uniform(0.5, 2.0, 37).astype(dtype)
    core = precision(dtype).core
    nets = [core.Network([9, 5, 3], ["relu", "softmax"], "softmax_clipped_log_loss", "mean") for _ in range(2)]
    for p, q in zip(*(n.parameters() for n in nets)):
        p[...] = q[...] = rng.normal(size=p.shape)
    for net in nets:
        net.set_optimizer(_core.OptimizerConfig(
            kind="adam", lr=0.01, momentum=0.0, nesterov=False, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
            decay_bias=False, clip_norm=0.0, schedule="constant", step_size=1, gamma=1.0, power_t=0.0,
            form="sklearn"))
        net.set_objective(l2=0.1)
    order = rng.permutation(37) if shuffled else None
    for _ in range(2):
        dense = nets[0].train_epoch(X.toarray(), None, labels, order, 8, None, weights)
        sparse = nets[1].train_epoch_csr(*csr_arrays(X), None, labels, order, 8, None, weights)
        assert dense[:4] == sparse[:4]
    for a, b in zip(nets[0].parameters() + list(nets[0].optimizer_state()),
                    nets[1].parameters() + list(nets[1].optimizer_state())):
        np.testing.assert_array_equal(a, b)


def test_bad_csr_input_is_refused():
    import scipy.sparse
    net = _core.f64.Network([4, 2], ["identity"], "squared_error", "mean")
    X = scipy.sparse.random(5, 4, density=0.5, format="csr", random_state=0)
    data, indices, indptr = csr_arrays(X)
    T = np.zeros((5, 2))
    net.train_epoch_csr(data, indices, indptr, T, None, None, 2)
    with pytest.raises(ValueError, match="X_indices"):
        net.train_epoch_csr(data, np.where(indices == indices[0], 4, indices), indptr, T, None, None, 2)
    bad = indptr.copy()
    bad[2], bad[3] = bad[3], bad[2] - 1
    with pytest.raises(ValueError, match="X_indptr"):
        net.train_epoch_csr(data, indices, bad, T, None, None, 2)
    with pytest.raises(ValueError, match="X_indptr"):
        net.train_epoch_csr(data, indices, indptr + 1, T, None, None, 2)
    with pytest.raises(ValueError, match="NaN"):
        net.train_epoch_csr(np.where(data == data[0], np.nan, data), indices, indptr, T, None, None, 2)
    with pytest.raises(ValueError, match="T"):
        net.train_epoch_csr(data, indices, indptr, np.zeros((4, 2)), None, None, 2)
    with pytest.raises(ValueError, match="order"):
        net.train_epoch_csr(data, indices, indptr, T, None, np.array([0, 1, 2, 3, 9]), 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["squared_error", "softmax_cross_entropy"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("chunk_rows", [None, 1, 4, 7])
def test_csr_gradients_over_chunks_follow_the_objective(dtype, loss, weighted, chunk_rows):
    """compute_gradients_csr (lbfgs over sparse X) makes chunk_rows rows dense at a time
    and combines the chunks: the numpy objective's loss and gradients over the whole
    data, the L2 term counted once; with one chunk, dense compute_gradients to the bit."""
    import scipy.sparse
    rng = np.random.default_rng(12)
    n, sizes = 23, [6, 5, 3]
    output = "softmax" if loss == "softmax_cross_entropy" else "identity"
    core = precision(dtype).core
    nets = [core.Network(sizes, ["tanh", output], loss, "mean") for _ in range(2)]
    for p, q in zip(*(net.parameters() for net in nets)):
        p[...] = q[...] = rng.normal(scale=0.5, size=p.shape)
    for net in nets:
        net.set_objective(l2=0.3)
    X = scipy.sparse.random(n, 6, density=0.4, format="csr", random_state=3, dtype=dtype)
    X.data[:] = rng.normal(size=X.nnz)
    labels = rng.integers(0, 3, size=n)
    T = np.eye(3)[labels] if output == "softmax" else rng.normal(size=(n, 3))
    dense, lab = (None, labels) if output == "softmax" else (T.astype(dtype), None)
    weights = rng.uniform(0.2, 3.0, size=n) if weighted else None
    w_arg = None if weights is None else weights.astype(dtype)
    params64 = [p.astype(F64) for p in nets[0].parameters()]
    expected_value, expected_grads = reference_objective(sizes, output, loss, params64, X.toarray().astype(F64), T,
                                                         weights, 0.3, 1.0)
    value = nets[0].compute_gradients_csr(*csr_arrays(X), dense, lab, w_arg, chunk_rows=chunk_rows)
    assert_close(value, expected_value, dtype)
    for got, want in zip(nets[0].gradients(), expected_grads):
        assert_close(got, want, dtype)
    if chunk_rows is None:
        assert nets[1].compute_gradients(X.toarray(), dense, lab, w_arg) == value
        for a, b in zip(nets[0].gradients(), nets[1].gradients()):
            np.testing.assert_array_equal(a, b)


def test_csr_gradients_sum_reduction_over_chunks():
    """With reduction sum the chunks' losses and gradients add up, against the dense call."""
    import scipy.sparse
    rng = np.random.default_rng(13)
    net = _core.f64.Network([5, 4, 2], ["relu", "identity"], "squared_error", "sum")
    for p in net.parameters():
        p[...] = rng.normal(size=p.shape)
    X = scipy.sparse.random(19, 5, density=0.5, format="csr", random_state=4)
    T = rng.normal(size=(19, 2))
    whole = net.compute_gradients(X.toarray(), T, None)
    expected = [g.copy() for g in net.gradients()]
    assert_close(net.compute_gradients_csr(*csr_arrays(X), T, None, chunk_rows=5), whole, np.float64)
    for got, want in zip(net.gradients(), expected):
        assert_close(got, want, np.float64)
    with pytest.raises(ValueError, match="chunk_rows"):
        net.compute_gradients_csr(*csr_arrays(X), T, None, chunk_rows=0)
    with pytest.raises(ValueError, match="X_indices"):
        net.compute_gradients_csr(X.data, np.full_like(csr_arrays(X)[1], 5), X.indptr.astype(np.int64), T, None)
