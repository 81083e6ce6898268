"""The small-network backend (cpp/model/small_net_backend.h) against bpfast.reference.

Networks whose weight matrices fit a core's L2 cache (show_config's
small_net_max_weight_bytes) train, at batches up to 256, on kernels of their
own rather than the blocked GEMM; products big enough are split over the
threads, by blocks that give the same values as the whole. These tests
put widths and batches on either side of the vector length (8 and 16 floats,
4 and 8 doubles) and of the tile sizes, so that every padded edge runs, and
check the forward pass, the loss and every gradient against the reference.
Tolerances are those of test_network.py.
"""

import numpy as np
import pytest

import bpfast
from bpfast import _core, reference
from conftest import assert_close

HAS_PATH = _core.isa != "generic"
# Without the small-network kernels (the generic ISA) every batch runs on the
# GEMM backend: the tests against the reference still hold there, but a test
# that compares the two backends would compare the GEMM backend with itself.
needs_both_backends = pytest.mark.skipif(not HAS_PATH, reason="this ISA has no small-network kernels")

# (sizes, output, loss): widths below, at and above the vector lengths.
NETS = [
    ([1, 1], "identity", "squared_error"),
    ([3, 17, 1], "sigmoid", "binary_cross_entropy"),
    ([16, 16, 16], "softmax", "cross_entropy"),
    ([33, 8, 15, 2], "identity", "squared_error"),
    ([32, 64, 64, 1], "identity", "squared_error"),
    ([9, 31, 33, 5], "softmax", "log_loss"),
    ([4, 7, 3], "sigmoid", "squared_error"),
]
NET_IDS = ["-".join(map(str, n[0])) for n in NETS]


def make_pair(sizes, activation, output, loss, dtype, seed=0):
    kw = dict(activation=activation, output=output, loss=loss, dtype=dtype, seed=seed)
    return bpfast.Network(sizes, **kw), reference.Network(sizes, **kw)


def make_batch(rng, sizes, output, batch):
    X = rng.standard_normal((batch, sizes[0]))
    if output == "softmax":
        P = np.exp(rng.standard_normal((batch, sizes[-1])))
        return X, P / P.sum(axis=1, keepdims=True)
    if output == "sigmoid":
        return X, rng.uniform(0, 1, (batch, sizes[-1]))
    return X, rng.standard_normal((batch, sizes[-1]))


def test_the_path_takes_weights_up_to_the_l2_bound_and_batches_up_to_256():
    bound = bpfast.show_config(mode="dicts")["small_net_max_weight_bytes"]
    for dtype in ("float32", "float64"):
        small = bpfast.Network([32, 64, 64, 1], dtype=dtype)._engine
        assert [small.uses_small_net(b) for b in (1, 16, 256)] == [HAS_PATH] * 3
        assert not small.uses_small_net(257)
        values = bound // np.dtype(dtype).itemsize  # a weight matrix of 1 x values fills the bound
        assert bpfast.Network([values, 1], dtype=dtype)._engine.uses_small_net(16) == HAS_PATH
        assert not bpfast.Network([values + 1, 1], dtype=dtype)._engine.uses_small_net(16)


def test_the_kernels_are_bound_exactly_where_the_path_runs():
    # test_small_net_kernels.py tests them one by one; it skips where there are none.
    for core in (_core.f32, _core.f64):
        assert (core.small_net.lanes() > 0) == HAS_PATH
        if not HAS_PATH:
            assert core.small_net.lanes() == 0
            with pytest.raises(RuntimeError, match="no small-network kernels"):
                core.small_net.transpose(np.zeros((2, 2)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "identity"])
@pytest.mark.parametrize("batch", [1, 5, 16, 17, 64, 128, 256])
@pytest.mark.parametrize("sizes,output,loss", NETS, ids=NET_IDS)
def test_forward_loss_and_gradients_match_the_reference(sizes, output, loss, batch, activation, dtype):
    rng = np.random.default_rng(batch * 100 + len(sizes))
    net, ref = make_pair(sizes, activation, output, loss, dtype, seed=batch)
    for a, b in zip(net.layers, ref.layers):  # non-zero biases, so that a dropped bias shows
        bias = rng.standard_normal(a.n_out) * 0.1
        a.b, b.b = bias, bias
    X, T = make_batch(rng, sizes, output, batch)
    assert net._engine.uses_small_net(batch) == HAS_PATH
    assert_close(net.forward(X), ref.forward(X), dtype)
    assert_close(net.loss(X, T), ref.loss(X, T), dtype)
    for (dW, db), (rdW, rdb) in zip(net.gradients(X, T), ref.gradients(X, T)):
        assert_close(dW, rdW, dtype)
        assert_close(db, rdb, dtype)


@pytest.mark.parametrize("sizes,output,loss", NETS, ids=NET_IDS)
def test_training_across_batch_sizes_follows_the_reference(sizes, output, loss):
    # The batch changes from step to step (and crosses 256, where the GEMM
    # path takes over), so the padded buffers are reused at other strides.
    rng = np.random.default_rng(5)
    net, ref = make_pair(sizes, ["tanh", "relu"][len(sizes) % 2], output, loss, "float64", seed=2)
    for batch in (64, 7, 33, 257, 16, 1, 256, 300, 9):
        X, T = make_batch(rng, sizes, output, batch)
        assert_close(net.train_step(X, T, lr=0.1), ref.train_step(X, T, lr=0.1), "float64", 1e-10)
    for a, b in zip(net.layers, ref.layers):
        assert_close(a.W, b.W, "float64", 1e-10)
        assert_close(a.b, b.b, "float64", 1e-10)


