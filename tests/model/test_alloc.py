"""Steady-state training allocates no native work buffers, and the weights are live native memory.

bpfast._core.buffer_growths() counts every growth of a native work buffer
since import. After the first step (or the first epoch) at a given batch
size, further steps and epochs at that size must not change it. Each test
also shows that the counter is alive: a larger batch makes it grow.
The forward pass after writing into W is checked against the numpy
reference forward on the same weights (1e-12 relative in float64).
"""

import numpy as np
import pytest

import bpfast
from bpfast import _core, optim, reference
from conftest import assert_close

OPTIMIZERS = {
    "sgd": lambda: optim.SGD(lr=0.01),
    "adam-clip": lambda: optim.Adam(lr=1e-3, weight_decay=1e-4, clip_norm=1.0,
                                    schedule=optim.InverseScaling(0.1)),
}
# The second net has more than 2^15 parameters in a layer, so parameter passes run in chunks;
# it takes 300 steps instead of 1000 to keep the test fast.
SIZES = {"small": [12, 20, 16, 4], "chunked": [64, 600, 4]}


def data(rng, n, sizes, dtype, targets):
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    labels = rng.integers(0, sizes[-1], n)
    T = labels if targets == "labels" else np.eye(sizes[-1], dtype=dtype)[labels]
    return X, T


