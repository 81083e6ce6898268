"""bpfast.Network against bpfast.reference.Network (the same class on the numpy kernels), and closed forms.

Tolerances, relative to max(1, max|expected|): 1e-12 in float64 for a single
forward/loss/gradient, 1e-10 in float64 for multi-step training
trajectories and final weights, 1e-4 for float32 training (rounding differs
between the native and numpy kernels and compounds over steps), 1e-5 for a
single float32 pass. Initial weights must be bit-for-bit identical.
"""

import gc
import sys
import weakref

import numpy as np
import pytest

import bpfast
from bpfast import optim, reference
from conftest import assert_close, assert_unchanged, snapshot, trajectory_tolerance

F64 = np.float64
TRAJECTORY_RTOL = trajectory_tolerance(np.float64)
FLOAT32_TRAIN_RTOL = trajectory_tolerance(np.float32)

CONFIGS = [  # (sizes, activation, output, loss)
    ([7, 13, 5], "relu", "softmax", "cross_entropy"),
    ([7, 13, 5], "tanh", "softmax", "log_loss"),
    ([7, 13, 5], "sigmoid", "identity", "squared_error"),
    ([7, 1, 13, 1], ["identity", "relu"], "sigmoid", "cross_entropy"),
    ([13, 31, 3], "tanh", "sigmoid", "binary_cross_entropy"),
    ([31, 257, 7], "relu", "softmax", "squared_error"),
]
CONFIG_IDS = [f"{'-'.join(map(str, c[0]))}-{c[2]}-{c[3]}" for c in CONFIGS]


def make_pair(sizes, activation="relu", output="identity", loss=None, reduction="mean", dtype="float64", seed=0):
    kw = dict(activation=activation, output=output, loss=loss, reduction=reduction, dtype=dtype, seed=seed)
    return bpfast.Network(sizes, **kw), reference.Network(sizes, **kw)


def make_targets(rng, output, batch, n_out):
    if output == "softmax":
        P = np.exp(rng.standard_normal((batch, n_out)))
        return P / P.sum(axis=1, keepdims=True)
    if output == "sigmoid":
        return rng.uniform(0, 1, (batch, n_out))
    return rng.standard_normal((batch, n_out))


def numpy_forward(net, X):
    """The forward pass written out in float64 numpy from the net's weights."""
    act = {"relu": lambda z: np.maximum(z, 0), "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh,
           "identity": lambda z: z,
           "softmax": lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(
               1, keepdims=True)}
    A = np.asarray(X, dtype=F64)
    for layer in net.layers:
        A = act[layer.activation](A @ layer.W.astype(F64).T + layer.b.astype(F64))
    return A


def assert_same_weights(net, ref, rtol):
    for a, b in zip(net.layers, ref.layers):
        assert a.W.dtype == b.W.dtype and a.b.dtype == b.b.dtype
        assert_close(a.W, b.W, a.W.dtype, rtol)
        assert_close(a.b, b.b, a.b.dtype, rtol)


# ---------------------------------------------------------------- initialisation

@pytest.mark.parametrize("sizes,activation,output,loss", CONFIGS, ids=CONFIG_IDS)
def test_same_seed_gives_identical_initial_weights(sizes, activation, output, loss):
    for dtype in ("float32", "float64"):
        net, ref = make_pair(sizes, activation, output, loss, dtype=dtype, seed=42)
        for a, b in zip(net.layers, ref.layers):
            assert a.W.dtype == np.dtype(dtype) and a.W.shape == (b.n_out, b.n_in)
            assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)
            assert not np.any(a.b)
    other = bpfast.Network(sizes, activation=activation, output=output, loss=loss, seed=43)
    assert not np.array_equal(other.layers[0].W, bpfast.Network(sizes, activation=activation, output=output,
                                                                 loss=loss, seed=42).layers[0].W)


def test_float32_and_float64_nets_with_one_seed_agree_after_casting():
    n32 = bpfast.Network([13, 31, 7], activation="relu", output="softmax", dtype="float32", seed=9)
    n64 = bpfast.Network([13, 31, 7], activation="relu", output="softmax", dtype="float64", seed=9)
    for a, b in zip(n32.layers, n64.layers):
        assert a.W.dtype == np.float32 and b.W.dtype == np.float64
        assert np.array_equal(a.W, b.W.astype(np.float32))
        assert np.array_equal(a.b, b.b.astype(np.float32))


