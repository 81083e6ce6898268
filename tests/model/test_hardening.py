"""Inputs that once crashed, overflowed or slipped through unchecked.

Each test names the defect it pins down (issue "Hardening"); the oracle is
the documented behaviour: a ValueError or TypeError naming the argument,
MemoryError for an allocation that fails, and a network left as it was.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bpfast
from bpfast import _core, optim, reference
from conftest import assert_unchanged, snapshot

CLASSES = [bpfast.Network, reference.Network]
CLASS_IDS = ["native", "reference"]


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_sizes_whose_parameter_count_overflows_are_refused(cls):
    # The parameter count of this net overflowed int64, wrapped to a small
    # number, and the core wrote far past the buffer it allocated.
    with pytest.raises(ValueError, match=r"sizes\[9\]|layer \d"):
        cls([2**31, 2**30 - 1] * 4 + [1, 1152921506217459715])
    with pytest.raises(ValueError, match=r"sizes\[0\]"):
        cls([2**63 - 1, 2])


@pytest.mark.parametrize("core", ["f32", "f64"])
def test_the_core_names_the_layer_that_exceeds_the_size_limit(core):
    # 2^24 x 2^25 weights = 2^49 values, above the 2^48 limit: refused before anything is allocated.
    Network = getattr(_core, core).Network
    with pytest.raises(ValueError, match=r"layer 1 \(16777216 -> 33554432\) is too large"):
        Network([3, 2**24, 2**25], ["relu", "identity"], "squared_error", "mean")
    with pytest.raises(ValueError, match=r"layer 0 .* too large"):
        Network([2**31, 2**30 - 1] * 4 + [1, 1152921506217459715], ["relu"] * 9, "squared_error", "mean")


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_values_that_overflow_on_the_cast_to_float32_are_refused_as_input(cls):
    # 1e300 is finite in float64 and Inf in float32: it used to pass the check.
    net = cls([3, 4, 2], output="softmax", dtype="float32", seed=0)
    X = np.ones((5, 3))
    X[2, 1] = 1e300
    before = snapshot(net)
    for call in (lambda: net.forward(X), lambda: net.train_step(X, [0, 1, 0, 1, 0]),
                 lambda: net.fit(X, [0, 1, 0, 1, 0], epochs=1)):
        with pytest.raises(ValueError, match=r"\bX\b.*finite in float32"):
            call()
    T = np.full((5, 2), 0.5)
    T[0, 0] = -1e300
    with pytest.raises(ValueError, match=r"\bT\b.*finite in float32"):
        net.train_step(np.ones((5, 3)), T)
    with pytest.raises(ValueError, match=r"\bW\b.*finite"):
        net.layers[0].W = np.full((4, 3), 1e300)
    assert_unchanged(net, before)


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_a_fit_that_refuses_its_arguments_keeps_the_optimizer_and_its_state(cls):
    net = cls([3, 4, 2], output="softmax", dtype="float64", seed=0, optimizer=optim.SGD(lr=0.1, momentum=0.9))
    X, y = np.random.default_rng(0).standard_normal((6, 3)), np.array([0, 1, 0, 1, 1, 0])
    net.train_step(X, y)
    optimizer, velocity = net.optimizer, net._engine.optimizer_state()[0].copy()
    before = snapshot(net)
    for bad in (dict(lr=-1), dict(callbacks=[1]), dict(validation_data=(X,)), dict(batch_size=0)):
        with pytest.raises((ValueError, TypeError)):
            net.fit(X, y, optimizer=optim.Adam(), **bad)
        assert net.optimizer is optimizer
        assert np.array_equal(net._engine.optimizer_state()[0], velocity)
        assert_unchanged(net, before)


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_constructor_arguments_are_type_checked(cls):
    for sizes in ({1: 2, 3: 4}, {2, 3}, "23", b"23", 5, np.ones((2, 2), int)):
        with pytest.raises((ValueError, TypeError), match="sizes"):
            cls(sizes)
    with pytest.raises(ValueError, match="dtype"):
        cls([2, 3], dtype=None)
    for dtype in ("float32", np.float32, np.dtype("float64"), "f8"):
        assert cls([2, 3], dtype=dtype).dtype in (np.float32, np.float64)
    assert cls(np.array([2, 3]), seed=0).sizes == [2, 3]  # a 1-D array of widths is a sequence too


def test_an_allocation_that_fails_is_memory_error_and_the_process_goes_on():
    # In a child whose address space is capped at 3 GiB, a net of 2^31
    # float32 weights (8 GiB) cannot be allocated: MemoryError, and the
    # process and its other nets carry on.
    child = textwrap.dedent("""
        import resource, numpy as np, bpfast
        small = bpfast.Network([4, 3, 2], output="softmax", seed=0)
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        try:
            bpfast.Network([2**16, 2**15], dtype="float32")
        except MemoryError:
            print("MemoryError")
        loss = small.train_step(np.ones((5, 4), np.float32), np.array([0, 1, 0, 1, 1]))
        print("finite" if np.isfinite(loss) else "not finite")
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120,
                          env={"BPFAST_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["MemoryError", "finite"]


def test_set_num_threads_refuses_counts_above_its_bound():
    before = bpfast.get_num_threads()
    with pytest.raises(ValueError, match="between 1 and 256"):
        bpfast.set_num_threads(100000)
    assert bpfast.get_num_threads() == before


OPTIMIZERS = {
    "sgd": lambda: optim.SGD(lr=0.1),
    "nesterov": lambda: optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adamw": lambda: optim.AdamW(lr=0.1, weight_decay=0.1),
}


@pytest.mark.parametrize("batch", [8, 200])  # small-network and GEMM backends
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_a_float32_update_that_overflows_is_refused_and_changes_nothing(cls, opt, batch):
    # lr = 1e39 is a finite float but Inf in float32, so every update
    # overflows. Such steps once returned normally with parameters Inf, and
    # the next call blamed a gradient.
    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((batch, 30)).astype(np.float32), rng.standard_normal((batch, 2)).astype(np.float32)
    net = cls([30, 40, 2], dtype="float32", seed=0, optimizer=OPTIMIZERS[opt]())
    net.train_step(X, T)  # some optimizer state to keep
    before, state = snapshot(net), [s.copy() for s in net._engine.optimizer_state()]
    steps = net._engine.steps
    with pytest.raises(FloatingPointError, match=r"layer 0.*not updated"):
        net.train_step(X, T, lr=1e39)
    assert_unchanged(net, before)
    for saved, now in zip(state, net._engine.optimizer_state()):
        assert np.array_equal(saved, now)
    assert net._engine.steps == steps
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 1, layer 0"):
        net.fit(X, T, epochs=1, batch_size=batch, lr=1e39)
    assert_unchanged(net, before)
    assert np.isfinite(net.train_step(X, T))  # and the net goes on training


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_a_float64_update_that_overflows_names_its_layer(cls, opt):
    # Finite gradients of 1e300 in the second layer only: θ − lr·g overflows there.
    net = cls([3, 4, 2], dtype="float64", seed=0, optimizer=OPTIMIZERS[opt]())
    engine = net._engine
    loss = engine.compute_gradients(np.ones((5, 3)), np.zeros((5, 2)), None)
    grads = engine.gradients()
    grads[0][...] = grads[1][...] = 0.0
    grads[2][...] = 1e300
    before = snapshot(net)
    assert engine.apply_update(loss, 1e10)[1:] == (False, 1)
    assert_unchanged(net, before)


@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_an_adam_state_that_would_overflow_is_refused(cls):
    # g = 1e22 is finite in float32 but (1 − β2)·g² is not: v would become Inf
    # while the weights stayed finite (m/√v = 0).
    net = cls([3, 4, 2], dtype="float32", seed=0, optimizer=optim.Adam(lr=1e-3))
    X, T = np.ones((5, 3), np.float32), np.zeros((5, 2), np.float32)
    engine = net._engine
    loss = engine.compute_gradients(X, T, None)
    before, state = snapshot(net), [s.copy() for s in engine.optimizer_state()]
    engine.gradients()[2][...] = 1e22
    assert engine.apply_update(loss)[1:] == (False, 1)
    assert_unchanged(net, before)
    for saved, now in zip(state, engine.optimizer_state()):
        assert np.array_equal(saved, now)


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("cls", CLASSES, ids=CLASS_IDS)
def test_a_step_over_several_chunks_is_undone_everywhere(cls, opt):
    # 60k parameters (two chunks of the optimizer's pass, each running on its own thread),
    # weight decay on weights only (per-layer ranges): only the last layer overflows, but the
    # step is taken in one pass that writes every layer first, so every parameter and every
    # state value must come back to what it was, in float64 as in the oracle snapshot.
    net = cls([300, 200, 3], dtype="float64", seed=0, optimizer=OPTIMIZERS[opt]())
    rng = np.random.default_rng(3)
    X, T = rng.standard_normal((6, 300)), rng.standard_normal((6, 3))
    net.train_step(X, T)
    engine = net._engine
    loss = engine.compute_gradients(X, T, None)
    before, state = snapshot(net), [s.copy() for s in engine.optimizer_state()]
    steps = engine.steps
    grads = engine.gradients()
    grads[2][...] = 1e300 if opt != "adamw" else 1e200  # Adam's v overflows on g² (finite g)
    assert engine.apply_update(loss, 1e10)[1:] == (False, 1)
    assert_unchanged(net, before)
    for saved, now in zip(state, engine.optimizer_state()):
        assert np.array_equal(saved, now)
    assert engine.steps == steps
    assert np.isfinite(net.train_step(X, T))


def test_ctrl_c_stops_fit_at_a_batch_boundary_within_a_fraction_of_an_epoch():
    # In a child: epochs of about a second; SIGINT half an epoch after the
    # first epoch of a fit ends (sent from a timer that a callback starts, so
    # that a loaded machine cannot move it before that epoch's end). fit must
    # raise KeyboardInterrupt well before the epoch at hand would end, with the
    # History of exactly the epochs completed attached; the net then trains on.
    child = textwrap.dedent("""
        import os, signal, threading, time, numpy as np, bpfast
        # Python installs this handler only where SIGINT is not ignored at start
        # (a background job's is): the handler an interactive session has.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        rng = np.random.default_rng(0)
        X = rng.standard_normal((16384, 256)).astype(np.float32)
        y = rng.integers(0, 10, 16384)
        net = bpfast.Network([256, 512, 512, 10], output="softmax", seed=0, optimizer=bpfast.optim.SGD(lr=1e-3))
        start = time.perf_counter()
        net.fit(X, y, epochs=1, batch_size=16)
        per_epoch = time.perf_counter() - start
        sent = []
        def interrupt():
            sent.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)
        steps_before = net._engine.steps
        started = time.perf_counter()
        def after_epoch(epoch, logs):
            if epoch == 1:
                threading.Timer(0.5 * (time.perf_counter() - started), interrupt).start()
        try:
            net.fit(X, y, epochs=20, batch_size=16, callbacks=[after_epoch])
            print("not interrupted")
        except KeyboardInterrupt as error:
            latency = time.perf_counter() - sent[0]
            steps = net._engine.steps - steps_before
            # waiting for the epoch to end would take 0.5 epochs
            print(len(error.history), steps // 1024, latency < 0.35 * per_epoch,
                  all(np.isfinite(p).all() for p in net.parameters()), np.isfinite(net.train_step(X[:16], y[:16])))
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    completed, whole_epochs, quick, finite, usable = done.stdout.split()
    assert completed == whole_epochs and int(completed) >= 1  # the History holds exactly the epochs completed
    assert (quick, finite, usable) == ("True", "True", "True"), done.stdout


@pytest.mark.parametrize("patience", [None, 1])
def test_a_callback_that_raises_leaves_the_weights_of_the_last_completed_epoch(patience):
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((64, 5)), rng.integers(0, 3, 64)
    net = bpfast.Network([5, 8, 3], output="softmax", dtype="float64", seed=0)
    twin = bpfast.Network([5, 8, 3], output="softmax", dtype="float64", seed=0)
    twin.fit(X, y, epochs=2, batch_size=16, shuffle=False)

    def fail_at_second_epoch(epoch, logs):  # epochs count from 1
        if epoch == 2:
            raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        net.fit(X, y, epochs=5, batch_size=16, shuffle=False, patience=patience, callbacks=[fail_at_second_epoch])
    for a, b in zip(net.parameters(), twin.parameters()):
        assert np.array_equal(a, b)
