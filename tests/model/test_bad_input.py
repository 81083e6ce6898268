"""Invalid input raises ValueError or TypeError naming the argument, and never touches the weights.

Every case runs on bpfast.Network and on bpfast.reference.Network, which must
refuse the same input with the same kind of error. After each refused call
every W and b is compared bit for bit with a snapshot taken before it.
Non-contiguous input is valid and must give the contiguous copy's answer
(tolerance 1e-12 relative, float64).

The second half pins inputs that once crashed, overflowed or slipped through
unchecked (issue "Hardening"); each test there names the defect, and the
oracle is the documented behaviour: a ValueError or TypeError naming the
argument, MemoryError for an allocation that fails, and a network left as it
was.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bpfast
from bpfast import _core, optim, reference
from bpfast import kernels as K
from conftest import assert_close, assert_unchanged, snapshot

CLASSES = [bpfast.Network, reference.Network]
CLASS_IDS = ["native", "reference"]
N_IN, N_OUT, BATCH = 4, 3, 5


@pytest.fixture(params=CLASSES, ids=CLASS_IDS)
def cls(request):
    return request.param


@pytest.fixture
def net(cls):
    return cls([N_IN, 6, N_OUT], activation="tanh", output="softmax", loss="cross_entropy", dtype="float64",
               seed=0)


def good_X():
    return np.random.default_rng(0).standard_normal((BATCH, N_IN))


def good_T():
    return np.eye(N_OUT)[[0, 1, 2, 0, 1]]


def calls_with_X(X):
    """Each public method applied to X (and valid targets)."""
    return {
        "forward": lambda n: n.forward(X),
        "predict": lambda n: n.predict(X),
        "loss": lambda n: n.loss(X, good_T()),
        "gradients": lambda n: n.gradients(X, good_T()),
        "train_step": lambda n: n.train_step(X, good_T()),
        "fit": lambda n: n.fit(X, good_T(), epochs=1, batch_size=2),
    }


def calls_with_T(T):
    X = good_X()
    return {
        "loss": lambda n: n.loss(X, T),
        "gradients": lambda n: n.gradients(X, T),
        "train_step": lambda n: n.train_step(X, T),
        "fit": lambda n: n.fit(X, T, epochs=1, batch_size=2),
    }


def assert_refused_and_unchanged(net, call, error, argument):
    """call(net) raises error naming the argument, and every W and b of net stays as it was."""
    before = snapshot(net)
    with pytest.raises(error, match=rf"\b{argument}\b"):
        call(net)
    assert_unchanged(net, before)


def _wide_nan():
    X = good_X()
    X[2, 1] = np.nan
    return X


def _wide_inf():
    X = good_X()
    X[0, 3] = -np.inf
    return X


BAD_X = {  # name: (X, error type)
    "1-D": (np.ones(N_IN), ValueError),
    "3-D": (np.ones((2, BATCH, N_IN)), ValueError),
    "wrong n_in": (np.ones((BATCH, N_IN + 1)), ValueError),
    "too few n_in": (np.ones((BATCH, N_IN - 1)), ValueError),
    "strings": (np.array([["a"] * N_IN] * BATCH), TypeError),
    "objects": (np.array([[object()] * N_IN] * BATCH), TypeError),
    "empty batch": (np.ones((0, N_IN)), ValueError),
    "NaN": (_wide_nan(), ValueError),
    "Inf": (_wide_inf(), ValueError),
}
METHODS_X = list(calls_with_X(None))


@pytest.mark.parametrize("method", METHODS_X)
@pytest.mark.parametrize("case", list(BAD_X))
def test_bad_X_is_refused(net, case, method):
    X, error = BAD_X[case]
    assert_refused_and_unchanged(net, calls_with_X(X)[method], error, "X")


def _T_nan():
    T = good_T().astype(float)
    T[1, 1] = np.nan
    return T


BAD_T = {  # name: (T, error type)
    "NaN": (_T_nan(), ValueError),
    "Inf": (np.where(good_T() == 1, np.inf, 0.0), ValueError),
    "wrong width": (np.ones((BATCH, N_OUT + 1)) / (N_OUT + 1), ValueError),
    "batch mismatch": (good_T()[:-1], ValueError),
    "3-D": (good_T()[None], ValueError),
    "strings": (np.array([["x"] * N_OUT] * BATCH), TypeError),
    "labels negative": (np.array([0, 1, -1, 2, 0]), ValueError),
    "labels too large": (np.array([0, 1, N_OUT, 2, 0]), ValueError),
    "labels batch mismatch": (np.array([0, 1, 2]), ValueError),
    "fractional labels": (np.array([0.0, 1.5, 2.0, 0.0, 1.0]), ValueError),  # whole-valued floats are labels
    "NaN labels": (np.array([0.0, np.nan, 2.0, 0.0, 1.0]), ValueError),
    "float labels too large": (np.array([0.0, 1.0, float(N_OUT), 0.0, 1.0]), ValueError),
    "complex": (np.ones((BATCH, N_OUT), dtype=complex), TypeError),
}
METHODS_T = list(calls_with_T(None))


@pytest.mark.parametrize("method", METHODS_T)
@pytest.mark.parametrize("case", list(BAD_T))
def test_bad_T_is_refused(net, case, method):
    T, error = BAD_T[case]
    assert_refused_and_unchanged(net, calls_with_T(T)[method], error, "T")


@pytest.mark.parametrize("labels", [[0, 1, 2, 0, 1], [0, 1, -1, 0, 1]], ids=["two", "negative"])
def test_single_sigmoid_output_refuses_labels_outside_0_1(cls, labels):
    net = cls([N_IN, 1], output="sigmoid", dtype="float64", seed=0)
    before = snapshot(net)
    for call in calls_with_T(np.array(labels)).values():
        with pytest.raises(ValueError, match=r"\bT\b"):
            call(net)
    assert_unchanged(net, before)


def test_labels_need_a_classification_loss(cls):
    net = cls([N_IN, N_OUT], output="identity", dtype="float64", seed=0)
    before = snapshot(net)
    for call in calls_with_T(np.array([0, 1, 2, 0, 1])).values():
        with pytest.raises(ValueError, match=r"\bT\b"):
            call(net)
    assert_unchanged(net, before)


# ---------------------------------------------------------------- training arguments

BAD_TRAINING_ARGS = {  # name: (keyword arguments, argument named)
    "lr zero": (dict(lr=0), "lr"),
    "lr negative": (dict(lr=-0.1), "lr"),
    "lr NaN": (dict(lr=float("nan")), "lr"),
    "lr Inf": (dict(lr=float("inf")), "lr"),
    "lr string": (dict(lr="0.1"), "lr"),
    "epochs negative": (dict(epochs=-1), "epochs"),
    "epochs float": (dict(epochs=2.5), "epochs"),
    "batch_size zero": (dict(batch_size=0), "batch_size"),
    "batch_size negative": (dict(batch_size=-4), "batch_size"),
    "batch_size float": (dict(batch_size=2.0), "batch_size"),
}


@pytest.mark.parametrize("case", list(BAD_TRAINING_ARGS))
def test_bad_training_arguments_are_refused(net, case):
    kwargs, name = BAD_TRAINING_ARGS[case]
    before = snapshot(net)
    with pytest.raises((ValueError, TypeError), match=name):
        net.fit(good_X(), good_T(), **kwargs)
    if set(kwargs) == {"lr"}:
        with pytest.raises((ValueError, TypeError), match=name):
            net.train_step(good_X(), good_T(), **kwargs)
    assert_unchanged(net, before)


# ---------------------------------------------------------------- construction

BAD_CONSTRUCTION = {  # name: (sizes, keyword arguments, error type, pattern naming the argument)
    "unknown activation": ([4, 5, 3], dict(activation="gelu"), ValueError, "activation"),
    "unknown activation in list": ([4, 5, 6, 3], dict(activation=["relu", "gelu"]), ValueError,
                                   r"activation\[1\]"),
    "softmax as hidden activation": ([4, 5, 3], dict(activation="softmax"), ValueError, "activation"),
    "activation list too short": ([4, 5, 6, 3], dict(activation=["relu"]), ValueError, "activation"),
    "activation list too long": ([4, 5, 3], dict(activation=["relu", "tanh"]), ValueError, "activation"),
    "unknown output": ([4, 5, 3], dict(output="relu"), ValueError, "output"),
    "unknown output name": ([4, 5, 3], dict(output="softplus"), ValueError, "output"),
    "unknown loss": ([4, 5, 3], dict(loss="hinge"), ValueError, "loss"),
    "log_loss with identity": ([4, 5, 3], dict(output="identity", loss="log_loss"), ValueError, "loss"),
    "bce with softmax": ([4, 5, 3], dict(output="softmax", loss="binary_cross_entropy"), ValueError, "loss"),
    "bce with identity": ([4, 5, 3], dict(output="identity", loss="binary_cross_entropy"), ValueError, "loss"),
    "cross_entropy with identity": ([4, 5, 3], dict(output="identity", loss="cross_entropy"), ValueError,
                                    "loss"),
    "bad reduction": ([4, 5, 3], dict(reduction="avg"), ValueError, "reduction"),
    "reduction None": ([4, 5, 3], dict(reduction=None), ValueError, "reduction"),
    "dtype int32": ([4, 5, 3], dict(dtype="int32"), ValueError, "dtype"),
    "dtype float16": ([4, 5, 3], dict(dtype="float16"), ValueError, "dtype"),
    "dtype nonsense": ([4, 5, 3], dict(dtype="float99"), ValueError, "dtype"),
    "sizes empty": ([], {}, ValueError, "sizes"),
    "sizes one": ([4], {}, ValueError, "sizes"),
    "sizes string": ("43", {}, ValueError, "sizes"),
    "sizes zero width": ([4, 0, 3], {}, ValueError, r"sizes\[1\]"),
    "sizes negative": ([4, 5, -3], {}, ValueError, r"sizes\[2\]"),
    "sizes float": ([4, 2.5, 3], {}, ValueError, r"sizes\[1\]"),
    "sizes bool": ([True, 3], {}, ValueError, r"sizes\[0\]"),
}


@pytest.mark.parametrize("case", list(BAD_CONSTRUCTION))
def test_bad_construction_is_refused(cls, case):
    sizes, kwargs, error, pattern = BAD_CONSTRUCTION[case]
    with pytest.raises(error, match=pattern):
        cls(sizes, **kwargs)


def test_valid_construction_variants_are_accepted(cls):
    # The counterpart of the refusals above: these must all build.
    cls([4, 5, 3], dtype=np.float64)
    cls([4, 5, 3], dtype="float32")
    cls((np.int64(4), 5, 3), activation=["sigmoid"])
    cls([4, 5, 6, 3], activation=("relu", "tanh"), output="sigmoid", loss="binary_cross_entropy", reduction="sum")


# ---------------------------------------------------------------- non-contiguous input is fine

def _layouts():
    rng = np.random.default_rng(1)
    wide = rng.standard_normal((BATCH, 2 * N_IN))
    return {
        "strided columns": wide[:, ::2],
        "Fortran order": np.asfortranarray(wide[:, :N_IN]),
        "reversed rows": wide[::-1, 1:N_IN + 1],
        "float32 input": wide[:, :N_IN].astype(np.float32),
        "integer input": np.arange(BATCH * N_IN).reshape(BATCH, N_IN) % 3 - 1,
        "misaligned": _misaligned(wide[:, :N_IN]),
    }


def _misaligned(array):
    """A C-contiguous copy of array whose data starts one byte past an aligned address."""
    buffer = bytearray(array.nbytes + 1)
    view = np.frombuffer(buffer, dtype=array.dtype, count=array.size, offset=1).reshape(array.shape)
    view[...] = array
    assert view.flags.c_contiguous and not view.flags.aligned
    return view


@pytest.mark.parametrize("layout", list(_layouts()))
def test_non_contiguous_X_gives_the_contiguous_answer(cls, layout):
    X = _layouts()[layout]
    X_copy = np.ascontiguousarray(X, dtype=np.float64)
    T = good_T()[::-1]  # non-contiguous targets as well
    a = cls([N_IN, 6, N_OUT], activation="tanh", output="softmax", dtype="float64", seed=0)
    b = cls([N_IN, 6, N_OUT], activation="tanh", output="softmax", dtype="float64", seed=0)
    X_before = X.copy()
    assert_close(a.forward(X), b.forward(X_copy), np.float64)
    assert_close(a.loss(X, T), b.loss(X_copy, np.ascontiguousarray(T)), np.float64)
    for (dW, db), (dW2, db2) in zip(a.gradients(X, T), b.gradients(X_copy, np.ascontiguousarray(T))):
        assert_close(dW, dW2, np.float64)
        assert_close(db, db2, np.float64)
    assert_close(a.train_step(X, T), b.train_step(X_copy, np.ascontiguousarray(T)), np.float64)
    for la, lb in zip(a.layers, b.layers):
        assert_close(la.W, lb.W, np.float64)
    assert np.array_equal(X, X_before)  # the caller's array is not modified


def test_native_and_reference_refuse_identically():
    # Same error type and message from both classes for a sample of bad inputs.
    def outcome(cls, call):
        n = cls([N_IN, 6, N_OUT], activation="tanh", output="softmax", dtype="float64", seed=0)
        try:
            call(n)
        except (ValueError, TypeError) as e:
            return type(e), str(e)
        return None
    cases = [lambda n: n.forward(np.ones(N_IN)), lambda n: n.loss(good_X(), np.array([0, 1, 5, 0, 1])),
             lambda n: n.fit(good_X(), good_T(), lr=-1), lambda n: n.gradients(good_X(), np.array([0.5] * BATCH))]
    for call in cases:
        native, ref = outcome(bpfast.Network, call), outcome(reference.Network, call)
        assert native is not None and native == ref


def test_misaligned_arrays_are_read_as_aligned_copies_and_refused_as_out():
    # The core reads through typed pointers: a misaligned view is copied
    # before it gets there (or refused, as an output buffer).
    rng = np.random.default_rng(3)
    X = rng.standard_normal((BATCH, N_IN)).astype(np.float32)
    labels = np.arange(BATCH) % N_OUT
    net = bpfast.Network([N_IN, 6, N_OUT], output="softmax", dtype="float32", seed=0)
    twin = bpfast.Network([N_IN, 6, N_OUT], output="softmax", dtype="float32", seed=0)
    X_odd, labels_odd = _misaligned(X), _misaligned(labels)
    assert net._engine.plain_train_step(X_odd, labels, 0.1) is None
    assert net._engine.plain_train_step(X, labels_odd, 0.1) is None
    assert net.train_step(X_odd, labels_odd, 0.1) == twin.train_step(X, labels, 0.1)
    for a, b in zip(net.layers, twin.layers):
        assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)
    W = rng.standard_normal((7, N_IN)).astype(np.float32)
    assert np.array_equal(K.matmul(X_odd, W, False, True), K.matmul(X, W, False, True))
    with pytest.raises(ValueError, match="out must be aligned"):
        K.matmul(X, W, False, True, out=_misaligned(np.zeros((BATCH, 7), np.float32)))


# ================================================================ hardening: inputs that once crashed or slipped through

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


@pytest.mark.slow
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