def test_he_initialisation_for_relu_layers():
    n_in, n_out = 1000, 400
    net = bpfast.Network([n_in, n_out, 2], activation="relu", dtype="float64", seed=1)
    W = net.layers[0].W
    # 400k draws: the sample std is within ~0.2% of the true one; allow 2%.
    assert abs(W.std() / np.sqrt(2.0 / n_in) - 1) < 0.02
    assert abs(W.mean()) < 0.01 * np.sqrt(2.0 / n_in)
    # Normal, not uniform: some weights lie beyond 3 standard deviations.
    assert np.mean(np.abs(W) > 3 * np.sqrt(2.0 / n_in)) > 0.001


def test_glorot_uniform_initialisation_for_other_layers():
    sizes = [300, 200, 10]
    net = bpfast.Network(sizes, activation="tanh", output="softmax", dtype="float64", seed=2)
    for layer in net.layers:
        limit = np.sqrt(6.0 / (layer.n_in + layer.n_out))
        W = layer.W
        assert np.max(np.abs(W)) <= limit
        assert np.max(np.abs(W)) > 0.95 * limit
        assert abs(W.std() / (limit / np.sqrt(3)) - 1) < 0.05
    # The relu net's output layer (identity) is Glorot too, and its hidden layer is not.
    relu = bpfast.Network([300, 200, 10], activation="relu", dtype="float64", seed=2)
    assert np.max(np.abs(relu.layers[1].W)) <= np.sqrt(6.0 / 210)
    assert np.max(np.abs(relu.layers[0].W)) > np.sqrt(6.0 / 500)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_initial_weights_are_one_float64_stream_per_seed_cast_to_the_dtype(dtype):
    # The closed form of the initialisation: one default_rng(seed), a float64
    # draw of each whole matrix in layer order (normal times sqrt(2/n_in) for
    # relu, uniform in ±sqrt(6/(n_in+n_out)) otherwise), cast to the dtype.
    # The layers are drawn in chunks; 400 x 300 is past one chunk.
    sizes, seed = [300, 400, 7], 11
    net = bpfast.Network(sizes, activation="relu", output="softmax", dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((400, 300)) * np.sqrt(2.0 / 300)
    limit = np.sqrt(6.0 / 407)
    output = rng.uniform(-limit, limit, size=(7, 400))
    assert np.array_equal(net.layers[0].W, hidden.astype(dtype))
    assert np.array_equal(net.layers[1].W, output.astype(dtype))
    assert not np.any(net.layers[0].b) and not np.any(net.layers[1].b)


# ---------------------------------------------------------------- single passes

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("sizes,activation,output,loss", CONFIGS, ids=CONFIG_IDS)
def test_forward_loss_gradients_predict_match_reference(sizes, activation, output, loss, reduction, dtype):
    rng = np.random.default_rng(len(sizes) * 1000 + sizes[1])
    net, ref = make_pair(sizes, activation, output, loss, reduction, dtype, seed=4)
    for a, b in zip(net.layers, ref.layers):
        bias = rng.standard_normal(a.n_out) * 0.1
        a.b, b.b = bias, bias
    batch = 300 if sizes[1] > 256 else 17
    X = rng.standard_normal((batch, sizes[0]))
    T = make_targets(rng, output, batch, sizes[-1])
    assert_close(net.forward(X), ref.forward(X), dtype)
    assert net.forward(X).dtype == np.dtype(dtype)
    assert_close(net.loss(X, T), ref.loss(X, T), dtype)
    for (dW, db), (rdW, rdb) in zip(net.gradients(X, T), ref.gradients(X, T)):
        assert dW.dtype == np.dtype(dtype)
        assert_close(dW, rdW, dtype)
        assert_close(db, rdb, dtype)
    p, rp = net.predict(X), ref.predict(X)
    if net.is_classifier and sizes[-1] > 1:
        # Argmax may differ only where two outputs tie to within rounding.
        Y = ref.forward(X).astype(F64)
        mismatch = p != rp
        top2 = np.sort(Y, axis=1)[:, -2:]
        assert np.all(top2[mismatch, 1] - top2[mismatch, 0] < 1e-5)
        assert p.shape == (batch,) and p.dtype.kind == "i"
    elif net.is_classifier:
        assert np.array_equal(p, rp) or np.all(np.abs(ref.forward(X)[p != rp, 0] - 0.5) < 1e-5)
    else:
        assert_close(p, rp, dtype)


@pytest.mark.parametrize("sizes,activation,output,loss", CONFIGS, ids=CONFIG_IDS)
def test_forward_and_loss_match_closed_form(sizes, activation, output, loss):
    rng = np.random.default_rng(5)
    net = bpfast.Network(sizes, activation=activation, output=output, loss=loss, dtype="float64", seed=8)
    X = rng.standard_normal((9, sizes[0]))
    T = make_targets(rng, output, 9, sizes[-1])
    Y = numpy_forward(net, X)
    assert_close(net.forward(X), Y, F64)
    if net.loss_name == "squared_error":
        per_sample = 0.5 * np.sum((Y - T) ** 2, axis=1)
    elif net.loss_name == "log_loss" or (net.loss_name == "cross_entropy" and output == "softmax"):
        per_sample = -np.sum(T * np.log(Y), axis=1)
    else:  # binary cross-entropy, also sigmoid + cross_entropy
        per_sample = -np.sum(T * np.log(Y) + (1 - T) * np.log(1 - Y), axis=1)
    assert_close(net.loss(X, T), per_sample.mean(), F64, 1e-10)


def test_default_loss_follows_the_output():
    assert bpfast.Network([3, 2], output="identity").loss_name == "squared_error"
    assert bpfast.Network([3, 2], output="sigmoid").loss_name == "cross_entropy"
    assert bpfast.Network([3, 2], output="softmax").loss_name == "cross_entropy"


def test_predict():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((20, 4))
    clf = bpfast.Network([4, 6, 3], activation="tanh", output="softmax", dtype="float64", seed=0)
    assert np.array_equal(clf.predict(X), numpy_forward(clf, X).argmax(axis=1))
    binary = bpfast.Network([4, 6, 1], activation="tanh", output="sigmoid", dtype="float64", seed=0)
    binary.layers[1].b = [0.05]
    p = binary.predict(X)
    assert p.shape == (20,) and set(np.unique(p)) <= {0, 1}
    assert np.array_equal(p, (numpy_forward(binary, X)[:, 0] > 0.5).astype(int))
    reg = bpfast.Network([4, 6, 2], activation="tanh", output="identity", dtype="float64", seed=0)
    assert_close(reg.predict(X), numpy_forward(reg, X), F64)


def test_gradients_do_not_change_the_network():
    rng = np.random.default_rng(7)
    net = bpfast.Network([5, 8, 3], activation="relu", output="softmax", dtype="float64", seed=0)
    X, labels = rng.standard_normal((10, 5)), rng.integers(0, 3, 10)
    before = snapshot(net)
    loss_before = net.loss(X, labels)
    g1 = net.gradients(X, labels)
    g2 = net.gradients(X, labels)
    assert_unchanged(net, before)
    assert net.loss(X, labels) == loss_before
    for (a, b), (c, d) in zip(g1, g2):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    # The returned gradients are fresh arrays, not views into the weights.
    g1[0][0][...] = 123.0
    assert_unchanged(net, before)


# ---------------------------------------------------------------- training

def test_train_steps_follow_the_reference_trajectory():
    rng = np.random.default_rng(8)
    net, ref = make_pair([20, 16, 12, 5], ["tanh", "relu"], "softmax", "cross_entropy", dtype="float64", seed=3)
    X = rng.standard_normal((200, 20))
    labels = rng.integers(0, 5, 200)
    ours, theirs = [], []
    for step in range(20):
        rows = slice(10 * step, 10 * step + 10)
        ours.append(net.train_step(X[rows], labels[rows], lr=0.2))
        theirs.append(ref.train_step(X[rows], labels[rows], lr=0.2))
    assert all(isinstance(v, float) for v in ours)
    assert_close(np.array(ours), np.array(theirs), F64, TRAJECTORY_RTOL)
    assert_same_weights(net, ref, TRAJECTORY_RTOL)
    # The weights really moved.
    assert not np.array_equal(net.layers[0].W, make_pair([20, 16, 12, 5], ["tanh", "relu"], "softmax",
                                                         seed=3)[0].layers[0].W)


@pytest.mark.parametrize("batch", [8, 300])  # small-network and GEMM backends
def test_compute_gradients_then_apply_update_is_one_train_step(batch):
    # The engine's two halves (what data-parallel training puts a reduction
    # between) take the same step as the fused call, on both engines, and
    # apply_update reads the gradients as they are when it runs.
    rng = np.random.default_rng(12)
    X, labels = rng.standard_normal((batch, 20)), rng.integers(0, 5, batch)
    opt = optim.Adam(lr=1e-2, weight_decay=1e-3, clip_norm=1.0)
    fused, split = (bpfast.Network([20, 16, 5], output="softmax", dtype="float64", seed=3, optimizer=opt)
                    for _ in range(2))
    ref = reference.Network([20, 16, 5], output="softmax", dtype="float64", seed=3, optimizer=opt)
    for step in range(3):
        expected = fused.train_step(X, labels)
        for net in (split, ref):
            engine = net._engine
            loss = engine.compute_gradients(X, None, labels)
            assert_close(loss, expected, F64)
            assert engine.apply_update(loss)[:2] == (loss, True)
    assert_same_weights(split, fused, 1e-14)
    assert_same_weights(ref, fused, TRAJECTORY_RTOL)
    # Doubled gradients (as a sum over two processes would give) take the step of a
    # doubled learning rate under plain SGD.
    a, b = (bpfast.Network([20, 16, 5], output="softmax", dtype="float64", seed=3) for _ in range(2))
    b.train_step(X, labels, lr=0.2)
    loss = a._engine.compute_gradients(X, None, labels)
    for g in a._engine.gradients():
        g *= 2
    a._engine.apply_update(loss, 0.1)
    assert_same_weights(a, b, 1e-14)
    # A non-finite gradient or loss updates nothing.
    before = snapshot(a)
    a._engine.gradients()[2][1, 1] = np.nan
    assert a._engine.apply_update(loss)[1:] == (False, 1)
    assert a._engine.apply_update(np.inf)[1:] == (False, -1)
    assert_unchanged(a, before)


def test_train_step_returns_the_loss_before_the_update_and_descends():
    rng = np.random.default_rng(9)
    net = bpfast.Network([6, 10, 2], activation="tanh", output="identity", dtype="float64", seed=0)
    X, T = rng.standard_normal((16, 6)), rng.standard_normal((16, 2))
    before = net.loss(X, T)
    grads = net.gradients(X, T)
    expected = [(layer.W - 0.05 * dW, layer.b - 0.05 * db) for layer, (dW, db) in zip(net.layers, grads)]
    assert net.train_step(X, T, lr=0.05) == before
    for layer, (W, b) in zip(net.layers, expected):
        assert_close(layer.W, W, F64)
        assert_close(layer.b, b, F64)
    assert net.loss(X, T) < before


def _input_variants(X, T):
    """(name, X', T') that hold the same values as (X, T) but in forms the
    core cannot take as they are, so that train_step converts them first."""
    X_wide = np.zeros((X.shape[0], 2 * X.shape[1]), dtype=X.dtype)
    X_wide[:, ::2] = X
    variants = [("float64 X", X.astype(F64), T), ("strided X", X_wide[:, ::2], T), ("list X", X.tolist(), T)]
    if T.ndim == 1:
        return variants + [("int32 labels", X, T.astype(np.int32)), ("label list", X, T.tolist())]
    return variants + [("Fortran T", X, np.asfortranarray(T)), ("float64 T", X, T.astype(F64))]


@pytest.mark.parametrize("labels", [True, False], ids=["labels", "dense"])
def test_train_step_takes_the_same_step_whatever_form_the_inputs_come_in(labels):
    # A float32 net: arrays already float32, C-contiguous and finite go
    # straight to the core; every other form is converted first. The steps
    # must be the same bit for bit, and follow the reference.
    rng = np.random.default_rng(21)
    X = rng.standard_normal((9, 6)).astype(np.float32)
    T = rng.integers(0, 3, 9) if labels else make_targets(rng, "softmax", 9, 3).astype(np.float32)
    kw = dict(activation="tanh", output="softmax", loss="cross_entropy", dtype="float32", seed=4)
    direct = bpfast.Network([6, 8, 3], **kw)
    ref = reference.Network([6, 8, 3], **kw)
    probe = bpfast.Network([6, 8, 3], **kw)
    assert probe._engine.plain_train_step(X, T, 0.3) is not None  # taken as is
    expected_loss = direct.train_step(X, T, lr=0.3)
    assert_close(expected_loss, ref.train_step(X, T, lr=0.3), np.float32, 1e-5)
    assert_same_weights(direct, ref, 1e-5)
    for name, X_form, T_form in _input_variants(X, T):
        net = bpfast.Network([6, 8, 3], **kw)
        assert net._engine.plain_train_step(X_form, T_form, 0.3) is None, name  # not taken as is
        assert net.train_step(X_form, T_form, lr=0.3) == expected_loss, name
        for a, b in zip(net.layers, direct.layers):
            assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b), name