# Nets whose products are big enough to be split over threads; widths that
# are not multiples of the vector length or of the tiles, so that parts end
# on ragged blocks.
SPLIT_NETS = [
    ([300, 203, 77, 3], "tanh", "sigmoid", "binary_cross_entropy", 45),
    ([250, 257, 64, 10], "relu", "softmax", "cross_entropy", 128),
    ([784, 130, 1], "sigmoid", "identity", "squared_error", 32),
]


@pytest.fixture
def restore_threads():
    before = bpfast.get_num_threads()
    yield
    bpfast.set_num_threads(before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes,activation,output,loss,batch", SPLIT_NETS)
def test_split_products_follow_the_reference_bitwise_alike_on_any_threads(
        restore_threads, sizes, activation, output, loss, batch, dtype):
    # Each step is SGD without momentum, taken layer by layer in the backward
    # pass on the threads that computed the gradient. Oracle: the reference
    # for the values, the 1-thread run for the bits.
    rng = np.random.default_rng(len(sizes) + batch)
    batches = [make_batch(rng, sizes, output, batch) for _ in range(3)]
    runs = []
    for threads in (1, 2, 3):
        bpfast.set_num_threads(threads)
        net, ref = make_pair(sizes, activation, output, loss, dtype, seed=4)
        assert net._engine.uses_small_net(batch) == HAS_PATH
        losses = [net.train_step(X, T, lr=0.05) for X, T in batches]
        if threads == 1:
            for (X, T), got in zip(batches, losses):
                assert_close(got, ref.train_step(X, T, lr=0.05), dtype)
            for a, b in zip(net.layers, ref.layers):
                assert_close(a.W, b.W, dtype)
                assert_close(a.b, b.b, dtype)
        runs.append((losses, [p.copy() for p in net.parameters()]))
    for losses, params in runs[1:]:
        assert losses == runs[0][0]
        assert all(np.array_equal(a, b) for a, b in zip(params, runs[0][1]))


@pytest.mark.parametrize("threads", [1, 2])
def test_a_split_step_that_overflows_leaves_every_weight_as_it_was(restore_threads, threads):
    # A learning rate so large that new weights overflow. The step is taken
    # layer by layer during the backward pass, last layer first, so layers
    # whose new weights are finite have stepped by the time the overflow is
    # seen: every one of them is undone.
    bpfast.set_num_threads(threads)
    rng = np.random.default_rng(8)
    kw = dict(activation="tanh", output="softmax", reduction="sum", dtype="float32", seed=1)
    net = bpfast.Network([300, 203, 77, 3], **kw)
    X, labels = rng.standard_normal((64, 300)), rng.integers(0, 3, 64)
    assert net._engine.uses_small_net(64) == HAS_PATH
    before = [p.copy() for p in net.parameters()]
    with pytest.raises(FloatingPointError, match="not finite"):
        net.train_step(X, labels, lr=1e38)
    assert all(np.array_equal(a, b) for a, b in zip(net.parameters(), before))
    ref = reference.Network([300, 203, 77, 3], **kw)
    assert_close(net.train_step(X, labels, lr=1e-3), ref.train_step(X, labels, lr=1e-3), "float32")
    for a, b in zip(net.layers, ref.layers):
        assert_close(a.W, b.W, "float32")


@needs_both_backends
def test_a_batch_gives_the_same_gradients_on_both_paths():
    # 64 samples as one batch (small path), then five times over as a batch of
    # 320 (GEMM path): with reduction="sum" the second gradients are five times the first.
    rng = np.random.default_rng(11)
    net = bpfast.Network([32, 64, 64, 1], output="identity", loss="squared_error", reduction="sum",
                         dtype="float64", seed=1)
    X, T = rng.standard_normal((64, 32)), rng.standard_normal((64, 1))
    small = [(dW.copy(), db.copy()) for dW, db in net.gradients(X, T)]
    assert not net._engine.uses_small_net(320)
    large = net.gradients(np.vstack([X] * 5), np.vstack([T] * 5))
    for (dW, db), (dW5, db5) in zip(small, large):
        assert_close(5 * dW, dW5, "float64")
        assert_close(5 * db, db5, "float64")


@pytest.mark.parametrize("batch", [2, 300])  # small path, GEMM path
def test_a_bias_gradient_that_overflows_alone_stops_the_step(batch):
    # [1, 1, 1] identity net, reduction="sum": A_0 = 0, Y = 0 and δ_1 = Y − T = 1,
    # so δ_0 = W_1 = 1e308 on every row. Only db_0 = Σ δ_0 overflows; dW_0 = Σ δ_0 · 0.01
    # and the loss stay finite.
    net = bpfast.Network([1, 1, 1], activation="identity", loss="squared_error", reduction="sum",
                         dtype="float64", seed=0)
    net.layers[0].W, net.layers[0].b = [[0.0]], [0.0]
    net.layers[1].W, net.layers[1].b = [[1e308]], [0.0]
    X, T = np.full((batch, 1), 0.01 / batch), np.full((batch, 1), -1.0)
    assert net._engine.uses_small_net(batch) == (HAS_PATH and batch <= 256)
    before = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]
    with pytest.raises(FloatingPointError, match=r"layer 0\b"):
        net.train_step(X, T, lr=1e-300)
    for layer, (W, b) in zip(net.layers, before):
        assert np.array_equal(layer.W, W) and np.array_equal(layer.b, b)
