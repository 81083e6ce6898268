"""The rules that the core states once and Python asks for: the flat parameter layout and the label range.

The layout's oracle is the reference engine, which lays its flat buffer out on its own
(bpfast/reference/engine.py): each of its views' offset in that buffer and its shape must be
the core's answer (_core.ParameterLayout), and so must the native network's own views. The
label rule's oracle is its statement, written out here: labels lie in [0, n_out), or [0, 2)
for one output unit; every path (_validate, the bindings, the fast path) must agree with it.
"""

import numpy as np
import pytest

import bpfast
from bpfast import _core, reference
from conftest import assert_unchanged, snapshot

ARCHITECTURES = [[1, 1], [3, 5, 2], [7, 1, 4, 1], [2, 16, 33, 9, 3], [64, 8, 10]]


def offsets_and_shapes(views, flat):
    """[(offset in flat, shape)] of each view: where the engine itself put it."""
    base = flat.__array_interface__["data"][0]
    return [((v.__array_interface__["data"][0] - base) // flat.itemsize, v.shape) for v in views]


@pytest.mark.parametrize("sizes", ARCHITECTURES, ids=str)
def test_the_core_layout_is_the_reference_engines(sizes):
    layout = _core.ParameterLayout(sizes)
    engine = reference.Engine(sizes, ["relu"] * (len(sizes) - 2) + ["identity"], "squared_error", "mean", "float64")
    expected = offsets_and_shapes(engine.parameters(), engine.flat_parameters())
    assert list(zip(layout.offsets, layout.shapes)) == expected
    assert offsets_and_shapes(engine.gradients(), engine.flat_gradients()) == expected
    assert layout.n_parameters == engine.flat_parameters().size
    assert layout.sizes == sizes
    # Each layer's W and b together: from W_l's first value to b_l's last.
    assert layout.layers == [(expected[2 * l][0], expected[2 * l + 1][0] + sizes[l + 1])
                             for l in range(len(sizes) - 1)]
    assert bpfast.Network._parameter_shapes(sizes) == reference.Network._parameter_shapes(sizes)


@pytest.mark.parametrize("core", ["f32", "f64"])
@pytest.mark.parametrize("sizes", ARCHITECTURES, ids=str)
def test_the_native_views_are_the_layouts(core, sizes):
    layout = _core.ParameterLayout(sizes)
    net = getattr(_core, core).Network(sizes, ["tanh"] * (len(sizes) - 2) + ["identity"], "squared_error", "mean")
    assert net.sizes == sizes
    assert offsets_and_shapes(net.parameters(), net.flat_parameters()) == list(zip(layout.offsets, layout.shapes))
    assert offsets_and_shapes(net.gradients(), net.flat_gradients()) == list(zip(layout.offsets, layout.shapes))


def test_the_layout_refuses_what_no_network_can_hold():
    with pytest.raises(ValueError, match="at least two sizes"):
        _core.ParameterLayout([3])
    with pytest.raises(ValueError, match="sizes must be positive; got 0"):
        _core.ParameterLayout([3, 0, 2])
    with pytest.raises(ValueError, match=r"layer 1 \(16777216 -> 33554432\) is too large"):
        _core.ParameterLayout([3, 2**24, 2**25])  # 2^49 weights, above the 2^48 limit


# ---------------------------------------------------------------- the label range

def rule_message(n_out, low, high):
    """The rule as the docs state it: [0, n_out) classes, [0, 2) for a single output unit."""
    classes = 2 if n_out == 1 else n_out
    return f"T labels must lie in [0, {classes}); got values from {low} to {high}"


CASES = [  # (n_out, labels, low, high as the message writes them)
    (3, np.array([0, 5, 1]), "0", "5"),
    (3, np.array([2, -1, 0]), "-1", "2"),
    (1, np.array([0, 1, 2]), "0", "2"),
    (4, np.array([0.0, 7.0, 1.0]), "0", "7"),
    (2, np.array([0.0, 1e30]), "0", "1e+30"),
    (2, np.array([-1e300, 1.0]), "-1e+300", "1"),
    (2, np.array([0, 2**64 - 1], dtype=np.uint64), "0", "18446744073709551615"),
    (5, np.array([4, 5], dtype=np.uint8), "4", "5"),
]


@pytest.mark.parametrize("n_out, labels, low, high", CASES)
def test_every_path_states_the_label_rule_in_the_same_words(n_out, labels, low, high):
    output = "sigmoid" if n_out == 1 else "softmax"
    net = bpfast.Network([2, 3, n_out], output=output, dtype="float64", seed=0)
    X = np.ones((labels.shape[0], 2))
    before = snapshot(net)
    message = rule_message(n_out, low, high)
    with pytest.raises(ValueError) as python_path:
        net.train_step(X, labels)
    assert str(python_path.value) == message
    assert net._engine.plain_train_step(X, labels, None) is None  # the fast path refuses and does nothing
    assert_unchanged(net, before)
    if labels.dtype.kind == "i":  # the bindings take int64 labels as they are
        for call in (lambda: net._engine.train_step(X, None, labels),
                     lambda: net._engine.loss(X, None, labels)):
            with pytest.raises(ValueError) as core_path:
                call()
            assert str(core_path.value) == message
    assert_unchanged(net, before)


@pytest.mark.parametrize("n_out", [1, 2, 5])
def test_the_core_rule_finds_the_first_label_out_of_range(n_out):
    classes = 2 if n_out == 1 else n_out
    assert _core.label_classes(n_out) == classes
    assert _core.first_label_out_of_range(np.arange(classes, dtype=np.int64), n_out) == -1
    labels = np.array([0, classes - 1, classes, -1], dtype=np.int64)
    assert _core.first_label_out_of_range(labels, n_out) == 2
    assert _core.first_label_out_of_range(labels[::-1].copy(), n_out) == 0
    assert _core.label_range_message("y", n_out, "a", "b") == f"y labels must lie in [0, {classes}); got values from a to b"