@pytest.mark.parametrize("bad", ["nan in X", "inf in T", "label 3", "label -1", "T rows", "X columns",
                                 "empty", "lr 0", "lr nan", "lr int"])
def test_train_step_refuses_bad_input_of_the_right_dtype_and_layout(bad):
    # Inputs that pass the core's quick type test but are wrong must still
    # raise the validating path's error and leave the weights alone.
    rng = np.random.default_rng(22)
    X = rng.standard_normal((5, 4)).astype(np.float32)
    dense = rng.standard_normal((5, 2)).astype(np.float32)
    labels = np.array([0, 1, 2, 1, 0])
    net = bpfast.Network([4, 6, 3], output="softmax", dtype="float32", seed=0)
    regression = bpfast.Network([4, 6, 2], output="identity", dtype="float32", seed=0)
    lr = 0.1
    if bad == "nan in X":
        X[2, 1] = np.nan
    elif bad == "label 3":
        labels[4] = 3
    elif bad == "label -1":
        labels[0] = -1
    elif bad == "X columns":
        X = X[:, :3].copy()
    elif bad == "empty":
        X, labels = X[:0], labels[:0]
    elif bad.startswith("lr"):
        lr = {"lr 0": 0.0, "lr nan": float("nan"), "lr int": 2}[bad]
    if bad in ("inf in T", "T rows"):
        net = regression
        if bad == "inf in T":
            dense[3, 0] = np.inf
        else:
            dense = dense[:4].copy()
    before = snapshot(net)
    T = dense if net is regression else labels
    if bad == "lr int":  # a valid learning rate, converted: the step is taken
        reference_net = bpfast.Network([4, 6, 3], output="softmax", dtype="float32", seed=0)
        assert net.train_step(X, T, lr=lr) == reference_net.train_step(X, T, lr=2.0)
        return
    expected_name = "lr" if bad.startswith("lr") else "T" if bad in ("inf in T", "T rows") or "label" in bad else "X"
    with pytest.raises(ValueError, match=expected_name):
        net.train_step(X, T, lr=lr)
    assert_unchanged(net, before)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_matches_reference_fit(shuffle, reduction):
    rng = np.random.default_rng(10)
    net, ref = make_pair([8, 12, 4], "relu", "softmax", "cross_entropy", reduction, "float64", seed=11)
    X = rng.standard_normal((50, 8))
    labels = rng.integers(0, 4, 50)
    lr = 0.1 if reduction == "mean" else 0.01
    h = net.fit(X, labels, epochs=5, batch_size=16, lr=lr, shuffle=shuffle)
    rh = ref.fit(X, labels, epochs=5, batch_size=16, lr=lr, shuffle=shuffle)
    assert len(h) == 5
    assert_close(np.array(h), np.array(rh), F64, TRAJECTORY_RTOL)
    assert_same_weights(net, ref, TRAJECTORY_RTOL)


