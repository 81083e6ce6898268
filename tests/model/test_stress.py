"""Stress: Python threads on the native core at once, and memory that stays flat.

Concurrency. The GIL is released in every native call, and a native network
serialises the calls made on it with a mutex. Oracle: the same work done
serially in one thread, compared bit for bit (the core's results do not
depend on the thread count or on what other threads run):
  * separate nets (both dtypes, SGD with momentum, Adam and AdamW, train_step
    through its fast and its checked path, fit) trained by several threads at
    once end with the weights and losses of serial training;
  * one net shared by several training threads, each applying the same batch:
    every call is one whole step, so the weights after N steps are those of N
    serial steps whatever the interleaving, the losses returned are the serial
    losses in some order, and a forward pass run meanwhile by other threads
    sees the net between two steps, never inside one;
  * kernels called from several threads at once (GEMMs big enough to use the
    thread pool, activations, losses and in-place updates) give the serial
    results.

Leaks. The resident set size (/proc/self/statm) is read after a warm-up and
again after many calls; it may grow by at most a small slack. Each case runs
enough calls that a leak of one of its buffers per call (or of a whole net per
create/destroy cycle) would exceed the slack many times over. Linux only;
skipped under AddressSanitizer, whose allocator holds freed memory in
quarantine.
"""

import gc
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import bpfast
from bpfast import kernels as K
from bpfast import optim

THREADS = 6


def run_together(jobs):
    """Run the callables in threads that start at once (a barrier); their results in order."""
    barrier = threading.Barrier(len(jobs))

    def start(job):
        barrier.wait()
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(start, jobs))


# ---------------------------------------------------------------- separate nets

def _training_job(k):
    """A training run of its own (architecture, dtype, optimizer, path vary with k); (losses, weights)."""
    rng = np.random.default_rng(k)
    dtype = ("float32", "float64")[k % 2]
    sizes = [[30, 64, 5], [20, 300, 40, 3], [64, 1], [10, 8, 8, 8, 4]][k % 4]
    output = "sigmoid" if sizes[-1] == 1 else "softmax"
    optimizer = [optim.SGD(lr=0.05, momentum=0.9, nesterov=True), optim.Adam(lr=1e-3),
                 optim.AdamW(lr=1e-3, weight_decay=0.01)][k % 3]
    net = bpfast.Network(sizes, activation="tanh", output=output, dtype=dtype, seed=k, optimizer=optimizer)
    X = rng.standard_normal((96, sizes[0]))
    y = rng.integers(0, max(2, sizes[-1]), 96)
    X_native = X.astype(dtype)
    losses = []
    for step in range(12):
        rows = slice(8 * step, 8 * step + 8)
        if step % 3 == 2:  # the checked path: float64 input to a float32 net, or labels as a list
            losses.append(net.train_step(X[rows], list(y[rows])))
        else:
            losses.append(net.train_step(X_native[rows], y[rows]))
    losses.extend(net.fit(X_native, y, epochs=2, batch_size=16))
    return losses, [p.copy() for p in net.parameters()]


def test_threads_training_separate_nets_get_the_serial_results():
    jobs = [lambda k=k: _training_job(k) for k in range(2 * THREADS)]
    serial = [job() for job in jobs]
    for attempt in range(3):
        concurrent = run_together(jobs)
        for k, ((losses, weights), (serial_losses, serial_weights)) in enumerate(zip(concurrent, serial)):
            assert losses == serial_losses, (attempt, k)
            assert all(np.array_equal(a, b) for a, b in zip(weights, serial_weights)), (attempt, k)


