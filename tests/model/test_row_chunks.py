"""The small step on every core (cpp/model/row_chunks.h): a batch of a small
net cut into chunks of rows whose count depends on the batch alone, each
chunk's passes on one thread, the chunks' gradients summed in chunk order.

Oracles: bpfast.reference for the values (loss, gradients, the step of each
optimizer), and the one-thread run for the bits (any thread count must give
the same). scikit-learn's own numbers, with sample weights and the L2 term,
are checked in tests/scikit_learn.
"""

import numpy as np
import pytest

import bpfast
from bpfast import _core, reference
from conftest import assert_close

HAS_PATH = _core.isa != "generic"
needs_small_net = pytest.mark.skipif(not HAS_PATH, reason="this ISA has no small-network kernels")

# (sizes, output, loss): the shape of scikit-learn's defaults on digits, and
# widths off the vector length, so that the chunks' padded edges run.
NETS = [
    ([64, 100, 10], "softmax", "cross_entropy"),
    ([13, 37, 5, 1], "identity", "squared_error"),
    ([9, 20, 3], "sigmoid", "binary_cross_entropy"),
]
NET_IDS = ["-".join(map(str, n[0])) for n in NETS]


@pytest.fixture
def restore_threads():
    before = bpfast.get_num_threads()
    yield
    bpfast.set_num_threads(before)


def make_pair(sizes, output, loss, dtype, seed=0, reduction="mean"):
    kw = dict(activation="relu", output=output, loss=loss, dtype=dtype, seed=seed, reduction=reduction)
    return bpfast.Network(sizes, **kw), reference.Network(sizes, **kw)


def make_batch(rng, sizes, output, batch):
    X = rng.standard_normal((batch, sizes[0]))
    if output == "softmax":
        return X, rng.integers(0, sizes[-1], batch)
    if output == "sigmoid":
        return X, rng.uniform(0, 1, (batch, sizes[-1]))
    return X, rng.standard_normal((batch, sizes[-1]))