def test_fit_with_and_without_shuffle_differ():
    rng = np.random.default_rng(12)
    X, labels = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    a = bpfast.Network([5, 7, 3], output="softmax", dtype="float64", seed=1)
    b = bpfast.Network([5, 7, 3], output="softmax", dtype="float64", seed=1)
    ha = a.fit(X, labels, epochs=3, batch_size=8, shuffle=True)
    hb = b.fit(X, labels, epochs=3, batch_size=8, shuffle=False)
    assert ha != hb


def test_full_batch_fit_equals_repeated_train_steps():
    # With one batch per epoch and no shuffling, epoch k's loss is the loss before step k.
    rng = np.random.default_rng(13)
    X, T = rng.standard_normal((24, 5)), rng.standard_normal((24, 3))
    a = bpfast.Network([5, 9, 3], activation="sigmoid", dtype="float64", seed=2)
    b = bpfast.Network([5, 9, 3], activation="sigmoid", dtype="float64", seed=2)
    history = a.fit(X, T, epochs=4, batch_size=24, lr=0.3, shuffle=False)
    steps = []
    for _ in range(4):
        steps.append(b.loss(X, T))
        b.train_step(X, T, lr=0.3)
    assert_close(np.array(history), np.array(steps), F64)
    assert_same_weights(a, b, 1e-12)


