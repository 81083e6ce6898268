"""Invalid input raises ValueError or TypeError naming the argument, and never touches the weights.

Every case runs on bpfast.Network and on bpfast.reference.Network, which must
refuse the same input with the same kind of error. After each refused call
every W and b is compared bit for bit with a snapshot taken before it.
Non-contiguous input is valid and must give the contiguous copy's answer
(tolerance 1e-12 relative, float64).
"""

import numpy as np
import pytest

import bpfast
from bpfast import kernels as K
from bpfast import reference
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
    before = snapshot(net)
    with pytest.raises(error, match=r"\bX\b"):
        calls_with_X(X)[method](net)
    assert_unchanged(net, before)


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
    before = snapshot(net)
    with pytest.raises(error, match=r"\bT\b"):
        calls_with_T(T)[method](net)
    assert_unchanged(net, before)


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
