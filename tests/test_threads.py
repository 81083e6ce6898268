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