def test_fit_epoch_loss_is_the_size_weighted_mean_of_batch_losses():
    # 10 samples in batches of 4, 4, 2 (no shuffle): epoch loss = Σ batch_size·loss / 10 for "mean".
    rng = np.random.default_rng(14)
    X, T = rng.standard_normal((10, 3)), rng.standard_normal((10, 2))
    for reduction in ("mean", "sum"):
        a = bpfast.Network([3, 2], dtype="float64", reduction=reduction, seed=0)
        b = bpfast.Network([3, 2], dtype="float64", reduction=reduction, seed=0)
        [epoch] = a.fit(X, T, epochs=1, batch_size=4, lr=0.1, shuffle=False)
        batch_losses = [(b.train_step(X[s], T[s], lr=0.1), len(X[s])) for s in (slice(0, 4), slice(4, 8),
                                                                                 slice(8, 10))]
        expected = (sum(v * n for v, n in batch_losses) / 10 if reduction == "mean"
                    else sum(v for v, _ in batch_losses))
        assert_close(epoch, expected, F64)


def test_fit_with_zero_epochs_changes_nothing():
    net = bpfast.Network([3, 4, 2], dtype="float64", seed=0)
    before = snapshot(net)
    assert net.fit(np.ones((5, 3)), np.ones((5, 2)), epochs=0) == []
    assert_unchanged(net, before)