@needs_small_net
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_chunk_count_depends_on_the_batch_alone(restore_threads, dtype):
    engine = bpfast.Network([64, 100, 10], dtype=dtype)._engine
    min_rows = 64 if dtype == "float64" else 48
    batches = [1, 2 * min_rows - 1, 2 * min_rows, 200, 256, 1000, 1347, 4096, 4097]
    counts = {}
    for threads in (1, 2, 3):
        bpfast.set_num_threads(threads)
        counts[threads] = [engine.row_chunks(b) for b in batches]
    assert counts[1] == counts[2] == counts[3]
    by_batch = dict(zip(batches, counts[1]))
    assert by_batch[1] == by_batch[2 * min_rows - 1] == 1
    assert by_batch[2 * min_rows] == 2
    for b, c in by_batch.items():
        assert c & (c - 1) == 0 or b > 16 * 256  # powers of two, then at most 256 rows a chunk
        assert c == 1 or -(-b // c) <= 256
    assert by_batch[4097] == 1  # more than 16 chunks of 256: the unchunked path
    # a net whose gradients are too large to copy per chunk never cuts
    assert bpfast.Network([784, 256, 10], dtype=dtype)._engine.row_chunks(256) == 1


@needs_small_net
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("batch", [96, 130, 200, 203, 256, 1000])
@pytest.mark.parametrize("sizes,output,loss", NETS, ids=NET_IDS)
def test_loss_and_gradients_match_the_reference(sizes, output, loss, batch, reduction, dtype):
    rng = np.random.default_rng(batch)
    net, ref = make_pair(sizes, output, loss, dtype, seed=1, reduction=reduction)
    X, T = make_batch(rng, sizes, output, batch)
    assert net._engine.row_chunks(batch) > 1 or (dtype == "float64" and batch < 128)
    assert_close(net.loss(X, T), ref.loss(X, T), dtype)
    for (dW, db), (rdW, rdb) in zip(net.gradients(X, T), ref.gradients(X, T)):
        assert_close(dW, rdW, dtype)
        assert_close(db, rdb, dtype)


OPTIMIZERS = {
    "sgd": lambda: bpfast.optim.SGD(lr=0.05),
    "momentum": lambda: bpfast.optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda: bpfast.optim.Adam(lr=1e-2),
    "adamw": lambda: bpfast.optim.AdamW(lr=1e-2, weight_decay=0.1),
    "clipped": lambda: bpfast.optim.SGD(lr=0.05, clip_norm=0.5),
}


@needs_small_net
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_steps_of_every_optimizer_follow_the_reference(optimizer):
    rng = np.random.default_rng(7)
    net, ref = make_pair([64, 100, 10], "softmax", "cross_entropy", "float64", seed=3)
    net.optimizer, ref.optimizer = OPTIMIZERS[optimizer](), OPTIMIZERS[optimizer]()
    for batch in (200, 256, 147, 200):
        X, T = make_batch(rng, [64, 100, 10], "softmax", batch)
        assert_close(net.train_step(X, T), ref.train_step(X, T), "float64", 1e-10)
    for a, b in zip(net.layers, ref.layers):
        assert_close(a.W, b.W, "float64", 1e-10)
        assert_close(a.b, b.b, "float64", 1e-10)


@needs_small_net
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_steps_are_the_same_bits_on_any_thread_count(restore_threads, dtype, optimizer):
    rng = np.random.default_rng(11)
    batches = [make_batch(rng, [64, 100, 10], "softmax", b) for b in (200, 256, 97, 1000)]

    def train(threads):
        bpfast.set_num_threads(threads)
        net = bpfast.Network([64, 100, 10], output="softmax", loss="cross_entropy", dtype=dtype, seed=5)
        net.optimizer = OPTIMIZERS[optimizer]()
        losses = [net.train_step(X, T) for X, T in batches * 2]
        grads = net.gradients(*batches[3])
        return losses, [p.copy() for p in net.parameters()], grads

    one = train(1)
    for threads in (2, 3, 4):
        losses, params, grads = train(threads)
        assert losses == one[0]
        assert all(np.array_equal(a, b) for a, b in zip(params, one[1]))
        assert all(np.array_equal(a, b) for pair, pair1 in zip(grads, one[2]) for a, b in zip(pair, pair1))


@needs_small_net
def test_sample_weights_and_the_l2_term_give_the_same_bits_on_any_thread_count(restore_threads):
    # bpfast.sklearn sets both (the objective's L2 term, per-sample weights);
    # tests/scikit_learn checks their values against scikit-learn's, on
    # batches that run in chunks too.
    pytest.importorskip("sklearn")
    from bpfast.sklearn import MLPClassifier
    rng = np.random.default_rng(3)
    X = rng.standard_normal((600, 20))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    w = rng.uniform(0.1, 2.0, 600)
    fits = []
    for threads in (1, 2):
        bpfast.set_num_threads(threads)
        clf = MLPClassifier(hidden_layer_sizes=(30,), alpha=1e-2, batch_size=200, max_iter=5, random_state=0,
                            tol=0, n_iter_no_change=100)
        with pytest.warns(Warning):
            clf.fit(X, y, sample_weight=w)
        fits.append(clf)
    assert fits[0]._engine.row_chunks(200) > 1
    for a, b in zip(fits[0].coefs_ + fits[0].intercepts_, fits[1].coefs_ + fits[1].intercepts_):
        assert np.array_equal(a, b)
    assert fits[0].loss_curve_ == fits[1].loss_curve_


@needs_small_net
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_a_step_whose_update_is_not_finite_changes_nothing(optimizer):
    # A finite loss and finite gradients, but an update that overflows float32:
    # the chunks' sum and step run, then every parameter and state value is put back.
    rng = np.random.default_rng(4)
    X, T = make_batch(rng, [64, 100, 10], "softmax", 200)
    X *= 1e3

    def trained():
        net = bpfast.Network([64, 100, 10], output="softmax", loss="cross_entropy", dtype="float32", seed=2)
        net.optimizer = OPTIMIZERS[optimizer]()
        net.train_step(X, T)
        return net

    net = trained()
    assert net._engine.row_chunks(200) > 1
    before = [p.copy() for p in net.parameters()]
    state = [s.copy() for s in net._engine.optimizer_state()]
    steps = net._engine.steps
    with pytest.raises(FloatingPointError, match="not updated"):
        net.train_step(X, T, lr=1e39)  # finite, but Inf in float32
    assert all(np.array_equal(a, b) for a, b in zip(net.parameters(), before))
    assert all(np.array_equal(a, b) for a, b in zip(net._engine.optimizer_state(), state))
    assert net._engine.steps == steps
    # the next step is the one the net would have taken without the refused one
    twin = trained()
    assert net.train_step(X, T) == twin.train_step(X, T)
    assert all(np.array_equal(a, b) for a, b in zip(net.parameters(), twin.parameters()))


@needs_small_net
def test_lowering_the_thread_count_between_calls_never_crashes(restore_threads):
    # A pool helper that read one job's helper count must never join the next
    # job with fewer helpers (it would run past the workers sized for it).
    rng = np.random.default_rng(6)
    big_X, big_T = make_batch(rng, [64, 100, 10], "softmax", 1000)
    X, T = make_batch(rng, [64, 100, 10], "softmax", 128)
    bpfast.set_num_threads(8)
    big = bpfast.Network([64, 100, 10], output="softmax", dtype="float64", seed=0)
    reference_loss = None
    for i in range(400):
        small = bpfast.Network([64, 100, 10], output="softmax", dtype="float64", seed=0)
        _core.set_local_num_threads(0)
        big.train_step(big_X, big_T)
        _core.set_local_num_threads(2)
        loss = small.train_step(X, T)
        reference_loss = loss if reference_loss is None else reference_loss
        assert loss == reference_loss
    _core.set_local_num_threads(0)


@needs_small_net
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [200, 203])
def test_chunked_steps_allocate_nothing_after_the_first(restore_threads, dtype, batch):
    rng = np.random.default_rng(8)
    X, T = make_batch(rng, [64, 100, 10], "softmax", batch)
    bpfast.set_num_threads(2)
    net = bpfast.Network([64, 100, 10], output="softmax", dtype=dtype, seed=0)
    net.optimizer = bpfast.optim.Adam(lr=1e-3)
    assert net._engine.row_chunks(batch) > 1
    net.train_step(X, T)
    net.fit(X, T, epochs=1, batch_size=batch, shuffle=True)  # the shuffled form gathers per worker
    before = _core.buffer_growths()
    for _ in range(300):
        net.train_step(X, T)
    net.fit(X, T, epochs=20, batch_size=batch, shuffle=True)
    assert _core.buffer_growths() == before