@pytest.mark.parametrize("targets", ["labels", "dense"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("shape", list(SIZES))
def test_train_step_allocates_nothing_after_the_first(dtype, targets, opt, shape, rng):
    sizes = SIZES[shape]
    net = bpfast.Network(sizes, output="softmax", dtype=dtype, seed=0, optimizer=OPTIMIZERS[opt]())
    batches = [data(rng, 16, sizes, dtype, targets) for _ in range(4)]
    net.train_step(*batches[0])
    before = _core.buffer_growths()
    for i in range(1000 if shape == "small" else 300):
        net.train_step(*batches[i % 4])
    small_X, small_T = data(rng, 5, sizes, dtype, targets)
    net.train_step(small_X, small_T)  # a smaller batch fits in the same workspace
    assert _core.buffer_growths() == before
    net.train_step(*data(rng, 17, sizes, dtype, targets))
    assert _core.buffer_growths() > before


@pytest.mark.parametrize("targets", ["labels", "dense"])
def test_fit_epochs_allocate_nothing_after_the_first(dtype, targets, rng):
    sizes = SIZES["small"]
    net = bpfast.Network(sizes, output="softmax", dtype=dtype, seed=0, optimizer=optim.Adam(lr=1e-3))
    X, T = data(rng, 203, sizes, dtype, targets)  # 203 = 12·16 + 11: a short last batch
    validation = data(rng, 50, sizes, dtype, targets)
    net.fit(X, T, epochs=1, batch_size=16, shuffle=True, validation_data=validation)
    before = _core.buffer_growths()
    history = net.fit(X, T, epochs=6, batch_size=16, shuffle=True, validation_data=validation)
    for _ in range(100):
        net.train_step(X[:16], T[:16])
    net.fit(X, T, epochs=2, batch_size=16, shuffle=True)
    assert _core.buffer_growths() == before
    assert len(history) == 6 and np.all(np.isfinite(history))
    net.fit(X, T, epochs=1, batch_size=64, shuffle=True)
    assert _core.buffer_growths() > before


def test_inference_on_a_big_set_is_chunked_and_allocates_once(rng):
    # forward, loss and predict on many rows run in bounded chunks: the second call allocates nothing.
    net = bpfast.Network([8, 10, 3], output="softmax", dtype="float64", seed=0)
    X, labels = data(rng, 5000, [8, 10, 3], np.float64, "labels")
    net.train_step(X[:32], labels[:32])
    expected = reference.Network([8, 10, 3], output="softmax", dtype="float64", seed=0)
    for layer, source in zip(expected.layers, net.layers):
        layer.W, layer.b = source.W, source.b
    net.forward(X), net.loss(X, labels)
    before = _core.buffer_growths()
    Y = net.forward(X)
    value = net.loss(X, labels)
    net.predict(X)
    assert _core.buffer_growths() == before
    assert_close(Y, expected.forward(X), np.float64)
    assert_close(value, expected.loss(X, labels), np.float64)


# ---------------------------------------------------------------- live native weights

def reference_with_weights_of(net):
    ref = reference.Network(net.sizes, activation=[l.activation for l in net.layers[:-1]], output=net.output,
                            loss=net.loss_name, dtype=net.dtype, seed=0)
    for layer, source in zip(ref.layers, net.layers):
        layer.W, layer.b = source.W.copy(), source.b.copy()
    return ref


def test_writing_into_W_changes_the_native_forward(dtype, rng):
    net = bpfast.Network([4, 6, 3], activation="tanh", output="softmax", dtype=dtype, seed=1)
    X = rng.standard_normal((7, 4)).astype(dtype)
    before = net.forward(X)
    W = net.layers[0].W
    W[0, 0] = 5.0
    net.layers[1].b[2] = -2.0
    assert net.layers[0].W[0, 0] == 5.0
    after = net.forward(X)
    assert not np.allclose(after, before)
    assert_close(after, reference_with_weights_of(net).forward(X), dtype)
    # An in-place update through the array returned by parameters() is seen too.
    net.parameters()[2] *= 0.5
    assert_close(net.forward(X), reference_with_weights_of(net).forward(X), dtype)


def test_weights_are_views_that_do_not_own_their_memory():
    net = bpfast.Network([4, 6, 3], dtype="float64", seed=1)
    for layer in net.layers:
        for array in (layer.W, layer.b):
            assert not array.flags.owndata and array.flags.writeable and array.flags.c_contiguous
    assert all(a is b for a, b in zip(net.parameters(), [p for l in net.layers for p in (l.W, l.b)]))


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_train_step_and_fit_update_the_same_arrays_in_place(dtype, opt, rng):
    net = bpfast.Network([5, 7, 2], output="softmax", dtype=dtype, seed=2, optimizer=OPTIMIZERS[opt]())
    arrays = net.parameters()
    ids = [id(a) for a in arrays]
    values = [a.copy() for a in arrays]
    X, labels = data(rng, 9, [5, 7, 2], dtype, "labels")
    net.train_step(X, labels)
    assert [id(a) for a in net.parameters()] == ids
    assert [id(p) for l in net.layers for p in (l.W, l.b)] == ids
    assert all(a is b for a, b in zip(arrays, net.parameters()))
    assert any(not np.array_equal(a, v) for a, v in zip(arrays, values))
    values = [a.copy() for a in arrays]
    net.fit(X, labels, epochs=2, batch_size=4)
    assert [id(a) for a in net.parameters()] == ids
    assert all(not np.array_equal(a, v) for a, v in zip(arrays[::2], values[::2]))
    # What the held arrays now hold is what the network computes with.
    assert_close(net.forward(X), reference_with_weights_of(net).forward(X), dtype)


def test_mixed_precision_batches_below_the_largest_allocate_nothing(rng):
    # the bfloat16 GEMM's packing room holds what any smaller product needs: fewer rows may mean
    # fewer threads, no shared A, or a shorter depth block (the weight gradient's depth is the batch)
    import warnings
    sizes = [784, 256, 10]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        net = bpfast.Network(sizes, output="softmax", compute="bfloat16", seed=0, optimizer=optim.SGD(lr=1e-3))
    gemm = [b for b in (600, 513, 300, 280, 150, 97, 70)
            if not net._engine.uses_small_net(b) and net._engine.row_chunks(b) == 1]
    assert gemm[:4] == [600, 513, 300, 280]  # past the small path's batches on every ISA
    # forward passes alone first (300 rows: 5 row blocks, no shared A; 280: 4, shared)
    net.forward(data(rng, 300, sizes, np.float32, "labels")[0])
    before = _core.buffer_growths()
    net.forward(data(rng, 280, sizes, np.float32, "labels")[0])
    assert _core.buffer_growths() == before
    net.train_step(*data(rng, gemm[0], sizes, np.float32, "labels"))
    before = _core.buffer_growths()
    for batch in gemm:
        net.train_step(*data(rng, batch, sizes, np.float32, "labels"))
        assert _core.buffer_growths() == before, batch


@pytest.mark.parametrize("shape", list(SIZES))
def test_mixed_precision_steps_allocate_nothing_after_the_first(shape, rng):
    # compute="bfloat16": the packed pairs, the unit-dimension loops and the few-columns path
    # keep their buffers too (a 64-row batch reaches the few-columns product of the 4 outputs).
    import warnings
    sizes = SIZES[shape]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bfloat16 on float32 FMAs under a forced ISA
        net = bpfast.Network(sizes, output="softmax", compute="bfloat16", seed=0, optimizer=optim.Adam(lr=1e-3))
    batches = [data(rng, 64, sizes, np.float32, "labels") for _ in range(4)]
    net.train_step(*batches[0])
    before = _core.buffer_growths()
    for i in range(200):
        net.train_step(*batches[i % 4])
    # a smaller batch on the same path fits in the same workspace (small batches of the larger net
    # may take the small-network path, which has buffers of its own: SmallNetBackend::bf16_forward_flops_limit)
    path = lambda batch: (net._engine.uses_small_net(batch), net._engine.row_chunks(batch))  # noqa: E731
    smaller = [b for b in (5, 33, 52, 60, 63) if path(b) == path(64)]
    assert smaller
    for batch in smaller:  # (60 once took the GEMM's blocked path where 64 took its few-columns one)
        net.train_step(*data(rng, batch, sizes, np.float32, "labels"))
        assert _core.buffer_growths() == before, batch
    net.train_step(*data(rng, 65, sizes, np.float32, "labels"))
    assert _core.buffer_growths() > before