def test_training_reduces_the_loss_on_a_learnable_problem():
    # Three Gaussian blobs in the plane; a small net should separate them.
    rng = np.random.default_rng(15)
    centres = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    labels = rng.integers(0, 3, 300)
    X = centres[labels] + 0.4 * rng.standard_normal((300, 2))
    net = bpfast.Network([2, 16, 3], activation="relu", output="softmax", dtype="float64", seed=0)
    initial = net.loss(X, labels)
    history = net.fit(X, labels, epochs=20, batch_size=32, lr=0.1)
    assert history[-1] < 0.25 * history[0]
    assert net.loss(X, labels) < 0.2 * initial
    assert np.mean(net.predict(X) == labels) > 0.95


def test_float32_network_trains_like_the_reference():
    rng = np.random.default_rng(16)
    net, ref = make_pair([20, 16, 12, 5], ["tanh", "relu"], "softmax", "cross_entropy", dtype="float32", seed=3)
    X = rng.standard_normal((200, 20)).astype(np.float32)
    labels = rng.integers(0, 5, 200)
    ours = [net.train_step(X[10 * s:10 * s + 10], labels[10 * s:10 * s + 10], lr=0.2) for s in range(20)]
    theirs = [ref.train_step(X[10 * s:10 * s + 10], labels[10 * s:10 * s + 10], lr=0.2) for s in range(20)]
    assert_close(np.array(ours), np.array(theirs), np.float32, FLOAT32_TRAIN_RTOL)
    assert_same_weights(net, ref, FLOAT32_TRAIN_RTOL)
    for layer in net.layers:
        assert layer.W.dtype == np.float32 and layer.b.dtype == np.float32
    h = net.fit(X, labels, epochs=3, batch_size=32, lr=0.1)
    rh = ref.fit(X, labels, epochs=3, batch_size=32, lr=0.1)
    assert_close(np.array(h), np.array(rh), np.float32, FLOAT32_TRAIN_RTOL)


def test_non_finite_loss_raises_and_leaves_the_weights_alone():
    net = bpfast.Network([2, 1], dtype="float64", seed=0)
    net.layers[0].W = [[1e200, 1e200]]
    before = snapshot(net)
    with pytest.raises(FloatingPointError, match="not finite"):
        net.train_step(np.ones((3, 2)), np.zeros((3, 1)))
    assert_unchanged(net, before)


# ---------------------------------------------------------------- parameters

@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_assigning_weights(cls, dtype):
    net = cls([3, 4, 2], activation="tanh", dtype=dtype, seed=0)
    layer = net.layers[0]
    W_id = id(layer.W)
    W_new = np.arange(12, dtype=np.float64).reshape(4, 3) / 10
    layer.W = W_new
    layer.b = [1, 2, 3, 4]  # a list of ints works too
    assert layer.W.dtype == np.dtype(dtype) and layer.b.dtype == np.dtype(dtype)
    assert np.array_equal(layer.W, W_new.astype(dtype))
    assert np.array_equal(layer.b, np.array([1, 2, 3, 4], dtype=dtype))
    assert id(layer.W) == W_id  # written in place
    X = np.array([[0.5, -1.0, 2.0]])
    assert_close(net.forward(X), numpy_forward(net, X), dtype)
    assert_close(net.forward(X)[0], np.tanh(W_new @ X[0] + [1, 2, 3, 4]) @ net.layers[1].W.astype(F64).T, dtype)


