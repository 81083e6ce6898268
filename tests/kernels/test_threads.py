"""Thread pool: results are bitwise identical for any thread count, and the
pool's threads are created once, not per call. Oracle: the 1-thread result
(itself checked against the reference in test_kernels.py) and the reference."""

import numpy as np
import pytest

import bpfast
from bpfast import _core, kernels, reference


@pytest.fixture
def restore_threads():
    before = bpfast.get_num_threads()
    yield
    bpfast.set_num_threads(before)


def _each_thread_count(fn, counts=(1, 2, 3)):
    results = []
    for n in counts:
        bpfast.set_num_threads(n)
        results.append(fn())
    return results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(300, 257, 263), (16, 1024, 784), (700, 40, 90), (5, 300, 7),
                                   (320, 1100, 70), (512, 10, 1024), (300, 6, 128)])
def test_gemm_bitwise_identical_across_thread_counts(restore_threads, dtype, shape):
    m, n, k = shape
    rng = np.random.default_rng(1)
    X = rng.standard_normal((m, k)).astype(dtype)
    W = rng.standard_normal((n, k)).astype(dtype)
    delta = rng.standard_normal((m, n)).astype(dtype)
    for fn in (lambda: kernels.matmul(X, W, trans_b=True),
               lambda: kernels.weight_gradient(delta, X),
               lambda: kernels.input_gradient(delta, W)):
        first, *others = _each_thread_count(fn)
        for other in others:
            assert np.array_equal(first, other)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    expected = reference.matmul(X, W, trans_b=True)
    assert np.abs(kernels.matmul(X, W, trans_b=True) - expected).max() <= tol * np.abs(expected).max()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_bitwise_identical_across_thread_counts(restore_threads, dtype):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((96, 300))
    labels = rng.integers(0, 10, 96)

    def train():
        net = bpfast.Network([300, 257, 64, 10], output="softmax", dtype=dtype, seed=3)
        losses = [net.train_step(X, labels, lr=0.05) for _ in range(3)]
        return losses, [p.copy() for p in net.parameters()]

    (losses1, params1), *others = _each_thread_count(train)
    for losses, params in others:
        assert losses == losses1
        assert all(np.array_equal(a, b) for a, b in zip(params, params1))


def test_pool_threads_are_created_once(restore_threads):
    bpfast.set_num_threads(3)
    A = np.ones((200, 400))
    kernels.matmul(A, A, trans_b=True)
    started = _core.threads_started()
    for _ in range(20):
        kernels.matmul(A, A, trans_b=True)
    assert _core.threads_started() == started


def test_set_num_threads_validates_and_round_trips(restore_threads):
    bpfast.set_num_threads(2)
    assert bpfast.get_num_threads() == 2
    for bad in (0, -1, 257, 100000, 2**40):
        with pytest.raises(ValueError, match="n must be between 1 and 256"):
            bpfast.set_num_threads(bad)
    assert bpfast.get_num_threads() == 2
    bpfast.set_num_threads(_core.MAX_THREADS)  # the bound itself is allowed
    assert bpfast.get_num_threads() == 256


# ---------------------------------------------------------------- the training steps' thread count

def test_the_thread_chooser_keeps_the_faster_count_and_times_again():
    """Warm-up step untimed, then TRIALS steps on 1 thread and as many on all, alternately; the
    faster count is kept (all threads unless one is faster by 5%) until the next trial, 256 steps on.
    A smaller batch (an epoch's last) takes the chosen count untimed; a larger one starts over."""
    chooser = _core.ThreadChooser()
    assert chooser.next(200, 1) == 1  # one thread allowed: nothing to choose
    assert chooser.next(200, 2) == 2  # warm-up: all threads, untimed
    chooser.record(1.0)

    def trial(one, all_, batch=200):
        counts = []
        for _ in range(6):
            counts.append(chooser.next(batch, 2))
            chooser.record(one if counts[-1] == 1 else all_)
        return counts

    assert trial(one=1.0, all_=1.7) == [1, 2, 1, 2, 1, 2]
    assert chooser.chosen == 1 and chooser.trials == 1
    assert chooser.next(147, 2) == 1  # the last, smaller batch: the chosen count, not timed
    chooser.record(99.0)
    for _ in range(256):
        assert chooser.next(200, 2) == 1
        chooser.record(1.0)
    assert trial(one=1.0, all_=0.8) == [1, 2, 1, 2, 1, 2]  # the next trial: now all threads win
    assert chooser.chosen == 2 and chooser.trials == 2
    for _ in range(10):
        assert chooser.next(200, 2) == 2
        chooser.record(0.5)  # between trials nothing is decided
    assert chooser.next(300, 2) == 2  # a larger batch: warm-up and a new trial
    chooser.record(5.0)
    assert trial(one=0.96, all_=1.0, batch=300) == [1, 2, 1, 2, 1, 2]
    assert chooser.chosen == 2  # one thread within 5%: all threads kept


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chosen_thread_counts_train_to_the_same_bits(restore_threads, dtype):
    """Whatever count the steps' chooser takes, the weights are those of training without it
    (oracle: the same training with adaptive threads off), over enough steps for trials."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((400, 64)).astype(dtype)
    y = rng.integers(0, 10, 400)
    bpfast.set_num_threads(2)
    nets = []
    before = bpfast.get_adaptive_threads()
    try:
        for adaptive in (False, True):
            bpfast.set_adaptive_threads(adaptive)
            net = bpfast.Network([64, 100, 10], output="softmax", dtype=dtype, seed=3,
                                 optimizer=bpfast.optim.Adam(lr=1e-3))
            net.fit(X, y, epochs=150, batch_size=100, shuffle=True)
            nets.append(net)
    finally:
        bpfast.set_adaptive_threads(before)
    assert nets[1]._engine.threads_chosen[1] >= 2  # trials ran
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert np.array_equal(a, b)


def test_a_local_thread_count_holds_for_its_python_thread_only(restore_threads):
    """set_local_num_threads (bpfast.sklearn's n_threads) sets get_num_threads() for the calling
    Python thread alone; 0 gives back the pool's count."""
    import threading
    bpfast.set_num_threads(2)
    seen = {}
    try:
        _core.set_local_num_threads(5)
        assert bpfast.get_num_threads() == 5
        worker = threading.Thread(target=lambda: seen.update(other=bpfast.get_num_threads()))
        worker.start()
        worker.join()
        assert seen["other"] == 2
    finally:
        _core.set_local_num_threads(0)
    assert bpfast.get_num_threads() == 2
    with pytest.raises(ValueError, match="between 0 and 256"):
        _core.set_local_num_threads(-1)