# ---------------------------------------------------------------- one shared net

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threads_sharing_a_net_each_run_whole_steps(dtype):
    rng = np.random.default_rng(7)
    sizes = [40, 256, 64, 6]
    X = rng.standard_normal((64, 40)).astype(dtype)
    y = rng.integers(0, 6, 64)
    X_probe = rng.standard_normal((17, 40)).astype(dtype)
    trainers, steps_each = 4, 8

    def new_net():
        return bpfast.Network(sizes, activation="relu", output="softmax", dtype=dtype, seed=3,
                              optimizer=optim.Adam(lr=1e-2))

    # Serially: the loss of each step and the forward pass of the probe after each step.
    twin = new_net()
    serial_losses, states = [], {twin.forward(X_probe).tobytes()}
    for _ in range(trainers * steps_each):
        serial_losses.append(twin.train_step(X, y))
        states.add(twin.forward(X_probe).tobytes())

    net = new_net()
    done = threading.Event()

    def train(t):
        losses = []
        for step in range(steps_each):
            if (t + step) % 2:  # the checked path (labels as a list), else the fast path
                losses.append(net.train_step(X, list(y)))
            else:
                losses.append(net.train_step(X, y))
        return losses

    def observe():
        seen = []
        while not done.is_set():
            seen.append(net.forward(X_probe).tobytes())
        seen.append(net.forward(X_probe).tobytes())
        return seen

    with ThreadPoolExecutor(max_workers=trainers + 2) as pool:
        observers = [pool.submit(observe) for _ in range(2)]
        losses = run_together([lambda t=t: train(t) for t in range(trainers)])
        done.set()
        seen = [s for f in observers for s in f.result()]
    assert sorted(loss for per_thread in losses for loss in per_thread) == sorted(serial_losses)
    for a, b in zip(net.parameters(), twin.parameters()):
        assert np.array_equal(a, b)
    assert len(seen) >= 2 and all(s in states for s in seen), "a forward pass saw the net inside a step"
    print(f"{len(seen)} forward passes saw {len(set(seen))} of the {len(states)} states")
    assert seen[-1] == twin.forward(X_probe).tobytes()


# ---------------------------------------------------------------- kernels

def _kernel_job(k):
    """A mix of kernel calls on arrays of its own; the list of results."""
    rng = np.random.default_rng(100 + k)
    dt = (np.float32, np.float64)[k % 2]
    A = rng.standard_normal((150 + k, 300)).astype(dt)
    W = (0.1 * rng.standard_normal((257, 300))).astype(dt)
    b = rng.standard_normal(257).astype(dt)
    dA = rng.standard_normal((150 + k, 257)).astype(dt)
    T = np.eye(257, dtype=dt)[rng.integers(0, 257, 150 + k)]
    param, m, v = (rng.standard_normal((257, 300)).astype(dt) for _ in range(3))
    v = np.abs(v)
    results = []
    for step in range(1, 4):
        Z = K.matmul(A, W, trans_b=True)
        Y = K.dense_forward(A, W, b, ("tanh", "relu", "sigmoid", "softmax")[(k + step) % 4])
        results += [Z, Y, *K.dense_backward(dA, A, W, Y, "tanh")]
        results += [K.softmax(Z), *K.softmax_cross_entropy(Z, T), K.weight_gradient(dA, A), K.input_gradient(dA, W)]
        grad = K.weight_gradient(dA, A)
        results.append(np.array([K.clip_by_global_norm([grad], 10.0)]))
        K.adam_update(param, grad, m, v, step, 1e-3, 0.9, 0.999, 1e-8, 0.01, bool(k % 2))
        results += [param.copy(), m.copy(), v.copy()]
    return [np.asarray(r) for r in results]


def test_threads_calling_kernels_get_the_serial_results():
    jobs = [lambda k=k: _kernel_job(k) for k in range(THREADS)]
    serial = [job() for job in jobs]
    concurrent = run_together(jobs)
    for k, (got, expected) in enumerate(zip(concurrent, serial)):
        assert len(got) == len(expected)
        for i, (a, b) in enumerate(zip(got, expected)):
            assert a.dtype == b.dtype and np.array_equal(a, b), (k, i)


def test_threads_mixing_nets_and_kernels_get_the_serial_results():
    jobs = [lambda k=k: _training_job(k) if k % 2 else _kernel_job(k) for k in range(THREADS)]
    serial = [job() for job in jobs]
    concurrent = run_together(jobs)
    for k, (got, expected) in enumerate(zip(concurrent, serial)):
        if k % 2:
            assert got[0] == expected[0]
            got, expected = got[1], expected[1]
        assert all(np.array_equal(a, b) for a, b in zip(got, expected)), k


# ---------------------------------------------------------------- leaks

def _under_address_sanitizer():
    try:
        with open("/proc/self/maps") as maps:
            return "libasan" in maps.read()
    except OSError:
        return False