@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
def test_assigning_weights_of_the_wrong_shape_raises(cls):
    net = cls([3, 4, 2], dtype="float64", seed=0)
    before = snapshot(net)
    with pytest.raises(ValueError, match="W"):
        net.layers[0].W = np.zeros((3, 4))
    with pytest.raises(ValueError, match="W"):
        net.layers[1].W = np.zeros(8)
    with pytest.raises(ValueError, match="b"):
        net.layers[0].b = np.zeros(3)
    with pytest.raises(ValueError, match="W"):
        net.layers[0].W = np.full((4, 3), np.nan)
    with pytest.raises(TypeError, match="b"):
        net.layers[0].b = np.array(["a"] * 4)
    assert_unchanged(net, before)


def test_parameters_are_the_live_arrays():
    net = bpfast.Network([3, 4, 2], dtype="float64", seed=0)
    params = net.parameters()
    assert len(params) == 4
    assert params[0] is net.layers[0].W and params[3] is net.layers[1].b


# ---------------------------------------------------------------- targets and reductions

@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
@pytest.mark.parametrize("loss", ["cross_entropy", "log_loss", "squared_error"])
def test_integer_labels_equal_one_hot_targets(cls, loss):
    rng = np.random.default_rng(17)
    X, labels = rng.standard_normal((12, 5)), rng.integers(0, 4, 12)
    one_hot = np.eye(4)[labels]
    a = cls([5, 6, 4], output="softmax", loss=loss, dtype="float64", seed=0)
    b = cls([5, 6, 4], output="softmax", loss=loss, dtype="float64", seed=0)
    if loss == "squared_error":  # not a classification loss: labels are refused
        with pytest.raises(ValueError, match="T"):
            a.loss(X, labels)
        return
    assert a.loss(X, labels) == b.loss(X, one_hot)
    for (dW, db), (dW2, db2) in zip(a.gradients(X, labels), b.gradients(X, one_hot)):
        assert np.array_equal(dW, dW2) and np.array_equal(db, db2)
    assert a.fit(X, labels, epochs=2, batch_size=5) == b.fit(X, one_hot, epochs=2, batch_size=5)
    assert_same_weights(a, b, 0.0)


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "log_loss"])
def test_single_sigmoid_output_accepts_binary_labels(loss):
    rng = np.random.default_rng(18)
    X = rng.standard_normal((10, 4))
    labels = rng.integers(0, 2, 10)
    labels[:2] = [0, 1]
    net = bpfast.Network([4, 5, 1], activation="tanh", output="sigmoid", loss=loss, dtype="float64", seed=0)
    T = labels.astype(F64).reshape(-1, 1)
    assert net.loss(X, labels) == net.loss(X, T)
    y = numpy_forward(net, X)[:, 0]
    if loss == "log_loss":
        expected = -np.mean(labels * np.log(y))
    else:
        expected = -np.mean(labels * np.log(y) + (1 - labels) * np.log(1 - y))
    assert_close(net.loss(X, labels), expected, F64, 1e-10)
    for (dW, db), (dW2, db2) in zip(net.gradients(X, labels), net.gradients(X, T)):
        assert np.array_equal(dW, dW2) and np.array_equal(db, db2)
    assert set(np.unique(net.predict(X))) <= {0, 1}


@pytest.mark.parametrize("output,loss", [("softmax", "cross_entropy"), ("identity", "squared_error"),
                                         ("sigmoid", "binary_cross_entropy"), ("softmax", "log_loss")])
def test_sum_reduction_is_batch_times_mean(output, loss):
    rng = np.random.default_rng(19)
    batch = 13
    X = rng.standard_normal((batch, 6))
    T = make_targets(rng, output, batch, 3)
    mean = bpfast.Network([6, 7, 3], activation="tanh", output=output, loss=loss, dtype="float64", seed=0)
    total = bpfast.Network([6, 7, 3], activation="tanh", output=output, loss=loss, reduction="sum",
                           dtype="float64", seed=0)
    assert_close(total.loss(X, T), batch * mean.loss(X, T), F64)
    for (dW, db), (sW, sb) in zip(mean.gradients(X, T), total.gradients(X, T)):
        assert_close(sW, batch * dW, F64)
        assert_close(sb, batch * db, F64)