@needs_small_net
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [200, 147, 256])
def test_shuffled_epochs_gather_each_chunks_rows_and_follow_the_reference(restore_threads, dtype, batch_size):
    # A shuffled epoch's chunks gather their own rows (chunks of unequal
    # lengths: 147 rows are 19 groups of 8), on any thread count.
    rng = np.random.default_rng(9)
    X, T = make_batch(rng, [64, 100, 10], "softmax", 1347)

    def fit(cls, threads):
        bpfast.set_num_threads(threads)
        net = cls([64, 100, 10], output="softmax", loss="cross_entropy", dtype=dtype, seed=4)
        history = net.fit(X, T, epochs=2, batch_size=batch_size, shuffle=True, optimizer=bpfast.optim.Adam(lr=1e-3))
        return history, [p.copy() for p in net.parameters()]

    (history, params), (ref_history, ref_params) = fit(bpfast.Network, 1), fit(reference.Network, 1)
    assert bpfast.Network([64, 100, 10], dtype=dtype)._engine.row_chunks(batch_size) > 1
    for a, b in zip(params, ref_params):
        assert_close(a, b, dtype)
    for threads in (2, 3):
        other_history, other_params = fit(bpfast.Network, threads)
        assert other_history.history["loss"] == history.history["loss"]
        assert all(np.array_equal(a, b) for a, b in zip(other_params, params))