needs_linux_rss = pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                                     reason="reads the resident set size from /proc/self/statm (Linux)")
not_under_asan = pytest.mark.skipif(_under_address_sanitizer(),
                                    reason="AddressSanitizer's quarantine holds freed memory: RSS is not the process's")

SLACK = 6 << 20  # bytes the resident set may grow by after the warm-up


def resident_bytes():
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def assert_flat(work, rounds, warmup=2):
    """Run work() warmup times, then rounds times; RSS may grow by at most SLACK across the rounds."""
    for _ in range(warmup):
        work()
    before = resident_bytes()
    for _ in range(rounds):
        work()
    grown = resident_bytes() - before
    print(f"resident set {before / 2**20:.1f} MiB after the warm-up, grew by {grown / 2**10:.0f} KiB over {rounds} rounds")
    assert grown <= SLACK, f"resident set grew by {grown / 2**20:.1f} MiB over {rounds} rounds"


@pytest.mark.slow
@needs_linux_rss
@not_under_asan
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_memory_stays_flat_over_many_steps(dtype):
    # 10 rounds x 300 steps: a leak of one batch (64 x 256 values, 64 KiB in float32) per step
    # would be 190 MiB, thirty times the slack.
    rng = np.random.default_rng(0)
    net = bpfast.Network([256, 128, 10], output="softmax", dtype=dtype, seed=0, optimizer=optim.Adam())
    X = rng.standard_normal((64, 256)).astype(dtype)
    X64, y = X.astype(np.float64), rng.integers(0, 10, 64)

    def work():
        for step in range(300):
            if step % 2:
                net.train_step(X, y)
            else:
                net.train_step(X64, list(y))  # the checked path, which converts
        net.forward(X)
        net.loss(X, y)
        net.gradients(X, y)
        net.fit(X, y, epochs=2, batch_size=16)

    assert_flat(work, rounds=10)


@pytest.mark.slow
@needs_linux_rss
@not_under_asan
def test_memory_stays_flat_over_create_destroy_cycles(tmp_path):
    # 6 rounds x 40 nets of 330,000 weights (1.3 MiB in float32, more with Adam's state): a net
    # that outlived its last reference would leak 300 MiB or more.
    rng = np.random.default_rng(1)
    X = rng.standard_normal((32, 512)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    path = tmp_path / "net.npz"

    def work():
        for k in range(40):
            net = bpfast.Network([512, 512, 128, 10], output="softmax", seed=k,
                                 optimizer=optim.Adam() if k % 2 else None)
            net.train_step(X, y)
            layers, params = net.layers, net.parameters()  # views that keep the native memory alive
            del net
            assert np.isfinite(params[0]).all() and layers[-1].W.shape == (10, 128)
            del layers, params
        bpfast.Network([512, 64, 10], output="softmax", seed=0).save(path)
        for _ in range(5):
            bpfast.Network.load(path).train_step(X, y)

    assert_flat(work, rounds=6)


@pytest.mark.slow
@needs_linux_rss
@not_under_asan
def test_memory_stays_flat_over_many_kernel_calls():
    # Each call allocates its results: 20 rounds x 50 calls of each kernel on (128, 256) arrays
    # (128 KiB a result in float32) would leak 125 MiB per leaked result.
    rng = np.random.default_rng(2)
    A = rng.standard_normal((128, 256)).astype(np.float32)
    W = rng.standard_normal((256, 256)).astype(np.float32)
    b = rng.standard_normal(256).astype(np.float32)
    T = np.eye(256, dtype=np.float32)[rng.integers(0, 256, 128)]
    param, m, v = np.zeros((256, 256), np.float32), np.zeros((256, 256), np.float32), np.zeros((256, 256), np.float32)

    def work():
        for step in range(1, 51):
            Y = K.dense_forward(A, W, b, "softmax")
            K.dense_backward(Y, A, W, Y, "tanh")
            K.matmul(A, W, trans_b=True)
            K.softmax_cross_entropy(Y, T)
            K.activation_backward(Y, Y, "softmax")
            grad = K.weight_gradient(Y, A)
            K.clip_by_global_norm([grad], 1.0)
            K.adam_update(param, grad, m, v, step, 1e-3, 0.9, 0.999, 1e-8, 0.0, False)
            K.matmul(A.T, A[:, ::2])  # inputs converted to C order first

    assert_flat(work, rounds=20)