def test_train_step_takes_plain_input_at_once_and_converts_the_rest():
    # Arrays that need no conversion step through the engine's plain path;
    # anything else is validated and converted first. Both give the same step.
    net = bpfast.Network([2, 3, 1], dtype="float64", seed=0)
    twin = bpfast.Network([2, 3, 1], dtype="float64", seed=0)
    X, T = np.ones((4, 2)), np.zeros((4, 1))
    assert net._engine.plain_train_step(X, T, 0.1) == twin.train_step(X, T, 0.1)
    assert net._engine.plain_train_step(X, T, None) == twin.train_step(X, T, lr=None)
    assert_close(net.layers[0].W, twin.layers[0].W, F64, 0.0)
    # Not the plain case: nothing is done, and train_step converts.
    for X_other, T_other, lr in [(X.astype(np.float32), T, None), (X, T.tolist(), None), (X, T, 1)]:
        assert net._engine.plain_train_step(X_other, T_other, lr) is None
    assert_close(net.layers[0].W, twin.layers[0].W, F64, 0.0)
    assert net.train_step(X.astype(np.float32), T.tolist()) == twin.train_step(X, T)
    assert_close(net.layers[0].W, twin.layers[0].W, F64, 0.0)
    with pytest.raises(TypeError, match=r"train_step\(\) got an unexpected keyword argument 'rate'"):
        net.train_step(X, T, rate=0.1)
    with pytest.raises(ValueError, match="lr"):
        net.train_step(X, T, lr=-1.0)
    # A network is freed like any object (no cycle through its engine).
    alive = weakref.ref(net)
    del net
    gc.collect()
    assert alive() is None


def test_a_subclass_that_overrides_train_step_keeps_its_override():
    calls = []

    class Counting(bpfast.Network):
        def train_step(self, X, T, lr=None):
            calls.append(len(X))
            return super().train_step(X, T, lr)

    net, twin = Counting([2, 3, 1], dtype="float64", seed=0), bpfast.Network([2, 3, 1], dtype="float64", seed=0)
    X, T = np.ones((4, 2)), np.zeros((4, 1))
    assert net.train_step(X, T, 0.1) == twin.train_step(X, T, 0.1)
    assert calls == [4]


# ---------------------------------------------------------------- target forms

def results_for(make, X, T):
    """Loss, gradients, a train_step and a fit on the same net: every call that takes T."""
    net = make()
    out = [net.loss(X, T), net.gradients(X, T), net.train_step(X, T)]
    out.append(list(net.fit(X, T, epochs=2, batch_size=3, validation_data=(X, T)).history.values()))
    return out, [p.copy() for p in net.parameters()]


def assert_same_results(a, b):
    (values_a, params_a), (values_b, params_b) = a, b
    assert repr(values_a) == repr(values_b)  # bit-identical floats and arrays print alike
    for p, q in zip(params_a, params_b, strict=True):
        assert p.tobytes() == q.tobytes()


@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_1d_target_for_a_single_output_regressor_is_a_column(cls, dtype, rng):
    # the oracle is the documented (n, 1) form of the same targets
    X, t = rng.standard_normal((10, 4)), rng.standard_normal(10)
    make = lambda: cls([4, 5, 1], dtype=dtype, seed=3)
    assert_same_results(results_for(make, X, t), results_for(make, X, t[:, None]))


@pytest.mark.parametrize("cls", [bpfast.Network, reference.Network], ids=["native", "reference"])
@pytest.mark.parametrize("output, n_out", [("softmax", 3), ("sigmoid", 1)])
def test_bool_and_whole_float_labels_are_integer_labels(cls, output, n_out, rng):
    X, labels = rng.standard_normal((10, 4)), rng.integers(0, max(n_out, 2), 10)
    make = lambda: cls([4, 5, n_out], output=output, dtype="float64", seed=3)
    expected = results_for(make, X, labels)
    assert_same_results(results_for(make, X, labels.astype(np.float32)), expected)
    assert_same_results(results_for(make, X, labels.astype(np.float64)), expected)
    if n_out == 1:
        assert_same_results(results_for(make, X, labels.astype(bool)), expected)


@pytest.mark.parametrize("T, message", [
    (np.array([0.0, 1.0, 0.5, 1.0]), r"T labels must be whole numbers.*0\.5 at index 2"),
    (np.array([0.0, 1.0, 2.0, 1.0]), r"T labels must lie in \[0, 2\)"),
])
def test_fractional_or_out_of_range_float_labels_are_refused(T, message):
    net = bpfast.Network([2, 1], output="sigmoid", seed=0)
    before = snapshot(net)
    with pytest.raises(ValueError, match=message):
        net.train_step(np.ones((4, 2)), T)
    assert_unchanged(net, before)


def test_a_1d_target_for_a_multi_output_regressor_is_refused():
    net = bpfast.Network([2, 3], seed=0)
    with pytest.raises(ValueError, match=r"T must have shape \(4, 3\).*single-output"):
        net.loss(np.ones((4, 2)), np.ones(4))
